// Workloads of the data-plane suite, the checks run on every bed before it is
// measured, and the parsers of the tools' output. A workload starts its server
// on the port under test, runs one client for `duration` seconds, stops the
// server and returns its metrics; it throws when the tool fails or its output
// says the measurement did not happen (never a made-up number).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { cpuSecondsBetween, cpuTimes } from './results.mjs';
import { ALT_PORT, CLIENT_HTTP_PORT, CLIENT_IP, CLIENT_IPERF_PORT, PEER_IP, ROUTED_IP, SRV_IP, UNLINKED_PORT, UPLINK, WEB_IP, hostIp } from './topology.mjs';

/** wrk's load: threads and concurrent connections (the machine has 2 cores). */
export const WRK_THREADS = 2;
export const WRK_CONNECTIONS = 32;
/** Worker processes of the tiny HTTP server (one epoll loop each, SO_REUSEPORT). */
export const HTTPD_WORKERS = 2;
/** tcp_crr's untimed burst through the other host port of the same container port, before measuring. */
export const WARMUP_SECONDS = 1;
/**
 * crr_two_ports: ab's load per phase (as the defect was found: ab -n 3000 -c 8
 * -s 5), the phases (A = the port under test, B = ALT_PORT) and the counters
 * read in the client netns around them.
 */
export const AB_REQUESTS = 3000;
export const AB_CONCURRENCY = 8;
export const AB_TIMEOUT_S = 5;
export const TWO_PORT_PHASES = ['A', 'B', 'A', 'B'];
const NSTAT_KEYS = ['TcpExtTCPSynRetrans', 'TcpOutRsts'];

// ---------------------------------------------------------------- parsers

/** iperf3 --json output; throws with iperf3's own error when it reports one. */
export function parseIperf(stdout, what = 'iperf3') {
  let j;
  try {
    j = JSON.parse(stdout);
  } catch {
    throw new Error(`${what}: output is not JSON: ${stdout.slice(0, 300)}`);
  }
  if (j.error) throw new Error(`${what}: ${j.error}`);
  if (!j.end?.sum_received) throw new Error(`${what}: no end.sum_received in the output`);
  return j;
}

/** TCP stream result: bytes and seconds as the receiver counted them. */
export function iperfTcp(j) {
  const r = j.end.sum_received;
  if (!(r.bytes > 0) || !(r.seconds > 0)) throw new Error(`iperf3: nothing received (${JSON.stringify(r)})`);
  return { bytes: r.bytes, seconds: r.seconds, gbps: (r.bytes * 8) / r.seconds / 1e9, retransmits: j.end.sum_sent?.retransmits };
}

/** UDP result: datagrams the server received per second and the loss it counted. */
export function iperfUdp(j) {
  const r = j.end.sum_received;
  if (!(r.packets > 0) || !(r.seconds > 0)) throw new Error(`iperf3 -u: no datagram accounted (${JSON.stringify(r)})`);
  const delivered = r.packets - r.lost_packets;
  return { sent: r.packets, delivered, seconds: r.seconds, perSecond: delivered / r.seconds, lossPct: (100 * r.lost_packets) / r.packets };
}

const LAT_UNITS = { us: 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3 };

/** wrk --latency output: requests, rate, p50/p99 in ms, socket errors. */
export function parseWrk(stdout) {
  const num = (re) => {
    const m = re.exec(stdout);
    return m ? Number(m[1]) : undefined;
  };
  const lat = (pct) => {
    const m = new RegExp(`^\\s*${pct}%\\s+([\\d.]+)(us|ms|s|m|h)\\s*$`, 'm').exec(stdout);
    return m ? Number(m[1]) * LAT_UNITS[m[2]] : undefined;
  };
  const done = /(\d+) requests in ([\d.]+)(us|ms|s|m|h)/.exec(stdout);
  const requests = done ? Number(done[1]) : undefined;
  const seconds = done ? (Number(done[2]) * LAT_UNITS[done[3]]) / 1000 : undefined;
  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  const errors = se ? se.slice(1, 5).map(Number) : [0, 0, 0, 0];
  const non2xx = num(/Non-2xx or 3xx responses: (\d+)/) ?? 0;
  const out = {
    requests,
    seconds,
    perSecond: num(/Requests\/sec:\s+([\d.]+)/),
    p50ms: lat(50),
    p99ms: lat(99),
    errors: { connect: errors[0], read: errors[1], write: errors[2], timeout: errors[3], non2xx },
  };
  if (!(out.requests > 0) || !(out.perSecond > 0) || out.p50ms === undefined || out.p99ms === undefined) {
    throw new Error(`wrk: no result in its output: ${stdout.slice(0, 500)}`);
  }
  out.failed = errors.reduce((a, b) => a + b, 0) + non2xx;
  return out;
}

