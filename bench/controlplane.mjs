#!/usr/bin/env node
// Control-plane suite: how long bridgeport's daemon takes to change what is
// published, and what it costs to keep, with N TCP ports published, `ebpf`
// against `iptables`.
//
// One bed per configuration, both side by side at the same N, built with
// bench/lib/topology.mjs's Bed (namespaces named bpc-<id>-eb-* / bpc-<id>-ip-*
// here): a host netns with the uplink (198.18.0.1, plus 198.18.0.101 when N
// needs a second host IP: at most 50 000 ports per IP, from port 10000), a
// client netns on the other end of it, and the daemon (--datapath D,
// --metrics-addr 127.0.0.1:9477 inside the host netns) started with nsenter.
// The daemon has one user network `bench` (172.30.0.0/24) and a container
// `web` on it (172.30.0.2, `sleep infinity`, no port at first). A small TCP
// server (node) in web's namespace answers on the last port of the plan, the
// port every check connects to from the client netns.
//
// Every time is measured at the API: an HTTP request on the daemon's unix
// socket made from this process (node http, a new connection per request),
// from the request's start to the end of the response body, the daemon's
// datapath update included; no CLI process start-up. The bed is brought to the
// state a workload needs before it (unmeasured): "empty" (web publishes
// nothing) or "full" (web publishes the N ports as ranges).
//
//   publish_each   from empty: N API calls each publishing one port
//                  (HOSTIP:P:P, in the order of the ranges), within a time
//                  budget of 120 s (quick: 20 s) per measurement (one config,
//                  one N, one round). ms_per_port is the mean wall time per
//                  call over the calls made, ports_per_s the calls per second
//                  of the loop's wall time; raw says {calls, completed}. When
//                  the budget runs out first, completed is false and no total
//                  is given (never extrapolated); total_ms only when all N
//                  calls were made. The ports are then unpublished (untimed).
//   publish_range  from empty: ONE call publishing the N ports as ranges
//                  (HOSTIP:10000-59999:10000-59999, one range per host IP):
//                  its wall time.
//   port_add, port_remove   with N published: 100 (quick: 30) times, publish
//                  one extra port below the range (198.18.0.1:9000:9000), then
//                  unpublish it; p50, p99 (nearest rank) and max of each call.
//                  These and the endpoint operations stop early when their
//                  time budget (180 s, quick 30 s) runs out, after at least 3
//                  operations: raw.ops is how many were made (p99 of a few is
//                  their maximum).
//   endpoint_create, endpoint_remove   with N published: 10 (quick: 5) times,
//                  run a container `ep` (no ports, `sleep infinity`) on
//                  `bench`, then remove it with force: p50 and max of each call.
//   scrape         with N published, after 20 TCP connections from the client
//                  through the last published port (so its counters exist):
//                  one untimed GET of /metrics (its sample lines are `series`),
//                  then 10 timed GETs (curl's time_total, curl run with nsenter
//                  in the host netns): p50 and max.
//   daemon_rss     with N published, after a scrape: VmRSS of the daemon's node
//                  process (/proc/PID/status; the PID the status API reports,
//                  checked to be the node process running `daemon`).
//   restart_ready, restart_ready_kill9   with N published: stop the daemon
//                  (SIGTERM, resp. SIGKILL), wait until it is gone, start it
//                  again with the same dirs and time from the spawn until
//                  GET /v1/status answers from the new process. The daemon
//                  reconciles before it listens (src/daemon/main.ts: datapath
//                  selection and set-up, state load, reconcile() — bridges
//                  and endpoints checked, the whole model rendered into the
//                  datapath — then the API socket), so "ready" includes node's
//                  start-up, the datapath set-up and the full re-render of N
//                  ports. Not included: the metrics listener, started after
//                  the socket. After each restart the daemon must still list
//                  N ports and 3 TCP connections from the client netns to the
//                  last published port must reach web's server; otherwise the
//                  restart is a failure, not a number.
//
// Rounds are interleaved: for each N, in each round, every workload runs on
// ebpf then iptables (the order alternating each round) before the next
// workload. The state a workload leaves behind carries over within a bed, so
// from round 2 on the daemon is the one the last restart started. A failed
// measurement is logged and records nothing; the suite then throws, listing
// the failures. Beds are torn down before the next N, on failure and on
// SIGINT/SIGTERM (daemon --cleanup with the same dirs inside the host netns,
// leftover processes killed, mounts under the scratch folder unmounted,
// namespaces deleted).
//
// Standalone (as root, after `make build`):
//   node bench/controlplane.mjs [--quick] [--ns 1,1000] [--rounds 3] [--only publish_range,port_add]
//        [--configs ebpf,iptables] [--out FILE]
// prints one JSON sample per line to stdout (or appends them to FILE) and the
// progress to stderr.
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { request } from 'node:http';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { sample } from './lib/results.mjs';
import { ints, list, mainIfRun, runStandalone } from './lib/standalone.mjs';
import { Bed, daemonArgv, GATEWAY, NETNS_DIR, SUBNET, WEB_IP, hostIp, planPorts, run as runArgv, sleep } from './lib/topology.mjs';

