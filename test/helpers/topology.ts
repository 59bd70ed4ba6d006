import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type Result, type ResultPromise } from 'execa';
import { afterAll, afterEach, beforeEach } from 'vitest';

export interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  input?: string;
  timeoutMs?: number;
}

export interface Topology {
  id: string;
  hostNs: string;
  clientNs: string;
  hostNsPath: string;
  clientNsPath: string;
  uplink: string;
  hostIp: string;
  clientIp: string;
  workDir: string;
  inHost(cmd: string, args: string[], opts?: RunOptions): Promise<CommandResult>;
  inClient(cmd: string, args: string[], opts?: RunOptions): Promise<CommandResult>;
  /**
   * `dropCaps` (e.g. ['bpf', 'sys_admin']) runs the daemon without those capabilities.
   * `enter` is the argv prefix that puts the daemon and its CLI into their
   * namespaces (default: `nsenter --net=HOST_NS --`), e.g. a mount namespace too.
   */
  startDaemon(opts: { datapath: string; args?: string[]; dropCaps?: string[]; enter?: readonly string[] }): Promise<DaemonHandle>;
  cleanup(): Promise<void>;
}

export interface DaemonHandle {
  stateDir: string;
  runDir: string;
  socket: string;
  logs(): string;
  cli(args: string[], opts?: { input?: string }): Promise<CommandResult>;
  cliJson<T = unknown>(args: string[]): Promise<T>;
  stop(): Promise<void>;
  kill9(): Promise<void>;
  restart(opts?: { args?: string[]; dropCaps?: string[]; datapath?: string }): Promise<void>;
}

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BRIDGEPORT_BIN = path.join(REPO_ROOT, 'bin', 'bridgeport');
const NETNS_DIR = '/var/run/netns';
const UPLINK = 'uplink0';
const CLIENT_IF = 'eth0';
const HOST_IP = '198.18.0.1';
const CLIENT_IP = '198.18.0.2';
const PREFIX_LEN = 24;
const DAEMON_READY_MS = 15_000;
const DAEMON_POLL_MS = 50;
const MAX_LOG_CHARS = 4_000_000;
const LOG_TAIL_IN_ERRORS = 20_000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function toCommandResult(r: Result): CommandResult {
  const stdout = typeof r.stdout === 'string' ? r.stdout : '';
  let stderr = typeof r.stderr === 'string' ? r.stderr : '';
  let exitCode = r.exitCode;
  if (exitCode === undefined) {
    // Killed, timed out or never started: keep the reason where callers look.
    const signalNo = r.signal ? osConstants.signals[r.signal] : undefined;
    exitCode = signalNo !== undefined ? 128 + signalNo : 127;
    stderr = `${stderr}${stderr && !stderr.endsWith('\n') ? '\n' : ''}${r.shortMessage ?? r.message}`;
  }
  return { exitCode, stdout, stderr };
}

/** Runs argv (no shell) and reports the outcome; never throws on failure. */
export async function runCommand(argv: readonly string[], opts: RunOptions = {}): Promise<CommandResult> {
  const [file, ...args] = argv as [string, ...string[]];
  const r = await execa(file, args, {
    reject: false,
    timeout: opts.timeoutMs ?? 30_000,
    ...(opts.input === undefined ? { stdin: 'ignore' as const } : { input: opts.input }),
  });
  return toCommandResult(r);
}

/** argv that runs cmd inside the network namespace file nsPath (and nothing else unshared). */
export function nsenterArgv(nsPath: string, cmd: string, args: readonly string[]): string[] {
  return ['nsenter', `--net=${nsPath}`, '--', cmd, ...args];
}

async function mustRun(argv: readonly string[]): Promise<void> {
  const r = await runCommand(argv);
  if (r.exitCode !== 0) {
    throw new Error(`${argv.join(' ')}: exit ${r.exitCode}: ${r.stderr.trim() || r.stdout.trim()}`);
  }
}

function tail(text: string, max = LOG_TAIL_IN_ERRORS): string {
  return text.length <= max ? text : `[... ${text.length - max} chars cut ...]\n${text.slice(-max)}`;
}

function describeFailure(what: string, r: CommandResult, logs?: string): string {
  const parts = [`${what}: exit ${r.exitCode}`, `--- stdout ---\n${r.stdout}`, `--- stderr ---\n${r.stderr}`];
  if (logs !== undefined) parts.push(`--- daemon logs ---\n${tail(logs)}`);
  return parts.join('\n');
}

