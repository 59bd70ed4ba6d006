#!/usr/bin/env node
// Data-plane suite: traffic through a container's published port, and the
// container's own traffic, with N published ports present, for four
// configurations set up side by side at the same N (bench/lib/topology.mjs):
//
//   nonat     plain bridge, no rule: the client reaches the container's own
//             address through a route via the host. The physical limit.
//   ebpf      bridgeport daemon --datapath ebpf
//   iptables  bridgeport daemon --datapath iptables
//   nftables  the hand-written reference ruleset bench/nftables/ruleset.nft
//             (DNAT map, masquerade, forward accept, icc=false + link sets)
//
// In ebpf and iptables, `web` is run with N TCP ports published, one
// `-p HOSTIP:A-B:A-B` range of at most 50 000 ports per host IP (N = 100 000
// uses two host IPs on the uplink), plus the last port as UDP and a second
// host port (9080, ALT_PORT) for the last port's container port; the port
// under test is the last TCP port of the ranges (the worst case for anything
// walked in order). On the same --icc=false network, `srv` exposes that port
// number (nothing published) and `peer` is run with `--link srv:srv` (not
// linked to web: a link permits every port the linked container exposes, N of
// them, see bench/lib/topology.mjs). A second network of the same daemon,
// `routed` (--icc=false --masquerade=false), holds one container, `routed`.
// The nftables bed has the same N entries and ALT_PORT in its map, the one
// link permit in its sets and a second bridge let out untranslated; nonat has
// a second bridge too, and a second server in web on ALT_PORT stands for the
// second host port.
//
// Before measuring, every bed is checked (bench/lib/workloads.mjs verifyBed):
// the container sees the client's own address through the published port and
// through ALT_PORT, the container's traffic leaves masqueraded (as is for
// nonat), the routed container's leaves untranslated, srv's linked port
// is reachable from peer and an unlinked one is not (icc=false), and the
// datapath is the one named: no iptables rule of bridgeport's in eBPF mode and
// no kernel conntrack entry for the flow; the DNAT rule's counter and a kernel
// conntrack entry in iptables mode; the ruleset and a conntrack entry for
// nftables; nothing at all for nonat. A bed that fails a check is not measured
// (the failure is logged and the suite ends with an error naming it).
//
// Workloads (bench/lib/workloads.mjs), one client at a time, servers started
// for each measurement on the port under test and stopped after it:
//
//   tcp_stream_1, tcp_stream_4  iperf3 client → published port → web (1 and 4
//                               streams): Gbit/s received; whole-machine busy
//                               CPU-seconds per GB received during the run
//   tcp_crr     wrk -t2 -c32 -H 'Connection: close' → bench/fixtures/httpd.c in
//               web (one connection per request): connections/s, latency
//               p50/p99 (wrk measures from the request's write, the connect
//               excluded), CPU-seconds per 1000 connections, failed %. First,
//               untimed, 1 s of the same load through ALT_PORT, the other
//               host port of the same container port (nonat: web's second
//               port), so that the measurement meets the conntrack state and
//               the source ports that traffic left, as a real host's does
//   crr_two_ports  ab -c 8 -s 5 (HTTP/1.0, one connection per request, the
//               server closing) from the client, alternating the port under
//               test and ALT_PORT (same container port, same server), phases
//               A B A B of 3000 requests or the measurement's duration each:
//               connections/s over all phases, failed requests (ab's failed
//               plus those a phase ab gave up on did not complete), the client
//               netns' SYN retransmits and RSTs sent (nstat, absolute counters
//               before and after). nonat: web's two ports, no translation.
//               It follows tcp_crr in the same bed, whose flows through both
//               host ports the kernel's conntrack still holds (iptables,
//               nftables): the bed's history is part of what it measures
//   tcp_rr      sockperf ping-pong over one TCP connection, 64-byte messages:
//               round-trip p50/p99 in µs
//   udp_64      iperf3 -u -l 64 -b 0: 64-byte datagrams the server received
//               per second, loss %
//   masq_stream, masq_crr   the same from peer to servers in the client netns
//               (masquerade; nonat routes the container as is)
//   routed_crr  the same as masq_crr from the container on the routed network
//               (no masquerade, same daemon): what masq_crr is compared with
//   c2c_stream, c2c_crr     the same from peer to srv's address across the
//               bridge (icc=false, the link permitting the port; nonat: no rule)
//
// masq_*, routed_crr and c2c_* do not cross a published port: they run at the
// smallest N of the run only.
//
// Rounds are interleaved: for each round, for each workload, every
// configuration once, the order rotated by one each round. Nothing is pinned
// to a CPU: the client, the server and the datapath share the machine's cores
// as they would on a real host, the same way in every configuration. CPU
// figures are whole-machine (/proc/stat), so anything else running counts too.
//
// Standalone (as root, after `make build`):
//   node bench/dataplane.mjs [--quick] [--ns 1,1000] [--rounds 3] [--only tcp_stream_1,tcp_crr]
//        [--configs nonat,ebpf] [--duration S] [--ports-per-ip K] [--ebpf-args ARGS] [--out FILE]
// prints one JSON sample per line to stdout (or appends them to FILE) and the
// progress to stderr.
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CONFIGS, sample } from './lib/results.mjs';
import { ints, list, mainIfRun, runStandalone } from './lib/standalone.mjs';
import { Bed, PORTS_PER_IP, leftoverNamespaces, newRunId, sleep } from './lib/topology.mjs';
import { WORKLOADS, WORKLOAD_NAMES, buildHttpd, verifyBed } from './lib/workloads.mjs';