export const SUITE = 'controlplane';
export const CONFIGS = ['ebpf', 'iptables'];
const PREFIX = 'bpc';
const SHORT = { ebpf: 'eb', iptables: 'ip' };
const METRICS_ADDR = '127.0.0.1:9477';
/** port_add's extra port: below the published ranges (which start at 10000). */
const EXTRA_PORT = 9000;
const EP_NAME = 'ep';
const PUBLISH_EACH_BUDGET_S = { full: 120, quick: 20 };
const PORT_OPS = { full: 100, quick: 30 };
const ENDPOINT_OPS = { full: 10, quick: 5 };
/**
 * Time budget of the port and endpoint operations per measurement: at large N
 * one iptables operation takes seconds (a whole restore), so the count stops
 * early when the budget runs out, after at least MIN_OPS; raw.ops says how many.
 */
const OPS_BUDGET_S = { full: 180, quick: 30 };
const MIN_OPS = 3;
const withinBudget = (i, t0, mode) => i < MIN_OPS || performance.now() - t0 < OPS_BUDGET_S[mode] * 1000;
const SCRAPES = 10;
const SCRAPE_TRAFFIC = 20;
const READY_TIMEOUT_MS = 15 * 60_000;
const BIG_CALL_MS = 30 * 60_000;
const PAUSE_MS = { full: 500, quick: 200 };

// A TCP server for web's namespace and a client for the client netns (node, no shell).
const LISTENER = `const net=require('net');const s=net.createServer(c=>{c.on('error',()=>{});c.end('bp\\n')});s.listen(Number(process.argv[1]),'0.0.0.0');`;
const CONNECTOR = `const net=require('net');const [ip,port,count]=process.argv.slice(1);let ok=0;
const one=()=>new Promise((res,rej)=>{const s=net.connect({host:ip,port:Number(port)});let d='';
const t=setTimeout(()=>{s.destroy();rej(new Error('no answer in 3 s'))},3000);
s.on('data',x=>{d+=x});s.on('end',()=>{clearTimeout(t);d.startsWith('bp')?res():rej(new Error('bad reply '+JSON.stringify(d)))});
s.on('error',e=>{clearTimeout(t);rej(e)})});
(async()=>{for(let i=0;i<Number(count);i++){await one();ok++}})().then(()=>console.log(ok),e=>{console.error('after '+ok+' ok: '+e.message);process.exit(1)});`;

/** Workload → what it records; steps run in this order within a round. */
const STEPS = [
  { name: 'publish_each', workloads: ['publish_each'], needs: 'empty', fn: publishEach },
  { name: 'publish_range', workloads: ['publish_range'], needs: 'empty', fn: publishRange },
  { name: 'port_ops', workloads: ['port_add', 'port_remove'], needs: 'full', fn: portOps },
  { name: 'endpoint', workloads: ['endpoint_create', 'endpoint_remove'], needs: 'full', fn: endpointOps },
  { name: 'scrape', workloads: ['scrape'], needs: 'full', fn: scrape },
  { name: 'daemon_rss', workloads: ['daemon_rss'], needs: 'full', fn: daemonRss },
  { name: 'restart_ready', workloads: ['restart_ready'], needs: 'full', fn: (bed, ctx) => restart(bed, ctx, 'SIGTERM') },
  { name: 'restart_ready_kill9', workloads: ['restart_ready_kill9'], needs: 'full', fn: (bed, ctx) => restart(bed, ctx, 'SIGKILL') },
];
export const WORKLOAD_NAMES = STEPS.flatMap((s) => s.workloads);

