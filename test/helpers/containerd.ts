import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { execa, type ResultPromise } from 'execa';
import { buildRootfs, IMAGE } from './dockerd.js';
import { type CommandResult, nsenterArgv, runCommand, type Topology } from './topology.js';
import { cgroupRoots, describeProcs, message, mntNs, mountsUnder, must, type ProcInfo, processes, removeCgroupTree, toml, useRuntime, vethsIn } from './runtime-ns.js';

/**
 * Real containerd (Debian's 1.6, with runc) for the `ctr run --cni` smoke
 * test, in the test's host network namespace and a mount namespace of its
 * own (shared/reference/cni.md, "containerd 1.6"): a holder process
 * (`unshare --mount --propagation slave`) keeps the mount namespace, and
 * containerd, its shims, every ctr command and the CNI plugins ctr runs live
 * inside it. containerd's root, state, temp dir, socket and `opt` folder are
 * under the topology's work dir (its own config file, not /etc/containerd's).
 * What has fixed paths is covered in the mount namespace: tmpfs on /run
 * (shim sockets in /run/containerd/s, runc's state in /run/containerd/runc,
 * ctr's stdio FIFOs in /run/containerd/fifo), and overlays whose upper layers
 * are in the work dir on /etc, /opt and /var/lib, so that /etc/cni/net.d and
 * /opt/cni/bin (what `ctr run --cni` reads, fixed in ctr) can be made there
 * and covered with bind mounts of the test's folders, and libcni's cache in
 * /var/lib/cni lands in the work dir: the host's /etc, /opt, /run and
 * /var/lib stay untouched. Containers' cgroups are `/<namespace>/<id>` in
 * every hierarchy (ctr's default); the namespace is the harness's own
 * (`bptest-<topology id>`) and its cgroups go at the end.
 */

export const CONTAINERD = '/usr/bin/containerd';
export const CTR = '/usr/bin/ctr';
const SHIM = '/usr/bin/containerd-shim-runc-v2';
const BUSYBOX = '/bin/busybox';
/** Where containerd's runc shim finds runc (by name, in PATH). */
const RUNC_PATHS = ['/usr/bin/runc', '/usr/sbin/runc', '/usr/local/bin/runc', '/usr/local/sbin/runc'];
/** The image every containerd harness imports: busybox-static with sh, nc, ip, sleep, cat… (dockerd.ts's rootfs). */
export const CONTAINERD_IMAGE = IMAGE;
const DEFAULT_TIMEOUT_MS = 60_000;
const READY_MS = 20_000;
const STOP_MS = 10_000;
/** How long shims and containers may take to end on their own once their tasks are deleted. */
const SETTLE_MS = 5_000;
/** How long the kernel may take to free containers' network namespaces (and their veths) once nothing holds them. */
const NETNS_GONE_MS = 5_000;
/** containerd's plugins that have no use here: the CRI (it would watch /etc/cni/net.d and serve a CRI socket) and snapshotters this machine lacks. */
const DISABLED_PLUGINS = [
  'io.containerd.grpc.v1.cri',
  'io.containerd.snapshotter.v1.aufs',
  'io.containerd.snapshotter.v1.btrfs',
  'io.containerd.snapshotter.v1.devmapper',
  'io.containerd.snapshotter.v1.zfs',
];
/** OCI platform architectures by Node's process.arch (the image must match what `images import` unpacks). */
const OCI_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** containerd could not start at all on this machine: scenarios skip with this message. */
export class ContainerdUnavailable extends Error {}

export interface ContainerdOptions {
  /** Becomes /etc/cni/net.d in containerd's mount namespace: `ctr run --cni` uses its first file (sorted). */
  cniConfigDir: string;
  /** Becomes /opt/cni/bin there: where ctr finds the executables the conflist's `type`s name (then /usr/lib/cni on Debian). */
  cniPluginDir: string;
}

export interface CtrRunOptions {
  timeoutMs?: number;
  input?: string;
}

