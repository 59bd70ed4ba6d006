#!/usr/bin/env bash
# Installs what bridgeport needs on a fresh Debian machine, only what is missing:
# apt packages (iproute2, iptables, conntrack, nsenter, curl, the BPF toolchain) and npm packages.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v ip >/dev/null || need+=(iproute2)
command -v iptables-restore >/dev/null || need+=(iptables)
command -v conntrack >/dev/null || need+=(conntrack)
command -v nsenter >/dev/null || need+=(util-linux)
command -v curl >/dev/null || need+=(curl)
command -v sysctl >/dev/null || need+=(procps)
command -v pgrep >/dev/null || need+=(procps)
# The BPF build: clang and llvm for the objects, libbpf-dev for its headers,
# the kernel UAPI headers; libbpf1 is what the daemon loads at run time.
command -v clang >/dev/null || need+=(clang)
command -v llvm-objdump >/dev/null || need+=(llvm)
[ -f /usr/include/bpf/bpf_helpers.h ] || need+=(libbpf-dev)
[ -f /usr/include/linux/bpf.h ] || need+=(linux-libc-dev)
ldconfig -p 2>/dev/null | grep -q 'libbpf.so.1 ' || need+=(libbpf1)
command -v capsh >/dev/null || need+=(libcap2-bin)
# The tests also look at what is installed with bpftool, tc and nft, and drop
# capabilities with setpriv (util-linux).
command -v bpftool >/dev/null || need+=(bpftool)
command -v tc >/dev/null || need+=(iproute2)
command -v nft >/dev/null || need+=(nftables)
command -v setpriv >/dev/null || need+=(util-linux)
# The metrics tests scrape with a real Prometheus server and lint with promtool.
command -v prometheus >/dev/null || need+=(prometheus)
command -v promtool >/dev/null || need+=(prometheus)
# The conntrack scenarios drive many short connections with ApacheBench.
command -v ab >/dev/null || need+=(apache2-utils)
# The Docker driver scenarios run Debian's dockerd 20.10 in namespaces of
# their own (never the service the package may start on a systemd host), with
# an image made from busybox-static: a static binary, as the image has no libc.
{ [ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ]; } || need+=(docker.io)
{ [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; } || need+=(busybox-static)
# The CNI scenarios run Debian's podman 4.3 (CNI backend) with bridgeport's
# plugin, and the CNI bench drives the reference plugins (bridge, host-local, portmap).
command -v podman >/dev/null || need+=(podman)
[ -x /usr/lib/cni/portmap ] || need+=(containernetworking-plugins)
if [ ${#need[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "install-deps: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
