#!/usr/bin/env node
// Docker suite: the same dockerd (Debian's docker.io) with Docker's own bridge
// driver against bridgeport's driver, four configurations side by side in one
// run (bench/lib/dockerd.mjs):
//
//   docker          dockerd's defaults: bridge driver, iptables, docker-proxy
//   docker-noproxy  the same with --userland-proxy=false
//   ebpf            the same dockerd, network "bench" `-d bridgeport`, bridgeport --datapath ebpf
//   iptables        likewise, bridgeport --datapath iptables
//
// Each is its own host netns (dockerd, containerd, bridgeport's daemon, in a
// mount namespace of their own) with an uplink veth to its own client netns;
// the client reaches published ports at the host's uplink address 198.18.0.1.
// The servers are bench/fixtures/httpd.c, built static and bind-mounted into
// an image imported from busybox-static (no registry needed); iperf3, wrk and
// curl run from the host's /usr/bin inside the namespaces (nsenter --net).
//
// Phases, every one in interleaved rounds (each configuration once per round,
// the order rotated by one each round); a figure is the median of the rounds:
//
//   1. run_latency at 0 other containers: `docker run -d --network bench -p
//      P:80 IMAGE /httpd 80` → the first HTTP answer the client gets from
//      http://198.18.0.1:P/ (curl polled from the client netns while docker
//      runs), ms; per round the median of K tries, each on a new host port,
//      each container removed after. raw: each try and how long `docker run`
//      itself took.
//   2. with web (`-p 8080:80 -p 5201:5201`, httpd) and peer (sleep) running:
//      pub_crr    wrk -t2 -c32 'Connection: close' from the client to
//                 198.18.0.1:8080: connections/s, p50/p99 ms, whole-machine
//                 CPU-s per 1000 connections, the client's SYN retransmits
//      pub_stream iperf3, 1 TCP stream, client → 198.18.0.1:5201 → web: Gbit/s,
//                 CPU-s per GB
//      out_crr    wrk as pub_crr from peer (its network namespace) to httpd
//                 in the client netns (masquerade): connections/s, SYN retransmits
//   3. idle containers (`sleep`) are run on "bench" until BIG other containers
//      run (web and peer count), one per configuration in turn; create_idle:
//      seconds for them all and ms per container, per configuration; then
//      run_latency again at BIG others.
//
// Results go to bench/results/<UTC time>-docker/: results.json (every sample,
// the machine, the command), run.log, summary.md (tables and the targets).
//
//   node bench/docker.mjs [--quick] [--rounds R] [--containers N] [--tries K]
//        [--duration S] [--configs docker,ebpf] [--out DIR]
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DOCKER_CONFIGS, DockerBed, HOST_IP, IMAGE, LABELS, NET, buildImageTar, leftoverNamespaces, whyNoDockerd } from './lib/dockerd.mjs';
import { cpuSecondsBetween, cpuTimes, machine, sample, stats } from './lib/results.mjs';
import { list } from './lib/standalone.mjs';
import { CLIENT_IP, newRunId, run, sleep } from './lib/topology.mjs';
import { WRK_CONNECTIONS, WRK_THREADS, iperfTcp, parseIperf, parseNstat, parseWrk } from './lib/workloads.mjs';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const SUITE = 'docker';
const FULL = { rounds: 3, containers: 200, tries: 5, duration: 10 };
const QUICK = { rounds: 3, containers: 50, tries: 3, duration: 3 };
/** Idle containers are created this many at a time per configuration, the configurations in turn (4 at a time was no faster on 2 cores). */
const PARALLEL = 1;
const PUB_PORT = 8080;
const IPERF_PORT = 5201;
const CLIENT_HTTP_PORT = 8080;
/** Host ports of the run_latency containers: a new one per try. */
const FIRST_RL_PORT = 20000;
/** How long a run_latency try may take before it counts as failed. */
const RL_TIMEOUT_MS = 30_000;
const HTTPD_WORKERS = 2;
const NSTAT_KEYS = ['TcpExtTCPSynRetrans', 'TcpOutRsts'];
const PAUSE_MS = 500;
const TOOLS = ['iperf3', 'wrk', 'curl', 'nstat', 'ss', 'ip', 'nsenter', 'unshare', 'iptables-save', 'tar'];

const fmt = (v) => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(3));

function onPath(tool) {
  return (process.env.PATH ?? '').split(':').some((d) => existsSync(path.join(d || '.', tool)));
}