export interface Containerd {
  /** argv prefix that runs a command in containerd's mount and network namespaces. */
  readonly enter: readonly string[];
  /** argv prefix of a ctr command, `enter` included (binary, address, namespace): for commands the caller runs itself. */
  readonly argv: readonly string[];
  /** Pid of the holder process that keeps the mount namespace (`/proc/PID/ns/mnt`). */
  readonly holderPid: number;
  /** This harness's directory (under the topology's work dir): containerd's root, state, config, the image. */
  readonly dir: string;
  /** The containerd namespace every ctr command of this harness uses (also containers' cgroup parent). */
  readonly namespace: string;
  /** containerd's socket. */
  readonly address: string;
  /** Runs ctr with args; reports the outcome, never throws. */
  ctr(args: string[], opts?: CtrRunOptions): Promise<CommandResult>;
  /** ctr, throwing with stdout and stderr on a non-zero exit; returns stdout trimmed. */
  ok(args: string[], opts?: CtrRunOptions): Promise<string>;
  /** Runs cmd in containerd's mount and network namespaces. */
  inNs(cmd: string, args: string[], opts?: CtrRunOptions): Promise<CommandResult>;
  /** containerd's output so far. */
  logs(): string;
  /**
   * Kills and deletes every task and deletes every container of the
   * namespace, stops containerd, ends every process left in its namespaces
   * (an error for containerd's own: shims, runc, containers, but not for what
   * a test started with `enter`) and the holder, waits for the containers'
   * veths to go, removes the namespace's cgroups and the harness's
   * directory, and throws one error naming every step that failed or
   * anything left behind. A second call does nothing.
   */
  stop(): Promise<void>;
}

/** Why containerd cannot run here at all (missing binaries), or undefined. */
export function whyNoContainerd(): string | undefined {
  for (const bin of [CONTAINERD, CTR, SHIM, BUSYBOX]) {
    if (!existsSync(bin)) return `${bin} is missing (containerd and runc come with docker.io; busybox-static is needed too)`;
  }
  if (!RUNC_PATHS.some((p) => existsSync(p))) return 'runc is missing (docker.io brings it)';
  if (!OCI_ARCH[process.arch]) return `no OCI architecture known for ${process.arch}`;
  return undefined;
}

const sha256 = (data: Buffer | string): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/**
 * An OCI image layout archive (oci-layout, index.json, blobs/sha256/…) of
 * dockerd.ts's busybox rootfs as one gzipped layer, its config and manifest,
 * named CONTAINERD_IMAGE by the index's `org.opencontainers.image.ref.name`
 * (which `ctr images import` takes as the image's name). Returns its path.
 */
async function buildOciImage(dir: string): Promise<string> {
  const layerTar = await readFile(await buildRootfs(dir));
  await rm(path.join(dir, 'rootfs'), { recursive: true, force: true });
  await rm(path.join(dir, 'rootfs.tar'), { force: true });
  const layout = path.join(dir, 'oci');
  const blobs = path.join(layout, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  const blob = async (data: Buffer | string, mediaType: string) => {
    const digest = sha256(data);
    await writeFile(path.join(blobs, digest.slice('sha256:'.length)), data);
    return { mediaType, digest, size: Buffer.byteLength(data) };
  };
  const platform = { architecture: OCI_ARCH[process.arch]!, os: 'linux' };
  const layer = await blob(gzipSync(layerTar), 'application/vnd.oci.image.layer.v1.tar+gzip');
  const config = await blob(
    JSON.stringify({
      ...platform,
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['sh'], WorkingDir: '/' },
      rootfs: { type: 'layers', diff_ids: [sha256(layerTar)] },
      history: [{ created_by: 'bridgeport test/helpers/containerd.ts' }],
    }),
    'application/vnd.oci.image.config.v1+json',
  );
  const manifest = await blob(
    JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: [layer] }),
    'application/vnd.oci.image.manifest.v1+json',
  );
  await writeFile(
    path.join(layout, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [{ ...manifest, platform, annotations: { 'org.opencontainers.image.ref.name': CONTAINERD_IMAGE } }],
    }),
  );
  await writeFile(path.join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const archive = path.join(dir, 'image.tar');
  await must(['tar', '-C', layout, '-cf', archive, 'oci-layout', 'index.json', 'blobs'], 'build the OCI image archive');
  await rm(layout, { recursive: true, force: true });
  return archive;
}