interface NsId {
  dev: number;
  ino: number;
}

/** Identity of a namespace file (nsfs dev+inode), or undefined when it is not a live namespace. */
export async function netnsId(nsPath: string): Promise<NsId | undefined> {
  try {
    const [st, self] = await Promise.all([stat(nsPath), stat('/proc/self/ns/net')]);
    // A leftover placeholder file lives on tmpfs, not nsfs: never matches a process.
    return st.dev === self.dev ? { dev: st.dev, ino: st.ino } : undefined;
  } catch {
    return undefined;
  }
}

/** Pids (other than ours) whose network namespace is one of ids. */
export async function pidsInNetns(ids: readonly NsId[]): Promise<number[]> {
  if (ids.length === 0) return [];
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    try {
      const st = await stat(`/proc/${entry}/ns/net`);
      if (ids.some((id) => id.dev === st.dev && id.ino === st.ino)) pids.push(pid);
    } catch {
      // exited (or became a zombie) while we looked
    }
  }
  return pids;
}

async function killProcessesIn(ids: readonly NsId[], waitMs = 5_000): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const pids = await pidsInNetns(ids);
    if (pids.length === 0) return;
    if (Date.now() > deadline) throw new Error(`processes still alive in test namespaces: ${pids.join(', ')}`);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await sleep(25);
  }
}

function unescapeMountinfo(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
}

interface MountEntry {
  mountPoint: string;
  fsType: string;
}

async function mountsUnder(dir: string): Promise<MountEntry[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  const found: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const mountPoint = unescapeMountinfo(line.slice(0, sep).split(' ')[4] ?? '');
    const fsType = line.slice(sep + 3).split(' ')[0] ?? '';
    if (mountPoint === dir || mountPoint.startsWith(prefix)) found.push({ mountPoint, fsType });
  }
  return found;
}

class Daemon implements DaemonHandle {
  readonly stateDir: string;
  readonly runDir: string;
  readonly socket: string;
  private proc: ResultPromise | undefined;
  private exited: Promise<void> = Promise.resolve();
  private exitDescription: string | undefined;
  private logText = '';

  constructor(
    private readonly topo: TopologyImpl,
    private datapath: string,
    private args: string[],
    private dropCaps: string[] = [],
    private readonly enter?: readonly string[],
  ) {
    this.stateDir = path.join(topo.workDir, 'state');
    this.runDir = path.join(topo.workDir, 'run');
    this.socket = path.join(this.runDir, 'bridgeport.sock');
  }

  get running(): boolean {
    return this.proc !== undefined && this.exitDescription === undefined;
  }

  logs(): string {
    return this.logText;
  }

  private appendLog(chunk: string): void {
    this.logText += chunk;
    if (this.logText.length > MAX_LOG_CHARS) this.logText = this.logText.slice(-MAX_LOG_CHARS / 2);
  }

  async start(): Promise<void> {
    if (this.running) throw new Error('daemon already running');
    await mkdir(this.stateDir, { recursive: true });
    await mkdir(this.runDir, { recursive: true });
    const daemonArgs = [
      BRIDGEPORT_BIN,
      'daemon',
      '--datapath',
      this.datapath,
      '--state-dir',
      this.stateDir,
      '--run-dir',
      this.runDir,
      '--uplink',
      UPLINK,
      '--metrics-addr',
      '',
      // Not the host's /run/docker/plugins: a test that wants the driver says where.
      '--docker-plugin',
      '',
      ...this.args,
    ];
    const drop = this.dropCaps.map((c) => `-${c}`).join(',');
    const argv = this.dropCaps.length
      ? this.inNs('setpriv', [`--bounding-set=${drop}`, `--inh-caps=${drop}`, process.execPath, ...daemonArgs])
      : this.inNs(process.execPath, daemonArgs);
    this.appendLog(`### ${new Date().toISOString()} start: ${argv.join(' ')}\n`);
    this.exitDescription = undefined;
    const proc = execa(argv[0]!, argv.slice(1), {
      reject: false,
      buffer: false,
      stdin: 'ignore',
      detached: false,
    });
    this.proc = proc;
    proc.stdout.setEncoding('utf8');
    proc.stderr.setEncoding('utf8');
    proc.stdout.on('data', (chunk: string) => this.appendLog(chunk));
    proc.stderr.on('data', (chunk: string) => this.appendLog(chunk));
    this.exited = proc.then(
      (r) => {
        this.exitDescription = r.exitCode !== undefined ? `exit ${r.exitCode}` : `signal ${r.signal ?? '?'}`;
        this.appendLog(`### ${new Date().toISOString()} daemon ended: ${this.exitDescription}\n`);
      },
      (err: unknown) => {
        this.exitDescription = `error ${err instanceof Error ? err.message : String(err)}`;
      },
    );
    await this.waitReady();
  }