// ---------------------------------------------------------------- helpers

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

/** One request on the daemon's unix socket: { body, ms } (ms: request start to end of body, before parsing). */
function api(socket, method, urlPath, body, { timeoutMs = 120_000 } = {}) {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    let timer;
    const t0 = performance.now();
    const req = request(
      {
        socketPath: socket,
        path: urlPath,
        method,
        agent: false,
        headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {},
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('error', (e) => {
          clearTimeout(timer);
          reject(e);
        });
        res.on('end', () => {
          const ms = performance.now() - t0;
          clearTimeout(timer);
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            parsed = text;
          }
          if ((res.statusCode ?? 500) >= 400) reject(new ApiError(`${method} ${urlPath}: ${res.statusCode} ${parsed?.message ?? text}`, res.statusCode));
          else resolve({ body: parsed, ms });
        });
      },
    );
    timer = setTimeout(() => req.destroy(new Error(`${method} ${urlPath}: no answer after ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.end(payload);
  });
}

/** Nearest-rank percentile (p in 0..1) of a list of numbers. */
function percentile(values, p) {
  const v = [...values].sort((a, b) => a - b);
  return v[Math.min(v.length - 1, Math.max(0, Math.ceil(p * v.length) - 1))];
}
const mean = (v) => v.reduce((a, b) => a + b, 0) / v.length;
const round3 = (x) => Math.round(x * 1000) / 1000;

/** `IP:A-B:A-B` (or `IP:P:P`) for each range. */
const rangeSpecs = (ranges) => ranges.map((r) => (r.first === r.last ? `${r.ip}:${r.first}:${r.first}` : `${r.ip}:${r.first}-${r.last}:${r.first}-${r.last}`));

function tailOf(file, chars = 3000) {
  try {
    return readFileSync(file, 'utf8').slice(-chars);
  } catch {
    return '';
  }
}

function fmt(v) {
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 1) return v.toFixed(2);
  return v.toPrecision(3);
}

function checkAbort(signal) {
  if (signal?.aborted) throw signal.reason ?? new Error('aborted');
}

/** A fresh id no namespace of this suite's prefix uses yet. */
function newRunId() {
  for (;;) {
    const id = randomBytes(3).toString('hex');
    const taken = existsSync(NETNS_DIR) && readdirSync(NETNS_DIR).some((n) => n.startsWith(`${PREFIX}-${id}-`));
    if (!taken) return id;
  }
}

function leftoverNamespaces() {
  if (!existsSync(NETNS_DIR)) return [];
  return readdirSync(NETNS_DIR).filter((n) => n.startsWith(`${PREFIX}-`));
}

/** A child process in the shape Bed.stop()/tearDown() expect (not a thenable). */
function child(sub, what) {
  const c = { sub, what, running: true };
  c.done = sub.then(
    (r) => r,
    (e) => ({ exitCode: 128, stdout: '', stderr: String(e?.message ?? e) }),
  );
  c.done.then(() => {
    c.running = false;
  });
  return c;
}

// ---------------------------------------------------------------- the bed

/**
 * topology.mjs's Bed (host netns + uplink + client netns, tearDown) with this
 * suite's names and its own daemon set-up: no port published at first,
 * metrics on, and restartable.
 */
class CpBed extends Bed {
  constructor({ config, runId, workDir, repo, log }) {
    super({ config, runId, workDir, repo, log });
    const base = `${PREFIX}-${runId}-${SHORT[config]}`;
    this.ns = { host: `${base}-h`, client: `${base}-c` };
    this.paths = { host: path.join(NETNS_DIR, this.ns.host), client: path.join(NETNS_DIR, this.ns.client) };
    this.state = 'none';
    this.n = 0;
    this.listener = undefined;
  }

  get fullSpecs() {
    return rangeSpecs(this.plan.ranges);
  }

  call(method, urlPath, body, opts) {
    return api(this.socket, method, urlPath, body, opts);
  }

  /** Starts the daemon (does not wait): the Child is this.daemon. */
  startDaemon() {
    const fd = openSync(this.logFile, 'a');
    const argv = daemonArgv(this, METRICS_ADDR);
    try {
      // No forced SIGKILL after a SIGTERM: restart_ready must measure a real graceful stop.
      const sub = execa(argv[0], argv.slice(1), { reject: false, stdin: 'ignore', stdout: fd, stderr: fd, forceKillAfterDelay: false });
      this.daemon = child(sub, 'bridgeport daemon');
    } finally {
      closeSync(fd);
    }
    return this.daemon;
  }

  /** Polls GET /v1/status every pollMs until the daemon `d` answers; returns the status. */
  async waitReady(d, { timeoutMs = READY_TIMEOUT_MS, pollMs = 10 } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!d.running) {
        const r = await d.done;
        throw new Error(`daemon (${this.config}) ended before it was ready (${r.exitCode ?? r.signal}); log ${this.logFile}:\n${tailOf(this.logFile)}`);
      }
      try {
        const { body } = await this.call('GET', '/v1/status', undefined, { timeoutMs: 5_000 });
        if (this.isDaemonPid(body?.Pid, d)) return body;
      } catch {}
      if (Date.now() > deadline) throw new Error(`daemon (${this.config}) not ready after ${timeoutMs / 1000} s; log ${this.logFile}:\n${tailOf(this.logFile)}`);
      await sleep(pollMs);
    }
  }

  /** pid is the process we started (nsenter exec'd node) or its child (nsenter forked). */
  isDaemonPid(pid, d) {
    if (!Number.isInteger(pid)) return false;
    if (pid === d.sub.pid) return true;
    try {
      return Number(/^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) === d.sub.pid;
    } catch {
      return false;
    }
  }

  async setUpBridgeport() {
    this.stateDir = path.join(this.dir, 'state');
    this.runDir = path.join(this.dir, 'run');
    this.socket = path.join(this.runDir, 'bridgeport.sock');
    this.logFile = path.join(this.dir, 'daemon.log');
    mkdirSync(this.stateDir, { recursive: true });
    mkdirSync(this.runDir, { recursive: true });
    const status = await this.waitReady(this.startDaemon(), { timeoutMs: 60_000, pollMs: 100 });
    this.datapathInUse = status.Datapath;
    if (status.Datapath !== this.config) throw new Error(`bridgeport runs datapath ${status.Datapath}, asked ${this.config}: ${status.DatapathReason ?? ''}`);
    await this.call('POST', '/v1/networks', { name: 'bench', subnet: SUBNET, gateway: GATEWAY });
    await this.makeWeb();
    this.state = 'empty';
  }

  /** Runs `web` (no port) and starts the TCP server in its namespace. */
  async makeWeb() {
    await this.call('POST', '/v1/containers', { name: 'web', network: 'bench', ip: WEB_IP, cmd: ['sleep', 'infinity'] });
    const { body } = await this.call('GET', '/v1/containers/web');
    const info = Array.isArray(body) ? body[0] : body;
    const key = info?.NetworkSettings?.SandboxKey;
    if (!key || !existsSync(key)) throw new Error(`web: no sandbox namespace in inspect: ${JSON.stringify(info?.NetworkSettings)}`);
    const ip = info.NetworkSettings.Networks?.bench?.IPAddress;
    if (ip !== WEB_IP) throw new Error(`web got address ${ip}`);
    this.paths.web = key;
    await this.startListener();
  }

  async startListener() {
    if (this.listener) await this.stop(this.listener, 1_000);
    const port = this.plan.target.port;
    this.listener = this.spawn('web', process.execPath, ['-e', LISTENER, String(port)]);
    await this.waitListening('web', 'tcp', port, this.listener);
  }

  /** count TCP connections from the client netns to the last published port; each must get web's answer. */
  async connectTarget(count) {
    const { ip, port } = this.plan.target;
    const r = await this.exec('client', process.execPath, ['-e', CONNECTOR, ip, String(port), String(count)], { timeoutMs: 10_000 + count * 3_500 });
    if (r.exitCode !== 0) throw new Error(`TCP ${ip}:${port} from the client: ${(r.stderr || r.stdout).trim().slice(-500) || `exit ${r.exitCode}`}`);
  }

  /** Brings the bed to 'empty' (web publishes nothing) or 'full' (the N ports), untimed. */
  async ensure(want) {
    if (this.state === want) return;
    if (!this.daemon?.running) await this.waitReady(this.startDaemon());
    try {
      await this.call('DELETE', `/v1/containers/${EP_NAME}?force=true`);
    } catch (e) {
      if (e.status !== 404) throw e;
    }
    let ports;
    try {
      ports = (await this.call('GET', '/v1/containers/web/ports')).body;
    } catch (e) {
      if (e.status !== 404) throw e;
    }
    if (ports && ports.length !== 0 && ports.length !== this.n) {
      await this.call('DELETE', '/v1/containers/web?force=true', undefined, { timeoutMs: BIG_CALL_MS });
      ports = undefined;
    }
    if (ports === undefined) {
      await this.makeWeb();
      ports = [];
    } else if (!this.listener?.running) {
      await this.startListener();
    }
    if (want === 'empty' && ports.length === this.n) await this.call('POST', '/v1/containers/web/unpublish', { ports: this.fullSpecs }, { timeoutMs: BIG_CALL_MS });
    if (want === 'full' && ports.length === 0) await this.call('POST', '/v1/containers/web/publish', { ports: this.fullSpecs }, { timeoutMs: BIG_CALL_MS });
    this.state = want;
  }

  async tearDown() {
    if (this.daemon?.running && this.socket) {
      try {
        await this.call('DELETE', `/v1/containers/${EP_NAME}?force=true`, undefined, { timeoutMs: 60_000 });
      } catch {}
    }
    this.listener = undefined;
    await super.tearDown();
  }
}

// ---------------------------------------------------------------- workloads
// Each takes (bed, ctx) with the bed in the state its step needs, and returns
// [{ workload, metric, value, unit, higher, raw? }].

async function publishEach(bed, { mode, signal }) {
  const n = bed.n;
  const budgetMs = PUBLISH_EACH_BUDGET_S[mode] * 1000;
  const times = [];
  bed.state = 'unknown';
  const t0 = performance.now();
  let stopped = false;
  outer: for (const r of bed.plan.ranges) {
    for (let p = r.first; p <= r.last; p++) {
      checkAbort(signal);
      if (performance.now() - t0 >= budgetMs) {
        stopped = true;
        break outer;
      }
      const { body, ms } = await bed.call('POST', '/v1/containers/web/publish', { ports: [`${r.ip}:${p}:${p}`] });
      if (!Array.isArray(body) || body.length !== 1) throw new Error(`publish ${r.ip}:${p}: answered ${JSON.stringify(body).slice(0, 200)}`);
      times.push(ms);
    }
  }
  const wallMs = performance.now() - t0;
  const calls = times.length;
  const completed = !stopped && calls === n;
  // Back to empty (untimed): exactly the first `calls` ports of the plan were published.
  if (calls > 0) {
    await bed.call('POST', '/v1/containers/web/unpublish', { ports: rangeSpecs(planPorts(calls).ranges) }, { timeoutMs: BIG_CALL_MS });
  }
  bed.state = 'empty';
  const k = Math.min(100, calls);
  const raw = {
    calls,
    completed,
    budget_s: budgetMs / 1000,
    wall_ms: round3(wallMs),
    first_calls_mean_ms: round3(mean(times.slice(0, k))),
    last_calls_mean_ms: round3(mean(times.slice(-k))),
    max_ms: round3(Math.max(...times)),
  };
  const out = [
    { workload: 'publish_each', metric: 'ms_per_port', value: mean(times), unit: 'ms', higher: false, raw },
    { workload: 'publish_each', metric: 'ports_per_s', value: (calls * 1000) / wallMs, unit: 'ports/s', higher: true, raw: { calls, completed } },
  ];
  if (completed) out.push({ workload: 'publish_each', metric: 'total_ms', value: wallMs, unit: 'ms', higher: false, raw: { calls, completed } });
  return out;
}

async function publishRange(bed) {
  const specs = bed.fullSpecs;
  bed.state = 'unknown';
  const { body, ms } = await bed.call('POST', '/v1/containers/web/publish', { ports: specs }, { timeoutMs: BIG_CALL_MS });
  if (!Array.isArray(body) || body.length !== bed.n) throw new Error(`publish ${specs.join(' ')}: ${Array.isArray(body) ? body.length : typeof body} ports in the answer, expected ${bed.n}`);
  bed.state = 'full';
  return [{ workload: 'publish_range', metric: 'ms', value: ms, unit: 'ms', higher: false, raw: { specs } }];
}

async function portOps(bed, { mode, signal }) {
  const spec = `${hostIp(0)}:${EXTRA_PORT}:${EXTRA_PORT}`;
  const add = [];
  const remove = [];
  const t0 = performance.now();
  for (let i = 0; i < PORT_OPS[mode] && withinBudget(i, t0, mode); i++) {
    checkAbort(signal);
    bed.state = 'unknown';
    const a = await bed.call('POST', '/v1/containers/web/publish', { ports: [spec] });
    if (!Array.isArray(a.body) || a.body.length !== 1) throw new Error(`publish ${spec}: answered ${JSON.stringify(a.body).slice(0, 200)}`);
    add.push(a.ms);
    const r = await bed.call('POST', '/v1/containers/web/unpublish', { ports: [spec] });
    if (!Array.isArray(r.body) || r.body.length !== 1) throw new Error(`unpublish ${spec}: answered ${JSON.stringify(r.body).slice(0, 200)}`);
    remove.push(r.ms);
    bed.state = 'full';
  }
  return [
    ['port_add', add],
    ['port_remove', remove],
  ].flatMap(([workload, t]) => [
    { workload, metric: 'p50_ms', value: percentile(t, 0.5), unit: 'ms', higher: false, raw: { ops: t.length, planned: PORT_OPS[mode], spec } },
    { workload, metric: 'p99_ms', value: percentile(t, 0.99), unit: 'ms', higher: false },
    { workload, metric: 'max_ms', value: Math.max(...t), unit: 'ms', higher: false },
  ]);
}

async function endpointOps(bed, { mode, signal }) {
  const create = [];
  const remove = [];
  const t0 = performance.now();
  for (let i = 0; i < ENDPOINT_OPS[mode] && withinBudget(i, t0, mode); i++) {
    checkAbort(signal);
    bed.state = 'unknown';
    const c = await bed.call('POST', '/v1/containers', { name: EP_NAME, network: 'bench', cmd: ['sleep', 'infinity'] });
    if (!c.body?.NetworkSettings?.Networks?.bench?.IPAddress) throw new Error(`run ${EP_NAME}: no address on bench in the answer`);
    create.push(c.ms);
    const r = await bed.call('DELETE', `/v1/containers/${EP_NAME}?force=true`);
    remove.push(r.ms);
    bed.state = 'full';
  }
  return [
    ['endpoint_create', create],
    ['endpoint_remove', remove],
  ].flatMap(([workload, t]) => [
    { workload, metric: 'p50_ms', value: percentile(t, 0.5), unit: 'ms', higher: false, raw: { ops: t.length, planned: ENDPOINT_OPS[mode], ms: t.map(round3) } },
    { workload, metric: 'max_ms', value: Math.max(...t), unit: 'ms', higher: false },
  ]);
}

/** GET /metrics with curl in the host netns: { code, seconds, body? }. */
async function curlMetrics(bed, { withBody = false } = {}) {
  const url = `http://${METRICS_ADDR}/metrics`;
  const args = withBody ? ['-sS', '--max-time', '300', url] : ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{time_total}', '--max-time', '300', url];
  const r = await bed.exec('host', 'curl', args, { timeoutMs: 310_000 });
  if (r.exitCode !== 0) throw Object.assign(new Error(`curl ${url}: exit ${r.exitCode}: ${r.stderr.trim().slice(-300)}`), { curlExit: r.exitCode });
  if (withBody) return { body: r.stdout };
  const [code, secs] = r.stdout.trim().split(' ');
  if (code !== '200') throw new Error(`curl ${url}: HTTP ${code}`);
  return { seconds: Number(secs) };
}

/** The untimed first scrape: waits for the metrics listener (it starts after the API socket); the sample lines. */
async function firstScrape(bed) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const { body } = await curlMetrics(bed, { withBody: true });
      return body.split('\n').filter((l) => l.trim() && !l.startsWith('#'));
    } catch (e) {
      if (e.curlExit !== 7 || Date.now() > deadline) throw e; // 7: could not connect
      await sleep(100);
    }
  }
}

