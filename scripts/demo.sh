#!/usr/bin/env bash
# bridgeport end to end, in namespaces of its own (the machine is left as found):
#
#   client netns (198.18.0.2) --uplink veth-- host netns (198.18.0.1, bridgeport daemon)
#                                               |-- network "demo":  web (-p 8080:80)
#                                               `-- network "quiet" (--icc=false): db, app
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

id=$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
host=bpdemo-$id-h
client=bpdemo-$id-c
work=$(mktemp -d /tmp/bridgeport-demo.XXXXXX)
hostns=/var/run/netns/$host
daemon_pid=

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
in_host() { nsenter --net="$hostns" -- "$@"; }
in_client() { nsenter --net="/var/run/netns/$client" -- "$@"; }
bp() { in_host "$repo/bin/bridgeport" -H "unix://$work/run/bridgeport.sock" "$@"; }

cleanup() {
  local rc=$?
  set +e
  step "cleaning up"
  if [ -n "$daemon_pid" ]; then
    for c in $(bp ps -q 2>/dev/null); do bp rm -f "$c" >/dev/null; done
    for n in quiet demo; do bp network rm "$n" >/dev/null 2>&1; done
    kill "$daemon_pid" 2>/dev/null; wait "$daemon_pid" 2>/dev/null
  fi
  # Programs, pinned maps, cgroup links and sysctls of the instance (either datapath).
  in_host "$repo/bin/bridgeport" daemon --cleanup --state-dir "$work/state" --run-dir "$work/run" \
    --uplink uplink0 --metrics-addr '' >>"$work/daemon.log" 2>&1
  # Anything left in the sandboxes (only if a step above failed).
  for ns in "$work"/run/netns/*; do
    [ -e "$ns" ] || continue
    umount -l "$ns" 2>/dev/null; rm -f "$ns"
  done
  ip netns del "$client" 2>/dev/null
  ip netns del "$host" 2>/dev/null
  rm -rf "$work"
  echo "removed namespaces $host, $client and $work"
  exit $rc
}
trap cleanup EXIT

step "topology: client netns <-> uplink veth <-> host netns"
ip netns add "$host"
ip netns add "$client"
ip link add uplink0 netns "$host" type veth peer name eth0 netns "$client"
in_host ip addr add 198.18.0.1/24 dev uplink0
in_client ip addr add 198.18.0.2/24 dev eth0
for ns in "$host" "$client"; do
  nsenter --net="/var/run/netns/$ns" ip link set lo up
done
in_host ip link set uplink0 up
in_client ip link set eth0 up
in_host ip route add default via 198.18.0.2
echo "host $host: uplink0 198.18.0.1/24   client $client: eth0 198.18.0.2/24"

step "bridgeport daemon (inside the host netns)"
mkdir -p "$work/state" "$work/run"
# nsenter itself (not the in_host function, which would fork a subshell) so that
# $! is the daemon's pid: nsenter execs it.
# --docker-plugin '': the demo leaves the host's /run/docker/plugins alone.
nsenter --net="$hostns" -- "$repo/bin/bridgeport" daemon --datapath auto --uplink uplink0 --docker-plugin '' \
  --state-dir "$work/state" --run-dir "$work/run" --metrics-addr 127.0.0.1:9477 >"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do
  bp status >/dev/null 2>&1 && break
  kill -0 "$daemon_pid" 2>/dev/null || { cat "$work/daemon.log"; exit 1; }
  sleep 0.1
done
bp status

step "a user network and a web server published on 8080"
bp network create demo --subnet 172.30.0.0/24 >/dev/null
bp run -d --name web --network demo -p 8080:80 -- node "$repo/examples/hello-web.mjs" 80 >/dev/null
bp port web
for _ in $(seq 50); do in_host curl -s -o /dev/null http://172.30.0.2/ && break; sleep 0.1; done

step "fetch it from the client netns through the host's uplink address"
echo "client\$ curl http://198.18.0.1:8080/"
in_client curl -sS --max-time 5 http://198.18.0.1:8080/

step "an --icc=false network: containers on it may not talk to each other"
bp network create quiet --icc=false >/dev/null
bp run -d --name db --network quiet -- node "$repo/examples/hello-web.mjs" 80 >/dev/null
bp run -d --name app --network quiet -- sleep 300 >/dev/null
db_ip=$(bp inspect db | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s)[0].NetworkSettings.Networks.quiet.IPAddress))')
for _ in $(seq 50); do in_host curl -s -o /dev/null "http://$db_ip/" && break; sleep 0.1; done
echo "app\$ curl http://$db_ip/   (db answers the host, but app is refused)"
if bp exec app -- curl -sS --max-time 2 "http://$db_ip/"; then
  echo "unexpected: app reached db on an --icc=false network" >&2
  exit 1
fi
echo "refused: app -> db is denied by the network's icc=false policy"

step "what bridgeport installed"
bp network ls
echo
bp ps
echo
datapath=$(bp status --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).Datapath))')
if [ "$datapath" = ebpf ]; then
  echo "eBPF datapath: programs on the uplink and on each container's veth, pinned maps"
  in_host tc filter show dev uplink0 ingress
  in_host ip -d link show dev uplink0 | grep -o 'prog/xdp[^ ]* id [0-9]*' || true
  bp status --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const i=JSON.parse(s).DatapathInfo;console.log(JSON.stringify({bpfDir:i.bpfDir,xdp:i.xdp,publishedPorts:i.publishedPorts,conntrackEntries:i.conntrackEntries,drops:i.drops}))})'
  echo "iptables rules of bridgeport's: $(in_host iptables-save | grep -c BRIDGEPORT || true)"
else
  in_host iptables-save | grep -E '^(\*|:BRIDGEPORT|-A [A-Z]+ .*BRIDGEPORT|-A BRIDGEPORT)' || true
fi

step "what Prometheus sees (http://127.0.0.1:9477/metrics inside the host netns)"
in_host curl -s http://127.0.0.1:9477/metrics |
  grep -E '^bridgeport_(datapath_info|published_port_packets_total|endpoint_packets_total\{network="demo"|drops_total\{reason="icc_denied"|conntrack_entries)' || true
echo
bp stats --no-stream

step "removing containers and networks"
bp rm -f web db app
bp network rm demo quiet
