#!/usr/bin/env bash
# Installs what the benchmarks (bench/run.mjs) need on top of scripts/install-deps.sh,
# only what is missing: the traffic tools iperf3 (bulk TCP), sockperf (UDP/TCP
# latency), wrk (HTTP request and connection rates) and ab from apache2-utils
# (short connections in phases, crr_two_ports). The chart libraries (vega,
# vega-lite) are npm devDependencies, installed by scripts/install-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v iperf3 >/dev/null || need+=(iperf3)
command -v sockperf >/dev/null || need+=(sockperf)
command -v wrk >/dev/null || need+=(wrk)
command -v ab >/dev/null || need+=(apache2-utils)
if [ ${#need[@]} -gt 0 ]; then
  echo "install-bench-deps: apt-get install ${need[*]}"
  apt-get update -qq
  # iperf3 asks whether to start a system-wide server: noninteractive answers no.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