async function scrape(bed, { signal }) {
  await bed.connectTarget(SCRAPE_TRAFFIC);
  const lines = await firstScrape(bed);
  const { ip, port } = bed.plan.target;
  const counted = lines.some((l) => l.startsWith('bridgeport_published_port_packets_total{') && l.includes(`host_port="${port}"`) && !/ 0$/.test(l));
  const times = [];
  for (let i = 0; i < SCRAPES; i++) {
    checkAbort(signal);
    times.push((await curlMetrics(bed)).seconds * 1000);
  }
  return [
    { workload: 'scrape', metric: 'p50_ms', value: percentile(times, 0.5), unit: 'ms', higher: false, raw: { ms: times.map(round3), targetCounted: counted, target: `${ip}:${port}` } },
    { workload: 'scrape', metric: 'max_ms', value: Math.max(...times), unit: 'ms', higher: false },
    { workload: 'scrape', metric: 'series', value: lines.length, unit: 'lines', higher: false },
  ];
}

async function daemonRss(bed) {
  await firstScrape(bed);
  const { body: status } = await bed.call('GET', '/v1/status');
  const pid = status?.Pid;
  if (!bed.isDaemonPid(pid, bed.daemon)) throw new Error(`status reports pid ${pid}, not the daemon started (${bed.daemon.sub.pid})`);
  const exe = readlinkSync(`/proc/${pid}/exe`);
  const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  if (exe !== realpathSync(process.execPath) || !cmdline.includes('daemon')) throw new Error(`pid ${pid} is ${exe} ${cmdline.join(' ')}, not the node daemon`);
  const kib = Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
  if (!Number.isFinite(kib) || kib <= 0) throw new Error(`no VmRSS for pid ${pid}`);
  return [{ workload: 'daemon_rss', metric: 'mib', value: kib / 1024, unit: 'MiB', higher: false, raw: { pid, ports: status.PublishedPorts } }];
}