  private async waitReady(): Promise<void> {
    const deadline = Date.now() + DAEMON_READY_MS;
    let last: CommandResult | undefined;
    for (;;) {
      if (this.exitDescription !== undefined) {
        throw new Error(
          `bridgeport daemon (${this.datapath}) ended before it was ready (${this.exitDescription})\n` +
            `--- daemon logs ---\n${tail(this.logText)}`,
        );
      }
      if (existsSync(this.socket)) {
        last = await this.cli(['status', '--json'], { timeoutMs: 5_000 });
        if (last.exitCode === 0) return;
      }
      if (Date.now() > deadline) {
        await this.signalAndWait('SIGKILL', 5_000).catch(() => undefined);
        const lastCli = last ? `\n${describeFailure('last `status --json`', last)}` : '\n(socket never appeared)';
        throw new Error(
          `bridgeport daemon (${this.datapath}) not ready after ${DAEMON_READY_MS} ms${lastCli}\n` +
            `--- daemon logs ---\n${tail(this.logText)}`,
        );
      }
      await sleep(DAEMON_POLL_MS);
    }
  }

  cli(args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<CommandResult> {
    const cliArgs = [BRIDGEPORT_BIN, '-H', `unix://${this.socket}`, ...args];
    return runCommand(this.inNs(process.execPath, cliArgs), opts);
  }

  private inNs(cmd: string, args: readonly string[]): string[] {
    return this.enter ? [...this.enter, cmd, ...args] : nsenterArgv(this.topo.hostNsPath, cmd, args);
  }

  async cliJson<T = unknown>(args: string[]): Promise<T> {
    const r = await this.cli(args);
    const what = `bridgeport ${args.join(' ')}`;
    if (r.exitCode !== 0) throw new Error(describeFailure(what, r, this.logText));
    try {
      return JSON.parse(r.stdout) as T;
    } catch (err) {
      throw new Error(describeFailure(`${what}: stdout is not JSON (${String(err)})`, r, this.logText));
    }
  }

  /** Sends sig, waits up to graceMs for exit, then SIGKILLs and waits. */
  async signalAndWait(sig: NodeJS.Signals, graceMs: number): Promise<void> {
    const proc = this.proc;
    if (!proc || this.exitDescription !== undefined) return;
    proc.kill(sig);
    const timedOut = await Promise.race([this.exited.then(() => false), sleep(graceMs).then(() => true)]);
    if (timedOut) {
      this.appendLog(`### daemon ignored ${sig} for ${graceMs} ms: SIGKILL\n`);
      proc.kill('SIGKILL');
      const stuck = await Promise.race([this.exited.then(() => false), sleep(5_000).then(() => true)]);
      if (stuck) throw new Error(`bridgeport daemon (pid ${proc.pid}) survived SIGKILL`);
    }
  }

  stop(): Promise<void> {
    return this.signalAndWait('SIGTERM', 10_000);
  }

  kill9(): Promise<void> {
    return this.signalAndWait('SIGKILL', 5_000);
  }

  async restart(opts: { args?: string[]; dropCaps?: string[]; datapath?: string } = {}): Promise<void> {
    if (opts.datapath) this.datapath = opts.datapath;
    if (this.running) throw new Error('restart(): daemon still running; call stop() or kill9() first');
    if (opts.args) this.args = opts.args;
    if (opts.dropCaps) this.dropCaps = opts.dropCaps;
    await this.start();
  }
}

const liveTopologies = new Set<TopologyImpl>();
const daemonsOf = new WeakMap<Topology, Daemon[]>();

class TopologyImpl implements Topology {
  readonly hostNs: string;
  readonly clientNs: string;
  readonly hostNsPath: string;
  readonly clientNsPath: string;
  readonly uplink = UPLINK;
  readonly hostIp = HOST_IP;
  readonly clientIp = CLIENT_IP;
  readonly workDir: string;
  private readonly daemons: Daemon[] = [];
  private cleanupQueue: Promise<void> = Promise.resolve();