/**
 * ab (ApacheBench) output, stdout and stderr: requests completed and failed,
 * the seconds ab timed (undefined when it gave up), and why it gave up
 * (a response timeout, too many connect errors …). Length failures (ab
 * compares each body's length with the first one's, and the body names the
 * client's port, whose digits may vary) are kept apart: not a failed request.
 * Throws when the output says nothing was attempted (e.g. a usage error).
 */
export function parseAb(stdout, stderr = '') {
  const num = (re, text = stdout) => {
    const m = re.exec(text);
    return m ? Number(m[1]) : undefined;
  };
  const complete = num(/^Complete requests:\s+(\d+)/m);
  const seconds = num(/^Time taken for tests:\s+([\d.]+) seconds/m);
  const breakdown = /\(Connect: (\d+), Receive: (\d+), Length: (\d+), Exceptions: (\d+)\)/.exec(stdout);
  const [connect, receive, length, exceptions] = breakdown ? breakdown.slice(1, 5).map(Number) : [0, 0, 0, 0];
  const non2xx = num(/^Non-2xx responses:\s+(\d+)/m) ?? 0;
  const out = { complete, seconds, errors: { connect, receive, length, exceptions, non2xx }, aborted: undefined };
  if (complete === undefined) {
    // ab gave up before its report: "apr_pollset_poll: The timeout specified has expired (70007)",
    // "apr_socket_recv: Connection reset by peer (104)", "Test aborted after 10 failures" …
    const why = /^(apr_\S+: .+|Test aborted after .+)$/m.exec(stderr);
    if (!why) throw new Error(`ab: no result in its output: ${(stderr.trim() || stdout.trim()).slice(-500)}`);
    out.aborted = why[1].trim();
    out.complete = num(/^Total of (\d+) requests completed/m) ?? 0;
  }
  out.failed = connect + receive + exceptions + non2xx;
  return out;
}

/** `nstat -asz --json` output: the kernel's counters, by nstat's name. */
export function parseNstat(stdout) {
  let j;
  try {
    j = JSON.parse(stdout);
  } catch {
    throw new Error(`nstat: output is not JSON: ${stdout.slice(0, 300)}`);
  }
  if (!j.kernel || typeof j.kernel !== 'object') throw new Error(`nstat: no kernel counters in ${stdout.slice(0, 300)}`);
  return j.kernel;
}