/** Pids in a cgroup and its descendants (every hierarchy lists them: one is enough, all are read in case one lags). */
async function pidsInCgroupTree(dir: string, out: Set<number>): Promise<void> {
  let entries: string[];
  try {
    entries = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch {
    return;
  }
  const procs = await readFile(path.join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
  for (const p of procs.split('\n')) if (p.trim()) out.add(Number(p));
  for (const e of entries) await pidsInCgroupTree(path.join(dir, e), out);
}

/** Programs of containerd's own, whose processes (and their descendants: containers, CNI plugins) should be gone after the tasks are. */
const OWN_COMMS = /^(containerd|containerd-shim.*|runc|ctr)$/;

/**
 * Live processes in containerd's namespaces: those in its mount namespace
 * (the holder, containerd, shims, ctr, CNI plugins, and whatever a test
 * started with `enter`), those in the namespace's cgroups (containers, which
 * have mount namespaces of their own), and their descendants. `made` marks
 * containerd's own: its programs, what is in its cgroups, and their
 * descendants. Zombies and ourselves are left out.
 */
async function containerdProcesses(ns: string, cgroupDirs: string[]): Promise<(ProcInfo & { made: boolean })[]> {
  const all = (await processes()).filter((p) => p.state !== 'Z' && p.pid !== process.pid);
  const inCgroups = new Set<number>();
  for (const dir of cgroupDirs) await pidsInCgroupTree(dir, inCgroups);
  const inNs = new Set<number>(inCgroups);
  for (const p of all) if ((await mntNs(p.pid)) === ns) inNs.add(p.pid);
  const made = new Set<number>(inCgroups);
  for (const p of all) if (inNs.has(p.pid) && OWN_COMMS.test(p.comm)) made.add(p.pid);
  for (const set of [inNs, made]) {
    for (let grew = true; grew; ) {
      grew = false;
      for (const p of all) {
        if (!set.has(p.pid) && set.has(p.ppid)) {
          set.add(p.pid);
          grew = true;
        }
      }
    }
  }
  return all.filter((p) => inNs.has(p.pid)).map((p) => ({ ...p, made: made.has(p.pid) }));
}

/** `ctr tasks ls` rows: TASK PID STATUS. */
function parseTasks(stdout: string): { id: string; pid: number; status: string }[] {
  return stdout
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 3)
    .map(([id, pid, status]) => ({ id: id!, pid: Number(pid), status: status! }));
}

export async function startContainerd(topo: Topology, opts: ContainerdOptions): Promise<Containerd> {
  const missing = whyNoContainerd();
  if (missing) throw new ContainerdUnavailable(missing);
  for (const [what, p] of [
    ['CNI config dir', opts.cniConfigDir],
    ['CNI plugin dir', opts.cniPluginDir],
  ] as const) {
    if (!existsSync(p)) throw new Error(`startContainerd: ${what} ${p} does not exist`);
  }

  const dir = path.join(topo.workDir, 'containerd');
  const d = {
    root: path.join(dir, 'root'),
    state: path.join(dir, 'state'),
    tmp: path.join(dir, 'tmp'),
    opt: path.join(dir, 'opt'),
    image: path.join(dir, 'image'),
    etcUpper: path.join(dir, 'etc', 'upper'),
    etcWork: path.join(dir, 'etc', 'work'),
    optUpper: path.join(dir, 'opt-overlay', 'upper'),
    optWork: path.join(dir, 'opt-overlay', 'work'),
    varLibUpper: path.join(dir, 'var-lib', 'upper'),
    varLibWork: path.join(dir, 'var-lib', 'work'),
  };
  for (const p of Object.values(d)) await mkdir(p, { recursive: true });
  const archive = await buildOciImage(d.image);

  const namespace = `bptest-${topo.id}`;
  const address = path.join(dir, 'containerd.sock');
  const config = path.join(dir, 'config.toml');
  await writeFile(
    config,
    [
      'version = 2',
      `root = ${toml(d.root)}`,
      `state = ${toml(d.state)}`,
      `temp = ${toml(d.tmp)}`,
      `disabled_plugins = [${DISABLED_PLUGINS.map(toml).join(', ')}]`,
      '',
      '[grpc]',
      `  address = ${toml(address)}`,
      '',
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = ${toml(d.opt)}`,
      '',
    ].join('\n'),
  );

  const cgroupDirs = (await cgroupRoots()).map((r) => path.join(r, namespace));
  const hadCgroups = new Set(cgroupDirs.filter((c) => existsSync(c)));
  const holderArgv = nsenterArgv(topo.hostNsPath, 'unshare', ['--mount', '--propagation', 'slave', '--', 'sleep', 'infinity']);
  const holder = execa(holderArgv[0]!, holderArgv.slice(1), { reject: false, buffer: false, stdin: 'ignore' });
  const holderPid = holder.pid!;
  const ownNs = await mntNs(process.pid);
  for (let i = 0; ; i++) {
    // nsenter and unshare exec: the pid is sleep's once the namespace is made.
    const exe = await readlink(`/proc/${holderPid}/exe`).catch(() => '');
    if (exe.endsWith('/sleep') && (await mntNs(holderPid)) !== ownNs) break;
    if (i > 200) {
      holder.kill('SIGKILL');
      await holder;
      throw new Error(`containerd holder ${holderPid} did not start (${exe})`);
    }
    await sleep(10);
  }
  const holderNs = (await mntNs(holderPid))!;
  // Held open until stop() has ended every process in it: the namespace (and so
  // the identity stop() looks processes up by) cannot go and be reused meanwhile.
  let mntHandle: FileHandle | undefined = await open(`/proc/${holderPid}/ns/mnt`, 'r');
  const enter = ['nsenter', `--target=${holderPid}`, '--mount', '--net', '--'] as const;
  const argv = [...enter, CTR, '--address', address, '--namespace', namespace] as const;
  const ctr = (args: string[], o: CtrRunOptions = {}) => runCommand([...argv, ...args], { timeoutMs: o.timeoutMs ?? DEFAULT_TIMEOUT_MS, input: o.input });
  const inNs = (cmd: string, args: string[], o: CtrRunOptions = {}) =>
    runCommand([...enter, cmd, ...args], { timeoutMs: o.timeoutMs ?? DEFAULT_TIMEOUT_MS, input: o.input });
  const ok = async (args: string[], o?: CtrRunOptions): Promise<string> => {
    const r = await ctr(args, o);
    if (r.exitCode !== 0) throw new Error(`ctr ${args.join(' ')}: exit ${r.exitCode}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`);
    return r.stdout.trim();
  };

  let logText = '';
  let proc: ResultPromise | undefined;
  let exited: string | undefined;
  /** containerd answered once: its end before stop() is then a crash, not a failed start. */
  let ready = false;
  const containerdRuns = () => proc !== undefined && exited === undefined;
  let stopping: Promise<void> | undefined;

  const stopOnce = async (): Promise<void> => {
    const errors: string[] = [];
    const step = async (what: string, fn: () => Promise<void>) => {
      try {
        await fn();
      } catch (err) {
        errors.push(`${what}: ${message(err)}`);
      }
    };
    /** Host ends (in the topology's host namespace) of the veths into the containers, noted while they run. */
    const hostVeths = new Map<number, string>();

    if (containerdRuns()) {
      await step('tasks', async () => {
        const tasks = parseTasks(await ok(['tasks', 'ls']));
        const peers = new Set<number>();
        for (const t of tasks) {
          if (t.pid > 0) for (const v of await vethsIn(`/proc/${t.pid}/ns/net`).catch(() => [])) peers.add(v.peer);
        }
        if (peers.size) for (const v of await vethsIn(topo.hostNsPath)) if (peers.has(v.index)) hostVeths.set(v.index, v.name);
        // A task a failed `ctr run --cni` left CREATED, or one a test left running: killed (no CNI DEL: only a
        // foreground `ctr run --rm` sends one, and such a ctr may delete its task and container itself meanwhile).
        const failed: string[] = [];
        for (const t of tasks) {
          if (t.status !== 'STOPPED') await ctr(['tasks', 'kill', '--signal', 'SIGKILL', t.id]);
          const r = await ctr(['tasks', 'delete', '--force', t.id]);
          if (r.exitCode !== 0 && !/not found/.test(r.stderr)) failed.push(`${t.id}: ${r.stderr.trim()}`);
        }
        const left = parseTasks(await ok(['tasks', 'ls']));
        if (left.length) throw new Error(`still there after delete: ${left.map((t) => t.id).join(', ')}\n${failed.join('\n')}`);
      });
      await step('containers', async () => {
        const failed: string[] = [];
        for (const id of (await ok(['containers', 'ls', '--quiet'])).split('\n').filter(Boolean)) {
          const r = await ctr(['containers', 'delete', id]);
          if (r.exitCode !== 0 && !/not found/.test(r.stderr)) failed.push(`${id}: ${r.stderr.trim()}`);
        }
        const left = (await ok(['containers', 'ls', '--quiet'])).split('\n').filter(Boolean);
        if (left.length) throw new Error(`still there after delete: ${left.join(', ')}\n${failed.join('\n')}`);
      });
      await step('stop containerd', async () => {
        const p = proc!;
        p.kill('SIGTERM');
        const slow = await Promise.race([p.then(() => false), sleep(STOP_MS).then(() => true)]);
        if (slow) {
          p.kill('SIGKILL');
          await p;
          throw new Error(`ignored SIGTERM for ${STOP_MS} ms (killed)`);
        }
      });
    } else if (ready) {
      errors.push(`containerd had ended before stop (${exited}): nothing removed the containerd way\n${logText.slice(-3000)}`);
    }

    await step('processes containerd started', async () => {
      // Shims end once their tasks are deleted: they get a while to do so.
      // (What a test started with `enter` is ended next, without a word.)
      let left: ProcInfo[] = [];
      for (const deadline = Date.now() + SETTLE_MS; ; ) {
        left = (await containerdProcesses(holderNs, cgroupDirs)).filter((p) => p.made);
        if (!left.length || Date.now() > deadline) break;
        await sleep(50);
      }
      if (left.length) throw new Error(`still running ${SETTLE_MS} ms after their tasks were deleted (killed next): ${describeProcs(left)}`);
    });

    await step('end the holder and everything in its namespaces', async () => {
      for (let round = 0; ; round++) {
        const left = await containerdProcesses(holderNs, cgroupDirs);
        if (!left.length) break;
        if (round > 250) throw new Error(`survived SIGKILL: ${describeProcs(left)}`);
        for (const p of left) {
          try {
            process.kill(p.pid, 'SIGKILL');
          } catch {
            // gone
          }
        }
        await sleep(20);
      }
      await holder;
      if (proc) await proc;
    });
    await mntHandle?.close().catch(() => undefined);
    mntHandle = undefined;

    await step('veths in the host namespace', async () => {
      let left: { index: number; name: string }[] = [];
      for (const deadline = Date.now() + NETNS_GONE_MS; ; ) {
        left = (await vethsIn(topo.hostNsPath)).filter((v) => hostVeths.get(v.index) === v.name);
        if (!left.length || Date.now() > deadline) break;
        await sleep(50);
      }
      if (left.length) {
        for (const v of left) await runCommand(nsenterArgv(topo.hostNsPath, 'ip', ['link', 'del', v.name]));
        throw new Error(`veths of containerd's containers still there ${NETNS_GONE_MS} ms after the end (deleted): ${left.map((v) => v.name).join(', ')}`);
      }
    });

    await step('cgroups', async () => {
      const left: string[] = [];
      // runc removes a container's cgroup when its task is deleted; the namespace's parent stays, made by runc.
      for (const c of cgroupDirs) if (!hadCgroups.has(c)) await removeCgroupTree(c, left);
      if (left.length) throw new Error(`could not remove: ${left.join(', ')}`);
    });

    await step('mounts', async () => {
      // containerd's own (snapshots, the bind mounts over /etc/cni/net.d…) went with its mount namespace.
      const ours = await mountsUnder(dir);
      if (ours.length) throw new Error(`mounted under ${dir} in the test's namespace: ${ours.join(', ')}`);
    });

    if (!errors.length) await step('remove containerd dir', () => rm(dir, { recursive: true, force: true }));
    if (errors.length) throw new Error(`stop containerd (topology ${topo.id}):\n${errors.map((e) => `  - ${e}`).join('\n')}`);
  };
  const stop = (): Promise<void> => {
    stopping ??= stopOnce();
    return stopping;
  };

  try {
    // /etc, /opt, /var/lib: overlays whose writes land in the work dir (mount points, libcni's cache), /run: tmpfs.
    for (const [target, upper, work] of [
      ['/etc', d.etcUpper, d.etcWork],
      ['/opt', d.optUpper, d.optWork],
      ['/var/lib', d.varLibUpper, d.varLibWork],
    ] as const) {
      await must([...enter, 'mount', '-t', 'overlay', 'overlay', '-o', `lowerdir=${target},upperdir=${upper},workdir=${work}`, target], `overlay ${target}`);
    }
    await must([...enter, 'mount', '-t', 'tmpfs', '-o', 'mode=755', 'tmpfs', '/run'], 'hide the host /run (shim sockets, runc state, FIFOs)');
    await must([...enter, 'mkdir', '-p', '/etc/cni/net.d', '/opt/cni/bin', '/var/lib/cni'], 'make the CNI folders');
    await must([...enter, 'mount', '--bind', opts.cniConfigDir, '/etc/cni/net.d'], 'bind the CNI config dir');
    await must([...enter, 'mount', '--bind', opts.cniPluginDir, '/opt/cni/bin'], 'bind the CNI plugin dir');

    const cdArgv = [...enter, CONTAINERD, '--config', config, '--log-level', 'info'];
    const started = execa(cdArgv[0]!, cdArgv.slice(1), { reject: false, buffer: false, stdin: 'ignore' });
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
      exited = r.exitCode !== undefined ? `exit ${r.exitCode}` : `signal ${r.signal ?? '?'}`;
    });
    for (const deadline = Date.now() + READY_MS; ; ) {
      if (exited !== undefined) throw new ContainerdUnavailable(`containerd ended before it was ready (${exited}):\n${logText.slice(-4000)}`);
      if (existsSync(address) && (await ctr(['version'], { timeoutMs: 5_000 })).exitCode === 0) {
        ready = true;
        break;
      }
      if (Date.now() > deadline) throw new ContainerdUnavailable(`containerd not ready after ${READY_MS} ms:\n${logText.slice(-4000)}`);
      await sleep(50);
    }
    await ok(['images', 'import', archive]);
    const images = (await ok(['images', 'ls', '--quiet'])).split('\n');
    if (!images.includes(CONTAINERD_IMAGE)) throw new Error(`ctr images import named the image otherwise: ${images.join(', ')}`);
  } catch (err) {
    await stop().catch((e: unknown) => {
      throw new AggregateError([err, e], `start containerd: ${message(err)}\n(and its stop failed: ${message(e)})`);
    });
    throw err;
  }

  return { enter, argv, holderPid, dir, namespace, address, ctr, ok, inNs, logs: () => logText, stop };
}