export const SUITE = 'dataplane';
const DURATION = { full: 10, quick: 2 };
/**
 * Quick mode (make bench-quick): 2 s per measurement, the published-port
 * workloads and one connection rate each for masquerade, its routed
 * counterpart and container to container.
 */
const QUICK_WORKLOADS = ['tcp_stream_1', 'tcp_stream_4', 'tcp_crr', 'crr_two_ports', 'tcp_rr', 'udp_64', 'masq_crr', 'routed_crr', 'c2c_crr'];
/**
 * Workloads whose path does not go through a published port: the N published
 * ports cannot change them, so they are measured at the smallest N only.
 */
const N_INDEPENDENT = new Set(['masq_stream', 'masq_crr', 'routed_crr', 'c2c_stream', 'c2c_crr']);
/** Pause between two measurements, so one's tail (FINs, softirq backlog) is not in the next. */
const PAUSE_MS = { full: 1000, quick: 300 };
const TOOLS = ['iperf3', 'sockperf', 'wrk', 'ab', 'nstat', 'nft', 'conntrack', 'iptables-save', 'curl', 'ss', 'tc', 'nsenter', 'ip', 'sysctl'];

function fmt(v) {
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 1) return v.toFixed(2);
  return v.toPrecision(3);
}

function onPath(tool) {
  return (process.env.PATH ?? '').split(':').some((d) => {
    try {
      accessSync(path.join(d || '.', tool), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

function checkTools() {
  const missing = TOOLS.filter((t) => !onPath(t));
  if (missing.length) throw new Error(`missing tools: ${missing.join(' ')} (scripts/install-bench-deps.sh installs iperf3, sockperf, wrk, ab)`);
}

/**
 * The suite. Options beyond run.mjs's: only (workload names), configs, duration
 * (seconds per measurement), perIp (ports per host IP), exitOnSecondSignal.
 */
export async function run({ quick = false, ns, rounds, log, record, repo, workDir, only, configs, duration, perIp, daemonArgs = [], exitOnSecondSignal = false }) {
  if (process.getuid?.() !== 0) throw new Error('dataplane: must run as root');
  const mode = quick ? 'quick' : 'full';
  const workloads = only ?? (quick ? QUICK_WORKLOADS : WORKLOAD_NAMES);
  for (const w of workloads) if (!WORKLOADS[w]) throw new Error(`dataplane: unknown workload ${w} (known: ${WORKLOAD_NAMES.join(', ')})`);
  const cfgs = configs ?? CONFIGS;
  for (const c of cfgs) if (!CONFIGS.includes(c)) throw new Error(`dataplane: unknown configuration ${c} (known: ${CONFIGS.join(', ')})`);
  const seconds = duration ?? DURATION[mode];
  checkTools();
  const stale = leftoverNamespaces();
  if (stale.length) log(`note: network namespaces of an earlier run are still there (not ours, left alone): ${stale.join(' ')}`);

  const httpd = buildHttpd(repo, path.join(workDir, 'bin'));
  const runId = newRunId();
  const abort = new AbortController();
  let signals = 0;
  const onSignal = (sig) => {
    signals++;
    if (signals === 1) {
      log(`${sig}: stopping the measurement, cleaning up`);
      abort.abort(new Error(sig));
    } else if (exitOnSecondSignal) {
      log(`${sig} again: exiting now, cleanup may be incomplete`);
      process.exit(130);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const failures = [];
  const fail = (what, e) => {
    const msg = `${what}: ${e?.message ?? e}`;
    failures.push(msg);
    log(`FAILED ${msg}`);
  };
  const ctx = { duration: seconds, httpd, signal: abort.signal };
  log(
    `run ${runId}: N = ${ns.join(', ')}; ${rounds} rounds; ${seconds} s per measurement; configurations ${cfgs.join(', ')}; workloads ${workloads.join(', ')}`,
  );

  try {
    for (const n of ns) {
      if (abort.signal.aborted) break;
      const beds = cfgs.map((config) => new Bed({ config, runId, workDir, repo, log, daemonArgs }));
      const ready = [];
      try {
        for (const bed of beds) {
          if (abort.signal.aborted) break;
          const t0 = Date.now();
          try {
            await bed.setUp(n, { perIp: perIp ?? PORTS_PER_IP });
            const plan = bed.plan.ranges.map((r) => `${r.ip}:${r.first}-${r.last}`).join(' ');
            log(`n=${n} ${bed.config}: set up in ${((Date.now() - t0) / 1000).toFixed(1)} s (${plan}; target ${bed.target.ip}:${bed.target.port})`);
            for (const fact of await verifyBed(bed, ctx)) log(`n=${n} ${bed.config}: ✓ ${fact}`);
            ready.push(bed);
          } catch (e) {
            fail(`n=${n} ${bed.config}: setup or check`, e);
          }
        }
        for (let round = 0; round < rounds && !abort.signal.aborted; round++) {
          const order = ready.map((_, i) => ready[(i + round) % ready.length]);
          for (const w of workloads) {
            if (N_INDEPENDENT.has(w) && n !== ns[0]) continue;
            for (const bed of order) {
              if (abort.signal.aborted) break;
              try {
                const drops0 = await bed.datapathDrops();
                const metrics = await WORKLOADS[w].run(bed, ctx);
                const drops1 = await bed.datapathDrops();
                const dropped = Object.entries(drops1 ?? {})
                  .map(([k, v]) => [k, v - (drops0?.[k] ?? 0)])
                  .filter(([, d]) => d > 0);
                if (dropped.length) {
                  log(`n=${n} round ${round + 1}/${rounds} ${w} ${bed.config}: datapath drops meanwhile: ${dropped.map(([k, d]) => `${k} ${d}`).join(', ')}`);
                  metrics[0].raw = { ...metrics[0].raw, datapathDrops: Object.fromEntries(dropped) };
                }
                for (const m of metrics) {
                  record(sample({ suite: SUITE, workload: w, config: bed.config, n, round, metric: m.metric, value: m.value, unit: m.unit, higher: m.higher, raw: m.raw }));
                }
                log(`n=${n} round ${round + 1}/${rounds} ${w} ${bed.config}: ${metrics.map((m) => `${fmt(m.value)} ${m.unit}`).join(', ')}`);
              } catch (e) {
                if (abort.signal.aborted) break;
                fail(`n=${n} round ${round + 1} ${w} ${bed.config}`, e);
              }
              await sleep(PAUSE_MS[mode]);
            }
          }
        }
      } finally {
        for (const bed of beds) {
          try {
            await bed.tearDown();
          } catch (e) {
            fail(`n=${n} ${bed.config}: teardown`, e);
          }
        }
      }
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (abort.signal.aborted) throw new Error(`dataplane: interrupted (${abort.signal.reason?.message ?? 'signal'}); cleaned up`);
  if (failures.length) throw new Error(`dataplane: ${failures.length} failure(s):\n  ${failures.join('\n  ')}`);
}

// ---------------------------------------------------------------- standalone

const USAGE = `usage: node bench/dataplane.mjs [options]   (as root, after make build)
  --quick             ${DURATION.quick} s per measurement, N = 1,1000, workloads ${QUICK_WORKLOADS.join(',')}
  --ns LIST           published-port counts N (default 1,1000,10000,100000; quick 1,1000)
  --rounds R          interleaved rounds (default 3)
  --only LIST         workloads, of ${WORKLOAD_NAMES.join(',')}
  --configs LIST      configurations, of ${CONFIGS.join(',')}
  --duration S        seconds per measurement (default ${DURATION.full}; quick ${DURATION.quick})
  --ports-per-ip K    ports published per host IP (default ${PORTS_PER_IP})
  --ebpf-args ARGS    extra flags for the ebpf bed's daemon, space-separated (e.g. "--xdp-mode generic")
  --out FILE          append the samples there as JSON lines (default: stdout)
`;

async function main() {
  let values;
  try {
    ({ values } = parseArgs({
      args: process.argv.slice(2),
      options: {
        quick: { type: 'boolean' },
        ns: { type: 'string' },
        rounds: { type: 'string' },
        only: { type: 'string' },
        configs: { type: 'string' },
        duration: { type: 'string' },
        'ports-per-ip': { type: 'string' },
        'ebpf-args': { type: 'string' },
        out: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    process.stderr.write(`dataplane: ${e.message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const quick = values.quick ?? false;
  let opts;
  try {
    opts = {
      quick,
      ns: values.ns ? [...new Set(ints(values.ns, '--ns'))].sort((a, b) => a - b) : quick ? [1, 1000] : [1, 1000, 10000, 100000],
      rounds: values.rounds ? ints(values.rounds, '--rounds')[0] : 3,
      only: values.only ? list(values.only) : undefined,
      configs: values.configs ? list(values.configs) : undefined,
      duration: values.duration ? ints(values.duration, '--duration')[0] : undefined,
      perIp: values['ports-per-ip'] ? ints(values['ports-per-ip'], '--ports-per-ip')[0] : undefined,
      daemonArgs: values['ebpf-args'] ? values['ebpf-args'].split(/\s+/).filter(Boolean) : [],
    };
  } catch (e) {
    process.stderr.write(`dataplane: ${e.message}\n${USAGE}`);
    return 2;
  }
  return runStandalone('dataplane', run, opts, values.out);
}

mainIfRun(import.meta.url, 'dataplane', main);
