import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, readFile, readlink, rmdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll } from 'vitest';
import { FIXTURES } from './traffic.js';
import { type CommandResult, createTopology, type DaemonHandle, daemonLogs, nsenterArgv, runCommand, type Topology } from './topology.js';

/**
 * Real dockerd (Debian's docker.io 20.10) for the driver scenarios, in the
 * test's host network namespace and a mount namespace of its own, so that
 * nothing of the machine's /run, /etc/docker or /run/docker/plugins is seen or
 * changed (shared/reference/docker-network-plugin.md): a holder process
 * (`unshare --mount --propagation slave`) keeps the mount namespace, tmpfs
 * covers /run and /etc/docker in it, and dockerd, the bridgeport daemon and
 * every docker command run inside it.
 */

export const DOCKERD = '/usr/sbin/dockerd';
export const DOCKER = '/usr/bin/docker';
const BUSYBOX = '/bin/busybox';
export const IMAGE = 'bpt-busybox:1';
const READY_MS = 40_000;
const STOP_MS = 20_000;
/** Applets the image links to busybox. */
const APPLETS = ['sh', 'httpd', 'nc', 'wget', 'ip', 'sleep', 'cat', 'echo', 'ls', 'ping', 'nslookup', 'route', 'ifconfig', 'true'];

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** dockerd could not start at all on this machine: the scenarios skip with this message. */
export class DockerdUnavailable extends Error {}

export interface Dockerd {
  /** argv prefix that runs a command in dockerd's mount and network namespaces. */
  enter: readonly string[];
  /** The driver socket inside that mount namespace (where dockerd looks for driver "bridgeport"). */
  pluginSocket: string;
  /** dockerd's API socket (-H), for bridgeport's --docker-host. */
  socket: string;
  docker(args: string[], opts?: { timeoutMs?: number; input?: string }): Promise<CommandResult>;
  /** docker, failing the test on a non-zero exit; returns stdout trimmed. */
  ok(args: string[], opts?: { timeoutMs?: number }): Promise<string>;
  inNs(cmd: string, args: string[]): Promise<CommandResult>;
  logs(): string;
  stop(): Promise<void>;
  /** dockerd's API as a DOCKER_HOST (unix://…/docker.sock), e.g. for bridgeport's --docker-host. */
  apiHost: string;
  /**
   * Stops dockerd (SIGTERM; with --live-restore its containers keep running)
   * if it runs, and starts it again in the same mount namespace, data-root,
   * exec-root and socket; `extraArgs` replaces the ones it was started with.
   */
  restart(extraArgs?: string[]): Promise<void>;
  /** SIGKILL to dockerd alone: containerd, shims and containers are left as a crash leaves them. */
  kill(): Promise<void>;
  /** dockerd's pid, undefined when it is not running. */
  pid(): number | undefined;
  /** Writes dockerd's config file (daemon.json) and has the running dockerd reload it (SIGHUP), e.g. {"live-restore": true}. */
  reload(config: Record<string, unknown>): Promise<void>;
}

/** Why dockerd cannot run here at all (missing binaries), or undefined. */
export function whyNoDockerd(): string | undefined {
  for (const bin of [DOCKERD, DOCKER, BUSYBOX]) {
    if (!existsSync(bin)) return `${bin} is missing (make deps installs docker.io and busybox-static)`;
  }
  return undefined;
}