/** bench/fixtures/httpd.c, static: it runs in the busybox image without the host's libraries. */
function buildStaticHttpd(dir) {
  const src = path.join(REPO, 'bench', 'fixtures', 'httpd.c');
  const out = path.join(dir, 'httpd');
  mkdirSync(dir, { recursive: true });
  let last;
  for (const cc of ['cc', 'gcc', 'clang']) {
    try {
      execFileSync(cc, ['-O2', '-Wall', '-static', '-o', out, src], { stdio: ['ignore', 'pipe', 'pipe'] });
      return out;
    } catch (e) {
      last = e;
    }
  }
  throw new Error(`build ${src} static: ${last?.stderr?.toString() || last?.message} (a static libc is in libc6-dev)`);
}

function checkRun(r, what) {
  if (r.canceled) throw new Error(`${what}: interrupted`);
  if (r.timedOut) throw new Error(`${what}: timed out`);
  if (r.exitCode !== 0) throw new Error(`${what}: exit ${r.exitCode}: ${(r.stderr.trim() || r.stdout.trim()).slice(-600)}`);
}

async function tcpCounters(bed, where) {
  const r = await bed.exec(where, 'nstat', ['-asz', '--json', ...NSTAT_KEYS], { timeoutMs: 10_000 });
  checkRun(r, `nstat (in ${where})`);
  return parseNstat(r.stdout);
}

/** GET http://ip:port/ from `from`; the body is "IP:PORT" as the server saw the client. */
async function fetchSeen(bed, from, ip, port, maxTime = 3) {
  const r = await bed.exec(from, 'curl', ['-s', '-S', '--max-time', String(maxTime), `http://${ip}:${port}/`], { timeoutMs: (maxTime + 5) * 1000 });
  return { ok: r.exitCode === 0, seen: r.stdout.trim().split(':')[0], err: r.stderr.trim() };
}

// ---------------------------------------------------------------- workloads

/**
 * docker run -d -p PORT:80 → first answer at the client. The poller starts
 * with `docker run`; the container is removed afterwards (not timed).
 */
async function runLatencyOnce(bed, ctx, port, name) {
  const t0 = performance.now();
  let runMs;
  let runErr;
  const started = bed
    .docker(['run', '-d', '--name', name, '--network', NET, '-v', `${ctx.httpd}:/httpd:ro`, '-p', `${port}:80`, IMAGE, '/httpd', '80', '1'], { must: false, timeoutMs: RL_TIMEOUT_MS })
    .then((r) => {
      runMs = performance.now() - t0;
      if (r.exitCode !== 0) runErr = `docker run: exit ${r.exitCode}: ${r.stderr.trim().slice(-400)}`;
    });
  let answerMs;
  let seen;
  while (performance.now() - t0 < RL_TIMEOUT_MS && !runErr) {
    const r = await bed.exec('client', 'curl', ['-s', '--connect-timeout', '0.5', '--max-time', '1', `http://${HOST_IP}:${port}/`], { timeoutMs: 5_000 });
    if (r.exitCode === 0 && r.stdout.trim()) {
      answerMs = performance.now() - t0;
      seen = r.stdout.trim().split(':')[0];
      break;
    }
    await sleep(5);
  }
  await started;
  await bed.docker(['rm', '-f', name], { must: false, timeoutMs: 120_000 });
  if (runErr) throw new Error(`${bed.config}: ${runErr}`);
  if (answerMs === undefined) throw new Error(`${bed.config}: no answer from ${HOST_IP}:${port} within ${RL_TIMEOUT_MS} ms`);
  if (seen !== CLIENT_IP) throw new Error(`${bed.config}: the container saw the client as ${seen}, not ${CLIENT_IP}`);
  return { answerMs, runMs };
}

async function runLatency(bed, ctx) {
  const tries = [];
  for (let i = 0; i < ctx.tries; i++) {
    const port = FIRST_RL_PORT + ctx.rlSeq++;
    tries.push(await runLatencyOnce(bed, ctx, port, `rl-${port}`));
  }
  const s = stats(tries.map((t) => t.answerMs));
  const r = stats(tries.map((t) => t.runMs));
  return [
    { metric: 'first_answer_ms', value: s.median, unit: 'ms', higher: false, raw: { tries } },
    { metric: 'docker_run_ms', value: r.median, unit: 'ms', higher: false },
  ];
}

