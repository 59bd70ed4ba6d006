import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, expect, it } from 'vitest';
import { DATAPATHS, describePriv } from '../helpers/privileged.js';
import { inContainer, inspect, ok, type Runner, useDaemon } from '../helpers/scenario.js';
import { type DaemonHandle, nsenterArgv, REPO_ROOT, runCommand } from '../helpers/topology.js';

/*
 * Traffic shapes that need the datapath's connection tracking and NAT to hold
 * up under many short connections, not one probe: ApacheBench (one request per
 * connection) against bench/fixtures/httpd.c (answers and closes, so the
 * server side keeps the TIME_WAIT).
 */

const HTTPD_SRC = path.join(REPO_ROOT, 'bench', 'fixtures', 'httpd.c');
const HTTPD_WORKERS = '2';
const AB_CONCURRENCY = '8';
const AB_TIMEOUT_S = '5';
/*
 * Within the iptables datapath's level: it retransmits a few SYNs in 10 000s
 * of connections (15 to 24 of 12 000 through two published ports, none from a
 * masqueraded container, on a 2-core VM).
 */
const MAX_BAD_PER_CONNECTION = 0.01;
const LOG_TAIL = 20_000;

let httpdDir: string | undefined;
let httpdBuild: Promise<string> | undefined;

/** Compiles httpd.c once per test file into a temporary directory. */
function httpd(): Promise<string> {
  httpdBuild ??= (async () => {
    httpdDir = await mkdtemp(path.join(tmpdir(), 'bpt-conntrack-'));
    const out = path.join(httpdDir, 'httpd');
    const r = await runCommand(['cc', '-O2', '-Wall', '-o', out, HTTPD_SRC]);
    if (r.exitCode !== 0) throw new Error(`compile ${HTTPD_SRC}: exit ${r.exitCode}\n${r.stderr}`);
    return out;
  })();
  return httpdBuild;
}