async function must(argv: readonly string[], what: string): Promise<string> {
  const r = await runCommand(argv, { timeoutMs: 60_000 });
  if (r.exitCode !== 0) throw new Error(`${what}: ${argv.join(' ')}: exit ${r.exitCode}: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

/** A rootfs tar of busybox-static with its applets, an httpd root and a CGI script that answers with the client's address. */
export async function buildRootfs(dir: string): Promise<string> {
  const root = path.join(dir, 'rootfs');
  for (const d of ['bin', 'www/cgi-bin', 'etc', 'tmp']) await mkdir(path.join(root, d), { recursive: true });
  await copyFile(BUSYBOX, path.join(root, 'bin/busybox'));
  await chmod(path.join(root, 'bin/busybox'), 0o755);
  for (const a of APPLETS) await symlink('busybox', path.join(root, 'bin', a));
  // Node (bind-mounted /usr) finds its loader and libraries through these, as on the host.
  await symlink('usr/lib', path.join(root, 'lib'));
  await symlink('usr/lib64', path.join(root, 'lib64'));
  await writeFile(path.join(root, 'www/index.html'), 'bridgeport\n');
  await writeFile(path.join(root, 'www/cgi-bin/ip'), '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n%s\\n" "$REMOTE_ADDR"\n', { mode: 0o755 });
  await writeFile(path.join(root, 'etc/passwd'), 'root:x:0:0:root:/:/bin/sh\n');
  const tar = path.join(dir, 'rootfs.tar');
  await must(['tar', '-C', root, '-cf', tar, '.'], 'build image rootfs');
  return tar;
}

async function mntNs(pid: number): Promise<string | undefined> {
  return readlink(`/proc/${pid}/ns/mnt`).catch(() => undefined);
}

/** Pids whose mount namespace is `ns` (e.g. mnt:[4026532]), ours excepted. */
async function pidsInMntNs(ns: string): Promise<number[]> {
  const out: number[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    if ((await readlink(`/proc/${e}/ns/mnt`).catch(() => '')) === ns) out.push(Number(e));
  }
  return out;
}

/** cgroup v1 hierarchies and the v2 mount: where --cgroup-parent makes folders. */
async function cgroupRoots(): Promise<string[]> {
  const roots: string[] = [];
  for (const line of (await readFile('/proc/self/mountinfo', 'utf8')).split('\n')) {
    const [pre, post] = line.split(' - ');
    if (post?.startsWith('cgroup ') || post?.startsWith('cgroup2 ')) roots.push(pre!.split(' ')[4]!);
  }
  return roots;
}

async function removeCgroupTree(dir: string): Promise<void> {
  let entries: string[] = [];
  try {
    entries = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch {
    return;
  }
  for (const e of entries) await removeCgroupTree(path.join(dir, e));
  await rmdir(dir).catch(() => undefined);
}

export async function startDockerd(topo: Topology, firstArgs: string[] = []): Promise<Dockerd> {
  let extraArgs = firstArgs;
  const missing = whyNoDockerd();
  if (missing) throw new DockerdUnavailable(missing);
  const dir = path.join(topo.workDir, 'docker');
  await mkdir(path.join(dir, 'cli'), { recursive: true });
  const tar = await buildRootfs(dir);
  await writeFile(path.join(dir, 'daemon.json'), '{}\n');
  if (!existsSync('/etc/docker')) await mkdir('/etc/docker', { recursive: true });

  const holderArgv = nsenterArgv(topo.hostNsPath, 'unshare', ['--mount', '--propagation', 'slave', '--', 'sleep', 'infinity']);
  const holder = execa(holderArgv[0]!, holderArgv.slice(1), { reject: false, buffer: false, stdin: 'ignore' });
  const holderPid = holder.pid!;
  const ownNs = await mntNs(process.pid);
  for (let i = 0; ; i++) {
    // nsenter and unshare exec: the pid is sleep's once the namespace is made.
    const exe = await readlink(`/proc/${holderPid}/exe`).catch(() => '');
    if (exe.endsWith('/sleep') && (await mntNs(holderPid)) !== ownNs) break;
    if (i > 200) throw new Error(`dockerd holder ${holderPid} did not start (${exe})`);
    await sleep(10);
  }
  const holderNs = (await mntNs(holderPid))!;
  const enter = ['nsenter', `--target=${holderPid}`, '--mount', '--net', '--'] as const;
  const inNs = (cmd: string, args: string[]) => runCommand([...enter, cmd, ...args], { timeoutMs: 60_000 });

  const sock = path.join(dir, 'docker.sock');
  const cgroupParent = `bpt-${topo.id}`;
  let logText = '';
  let proc: ResultPromise | undefined;
  let exited: string | undefined;
  const docker = (args: string[], opts: { timeoutMs?: number; input?: string } = {}) =>
    runCommand([DOCKER, '-H', `unix://${sock}`, '--config', path.join(dir, 'cli'), ...args], { timeoutMs: opts.timeoutMs ?? 60_000, input: opts.input });

  const stop = async (): Promise<void> => {
    const errors: string[] = [];
    if (proc && exited === undefined) {
      // Containers first, while bridgeport still answers: their endpoints go the normal way.
      const ids = (await docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
      if (ids.length) await docker(['rm', '-f', ...ids]);
      const nets = (await docker(['network', 'ls', '-q', '--filter', 'driver=bridgeport'])).stdout.split('\n').filter(Boolean);
      if (nets.length) await docker(['network', 'rm', ...nets]);
      proc.kill('SIGTERM');
      const slow = await Promise.race([proc.then(() => false), sleep(STOP_MS).then(() => true)]);
      if (slow) {
        errors.push(`dockerd ignored SIGTERM for ${STOP_MS} ms`);
        proc.kill('SIGKILL');
        await proc;
      }
    }
    // containerd, shims and container processes: everything in the mount namespace, the holder last.
    for (let round = 0; round < 100; round++) {
      const pids = (await pidsInMntNs(holderNs)).filter((p) => p !== holderPid);
      if (!pids.length) break;
      for (const p of pids) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          // gone
        }
      }
      await sleep(20);
    }
    holder.kill('SIGKILL');
    await holder;
    for (const root of await cgroupRoots()) await removeCgroupTree(path.join(root, cgroupParent));
    if (errors.length) throw new Error(`stop dockerd: ${errors.join('; ')}`);
  };

  try {
    for (const [target, what] of [
      ['/run', 'hide the host /run (its containerd socket, plugins)'],
      ['/etc/docker', 'hide /etc/docker (plugin specs, daemon.json)'],
    ] as const) {
      await must([...enter, 'mount', '-t', 'tmpfs', '-o', 'mode=755', 'tmpfs', target], what);
    }
    await must([...enter, 'mkdir', '-p', '/run/docker/plugins'], 'make the plugin folder');
    await launch();
    const imported = await docker(['import', tar, IMAGE]);
    if (imported.exitCode !== 0) throw new Error(`docker import: ${imported.stderr}`);
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }

  /** Starts dockerd and waits until it answers; `extra` replaces the extra arguments given so far. */
  async function launch(extra: string[] = extraArgs): Promise<void> {
    extraArgs = extra;
    const argv = [
      ...enter,
      DOCKERD,
      '--data-root',
      path.join(dir, 'data'),
      '--exec-root',
      path.join(dir, 'exec'),
      '-H',
      `unix://${sock}`,
      '--pidfile',
      path.join(dir, 'docker.pid'),
      '--cgroup-parent',
      `/${cgroupParent}`,
      '--storage-driver',
      'overlay2',
      '--config-file',
      path.join(dir, 'daemon.json'),
      // docker0 apart from bridgeport's default network (172.17.0.0/16).
      '--bip',
      '10.211.0.1/24',
      ...extraArgs,
    ];
    exited = undefined;
    const started = execa(argv[0]!, argv.slice(1), { reject: false, buffer: false, stdin: 'ignore' });
    proc = started;
    started.stdout!.setEncoding('utf8');
    started.stderr!.setEncoding('utf8');
    started.stdout!.on('data', (c: string) => {
      logText += c;
    });
    started.stderr!.on('data', (c: string) => {
      logText += c;
    });
    void started.then((r) => {
      // Only the current dockerd's end counts (an earlier one may end after a restart began).
      if (proc === started) exited = `exit ${r.exitCode ?? r.signal}`;
    });
    const deadline = Date.now() + READY_MS;
    for (;;) {
      if (exited !== undefined) throw new DockerdUnavailable(`dockerd ended before it was ready (${exited}):\n${logText.slice(-4000)}`);
      if (existsSync(sock) && (await docker(['version'], { timeoutMs: 5_000 })).exitCode === 0) break;
      if (Date.now() > deadline) throw new DockerdUnavailable(`dockerd not ready after ${READY_MS} ms:\n${logText.slice(-4000)}`);
      await sleep(100);
    }
  }

  /** Ends dockerd with `signal` and waits for it (SIGTERM: up to STOP_MS, then SIGKILL). */
  async function end(signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    if (!proc || exited !== undefined) return;
    const p = proc;
    p.kill(signal);
    const slow = await Promise.race([p.then(() => false), sleep(STOP_MS).then(() => true)]);
    if (slow) {
      p.kill('SIGKILL');
      await p;
      throw new Error(`dockerd ignored ${signal} for ${STOP_MS} ms`);
    }
  }

  return {
    enter,
    pluginSocket: '/run/docker/plugins/bridgeport.sock',
    socket: sock,
    docker,
    async ok(args, opts) {
      const r = await docker(args, opts);
      if (r.exitCode !== 0) throw new Error(`docker ${args.join(' ')}: exit ${r.exitCode}\n${r.stderr}${r.stdout}`);
      return r.stdout.trim();
    },
    inNs,
    logs: () => logText,
    stop,
    apiHost: `unix://${sock}`,
    async restart(extra?: string[]) {
      await end('SIGTERM');
      logText += '\n--- restart ---\n';
      await launch(extra);
    },
    async kill() {
      await end('SIGKILL');
    },
    pid: () => (proc && exited === undefined ? proc.pid : undefined),
    async reload(config) {
      if (!proc || exited !== undefined) throw new Error('reload dockerd: not running');
      await writeFile(path.join(dir, 'daemon.json'), `${JSON.stringify(config)}\n`);
      const from = logText.length;
      proc.kill('SIGHUP');
      for (let i = 0; !logText.slice(from).includes('Reloaded configuration'); i++) {
        if (i > 200) throw new Error(`reload dockerd: no "Reloaded configuration" in 10 s:\n${logText.slice(from)}`);
        await sleep(50);
      }
    },
  };
}