const wrkArgs = (seconds, url) => ['-t', String(WRK_THREADS), '-c', String(WRK_CONNECTIONS), '-d', `${seconds}s`, '--latency', '-H', 'Connection: close', url];

async function httpServer(bed, ctx, where, port) {
  const proc = bed.spawn(where, ctx.httpd, [String(port), String(HTTPD_WORKERS)]);
  await bed.waitListening(where, 'tcp', port, proc);
  return proc;
}

/** wrk, one connection per request, from `from` to ip:port. */
async function connRate(bed, ctx, from, ip, port) {
  const n0 = await tcpCounters(bed, from);
  const c0 = cpuTimes();
  const url = `http://${ip}:${port}/`;
  const r = await bed.exec(from, 'wrk', wrkArgs(ctx.duration, url), { timeoutMs: (ctx.duration + 30) * 1000 });
  const c1 = cpuTimes();
  checkRun(r, `wrk ${url} (in ${from})`);
  const w = parseWrk(r.stdout);
  const n1 = await tcpCounters(bed, from);
  const cpu = cpuSecondsBetween(c0, c1);
  return [
    { metric: 'conn_per_s', value: w.perSecond, unit: 'connections/s', higher: true, raw: { requests: w.requests, seconds: w.seconds, errors: w.errors } },
    { metric: 'p50_ms', value: w.p50ms, unit: 'ms', higher: false },
    { metric: 'p99_ms', value: w.p99ms, unit: 'ms', higher: false },
    { metric: 'cpu_s_per_1k_conn', value: cpu / (w.requests / 1000), unit: 'CPU-s/1000 conn', higher: false },
    { metric: 'syn_retrans', value: n1.TcpExtTCPSynRetrans - n0.TcpExtTCPSynRetrans, unit: 'SYN retransmits', higher: false, raw: { resets: n1.TcpOutRsts - n0.TcpOutRsts } },
    { metric: 'failed', value: w.failed, unit: 'requests', higher: false },
  ];
}

const WORKLOADS = {
  pub_crr: {
    what: `wrk 'Connection: close', client → ${HOST_IP}:${PUB_PORT} (published) → httpd in web`,
    // web's own command is the httpd.
    run: (bed, ctx) => connRate(bed, ctx, 'client', HOST_IP, PUB_PORT),
  },
  pub_stream: {
    what: `iperf3, 1 TCP stream, client → ${HOST_IP}:${IPERF_PORT} (published) → web`,
    async run(bed, ctx) {
      const server = bed.spawn('web', 'iperf3', ['-s', '-1', '-p', String(IPERF_PORT)]);
      try {
        await bed.waitListening('web', 'tcp', IPERF_PORT, server);
        const args = ['-c', HOST_IP, '-p', String(IPERF_PORT), '-t', String(ctx.duration), '--json', '--connect-timeout', '3000'];
        const c0 = cpuTimes();
        const r = await bed.exec('client', 'iperf3', args, { timeoutMs: (ctx.duration + 30) * 1000 });
        const c1 = cpuTimes();
        const what = `iperf3 ${args.join(' ')}`;
        if (r.stdout.trim().startsWith('{')) parseIperf(r.stdout, what);
        checkRun(r, what);
        const t = iperfTcp(parseIperf(r.stdout, what));
        const cpu = cpuSecondsBetween(c0, c1);
        return [
          { metric: 'gbps', value: t.gbps, unit: 'Gbit/s', higher: true, raw: { bytes: t.bytes, seconds: t.seconds, retransmits: t.retransmits } },
          { metric: 'cpu_s_per_gb', value: cpu / (t.bytes / 1e9), unit: 'CPU-s/GB', higher: false },
        ];
      } finally {
        await bed.stop(server);
      }
    },
  },
  out_crr: {
    what: `wrk 'Connection: close', peer → masquerade → httpd in the client netns (${CLIENT_IP}:${CLIENT_HTTP_PORT})`,
    async run(bed, ctx) {
      const server = await httpServer(bed, ctx, 'client', CLIENT_HTTP_PORT);
      try {
        return await connRate(bed, ctx, 'peer', CLIENT_IP, CLIENT_HTTP_PORT);
      } finally {
        await bed.stop(server);
      }
    },
  },
};

