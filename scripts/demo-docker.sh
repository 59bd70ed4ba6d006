#!/usr/bin/env bash
# The main demo's story through a real dockerd (Debian's docker.io), with
# bridgeport as its network driver, in namespaces of its own (the machine is
# left as found):
#
#   client netns (198.18.0.2) --uplink veth-- host netns (198.18.0.1)
#                                               dockerd + bridgeport daemon, in a mount namespace of
#                                               their own (tmpfs over /run and /etc/docker)
#                                               `-- docker network "web" (-d bridgeport): web (-p 8080:80)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

for bin in /usr/sbin/dockerd /usr/bin/docker /bin/busybox; do
  [ -x "$bin" ] || { echo "demo-docker: $bin is missing (make deps installs docker.io and busybox-static)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "demo-docker: must run as root" >&2; exit 1; }

id=$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
host=bpdd-$id-h
client=bpdd-$id-c
cgroup=bpdd-$id
work=$(mktemp -d /tmp/bridgeport-demo-docker.XXXXXX)
hostns=/var/run/netns/$host
image=bpdd-busybox:1
holder_pid=
holder_ns=
daemon_pid=
dockerd_pid=

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
in_client() { nsenter --net="/var/run/netns/$client" -- "$@"; }
# dockerd's mount and network namespaces: where dockerd, bridgeport and their files live.
in_ns() { nsenter --target="$holder_pid" --mount --net -- "$@"; }
dk() { /usr/bin/docker -H "unix://$work/docker.sock" --config "$work/cli" "$@"; }
bp() { in_ns "$repo/bin/bridgeport" -H "unix://$work/run/bridgeport.sock" "$@"; }

# Pids in the holder's mount namespace (dockerd, containerd, shims, the daemon)
# and in the cgroups dockerd made (the containers), the holder and this shell excepted.
leftover_pids() {
  local p ns
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [ "$p" = "$$" ] || [ "$p" = "$holder_pid" ] && continue
    ns=$(readlink "/proc/$p/ns/mnt" 2>/dev/null) || continue
    [ "$ns" = "$holder_ns" ] && echo "$p"
  done
  cat /sys/fs/cgroup/*/"$cgroup"/cgroup.procs /sys/fs/cgroup/*/"$cgroup"/*/cgroup.procs /sys/fs/cgroup/"$cgroup"/cgroup.procs 2>/dev/null || true
}

cleanup() {
  local rc=$?
  set +e
  step "cleaning up"
  if [ -n "$dockerd_pid" ] && kill -0 "$dockerd_pid" 2>/dev/null; then
    # Containers and the network first, while bridgeport still answers dockerd.
    ids=$(dk ps -aq)
    [ -n "$ids" ] && dk rm -f $ids >/dev/null
    dk network rm web >/dev/null 2>&1
    kill "$dockerd_pid"
    for _ in $(seq 200); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$dockerd_pid" 2>/dev/null
    wait "$dockerd_pid" 2>/dev/null
  fi
  if [ -n "$daemon_pid" ]; then
    kill "$daemon_pid" 2>/dev/null; wait "$daemon_pid" 2>/dev/null
  fi
  if [ -n "$holder_pid" ] && kill -0 "$holder_pid" 2>/dev/null; then
    # Programs, pinned maps (in the holder's bpffs), tc filters and sysctls of the instance.
    in_ns "$repo/bin/bridgeport" daemon --cleanup --state-dir "$work/state" --run-dir "$work/run" \
      --uplink uplink0 --metrics-addr '' >>"$work/daemon.log" 2>&1
    # containerd and anything else left: SIGKILL until none is left.
    for _ in $(seq 50); do
      pids=$(leftover_pids)
      [ -z "$pids" ] && break
      kill -9 $pids 2>/dev/null
      sleep 0.1
    done
    kill -9 "$holder_pid" 2>/dev/null; wait "$holder_pid" 2>/dev/null
  fi
  # The cgroups of --cgroup-parent, deepest first.
  find /sys/fs/cgroup -depth -type d -path "*/$cgroup*" -exec rmdir {} + 2>/dev/null
  ip netns del "$client" 2>/dev/null
  ip netns del "$host" 2>/dev/null
  if grep -q " $work/" /proc/self/mountinfo; then
    echo "mounts left under $work: kept" >&2
  else
    rm -rf "$work"
  fi
  echo "removed namespaces $host, $client, cgroup $cgroup and $work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "topology: client netns <-> uplink veth <-> host netns"
ip netns add "$host"
ip netns add "$client"
ip link add uplink0 netns "$host" type veth peer name eth0 netns "$client"
nsenter --net="$hostns" ip addr add 198.18.0.1/24 dev uplink0
in_client ip addr add 198.18.0.2/24 dev eth0
for ns in "$host" "$client"; do
  nsenter --net="/var/run/netns/$ns" ip link set lo up
done
nsenter --net="$hostns" ip link set uplink0 up
in_client ip link set eth0 up
nsenter --net="$hostns" ip route add default via 198.18.0.2
echo "host $host: uplink0 198.18.0.1/24   client $client: eth0 198.18.0.2/24"

step "a mount namespace for dockerd: tmpfs over /run and /etc/docker"
# nsenter and unshare exec: $! is the holder's pid (sleep) once the namespace is made.
nsenter --net="$hostns" -- unshare --mount --propagation slave -- sleep infinity &
holder_pid=$!
own_ns=$(readlink /proc/self/ns/mnt)
for _ in $(seq 200); do
  holder_ns=$(readlink "/proc/$holder_pid/ns/mnt" 2>/dev/null || true)
  [ -n "$holder_ns" ] && [ "$holder_ns" != "$own_ns" ] && [ "$(readlink "/proc/$holder_pid/exe")" = "$(command -v sleep)" ] && break
  sleep 0.02
done
[ -n "$holder_ns" ] && [ "$holder_ns" != "$own_ns" ] || { echo "demo-docker: the mount namespace holder did not start" >&2; exit 1; }
[ -d /etc/docker ] || mkdir /etc/docker
in_ns mount -t tmpfs -o mode=755 tmpfs /run
in_ns mount -t tmpfs -o mode=755 tmpfs /etc/docker
in_ns mkdir -p /run/docker/plugins
echo "holder $holder_pid: $holder_ns (the host's /run, /etc/docker and /run/docker/plugins are not seen)"

step "bridgeport daemon, serving dockerd's driver socket /run/docker/plugins/bridgeport.sock"
mkdir -p "$work/state" "$work/run" "$work/cli" "$work/docker"
# Its default network (--bip) apart from dockerd's docker0 (10.211.0.0/24 below).
nsenter --target="$holder_pid" --mount --net -- "$repo/bin/bridgeport" daemon --datapath auto --uplink uplink0 \
  --bip 10.212.0.1/24 --state-dir "$work/state" --run-dir "$work/run" --metrics-addr '' \
  --docker-plugin /run/docker/plugins/bridgeport.sock --docker-host "unix://$work/docker.sock" >"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do
  bp status >/dev/null 2>&1 && break
  kill -0 "$daemon_pid" 2>/dev/null || { cat "$work/daemon.log"; exit 1; }
  sleep 0.1
done
bp status

step "dockerd (Debian's $(/usr/sbin/dockerd --version | cut -d, -f1)), in the same namespaces"
echo '{}' >"$work/daemon.json"
nsenter --target="$holder_pid" --mount --net -- /usr/sbin/dockerd --data-root "$work/docker/data" \
  --exec-root "$work/docker/exec" -H "unix://$work/docker.sock" --pidfile "$work/docker/docker.pid" \
  --cgroup-parent "/$cgroup" --storage-driver overlay2 --config-file "$work/daemon.json" \
  --bip 10.211.0.1/24 >"$work/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 400); do
  dk version >/dev/null 2>&1 && break
  kill -0 "$dockerd_pid" 2>/dev/null || { tail -20 "$work/dockerd.log"; exit 1; }
  sleep 0.1
done
dk version --format 'dockerd {{.Server.Version}} on {{.Server.Os}}/{{.Server.Arch}}'

step "an image from busybox-static: httpd and a CGI that prints the client's address"
root=$work/rootfs
mkdir -p "$root/bin" "$root/www/cgi-bin" "$root/etc" "$root/tmp"
cp /bin/busybox "$root/bin/busybox"
for a in sh httpd sleep cat hostname; do ln -s busybox "$root/bin/$a"; done
printf 'root:x:0:0:root:/:/bin/sh\n' >"$root/etc/passwd"
printf '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\nhello from %%s, you are %%s\\n" "$(hostname)" "$REMOTE_ADDR"\n' >"$root/www/cgi-bin/hello"
chmod 755 "$root/www/cgi-bin/hello"
tar -C "$root" -cf "$work/rootfs.tar" .
dk import "$work/rootfs.tar" "$image" >/dev/null
dk images "$image"

step "docker network create -d bridgeport, docker run -p 8080:80"
echo "\$ docker network create -d bridgeport --subnet 10.66.0.0/24 web"
dk network create -d bridgeport --subnet 10.66.0.0/24 web
echo "\$ docker run -d --name web --network web -p 8080:80 $image httpd -f -p 0.0.0.0:80 -h /www"
dk run -d --name web --network web -p 8080:80 "$image" httpd -f -p 0.0.0.0:80 -h /www
dk ps --format 'table {{.Names}}\t{{.Image}}\t{{.Status}}\t{{.Networks}}'

step "fetch it from the client netns through the host's uplink address"
for _ in $(seq 100); do in_client curl -s -o /dev/null --max-time 1 http://198.18.0.1:8080/cgi-bin/hello && break; sleep 0.1; done
echo "client\$ curl http://198.18.0.1:8080/cgi-bin/hello"
answer=$(in_client curl -sS --max-time 5 http://198.18.0.1:8080/cgi-bin/hello)
echo "$answer"
case "$answer" in
  *"you are 198.18.0.2") echo "the container saw the client's real address 198.18.0.2" ;;
  *) echo "unexpected: the container did not see the client's address 198.18.0.2" >&2; exit 1 ;;
esac

step "what bridgeport installed"
net_id=$(dk network inspect -f '{{.Id}}' web)
echo "docker network web = bridgeport network docker-${net_id:0:12}"
# Docker's names come from dockerd's API, asked after the Join (--docker-host).
for _ in $(seq 50); do bp ps | grep -q ' web ' && break; sleep 0.2; done
bp network ls
echo
bp ps
echo "bridgeport port web:"
bp port web
echo "(dockerd never shows a remote driver's ports: docker port web prints '$(dk port web)')"
datapath=$(bp status --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).Datapath))')
if [ "$datapath" = ebpf ]; then
  echo
  echo "eBPF datapath: programs on the uplink and on the container's veth, pinned maps"
  in_ns tc filter show dev uplink0 ingress
  bp status --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const i=JSON.parse(s).DatapathInfo;console.log(JSON.stringify({bpfDir:i.bpfDir,xdp:i.xdp,publishedPorts:i.publishedPorts,conntrackEntries:i.conntrackEntries}))})'
  echo "iptables rules of bridgeport's: $(in_ns iptables-save | grep -c BRIDGEPORT || true)"
else
  echo
  in_ns iptables-save | grep -E '^(\*|:BRIDGEPORT|-A [A-Z]+ .*BRIDGEPORT|-A BRIDGEPORT)' || true
fi
echo "Docker's own DNAT rules for 8080 (none: the driver publishes the port): $(in_ns iptables-save -t nat | grep -c -- '--dport 8080 -j DNAT' || true)"

step "removing the container and the network"
dk rm -f web
dk network rm web