afterAll(async () => {
  if (httpdDir) await rm(httpdDir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Waits until something listens on TCP `port` where `run` runs (max 5 s); `detail` explains a failure. */
async function waitListening(run: Runner, port: number, what: string, detail: () => Promise<string>): Promise<void> {
  let last = '';
  for (let i = 0; i < 100; i++) {
    const r = await run('ss', ['-Hltn', 'sport', '=', `:${port}`]);
    if (r.exitCode === 0 && r.stdout.trim() !== '') return;
    last = `exit ${r.exitCode}: ${r.stdout}${r.stderr}`;
    await sleep(50);
  }
  throw new Error(`${what}: nothing listens on tcp ${port} after 5 s (ss ${last})\n${await detail()}`);
}

/** Runs httpd in the namespace nsPath until stop() (the topology's teardown kills it too). */
async function startHttpd(nsPath: string, port: number): Promise<{ stop(): Promise<void>; output(): string }> {
  const argv = nsenterArgv(nsPath, await httpd(), [String(port), HTTPD_WORKERS]);
  const proc = execa(argv[0]!, argv.slice(1), { reject: false, buffer: false, stdin: 'ignore' });
  let output = '';
  for (const stream of [proc.stdout, proc.stderr]) {
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      output += chunk;
    });
  }
  let ended = false;
  const done = proc.then((r) => {
    ended = true;
    output += `[httpd ended: ${r.exitCode ?? r.signal}]\n`;
  });
  return {
    output: () => output,
    async stop() {
      if (ended) return;
      // Its workers follow it (PR_SET_PDEATHSIG).
      proc.kill('SIGTERM');
      const slow = await Promise.race([done.then(() => false), sleep(5_000).then(() => true)]);
      if (slow) proc.kill('SIGKILL');
      await done;
    },
  };
}

const COUNTERS = ['TcpActiveOpens', 'TcpExtTCPSynRetrans', 'TcpOutRsts'] as const;
type Counters = Record<(typeof COUNTERS)[number], number>;

/**
 * The TCP counters of the namespace `run` runs in, absolute (-a) and without
 * touching nstat's history file (-s), which namespaces would otherwise share.
 */
async function tcpCounters(run: Runner): Promise<Counters> {
  const r = await run('nstat', ['-a', '-s', '-z', '-j', ...COUNTERS]);
  if (r.exitCode !== 0) throw new Error(`nstat: exit ${r.exitCode}\n${r.stderr}`);
  const kernel = (JSON.parse(r.stdout) as { kernel: Record<string, number> }).kernel;
  const out = {} as Counters;
  for (const name of COUNTERS) {
    const v = kernel[name];
    if (typeof v !== 'number') throw new Error(`nstat printed no ${name}: ${r.stdout}`);
    out[name] = v;
  }
  return out;
}

const delta = (before: Counters, after: Counters): Counters =>
  Object.fromEntries(COUNTERS.map((n) => [n, after[n] - before[n]])) as Counters;

interface AbRun {
  url: string;
  exitCode: number;
  complete: number;
  failed: number | undefined;
  output: string;
}

/** One ApacheBench run (one request per connection) where `run` runs. */
async function ab(run: Runner, url: string, requests: number): Promise<AbRun> {
  // -l: the body names the peer's address, whose port is not always five
  // digits (netfilter moves a clashing source port), and that is no failure.
  const r = await run('ab', ['-l', '-n', String(requests), '-c', AB_CONCURRENCY, '-s', AB_TIMEOUT_S, url]);
  const num = (label: string) => {
    const m = new RegExp(`^${label}:\\s+(\\d+)\\s*$`, 'm').exec(r.stdout);
    return m ? Number(m[1]) : undefined;
  };
  return {
    url,
    exitCode: r.exitCode,
    // An aborted run (a request timed out) prints only how far it got.
    complete: num('Complete requests') ?? Number(/^Total of (\d+) requests completed/m.exec(r.stdout)?.[1] ?? Number.NaN),
    failed: num('Failed requests'),
    output: `$ ab ${url}: exit ${r.exitCode}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`,
  };
}

function report(d: DaemonHandle, runs: AbRun[], counters: Counters, extra = ''): string {
  const logs = d.logs();
  return [
    `TCP counters over the runs: ${JSON.stringify(counters)}`,
    ...runs.map((r) => r.output),
    extra,
    `--- daemon logs ---\n${logs.length > LOG_TAIL ? `[...]\n${logs.slice(-LOG_TAIL)}` : logs}`,
  ].join('\n');
}

function expectAllComplete(d: DaemonHandle, runs: AbRun[], requests: number, counters: Counters, extra?: string): void {
  const outcome = runs.map((r) => ({ url: r.url, exitCode: r.exitCode, complete: r.complete, failed: r.failed }));
  const want = runs.map((r) => ({ url: r.url, exitCode: 0, complete: requests, failed: 0 }));
  expect(outcome, report(d, runs, counters, extra)).toEqual(want);
}

describePriv.each(DATAPATHS)('conntrack and NAT under connection churn (%s)', (datapath) => {
  const env = useDaemon(datapath);

  it('two host ports published to one container port: every connection completes', async () => {
    const { topo, d } = env();
    const requests = 3000;
    await ok(d, ['run', '-d', '--name', 'web', '-p', '8080:80', '-p', '8081:80', '--', await httpd(), '80', HTTPD_WORKERS]);
    const log = async () => `--- container web output ---\n${await readFile((await inspect(d, 'web')).LogPath, 'utf8').catch(String)}`;
    await waitListening(inContainer(d, 'web'), 80, 'container web', log);

    // The client's kernel picks source ports per destination, so one source
    // port goes to :8080 and to :8081 in turn. After DNAT both are the same
    // flow to the container (client:port -> container:80), which still holds
    // the TIME_WAIT of the previous one: the datapath must keep them apart
    // (netfilter moves the clashing one's source port).
    const before = await tcpCounters(topo.inClient);
    const runs: AbRun[] = [];
    for (const port of [8080, 8081, 8080, 8081]) runs.push(await ab(topo.inClient, `http://${topo.hostIp}:${port}/`, requests));
    const counters = delta(before, await tcpCounters(topo.inClient));

    expectAllComplete(d, runs, requests, counters);
    const bound = Math.floor(MAX_BAD_PER_CONNECTION * requests * runs.length);
    const why = report(d, runs, counters);
    expect(counters.TcpExtTCPSynRetrans, `client SYN retransmits (bound ${bound})\n${why}`).toBeLessThanOrEqual(bound);
    expect(counters.TcpOutRsts, `client resets sent (bound ${bound})\n${why}`).toBeLessThanOrEqual(bound);
  });

  it('masquerade: connection churn from a container completes', async () => {
    const { topo, d } = env();
    const requests = 4000;
    const port = 8090;
    const server = await startHttpd(topo.clientNsPath, port);
    try {
      await waitListening(topo.inClient, port, 'client httpd', async () => `--- client httpd output ---\n${server.output()}`);
      await ok(d, ['run', '-d', '--name', 'churn', '--', 'sleep', 'infinity']);
      const inChurn = inContainer(d, 'churn');

      // Masqueraded to the uplink address with NAT ports reused quickly, towards
      // a server that keeps the TIME_WAIT of each of them.
      const before = await tcpCounters(inChurn);
      const run = await ab(inChurn, `http://${topo.clientIp}:${port}/`, requests);
      const counters = delta(before, await tcpCounters(inChurn));

      const serverOutput = `--- client httpd output ---\n${server.output()}`;
      expectAllComplete(d, [run], requests, counters, serverOutput);
      const bound = Math.floor(MAX_BAD_PER_CONNECTION * requests);
      expect(
        counters.TcpExtTCPSynRetrans,
        `container SYN retransmits (bound ${bound})\n${report(d, [run], counters, serverOutput)}`,
      ).toBeLessThanOrEqual(bound);
    } finally {
      await server.stop();
    }
  });
});