async function restart(bed, _ctx, sig) {
  const workload = sig === 'SIGKILL' ? 'restart_ready_kill9' : 'restart_ready';
  const old = bed.daemon;
  bed.state = 'unknown';
  old.sub.kill(sig);
  const gone = await Promise.race([old.done.then(() => true), sleep(120_000).then(() => false)]);
  if (!gone) {
    old.sub.kill('SIGKILL');
    await old.done;
    throw new Error(`daemon did not exit within 120 s of ${sig}`);
  }
  const ended = await old.done;
  if (sig === 'SIGTERM' && ended.exitCode !== 0) throw new Error(`daemon exited with ${ended.exitCode ?? ended.signal} after SIGTERM`);
  const t0 = performance.now();
  const d = bed.startDaemon();
  const status = await bed.waitReady(d);
  const ms = performance.now() - t0;
  // Still what it was: N ports listed, and traffic through the last one.
  const { body: ports } = await bed.call('GET', '/v1/containers/web/ports');
  if (!Array.isArray(ports) || ports.length !== bed.n) throw new Error(`after the restart web lists ${ports?.length} ports, expected ${bed.n}`);
  if (status.Datapath !== bed.config) throw new Error(`after the restart the datapath is ${status.Datapath}`);
  await bed.connectTarget(3);
  bed.state = 'full';
  return [{ workload, metric: 'ms', value: ms, unit: 'ms', higher: false, raw: { signal: sig, pid: status.Pid, ports: status.PublishedPorts } }];
}