/** Mounts a bpffs at `dir` in the test's own mount namespace, so pins made inside dockerd's are seen from here too. */
export async function mountBpffs(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await must(['mount', '-t', 'bpf', 'bpf', dir], 'mount bpffs');
}


/** The dockerd and bridgeport daemon of a describe block (useDockerScenario). */
export interface DockerScenario {
  readonly topo: Topology;
  readonly dk: Dockerd;
  readonly d: DaemonHandle;
  /** The arguments the bridgeport daemon was started with (for a restart with more). */
  readonly daemonArgs: string[];
  /** The scenario's environment, or a skip when dockerd cannot run on this machine. */
  env(ctx: { skip: (note?: string) => void }): { topo: Topology; dk: Dockerd; d: DaemonHandle };
  /** Fails the test with `what` and the end of both daemons' logs. */
  fail(what: string): never;
  /** docker, failing the test (with the logs) on a non-zero exit; stdout trimmed. */
  docker(args: string[]): Promise<string>;
  /** Runs the echo server fixture (node, bind-mounted from the host) in a container on `network` and waits until it listens. */
  runEcho(name: string, network: string, flags?: string[], specs?: string[]): Promise<void>;
}

/**
 * One dockerd and one bridgeport daemon, its driver, for the scenarios of a
 * describe block: a topology of their own made in beforeAll (with a bpffs
 * seen from here, for the pins made inside dockerd's mount namespace) and
 * taken down in afterAll, a dockerd killed by a scenario started again first
 * so that its stop cleans up. `daemonArgs` are the bridgeport daemon's
 * arguments for that dockerd. When dockerd cannot start on this machine the
 * scenarios skip (env), saying why.
 */