/** sockperf ping-pong output: round-trip percentiles in µs. */
export function parseSockperf(text) {
  const clean = text.replace(/\x1b\[[0-9;]*m/g, '');
  const pct = (p) => {
    const m = new RegExp(`percentile ${p.toFixed(3).replace('.', '\\.')} =\\s+([\\d.]+)`).exec(clean);
    return m ? Number(m[1]) : undefined;
  };
  const obs = /Total (\d+) observations/.exec(clean);
  const out = { p50us: pct(50), p99us: pct(99), observations: obs ? Number(obs[1]) : undefined };
  if (out.p50us === undefined || out.p99us === undefined || !(out.observations > 0)) {
    throw new Error(`sockperf: no percentiles in its output: ${clean.slice(-600)}`);
  }
  return out;
}

// ---------------------------------------------------------------- the HTTP server

/** Compiles bench/fixtures/httpd.c into dir (once per run). */
export function buildHttpd(repo, dir) {
  const src = path.join(repo, 'bench', 'fixtures', 'httpd.c');
  const out = path.join(dir, 'httpd');
  if (existsSync(out) && statSync(out).mtimeMs >= statSync(src).mtimeMs) return out;
  mkdirSync(dir, { recursive: true });
  let lastErr;
  for (const cc of ['cc', 'gcc', 'clang']) {
    try {
      execFileSync(cc, ['-O2', '-Wall', '-o', out, src], { stdio: ['ignore', 'pipe', 'pipe'] });
      return out;
    } catch (e) {
      lastErr = e;
    }
  }
  throw new Error(`cannot compile ${src}: ${lastErr?.stderr?.toString() || lastErr?.message}`);
}

// ---------------------------------------------------------------- building blocks

const iperfServer = async (bed, where, port) => {
  const proc = bed.spawn(where, 'iperf3', ['-s', '-1', '-p', String(port)]);
  await bed.waitListening(where, 'tcp', port, proc);
  return proc;
};

const httpServer = async (bed, ctx, where, port) => {
  const proc = bed.spawn(where, ctx.httpd, [String(port), String(HTTPD_WORKERS)]);
  await bed.waitListening(where, 'tcp', port, proc);
  return proc;
};

const clientOpts = (ctx) => ({ timeoutMs: (ctx.duration + 30) * 1000, cancelSignal: ctx.signal });

function checkRun(r, what) {
  if (r.canceled) throw new Error(`${what}: interrupted`);
  if (r.timedOut) throw new Error(`${what}: timed out`);
  if (r.exitCode !== 0) throw new Error(`${what}: exit ${r.exitCode}: ${(r.stderr.trim() || r.stdout.trim()).slice(-600)}`);
}

/** iperf3 TCP from `from` to ip:port (server in `serverIn`): throughput and whole-machine CPU per GB. */
async function tcpStream(bed, ctx, { from, serverIn, ip, port, streams }) {
  const server = await iperfServer(bed, serverIn, port);
  try {
    const args = ['-c', ip, '-p', String(port), '-t', String(ctx.duration), '-P', String(streams), '--json', '--connect-timeout', '3000'];
    const c0 = cpuTimes();
    const r = await bed.exec(from, 'iperf3', args, clientOpts(ctx));
    const c1 = cpuTimes();
    const what = `iperf3 ${args.join(' ')} (in ${from})`;
    if (r.stdout.trim().startsWith('{')) parseIperf(r.stdout, what); // iperf3's own error first
    checkRun(r, what);
    const t = iperfTcp(parseIperf(r.stdout, what));
    const cpu = cpuSecondsBetween(c0, c1);
    return [
      { metric: 'gbps', value: t.gbps, unit: 'Gbit/s', higher: true, raw: { bytes: t.bytes, seconds: t.seconds, retransmits: t.retransmits } },
      { metric: 'cpu_s_per_gb', value: cpu / (t.bytes / 1e9), unit: 'CPU-s/GB', higher: false, raw: { cpuSeconds: cpu, bytes: t.bytes } },
    ];
  } finally {
    await bed.stop(server);
  }
}

/** wrk's arguments for `seconds` of one connection per request to url. */
const wrkArgs = (seconds, url) => ['-t', String(WRK_THREADS), '-c', String(WRK_CONNECTIONS), '-d', `${seconds}s`, '--latency', '-H', 'Connection: close', url];

/**
 * wrk with `Connection: close` (one TCP connection per request) from `from` to
 * ip:port. warmup ({ ip, port }, optional): first, untimed, WARMUP_SECONDS of
 * the same load from the same client to that address, served by the same
 * server (the other host port of its container port); what it did is kept in
 * the first metric's raw.warmup, and a warm-up that fails is no measurement
 * failure (the measurement after it says what the datapath does).
 */
async function connRate(bed, ctx, { from, serverIn, ip, port, warmup }) {
  const server = await httpServer(bed, ctx, serverIn, port);
  const extra = warmup ? await altServer(bed, ctx) : undefined;
  try {
    const url = `http://${ip}:${port}/`;
    const args = wrkArgs(ctx.duration, url);
    let before;
    if (warmup) {
      const wurl = `http://${warmup.ip}:${warmup.port}/`;
      const r = await bed.exec(from, 'wrk', wrkArgs(WARMUP_SECONDS, wurl), clientOpts(ctx));
      if (r.canceled) throw new Error(`wrk ${wurl} (warm-up, in ${from}): interrupted`);
      try {
        checkRun(r, `wrk ${wurl}`);
        const w = parseWrk(r.stdout);
        before = { url: wurl, seconds: WARMUP_SECONDS, requests: w.requests, errors: w.errors };
      } catch (e) {
        before = { url: wurl, seconds: WARMUP_SECONDS, error: e.message };
      }
    }
    const n0 = await tcpCounters(bed, from, ctx);
    const c0 = cpuTimes();
    const r = await bed.exec(from, 'wrk', args, clientOpts(ctx));
    const c1 = cpuTimes();
    checkRun(r, `wrk ${url} (in ${from})`);
    const w = parseWrk(r.stdout);
    const n1 = await tcpCounters(bed, from, ctx);
    const cpu = cpuSecondsBetween(c0, c1);
    const raw = {
      requests: w.requests,
      seconds: w.seconds,
      errors: w.errors,
      // The client's SYN retransmits and RSTs sent during the measurement (not shown in the tables).
      synRetrans: n1.TcpExtTCPSynRetrans - n0.TcpExtTCPSynRetrans,
      resets: n1.TcpOutRsts - n0.TcpOutRsts,
      ...(before ? { warmup: before } : {}),
    };
    return [
      { metric: 'conn_per_s', value: w.perSecond, unit: 'connections/s', higher: true, raw },
      { metric: 'p50_ms', value: w.p50ms, unit: 'ms', higher: false },
      { metric: 'p99_ms', value: w.p99ms, unit: 'ms', higher: false },
      { metric: 'cpu_s_per_1k_conn', value: cpu / (w.requests / 1000), unit: 'CPU-s/1000 conn', higher: false, raw: { cpuSeconds: cpu } },
      { metric: 'failed_pct', value: (100 * w.failed) / (w.requests + w.failed), unit: '%', higher: false, raw: w.errors },
    ];
  } finally {
    await bed.stop(extra);
    await bed.stop(server);
  }
}

/**
 * nonat has no host port: its "other port of the same container port" is a
 * second server in web on ALT_PORT (bed.altTarget). The others need none:
 * their ALT_PORT leads to the server already listening on the port under test.
 */
const altServer = (bed, ctx) => (bed.config === 'nonat' ? httpServer(bed, ctx, 'web', ALT_PORT) : undefined);

/** TCP counters of one of the bed's namespaces, absolute (nstat's history file is shared between namespaces: neither read nor updated). */
async function tcpCounters(bed, where, ctx) {
  const r = await bed.exec(where, 'nstat', ['-asz', '--json', ...NSTAT_KEYS], { timeoutMs: 10_000, cancelSignal: ctx.signal });
  checkRun(r, `nstat (in ${where})`);
  const k = parseNstat(r.stdout);
  for (const key of NSTAT_KEYS) if (typeof k[key] !== 'number') throw new Error(`nstat: no ${key} in ${r.stdout.slice(0, 300)}`);
  return k;
}

/**
 * crr_two_ports: ab (HTTP/1.0, one connection per request, the server
 * closing) from the client, alternating between the port under test (A) and
 * ALT_PORT (B), two host ports of the same container port, A B A B: each
 * phase AB_REQUESTS requests or ctx.duration seconds, whichever comes first,
 * AB_CONCURRENCY at a time, AB_TIMEOUT_S per response. The client's kernel
 * picks source ports per destination, so phase B reuses ports phase A used
 * toward the same server socket: the NAT must tell the two flows apart.
 */
async function twoPorts(bed, ctx) {
  const a = bed.target;
  const b = bed.altTarget;
  const server = await httpServer(bed, ctx, 'web', bed.containerPort);
  const extra = await altServer(bed, ctx);
  try {
    const n0 = await tcpCounters(bed, 'client', ctx);
    const phases = [];
    for (const phase of TWO_PORT_PHASES) {
      const { ip, port } = phase === 'A' ? a : b;
      const url = `http://${ip}:${port}/`;
      // -t before -n: -t sets the request count to 50 000, -n after it sets it back.
      const args = ['-q', '-r', '-t', String(ctx.duration), '-n', String(AB_REQUESTS), '-c', String(AB_CONCURRENCY), '-s', String(AB_TIMEOUT_S), url];
      const t0 = process.hrtime.bigint();
      const r = await bed.exec('client', 'ab', args, { timeoutMs: (ctx.duration + AB_TIMEOUT_S + 30) * 1000, cancelSignal: ctx.signal });
      const wall = Number(process.hrtime.bigint() - t0) / 1e9;
      if (r.canceled) throw new Error(`ab ${url}: interrupted`);
      if (r.timedOut) throw new Error(`ab ${url}: did not end`);
      const ab = parseAb(r.stdout, r.stderr);
      if (!ab.aborted && r.exitCode !== 0) throw new Error(`ab ${args.join(' ')}: exit ${r.exitCode}: ${(r.stderr.trim() || r.stdout.trim()).slice(-600)}`);
      // A phase ab gave up: the requests it did not complete failed, the time until it gave up counts.
      const notCompleted = ab.aborted ? AB_REQUESTS - ab.complete : 0;
      phases.push({ phase, url, complete: ab.complete, failed: ab.failed + notCompleted, seconds: ab.seconds ?? wall, errors: ab.errors, ...(ab.aborted ? { aborted: ab.aborted } : {}) });
    }
    const n1 = await tcpCounters(bed, 'client', ctx);
    const complete = phases.reduce((t, p) => t + p.complete, 0);
    const seconds = phases.reduce((t, p) => t + p.seconds, 0);
    const failed = phases.reduce((t, p) => t + p.failed, 0);
    const synRetrans = n1.TcpExtTCPSynRetrans - n0.TcpExtTCPSynRetrans;
    const resets = n1.TcpOutRsts - n0.TcpOutRsts;
    return [
      { metric: 'conn_per_s', value: complete / seconds, unit: 'connections/s', higher: true, raw: { complete, seconds, phases } },
      { metric: 'failed', value: failed, unit: 'requests', higher: false },
      { metric: 'syn_retrans', value: synRetrans, unit: 'SYN retransmits', higher: false },
      { metric: 'resets', value: resets, unit: 'RSTs sent', higher: false },
    ];
  } finally {
    await bed.stop(extra);
    await bed.stop(server);
  }
}

// ---------------------------------------------------------------- the workloads

/**
 * name → { what, run(bed, ctx) }. ctx: { duration (s), httpd (binary), signal }.
 * Published-port workloads go client → bed.target (hostIP:port; nonat: the
 * container's own address) → web; the others as named.
 */
export const WORKLOADS = {
  tcp_stream_1: {
    what: 'iperf3, 1 TCP stream, client → published port → web',
    run: (bed, ctx) => tcpStream(bed, ctx, { from: 'client', serverIn: 'web', ...bed.target, streams: 1 }),
  },
  tcp_stream_4: {
    what: 'iperf3 -P 4, client → published port → web',
    run: (bed, ctx) => tcpStream(bed, ctx, { from: 'client', serverIn: 'web', ...bed.target, streams: 4 }),
  },
  tcp_crr: {
    what: `wrk -t${WRK_THREADS} -c${WRK_CONNECTIONS} 'Connection: close', client → published port → web (httpd), after ${WARMUP_SECONDS} s of the same through the other host port of the same container port`,
    run: (bed, ctx) => connRate(bed, ctx, { from: 'client', serverIn: 'web', ...bed.target, warmup: bed.altTarget }),
  },
  crr_two_ports: {
    what: `ab -c${AB_CONCURRENCY} -n${AB_REQUESTS} -s${AB_TIMEOUT_S} (one connection per request), client → two host ports of the same container port, alternating ${TWO_PORT_PHASES.join(' ')}`,
    run: twoPorts,
  },
  tcp_rr: {
    what: 'sockperf ping-pong over one TCP connection, 64-byte messages, client → published port → web',
    run: async (bed, ctx) => {
      const { ip, port } = bed.target;
      const server = bed.spawn('web', 'sockperf', ['sr', '--tcp', '--uc-reuseaddr', '-i', '0.0.0.0', '-p', String(port)]);
      try {
        await bed.waitListening('web', 'tcp', port, server);
        const args = ['pp', '--tcp', '-i', ip, '-p', String(port), '-t', String(ctx.duration), '--full-rtt', '-m', '64'];
        const r = await bed.exec('client', 'sockperf', args, clientOpts(ctx));
        checkRun(r, `sockperf ${args.join(' ')}`);
        const s = parseSockperf(`${r.stdout}\n${r.stderr}`);
        return [
          { metric: 'p50_us', value: s.p50us, unit: 'µs', higher: false, raw: { observations: s.observations } },
          { metric: 'p99_us', value: s.p99us, unit: 'µs', higher: false },
        ];
      } finally {
        await bed.stop(server);
      }
    },
  },
  udp_64: {
    what: 'iperf3 -u -l 64 -b 0 (64-byte payloads, as fast as the sender goes), client → published UDP port → web',
    run: async (bed, ctx) => {
      const { ip, port } = bed.target;
      const server = await iperfServer(bed, 'web', port);
      try {
        const args = ['-c', ip, '-p', String(port), '-u', '-l', '64', '-b', '0', '-t', String(ctx.duration), '--json', '--connect-timeout', '3000'];
        const r = await bed.exec('client', 'iperf3', args, clientOpts(ctx));
        const what = `iperf3 ${args.join(' ')}`;
        if (r.stdout.trim().startsWith('{')) parseIperf(r.stdout, what);
        checkRun(r, what);
        const u = iperfUdp(parseIperf(r.stdout, what));
        return [
          { metric: 'datagrams_per_s', value: u.perSecond, unit: 'datagrams/s', higher: true, raw: { sent: u.sent, delivered: u.delivered, seconds: u.seconds } },
          { metric: 'loss_pct', value: u.lossPct, unit: '%', higher: false },
        ];
      } finally {
        await bed.stop(server);
      }
    },
  },
  masq_stream: {
    what: 'iperf3, 1 TCP stream, peer → masquerade → server in the client netns',
    run: (bed, ctx) => tcpStream(bed, ctx, { from: 'peer', serverIn: 'client', ip: CLIENT_IP, port: CLIENT_IPERF_PORT, streams: 1 }),
  },
  masq_crr: {
    what: `wrk 'Connection: close', peer → masquerade → httpd in the client netns`,
    run: (bed, ctx) => connRate(bed, ctx, { from: 'peer', serverIn: 'client', ip: CLIENT_IP, port: CLIENT_HTTP_PORT }),
  },
  routed_crr: {
    what: `wrk 'Connection: close', routed (a --masquerade=false network of the same daemon) → httpd in the client netns, untranslated`,
    run: (bed, ctx) => connRate(bed, ctx, { from: 'routed', serverIn: 'client', ip: CLIENT_IP, port: CLIENT_HTTP_PORT }),
  },
  c2c_stream: {
    what: 'iperf3, 1 TCP stream, peer → srv across the bridge (icc=false, --link permits the port)',
    run: (bed, ctx) => tcpStream(bed, ctx, { from: 'peer', serverIn: 'srv', ip: SRV_IP, port: bed.containerPort, streams: 1 }),
  },
  c2c_crr: {
    what: `wrk 'Connection: close', peer → srv across the bridge (icc=false, --link permits the port)`,
    run: (bed, ctx) => connRate(bed, ctx, { from: 'peer', serverIn: 'srv', ip: SRV_IP, port: bed.containerPort }),
  },
};

export const WORKLOAD_NAMES = Object.keys(WORKLOADS);

// ---------------------------------------------------------------- checks before measuring

/** GET http://ip:port/ from `from`; the body is the address the server saw. */
async function fetchPeer(bed, from, ip, port, maxTime = 3) {
  const r = await bed.exec(from, 'curl', ['-s', '-S', '--max-time', String(maxTime), `http://${ip}:${port}/`], { timeoutMs: (maxTime + 5) * 1000 });
  return { ok: r.exitCode === 0, seen: r.stdout.trim().split(':')[0], err: r.stderr.trim() };
}

/** Kernel conntrack entries in the host netns for TCP to ip:port (the original direction). */
async function conntrackEntries(bed, ip, port) {
  const r = await bed.exec('host', 'conntrack', ['-L', '-p', 'tcp', '--orig-dst', ip, '--orig-port-dst', String(port)]);
  if (r.exitCode !== 0 && !/0 flow entries/.test(r.stderr)) throw new Error(`conntrack -L: ${r.stderr.trim()}`);
  return r.stdout.split('\n').filter((l) => l.includes(`dport=${port}`));
}

/**
 * Checks that the bed does what its configuration says, before any
 * measurement; returns the facts seen, throws at the first that is wrong.
 */
export async function verifyBed(bed, ctx) {
  const facts = [];
  const must = (cond, msg) => {
    if (!cond) throw new Error(`${bed.config}: ${msg}`);
    facts.push(msg);
  };
  const nat = bed.config !== 'nonat';
  const { ip, port } = bed.target;
  const servers = [];
  try {
    servers.push(await httpServer(bed, ctx, 'web', port));
    servers.push(await httpServer(bed, ctx, 'srv', bed.containerPort));
    servers.push(await httpServer(bed, ctx, 'srv', UNLINKED_PORT));
    servers.push(await httpServer(bed, ctx, 'client', CLIENT_HTTP_PORT));
    const extra = await altServer(bed, ctx);
    if (extra) servers.push(extra);

    const pub = await fetchPeer(bed, 'client', ip, port);
    must(pub.ok, `client → ${ip}:${port} answered${pub.ok ? '' : ` (${pub.err})`}`);
    must(pub.seen === CLIENT_IP, `web saw the client's own address ${CLIENT_IP} (saw ${pub.seen})`);
    const alt = bed.altTarget;
    const two = await fetchPeer(bed, 'client', alt.ip, alt.port);
    must(two.ok, `client → ${alt.ip}:${alt.port} answered${nat ? ` (the second host port of container port ${bed.containerPort})` : ' (web\'s second port)'}${two.ok ? '' : ` (${two.err})`}`);
    must(two.seen === CLIENT_IP, `web saw the client's own address there too (saw ${two.seen})`);

    const masq = await fetchPeer(bed, 'peer', CLIENT_IP, CLIENT_HTTP_PORT);
    const expect = nat ? hostIp(0) : PEER_IP;
    must(masq.ok, `peer → ${CLIENT_IP}:${CLIENT_HTTP_PORT} answered${masq.ok ? '' : ` (${masq.err})`}`);
    must(masq.seen === expect, `the client netns saw peer as ${expect}${nat ? ' (masqueraded)' : ' (not translated)'} (saw ${masq.seen})`);
    const routed = await fetchPeer(bed, 'routed', CLIENT_IP, CLIENT_HTTP_PORT);
    must(routed.ok, `routed → ${CLIENT_IP}:${CLIENT_HTTP_PORT} answered${routed.ok ? '' : ` (${routed.err})`}`);
    must(routed.seen === ROUTED_IP, `the client netns saw the routed container as its own address ${ROUTED_IP} (saw ${routed.seen})`);

    const linked = await fetchPeer(bed, 'peer', SRV_IP, bed.containerPort);
    must(linked.ok, `peer → srv:${bed.containerPort} answered (the linked port)${linked.ok ? '' : ` (${linked.err})`}`);
    const other = await fetchPeer(bed, 'peer', SRV_IP, UNLINKED_PORT, 1);
    if (nat) must(!other.ok, `peer → srv:${UNLINKED_PORT} (not linked) refused: icc=false works`);
    else must(other.ok, `peer → srv:${UNLINKED_PORT} answered: no rule on the nonat bridge`);

    // Conntrack first: the client's flow is gone from it two minutes after it closed,
    // and with 100 000 ports published one iptables-save takes about that long.
    const ct = await conntrackEntries(bed, ip, port);
    const save = await bed.exec('host', 'iptables-save', [], { timeoutMs: 600_000, must: true });
    const ruleLines = save.stdout.split('\n').filter((l) => l.startsWith('-A '));
    // Not on the iptables bed: nft renders iptables-nft's rules too, for minutes at N = 100 000.
    const nft = bed.config === 'iptables' ? { stdout: '' } : await bed.exec('host', 'nft', ['list', 'ruleset'], { timeoutMs: 600_000 });
    if (bed.config === 'ebpf') {
      must(!/BRIDGEPORT/.test(save.stdout), `no iptables rule or chain of bridgeport's (${ruleLines.length} rules in all)`);
      must(!/bridgeport/i.test(nft.stdout), 'no nftables table of bridgeport\'s');
      const tc = await bed.exec('host', 'tc', ['filter', 'show', 'dev', UPLINK, 'ingress']);
      must(/bpf/.test(tc.stdout), `a BPF program on ${UPLINK}'s tc ingress`);
      must(ct.length === 0, `kernel conntrack has no entry for ${ip}:${port} (the flow never met netfilter)`);
      const info = JSON.parse((await bed.cli(['status', '--json'])).stdout).DatapathInfo ?? {};
      must(info.conntrackEntries > 0, `bridgeport's own conntrack holds ${info.conntrackEntries} entries`);
      must(info.drops?.icc_denied > 0, `its icc_denied drop counter moved (${info.drops?.icc_denied})`);
      facts.push(`XDP on the uplink: ${JSON.stringify(info.xdp)}`);
    } else if (bed.config === 'iptables') {
      const save2 = await bed.exec('host', 'iptables-save', ['-c', '-t', 'nat'], { timeoutMs: 600_000, must: true });
      const tag = `bridgeport:port:tcp:${ip}:${port}`;
      const rule = save2.stdout.split('\n').find((l) => l.includes(tag) && l.includes('DNAT'));
      const count = rule ? Number(/^\[(\d+):/.exec(rule)?.[1]) : Number.NaN;
      must(count > 0, `its DNAT rule for ${ip}:${port} counted ${count} packet(s)`);
      must(ct.length > 0 && ct.some((l) => l.includes(`src=${WEB_IP}`)), `kernel conntrack holds ${ct.length} DNAT entr${ct.length === 1 ? 'y' : 'ies'} for ${ip}:${port} → ${WEB_IP}`);
      facts.push(`${ruleLines.length} iptables rules in the host netns`);
    } else if (bed.config === 'nftables') {
      must(/table ip bpbench/.test(nft.stdout) && /table bridge bpbench_icc/.test(nft.stdout), 'the reference ruleset is loaded');
      must(ruleLines.length === 0, 'no iptables rule');
      must(ct.length > 0 && ct.some((l) => l.includes(`src=${WEB_IP}`)), `kernel conntrack holds ${ct.length} DNAT entr${ct.length === 1 ? 'y' : 'ies'} for ${ip}:${port} → ${WEB_IP}`);
    } else {
      must(ruleLines.length === 0 && !/table /.test(nft.stdout), 'no iptables rule and no nftables table in the host netns');
      must(ct.length === 0, 'kernel conntrack has no entry for the flow');
    }
  } finally {
    for (const s of servers) await bed.stop(s);
  }
  return facts;
}