// ---------------------------------------------------------------- the suite

/** The suite. Options beyond run.mjs's: only (workload names), configs, exitOnSecondSignal. */
export async function run({ quick = false, ns, rounds, log, record, repo, workDir, only, configs, exitOnSecondSignal = false }) {
  if (process.getuid?.() !== 0) throw new Error('controlplane: must run as root');
  const mode = quick ? 'quick' : 'full';
  const wanted = only ?? WORKLOAD_NAMES;
  for (const w of wanted) if (!WORKLOAD_NAMES.includes(w)) throw new Error(`controlplane: unknown workload ${w} (known: ${WORKLOAD_NAMES.join(', ')})`);
  const steps = STEPS.filter((s) => s.workloads.some((w) => wanted.includes(w)));
  const cfgs = configs ?? CONFIGS;
  for (const c of cfgs) if (!CONFIGS.includes(c)) throw new Error(`controlplane: unknown configuration ${c} (known: ${CONFIGS.join(', ')})`);
  for (const n of ns) planPorts(n); // N too large for the host IPs: fail before building anything
  const tools = await Promise.all(['nsenter', 'ip', 'curl', 'ss'].map(async (t) => [t, (await runArgv(['which', t])).exitCode === 0]));
  const missing = tools.filter(([, ok]) => !ok).map(([t]) => t);
  if (missing.length) throw new Error(`controlplane: missing tools: ${missing.join(' ')}`);
  const stale = leftoverNamespaces();
  if (stale.length) log(`note: network namespaces of an earlier run are still there (not ours, left alone): ${stale.join(' ')}`);

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
  const ctx = { mode, signal: abort.signal };
  log(
    `run ${runId}: N = ${ns.join(', ')}; ${rounds} rounds; configurations ${cfgs.join(', ')}; workloads ${steps.flatMap((s) => s.workloads.filter((w) => wanted.includes(w))).join(', ')}` +
      `; publish_each budget ${PUBLISH_EACH_BUDGET_S[mode]} s`,
  );

  try {
    for (const n of ns) {
      if (abort.signal.aborted) break;
      const beds = cfgs.map((config) => new CpBed({ config, runId, workDir, repo, log }));
      const ready = [];
      try {
        for (const bed of beds) {
          if (abort.signal.aborted) break;
          const t0 = Date.now();
          try {
            bed.n = n;
            await bed.setUp(n);
            const plan = bed.plan.ranges.map((r) => `${r.ip}:${r.first}-${r.last}`).join(' ');
            log(`n=${n} ${bed.config}: set up in ${((Date.now() - t0) / 1000).toFixed(1)} s (ranges ${plan}; target ${bed.plan.target.ip}:${bed.plan.target.port})`);
            ready.push(bed);
          } catch (e) {
            fail(`n=${n} ${bed.config}: setup`, e);
          }
        }
        for (let round = 0; round < rounds && !abort.signal.aborted; round++) {
          const order = round % 2 === 0 ? ready : [...ready].reverse();
          for (const step of steps) {
            for (const bed of order) {
              if (abort.signal.aborted) break;
              const label = `n=${n} round ${round + 1}/${rounds} ${step.name} ${bed.config}`;
              try {
                await bed.ensure(step.needs);
                const metrics = (await step.fn(bed, ctx)).filter((m) => wanted.includes(m.workload));
                for (const m of metrics) {
                  record(sample({ suite: SUITE, workload: m.workload, config: bed.config, n, round, metric: m.metric, value: m.value, unit: m.unit, higher: m.higher, raw: m.raw }));
                }
                const extra = step.name === 'publish_each' ? ` (${metrics[0]?.raw?.calls} calls${metrics[0]?.raw?.completed ? '' : ', budget ran out'})` : '';
                log(`${label}: ${metrics.map((m) => `${m.workload === step.name ? '' : `${m.workload} `}${m.metric} ${fmt(m.value)}`).join(', ')}${extra}`);
              } catch (e) {
                bed.state = 'unknown';
                if (abort.signal.aborted) break;
                fail(label, e);
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
  if (abort.signal.aborted) throw new Error(`controlplane: interrupted (${abort.signal.reason?.message ?? 'signal'}); cleaned up`);
  if (failures.length) throw new Error(`controlplane: ${failures.length} failure(s):\n  ${failures.join('\n  ')}`);
}

// ---------------------------------------------------------------- standalone

const USAGE = `usage: node bench/controlplane.mjs [options]   (as root, after make build)
  --quick             N = 1,1000; publish_each budget ${PUBLISH_EACH_BUDGET_S.quick} s, ${PORT_OPS.quick} port ops, ${ENDPOINT_OPS.quick} endpoint ops
  --ns LIST           published-port counts N (default 1,1000,10000,100000; quick 1,1000)
  --rounds R          interleaved rounds (default 3)
  --only LIST         workloads, of ${WORKLOAD_NAMES.join(',')}
  --configs LIST      configurations, of ${CONFIGS.join(',')}
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
        out: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    process.stderr.write(`controlplane: ${e.message}\n${USAGE}`);
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
    };
  } catch (e) {
    process.stderr.write(`controlplane: ${e.message}\n${USAGE}`);
    return 2;
  }
  return runStandalone('controlplane', run, opts, values.out);
}

mainIfRun(import.meta.url, 'controlplane', main);