export function useDockerScenario(o: { what: string; datapath: string; daemonArgs: (dk: Dockerd) => string[] }): DockerScenario {
  let topo: Topology | undefined;
  let dk: Dockerd | undefined;
  let d: DaemonHandle | undefined;
  let args: string[] = [];
  let unavailable: string | undefined;
  const started = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new Error(`${o.what}: ${what} is not running (${unavailable ?? 'beforeAll did not finish'})`);
    return v;
  };

  beforeAll(async () => {
    topo = await createTopology();
    await mountBpffs(path.join(topo.workDir, 'run', 'bpf'));
    try {
      dk = await startDockerd(topo);
    } catch (err) {
      if (!(err instanceof DockerdUnavailable)) throw err;
      unavailable = err.message;
      console.warn(`[bridgeport] skipping the ${o.what} scenarios (${o.datapath}): dockerd cannot start here: ${err.message}`);
      return;
    }
    args = o.daemonArgs(dk);
    d = await topo.startDaemon({ datapath: o.datapath, enter: dk.enter, args });
  }, 120_000);

  afterAll(async () => {
    const errors: unknown[] = [];
    if (dk && !dk.pid()) await dk.restart([]).catch((e: unknown) => errors.push(e));
    await dk?.stop().catch((e: unknown) => errors.push(e));
    await topo?.cleanup().catch((e: unknown) => errors.push(e));
    if (errors.length) throw new AggregateError(errors, errors.map(String).join('; '));
  }, 120_000);

  const fail = (what: string): never => {
    throw new Error(`${what}\n--- dockerd ---\n${dk?.logs().slice(-6000)}\n--- bridgeport ---\n${topo ? daemonLogs(topo).slice(-6000) : ''}`);
  };
  const docker = async (argv: string[]): Promise<string> => {
    const r = await started(dk, 'dockerd').docker(argv);
    if (r.exitCode !== 0) fail(`docker ${argv.join(' ')}: exit ${r.exitCode}\n${r.stderr}${r.stdout}`);
    return r.stdout.trim();
  };
  const fixtureDir = path.dirname(FIXTURES.echoServer);

  return {
    get topo() {
      return started(topo, 'the topology');
    },
    get dk() {
      return started(dk, 'dockerd');
    },
    get d() {
      return started(d, 'the bridgeport daemon');
    },
    get daemonArgs() {
      return args;
    },
    env(ctx) {
      if (unavailable !== undefined) ctx.skip(`dockerd cannot start: ${unavailable}`);
      return { topo: started(topo, 'the topology'), dk: started(dk, 'dockerd'), d: started(d, 'the bridgeport daemon') };
    },
    fail,
    docker,
    async runEcho(name, network, flags = [], specs = ['tcp:80', 'udp:53']) {
      await docker([
        'run', '-d', '--name', name, '--network', network, ...flags,
        '-v', '/usr:/usr:ro', '-v', `${fixtureDir}:${fixtureDir}:ro`,
        IMAGE, process.execPath, FIXTURES.echoServer, ...specs,
      ]);
      for (let i = 0; i < 200; i++) {
        if ((await started(dk, 'dockerd').docker(['logs', name])).stdout.includes('listening')) return;
        await sleep(25);
      }
      fail(`container ${name} did not start listening: ${(await started(dk, 'dockerd').docker(['logs', name])).stderr}`);
    },
  };
}