/** The topology and containerd of a describe block (useContainerd). */
export interface ContainerdScenario {
  readonly topo: Topology;
  readonly cd: Containerd;
  /** The scenario's environment, or a skip when containerd cannot run on this machine. */
  env(ctx: { skip: (note?: string) => void }): { topo: Topology; cd: Containerd };
}

/**
 * A topology and one containerd for the scenarios of a describe block, made
 * in beforeAll and taken down in afterAll (containerd first, every error
 * reported). `setup` runs once the topology exists and before containerd
 * starts (start a bridgeport daemon, write a conflist…) and says which
 * folders become /etc/cni/net.d and /opt/cni/bin; `teardown` runs after
 * containerd stopped. When containerd cannot run here the scenarios skip
 * (env), saying why.
 */
export function useContainerd(o: {
  what: string;
  setup: (topo: Topology) => ContainerdOptions | Promise<ContainerdOptions>;
  teardown?: (topo: Topology) => Promise<void>;
}): ContainerdScenario {
  const s = useRuntime({ ...o, runtime: 'containerd', whyNot: whyNoContainerd, start: startContainerd, unavailable: ContainerdUnavailable });
  return {
    get topo() {
      return s.topo;
    },
    get cd() {
      return s.runtime;
    },
    env(ctx) {
      const { topo, runtime } = s.env(ctx);
      return { topo, cd: runtime };
    },
  };
}