/** web and peer, and the checks that the bed does what its configuration says. */
async function startDataPlane(bed, ctx) {
  await bed.docker(['run', '-d', '--name', 'web', '--network', NET, '-v', `${ctx.httpd}:/httpd:ro`, '-p', `${PUB_PORT}:80`, '-p', `${IPERF_PORT}:${IPERF_PORT}`, IMAGE, '/httpd', '80', String(HTTPD_WORKERS)]);
  await bed.docker(['run', '-d', '--name', 'peer', '--network', NET, IMAGE, 'sleep', '1000000']);
  await bed.containerPid('web');
  await bed.containerPid('peer');
  const facts = [];
  const must = (cond, msg) => {
    if (!cond) throw new Error(`${bed.config}: ${msg}`);
    facts.push(msg);
  };
  let pub;
  for (let i = 0; i < 50; i++) {
    pub = await fetchSeen(bed, 'client', HOST_IP, PUB_PORT);
    if (pub.ok) break;
    await sleep(100);
  }
  must(pub.ok, `client → ${HOST_IP}:${PUB_PORT} answered${pub.ok ? '' : ` (${pub.err})`}`);
  must(pub.seen === CLIENT_IP, `web saw the client's own address ${CLIENT_IP} (saw ${pub.seen})`);
  const server = await httpServer(bed, ctx, 'client', CLIENT_HTTP_PORT);
  try {
    const out = await fetchSeen(bed, 'peer', CLIENT_IP, CLIENT_HTTP_PORT);
    must(out.ok, `peer → ${CLIENT_IP}:${CLIENT_HTTP_PORT} answered${out.ok ? '' : ` (${out.err})`}`);
    must(out.seen === HOST_IP, `the client saw peer masqueraded as ${HOST_IP} (saw ${out.seen})`);
  } finally {
    await bed.stop(server);
  }
  const save = (await bed.exec('host', 'iptables-save', [], { must: true })).stdout;
  if (bed.bridgeport) {
    must(!/-A DOCKER .*--dport 8080 -j DNAT/.test(save), 'no DNAT rule of Docker for the port (the driver publishes it)');
    const ports = (await bed.cli(['ps', '--json'])).stdout;
    must(ports.includes('docker-'), "bridgeport lists Docker's endpoints");
    if (bed.config === 'ebpf') must(!/BRIDGEPORT/.test(save), 'no iptables rule of bridgeport\'s (eBPF datapath)');
    else must(/-A BRIDGEPORT.*--dport 8080 .*-j DNAT/.test(save), 'bridgeport\'s DNAT rule for the port (iptables datapath)');
  } else {
    must(/-A DOCKER .*--dport 8080 -j DNAT/.test(save), "Docker's DNAT rule for the port");
    const proxies = await proxyCount(bed);
    if (bed.config === 'docker') must(proxies > 0, `docker-proxy runs (${proxies} processes)`);
    else must(proxies === 0, 'no docker-proxy (--userland-proxy=false)');
  }
  return facts;
}

/** docker-proxy processes serving the bed's published port (its own mount namespace's pids). */
async function proxyCount(bed) {
  const r = await run(['pgrep', '-x', 'docker-proxy']);
  let n = 0;
  for (const pid of r.stdout.split('\n').filter(Boolean)) {
    try {
      if (readlinkSync(`/proc/${pid}/ns/mnt`) === bed.holderNs) n++;
    } catch {}
  }
  return n;
}

// ---------------------------------------------------------------- the run