  constructor(readonly id: string) {
    this.hostNs = `bpt-${id}-h`;
    this.clientNs = `bpt-${id}-c`;
    this.hostNsPath = path.join(NETNS_DIR, this.hostNs);
    this.clientNsPath = path.join(NETNS_DIR, this.clientNs);
    this.workDir = `/tmp/bpt-${id}`;
    daemonsOf.set(this, this.daemons);
  }

  // Arrow properties: scenarios pass these around as plain runners.
  readonly inHost = (cmd: string, args: string[], opts?: RunOptions): Promise<CommandResult> =>
    runCommand(nsenterArgv(this.hostNsPath, cmd, args), opts);

  readonly inClient = (cmd: string, args: string[], opts?: RunOptions): Promise<CommandResult> =>
    runCommand(nsenterArgv(this.clientNsPath, cmd, args), opts);

  async setUp(): Promise<void> {
    await mkdir(this.workDir, { recursive: false, mode: 0o755 });
    await mustRun(['ip', 'netns', 'add', this.hostNs]);
    await mustRun(['ip', 'netns', 'add', this.clientNs]);
    // Created from inside hostNs so the pair never appears in the root namespace.
    const host = (args: string[]) => mustRun(nsenterArgv(this.hostNsPath, 'ip', args));
    const client = (args: string[]) => mustRun(nsenterArgv(this.clientNsPath, 'ip', args));
    await host(['link', 'add', UPLINK, 'type', 'veth', 'peer', 'name', CLIENT_IF, 'netns', this.clientNs]);
    await host(['addr', 'add', `${HOST_IP}/${PREFIX_LEN}`, 'dev', UPLINK]);
    await client(['addr', 'add', `${CLIENT_IP}/${PREFIX_LEN}`, 'dev', CLIENT_IF]);
    await host(['link', 'set', 'lo', 'up']);
    await host(['link', 'set', UPLINK, 'up']);
    await client(['link', 'set', 'lo', 'up']);
    await client(['link', 'set', CLIENT_IF, 'up']);
    await host(['route', 'add', 'default', 'via', CLIENT_IP, 'dev', UPLINK]);
    // Packets flow at once, but linkwatch reports RUNNING/operstate UP up to
    // a second later, and tools that list interfaces skip links until then.
    await this.waitOperUp(this.hostNsPath, UPLINK);
    await this.waitOperUp(this.clientNsPath, CLIENT_IF);
  }

  private async waitOperUp(nsPath: string, dev: string): Promise<void> {
    const deadline = Date.now() + 5_000;
    for (;;) {
      const r = await runCommand(nsenterArgv(nsPath, 'ip', ['-o', 'link', 'show', 'dev', dev]));
      if (/ state UP /.test(r.stdout)) return;
      if (Date.now() > deadline) throw new Error(`${dev} in ${nsPath} not operationally up: ${r.stdout}${r.stderr}`);
      await sleep(25);
    }
  }

  async startDaemon(opts: { datapath: string; args?: string[]; dropCaps?: string[]; enter?: readonly string[] }): Promise<DaemonHandle> {
    const daemon = new Daemon(this, opts.datapath, opts.args ?? [], opts.dropCaps ?? [], opts.enter);
    // Tracked before start so cleanup also reaps a daemon that never became ready.
    this.daemons.push(daemon);
    await daemon.start();
    return daemon;
  }

  cleanup(): Promise<void> {
    const next = this.cleanupQueue.then(() => this.cleanupOnce());
    this.cleanupQueue = next.catch(() => undefined);
    return next;
  }

  private async cleanupOnce(): Promise<void> {
    const errors: Error[] = [];
    const step = async (name: string, fn: () => Promise<void>) => {
      try {
        await fn();
      } catch (err) {
        errors.push(new Error(`${name}: ${err instanceof Error ? err.message : String(err)}`, { cause: err }));
      }
    };

    await step('stop daemons', async () => {
      const results = await Promise.allSettled(this.daemons.map((d) => d.signalAndWait('SIGTERM', 5_000)));
      const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed.length > 0) throw new AggregateError(failed.map((r) => r.reason), failed.map(String).join('; '));
    });

