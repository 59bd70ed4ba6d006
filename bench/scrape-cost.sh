#!/usr/bin/env bash
# Scrape cost of /metrics with N published ports, eBPF and iptables side by side
# in one run: each datapath gets its own host netns, a container publishing the
# range, and R timed scrapes (median, min, max of curl's total time), plus the
# daemon's RSS and the datapath read time it reports. Leaves nothing behind.
#
#   bench/scrape-cost.sh [N=10000] [R=15]
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
n=${1:-10000}
rounds=${2:-15}
first=20000
last=$((first + n - 1))
[ "$last" -le 65535 ] || { echo "N too large for one range starting at $first" >&2; exit 2; }

id=$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
work=$(mktemp -d /tmp/bridgeport-bench.XXXXXX)
pids=()
nss=()
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  for ns in "${nss[@]}"; do
    nsenter --net="/var/run/netns/$ns" -- "$repo/bin/bridgeport" daemon --cleanup \
      --state-dir "$work/$ns/state" --run-dir "$work/$ns/run" --metrics-addr '' >/dev/null 2>&1
    for s in "$work/$ns"/run/netns/*; do [ -e "$s" ] && { umount -l "$s"; rm -f "$s"; }; done
    ip netns del "$ns"
  done
  rm -rf "$work"
}
trap cleanup EXIT

printf '| datapath | published ports | scrape median (ms) | min | max | datapath read (ms) | daemon RSS (MiB) |\n|---|---|---|---|---|---|---|\n'
for dp in ebpf iptables; do
  ns=bpbench-$id-$dp
  ip netns add "$ns"
  nss+=("$ns")
  ip -n "$ns" link set lo up
  ip -n "$ns" link add uplink0 type veth peer name peer0
  ip -n "$ns" addr add 198.18.0.1/24 dev uplink0
  ip -n "$ns" link set uplink0 up
  ip -n "$ns" link set peer0 up
  mkdir -p "$work/$ns/state" "$work/$ns/run"
  nsenter --net="/var/run/netns/$ns" -- "$repo/bin/bridgeport" daemon --datapath "$dp" --uplink uplink0 --docker-plugin '' \
    --state-dir "$work/$ns/state" --run-dir "$work/$ns/run" --metrics-addr 127.0.0.1:9477 >"$work/$ns.log" 2>&1 &
  pids+=($!)
  bp() { nsenter --net="/var/run/netns/$ns" -- "$repo/bin/bridgeport" -H "unix://$work/$ns/run/bridgeport.sock" "$@"; }
  for _ in $(seq 100); do bp status >/dev/null 2>&1 && break; sleep 0.1; done
  bp run -d --name web -p "$first-$last:$first-$last" -- sleep 3600 >/dev/null
  times=()
  for _ in $(seq "$rounds"); do
    times+=("$(nsenter --net="/var/run/netns/$ns" -- curl -s -o /dev/null -w '%{time_total}' http://127.0.0.1:9477/metrics)")
  done
  read_s=$(nsenter --net="/var/run/netns/$ns" -- curl -s http://127.0.0.1:9477/metrics | awk '/^bridgeport_scrape_duration_seconds /{print $2}')
  rss=$(awk '/^VmRSS/{printf "%.0f", $2/1024}' "/proc/${pids[-1]}/status")
  printf '%s\n' "${times[@]}" | sort -n | awk -v dp="$dp" -v n="$n" -v rd="$read_s" -v rss="$rss" '
    { t[NR] = $1 * 1000 }
    END { printf "| %s | %d | %.1f | %.1f | %.1f | %.1f | %s |\n", dp, n, t[int((NR + 1) / 2)], t[1], t[NR], rd * 1000, rss }'
done