export async function runSuite({ rounds, containers, parallel, tries, duration, configs, log, record, workDir }) {
  if (process.getuid?.() !== 0) throw new Error('docker bench: must run as root');
  const why = whyNoDockerd();
  if (why) throw new Error(`docker bench: ${why}`);
  const missing = TOOLS.filter((t) => !onPath(t));
  if (missing.length) throw new Error(`docker bench: missing tools: ${missing.join(' ')} (scripts/install-bench-deps.sh)`);
  if (!existsSync('/etc/docker')) mkdirSync('/etc/docker');
  const stale = leftoverNamespaces();
  if (stale.length) log(`note: network namespaces of an earlier run are still there (left alone): ${stale.join(' ')}`);
  const httpd = buildStaticHttpd(path.join(workDir, 'bin'));
  const tar = await buildImageTar(path.join(workDir, 'image'));
  const runId = newRunId();
  const ctx = { httpd, tries, duration, rlSeq: 0 };
  const failures = [];
  const fail = (what, e) => {
    failures.push(`${what}: ${e?.message ?? e}`);
    log(`FAILED ${what}: ${e?.message ?? e}`);
  };
  let interrupted;
  const onSignal = (sig) => {
    if (interrupted) {
      log(`${sig} again: exiting now, cleanup may be incomplete`);
      process.exit(130);
    }
    interrupted = sig;
    log(`${sig}: stopping after the current measurement, cleaning up`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  log(`run ${runId}: ${rounds} rounds; ${tries} tries per run_latency; ${duration} s per measurement; ${containers} containers (created ${parallel} at a time); configurations ${configs.join(', ')}`);

  const beds = configs.map((config) => new DockerBed({ config, runId, workDir, repo: REPO, log }));
  let ready = [];
  const measure = async (phase, n, w, fn) => {
    for (let round = 0; round < rounds && !interrupted; round++) {
      const order = ready.map((_, i) => ready[(i + round) % ready.length]);
      for (const bed of order) {
        if (interrupted) break;
        try {
          const metrics = await fn(bed, ctx);
          for (const m of metrics) record(sample({ suite: SUITE, workload: w, config: bed.config, n, round, metric: m.metric, value: m.value, unit: m.unit, higher: m.higher, raw: m.raw }));
          log(`${phase} round ${round + 1}/${rounds} ${w} ${bed.config}: ${metrics.map((m) => `${m.metric} ${fmt(m.value)} ${m.unit}`).join(', ')}`);
        } catch (e) {
          fail(`${phase} round ${round + 1} ${w} ${bed.config}`, e);
        }
        await sleep(PAUSE_MS);
      }
    }
  };
  try {
    for (const bed of beds) {
      if (interrupted) break;
      const t0 = Date.now();
      try {
        await bed.setUp(tar);
        log(`${bed.config}: dockerd${bed.bridgeport ? ' and bridgeport' : ''} up, network ${NET} made, in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
        ready.push(bed);
      } catch (e) {
        fail(`${bed.config}: setup`, e);
      }
    }
    // 1. docker run → first answer, nothing else running.
    await measure('phase 1', 0, 'run_latency', runLatency);
    // 2. the data plane, web and peer running.
    const dp = [];
    for (const bed of ready) {
      if (interrupted) break;
      try {
        for (const f of await startDataPlane(bed, ctx)) log(`${bed.config}: ✓ ${f}`);
        dp.push(bed);
      } catch (e) {
        fail(`${bed.config}: data-plane setup or check`, e);
      }
    }
    const all = ready;
    ready = dp;
    for (const [w, spec] of Object.entries(WORKLOADS)) {
      log(`phase 2: ${w}: ${spec.what}`);
      await measure('phase 2', 2, w, spec.run);
    }
    ready = all;
    // 3. idle containers up to `containers` others (web and peer count), one per bed in turn.
    const idle = new Map(ready.map((b) => [b, { ms: 0, made: 0 }]));
    const want = containers - 2;
    for (let i = 0; i < want && !interrupted; i += parallel) {
      const batch = Array.from({ length: Math.min(parallel, want - i) }, (_, k) => i + k);
      for (const bed of ready) {
        const t = idle.get(bed);
        if (t.error) continue;
        const t0 = performance.now();
        const rs = await Promise.all(batch.map((k) => bed.docker(['run', '-d', '--name', `idle-${k}`, '--network', NET, IMAGE, 'sleep', '1000000'], { must: false })));
        t.ms += performance.now() - t0;
        const bad = rs.find((r) => r.exitCode !== 0);
        if (bad) {
          t.error = `docker run idle-*: exit ${bad.exitCode}: ${bad.stderr.trim().slice(-300)}`;
          fail(`phase 3 ${bed.config}`, new Error(t.error));
          continue;
        }
        t.made += batch.length;
      }
      if (Math.floor((i + batch.length) / 25) > Math.floor(i / 25)) log(`phase 3: ${i + batch.length}/${want} idle containers in each configuration`);
    }
    for (const [bed, t] of idle) {
      if (t.error || t.made === 0) continue;
      record(sample({ suite: SUITE, workload: 'create_idle', config: bed.config, n: containers, round: 0, metric: 'total_s', value: t.ms / 1000, unit: 's', higher: false, raw: { containers: t.made, parallel } }));
      record(sample({ suite: SUITE, workload: 'create_idle', config: bed.config, n: containers, round: 0, metric: 'ms_per_container', value: t.ms / t.made, unit: 'ms', higher: false }));
      log(`phase 3 create_idle ${bed.config}: ${t.made} containers in ${(t.ms / 1000).toFixed(1)} s (${(t.ms / t.made).toFixed(0)} ms each)`);
    }
    ready = ready.filter((b) => !idle.get(b).error);
    log(`memory available: ${Math.round(Number(/^MemAvailable:\s+(\d+)/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0) / 1024)} MiB`);
    await measure('phase 3', containers, 'run_latency', runLatency);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    for (const bed of beds) {
      const t0 = Date.now();
      try {
        await bed.tearDown();
        log(`${bed.config}: removed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      } catch (e) {
        fail(`${bed.config}: teardown`, e);
      }
    }
  }
  if (interrupted) throw new Error(`docker bench: interrupted (${interrupted}); cleaned up`);
  if (failures.length) throw new Error(`docker bench: ${failures.length} failure(s):\n  ${failures.join('\n  ')}`);
}

// ---------------------------------------------------------------- summary

const TABLES = [
  ['run_latency', 'first_answer_ms', '`docker run -d -p P:80` → first HTTP answer at the client'],
  ['run_latency', 'docker_run_ms', '`docker run -d -p P:80` until the command returns'],
  ['create_idle', 'ms_per_container', '`docker run -d` of the idle containers up to the larger N (web and peer count), the configurations in turn, `--parallel` at a time: wall time over containers'],
  ['create_idle', 'total_s', 'all the idle containers (wall time)'],
  ['pub_crr', 'conn_per_s', 'connections through the published port'],
  ['pub_crr', 'p99_ms', 'connections through the published port'],
  ['pub_crr', 'cpu_s_per_1k_conn', 'connections through the published port'],
  ['pub_crr', 'syn_retrans', "connections through the published port: the client's SYN retransmits"],
  ['pub_crr', 'failed', 'connections through the published port: wrk socket errors and non-2xx'],
  ['pub_stream', 'gbps', 'one TCP stream through the published port'],
  ['pub_stream', 'cpu_s_per_gb', 'one TCP stream through the published port'],
  ['out_crr', 'conn_per_s', 'container → outside (masquerade)'],
  ['out_crr', 'syn_retrans', "container → outside: the container's SYN retransmits"],
];

function cell(s, unit) {
  if (!s) return '—';
  return `${fmt(s.median)} ${unit} [${fmt(s.min)}–${fmt(s.max)}]`;
}

/** Targets on the medians: bridgeport eBPF against each of Docker's two configurations. */
function targets(byKey) {
  const med = (w, m, c, n) => byKey.get(`${w}|${m}|${c}|${n}`)?.median;
  const lines = [];
  const check = (label, w, m, n, want, higher) => {
    const parts = [];
    let ok = true;
    let any = false;
    for (const d of ['docker', 'docker-noproxy']) {
      const e = med(w, m, 'ebpf', n);
      const o = med(w, m, d, n);
      if (e === undefined || o === undefined) continue;
      any = true;
      const ratio = o === 0 ? (e === 0 ? 1 : Number.POSITIVE_INFINITY) : e / o;
      const met = higher ? ratio >= want : ratio <= want;
      ok &&= met;
      parts.push(`vs ${d}: ${ratio.toFixed(3)}× (${fmt(e)} / ${fmt(o)}) ${met ? '✓' : '✗'}`);
    }
    lines.push(`- ${label}: ${any ? (ok ? '**met**' : '**not met**') : 'not measured'}${parts.length ? ` — ${parts.join('; ')}` : ''}`);
  };
  const big = [...byKey.values()].filter((s) => s.workload === 'run_latency').reduce((a, s) => Math.max(a, s.n), 0);
  check('pub_crr conn_per_s, eBPF ≥ 1.3× Docker\'s bridge driver', 'pub_crr', 'conn_per_s', 2, 1.3, true);
  check('pub_stream gbps, eBPF ≥ 1.0× Docker\'s bridge driver', 'pub_stream', 'gbps', 2, 1.0, true);
  check('out_crr conn_per_s, eBPF ≥ 1.0× Docker\'s bridge driver', 'out_crr', 'conn_per_s', 2, 1.0, true);
  check('pub_crr syn_retrans, eBPF ≤ Docker\'s bridge driver', 'pub_crr', 'syn_retrans', 2, 1.0, false);
  check(`run_latency first_answer_ms at ${big} other containers, eBPF ≤ 1.0× Docker's bridge driver`, 'run_latency', 'first_answer_ms', big, 1.0, false);
  return lines;
}

export function summarize(results) {
  const { samples, configs } = results;
  const groups = new Map();
  for (const s of samples) {
    const k = `${s.workload}|${s.metric}|${s.config}|${s.n}`;
    if (!groups.has(k)) groups.set(k, { workload: s.workload, metric: s.metric, config: s.config, n: s.n, unit: s.unit, values: [] });
    groups.get(k).values.push(s.value);
  }
  const byKey = new Map([...groups].map(([k, g]) => [k, { ...g, ...stats(g.values) }]));
  const m = results.machine;
  const out = [];
  out.push(`# bridgeport's Docker driver vs Docker's bridge driver, ${results.started}${results.quick ? ' (quick)' : ''}`, '');
  out.push('| | |', '|---|---|');
  out.push(`| Kernel | ${m.kernel} |`, `| CPU | ${m.cpuModel}, ${m.cores} cores |`, `| Memory | ${m.memTotalMiB} MiB |`, `| Node | ${m.node} |`, `| dockerd | ${results.dockerVersion} |`);
  out.push(`| Commit | ${m.commit} |`, `| Date | ${results.started} → ${results.ended} (${Math.round((Date.parse(results.ended) - Date.parse(results.started)) / 60000)} min) |`);
  out.push(`| Command | \`${results.command}\` (as root) |`, `| Rounds | ${results.rounds}; run_latency: the median of ${results.tries} tries per round; ${results.duration} s per traffic measurement |`, '');
  out.push(`Configurations: ${configs.map((c) => `**${c}** = ${LABELS[c]}`).join('; ')}. Each its own dockerd, in its own network and mount namespaces. N = other containers running on the network. Cells: median over the rounds [min–max]; — = no value. Ratios are of medians.`, '');
  if (results.errors?.length) out.push('## Errors', '', ...results.errors.map((e) => `- ${e.replace(/\n/g, ' ')}`), '');
  out.push('## Targets', '', ...targets(byKey), '');
  out.push('## Figures', '');
  for (const [w, metric, what] of TABLES) {
    const rows = [...new Set([...byKey.values()].filter((g) => g.workload === w && g.metric === metric).map((g) => g.n))].sort((a, b) => a - b);
    if (!rows.length) continue;
    const unit = [...byKey.values()].find((g) => g.workload === w && g.metric === metric).unit;
    const higher = samples.find((s) => s.workload === w && s.metric === metric).higher;
    out.push(`### ${w} — ${metric} (${unit}, ${higher ? 'higher' : 'lower'} is better)`, '', what, '');
    const ratioCols = configs.includes('ebpf') ? configs.filter((c) => c !== 'ebpf').map((c) => `ebpf/${c}`) : [];
    out.push(`| N | ${[...configs, ...ratioCols].join(' | ')} |`, `| --: | ${[...configs, ...ratioCols].map(() => '---').join(' | ')} |`);
    for (const n of rows) {
      const cells = configs.map((c) => cell(byKey.get(`${w}|${metric}|${c}|${n}`), unit));
      const e = byKey.get(`${w}|${metric}|ebpf|${n}`)?.median;
      const ratios = ratioCols.map((rc) => {
        const o = byKey.get(`${w}|${metric}|${rc.slice(5)}|${n}`)?.median;
        return e === undefined || o === undefined || o === 0 ? '—' : `${(e / o).toFixed(2)}×`;
      });
      out.push(`| ${n} | ${[...cells, ...ratios].join(' | ')} |`);
    }
    out.push('');
  }
  return `${out.join('\n')}\n`;
}

// ---------------------------------------------------------------- command line

const USAGE = `usage: node bench/docker.mjs [options]   (as root, after make build)
  --quick            small run: ${QUICK.containers} containers, ${QUICK.tries} tries, ${QUICK.duration} s per measurement, ${QUICK.rounds} rounds
  --rounds R         interleaved rounds (default ${FULL.rounds})
  --containers N     other containers running for the second run_latency (default ${FULL.containers}; at least 3)
  --parallel P       idle containers are created P at a time per configuration (default ${PARALLEL})
  --tries K          run_latency tries per round (default ${FULL.tries})
  --duration S       seconds per traffic measurement (default ${FULL.duration})
  --configs LIST     of ${DOCKER_CONFIGS.join(',')} (default all)
  --out DIR          where the run folder goes (default bench/results)
  --report DIR       only write DIR/summary.md again from DIR/results.json
`;

function positiveInt(v, name, min = 1) {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name}: an integer ≥ ${min}, got ${v}`);
  return n;
}

async function main() {
  let opts;
  try {
    const { values, positionals } = parseArgs({
      args: process.argv.slice(2),
      options: {
        quick: { type: 'boolean' },
        rounds: { type: 'string' },
        containers: { type: 'string' },
        tries: { type: 'string' },
        parallel: { type: 'string' },
        duration: { type: 'string' },
        configs: { type: 'string' },
        out: { type: 'string' },
        report: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (values.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    if (positionals.length) throw new Error(`unexpected argument ${positionals[0]}`);
    if (values.report) {
      const dir = path.resolve(values.report);
      const results = JSON.parse(readFileSync(path.join(dir, 'results.json'), 'utf8'));
      writeFileSync(path.join(dir, 'summary.md'), summarize(results));
      process.stdout.write(`${path.join(dir, 'summary.md')}\n`);
      return 0;
    }
    const d = values.quick ? QUICK : FULL;
    const configs = values.configs ? list(values.configs) : DOCKER_CONFIGS;
    for (const c of configs) if (!DOCKER_CONFIGS.includes(c)) throw new Error(`--configs: unknown configuration ${c} (known: ${DOCKER_CONFIGS.join(', ')})`);
    opts = {
      quick: values.quick ?? false,
      rounds: values.rounds ? positiveInt(values.rounds, '--rounds') : d.rounds,
      containers: values.containers ? positiveInt(values.containers, '--containers', 3) : d.containers,
      tries: values.tries ? positiveInt(values.tries, '--tries') : d.tries,
      parallel: values.parallel ? positiveInt(values.parallel, '--parallel') : PARALLEL,
      duration: values.duration ? positiveInt(values.duration, '--duration') : d.duration,
      configs: DOCKER_CONFIGS.filter((c) => configs.includes(c)),
      out: path.resolve(values.out ?? path.join(REPO, 'bench/results')),
    };
  } catch (e) {
    process.stderr.write(`docker bench: ${e.message}\n${USAGE}`);
    return 2;
  }
  const started = new Date().toISOString();
  // The commit the run started on (the checkout may move while it runs).
  const host = machine(REPO);
  const dir = path.join(opts.out, `${started.replace(/[:.]/g, '-')}-docker`);
  mkdirSync(dir, { recursive: true });
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'bpdb-'));
  const log = (m) => {
    const line = `[${new Date().toISOString().slice(11, 19)}] docker: ${m}`;
    process.stderr.write(`${line}\n`);
    appendFileSync(path.join(dir, 'run.log'), `${line}\n`);
  };
  const samples = [];
  const errors = [];
  let code = 0;
  try {
    await runSuite({ ...opts, log, record: (s) => samples.push(s), workDir });
  } catch (e) {
    errors.push(e?.message ?? String(e));
    log(e?.message ?? String(e));
    code = /interrupted/.test(e?.message ?? '') ? 130 : 1;
  }
  let dockerVersion = 'unknown';
  try {
    dockerVersion = execFileSync('/usr/sbin/dockerd', ['--version'], { encoding: 'utf8' }).trim();
  } catch {}
  const results = {
    suite: SUITE,
    started,
    ended: new Date().toISOString(),
    command: `node bench/docker.mjs ${process.argv.slice(2).join(' ')}`.trim(),
    quick: opts.quick,
    rounds: opts.rounds,
    containers: opts.containers,
    parallel: opts.parallel,
    tries: opts.tries,
    duration: opts.duration,
    configs: opts.configs,
    machine: host,
    dockerVersion,
    errors,
    samples,
  };
  writeFileSync(path.join(dir, 'results.json'), `${JSON.stringify(results, null, 1)}\n`);
  writeFileSync(path.join(dir, 'summary.md'), summarize(results));
  const latest = path.join(opts.out, 'latest-docker');
  try {
    if (existsSync(latest) || lstatSync(latest, { throwIfNoEntry: false })) rmSync(latest);
    symlinkSync(path.basename(dir), latest);
  } catch {}
  if (!readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${workDir}/`)) rmSync(workDir, { recursive: true, force: true });
  else log(`mounts left under ${workDir}: kept`);
  log(`results in ${dir}`);
  return code;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then(
    (c) => process.exit(c),
    (e) => {
      process.stderr.write(`docker bench: ${e?.stack ?? e}\n`);
      process.exit(1);
    },
  );
}