    const sandboxDir = path.join(this.workDir, 'run', 'netns');
    const sandboxFiles = new Set<string>();
    let mounts: MountEntry[] = [];
    await step('list sandbox namespaces', async () => {
      for (const name of await readdir(sandboxDir).catch(() => [] as string[])) {
        sandboxFiles.add(path.join(sandboxDir, name));
      }
      // nsfs mounts anywhere under workDir are sandboxes too, wherever the daemon put them.
      mounts = await mountsUnder(this.workDir);
      for (const m of mounts) if (m.fsType === 'nsfs') sandboxFiles.add(m.mountPoint);
    });

    await step('kill processes in test namespaces', async () => {
      const paths = [this.hostNsPath, this.clientNsPath, ...sandboxFiles];
      const ids = (await Promise.all(paths.map(netnsId))).filter((id): id is NsId => id !== undefined);
      await killProcessesIn(ids);
    });

    await step('unmount sandbox namespaces', async () => {
      // Deepest first; a path can carry stacked mounts, so repeat until none is left.
      for (let round = 0; round < 5; round++) {
        const left = (await mountsUnder(this.workDir)).map((m) => m.mountPoint);
        if (left.length === 0) break;
        left.sort((a, b) => b.length - a.length);
        for (const mp of new Set(left)) await mustRun(['umount', '-l', mp]);
      }
      const still = await mountsUnder(this.workDir);
      if (still.length > 0) throw new Error(`still mounted: ${still.map((m) => m.mountPoint).join(', ')}`);
      for (const file of sandboxFiles) await rm(file, { force: true, recursive: true });
    });

    for (const [name, nsPath] of [
      [this.clientNs, this.clientNsPath],
      [this.hostNs, this.hostNsPath],
    ] as const) {
      await step(`delete netns ${name}`, async () => {
        if (existsSync(nsPath)) await mustRun(['ip', 'netns', 'del', name]);
      });
    }

    await step('remove work dir', () => rm(this.workDir, { recursive: true, force: true }));

    if (errors.length > 0) {
      throw new AggregateError(
        errors,
        `cleanup of topology ${this.id} failed:\n${errors.map((e) => `  - ${e.message}`).join('\n')}`,
      );
    }
    liveTopologies.delete(this);
  }
}

function newId(): string {
  for (;;) {
    const id = randomBytes(3).toString('hex');
    const taken =
      existsSync(path.join(NETNS_DIR, `bpt-${id}-h`)) ||
      existsSync(path.join(NETNS_DIR, `bpt-${id}-c`)) ||
      existsSync(`/tmp/bpt-${id}`);
    if (!taken) return id;
  }
}

/** Builds a fresh host+client namespace pair joined by a veth; undoes partial work on failure. */
export async function createTopology(): Promise<Topology> {
  const topo = new TopologyImpl(newId());
  liveTopologies.add(topo);
  try {
    await topo.setUp();
  } catch (err) {
    try {
      await topo.cleanup();
    } catch (cleanupErr) {
      throw new AggregateError([err, cleanupErr], `topology setup failed and so did its cleanup: ${String(err)}`);
    }
    throw err;
  }
  return topo;
}

/** Daemon logs of every daemon a topology started, for failure reports. */
export function daemonLogs(topo: Topology): string {
  return (daemonsOf.get(topo) ?? []).map((d) => d.logs()).join('\n');
}

/**
 * Gives each test of the calling describe its own topology (built in
 * beforeEach, removed in afterEach) and returns an accessor for it.
 */
export function useTopology(): () => Topology {
  let current: Topology | undefined;

  beforeEach(async (ctx) => {
    const topo = await createTopology();
    current = topo;
    ctx.onTestFailed(() => {
      const logs = daemonLogs(topo);
      if (logs) console.error(`--- bridgeport daemon logs (topology ${topo.id}) ---\n${tail(logs)}`);
    });
  });

  afterEach(async () => {
    const topo = current;
    current = undefined;
    await topo?.cleanup();
  });

  afterAll(async () => {
    const leftovers = [...liveTopologies];
    const results = await Promise.allSettled(leftovers.map((t) => t.cleanup()));
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed.length > 0) {
      throw new AggregateError(
        failed.map((r) => r.reason),
        `leftover topologies could not be cleaned: ${failed.map((r) => String(r.reason)).join('; ')}`,
      );
    }
  });

  return () => {
    if (!current) throw new Error('useTopology(): accessor called outside a test');
    return current;
  };
}
