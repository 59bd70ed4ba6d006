import { existsSync } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, readFile, readlink, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { buildRootfs, IMAGE } from './dockerd.js';
import { type CommandResult, nsenterArgv, pidsInNetns, runCommand, type Topology } from './topology.js';
import { cgroupRoots, describeProcs, message, mntNs, mountsUnder, must, type ProcInfo, processes, removeCgroupTree, toml, useRuntime, vethsIn } from './runtime-ns.js';

/**
 * Real podman (Debian's 4.3, CNI backend) for the CNI scenarios, in the
 * test's host network namespace and a mount namespace of its own
 * (shared/reference/cni.md, "Podman 4.3 (Debian) in practice"): a holder
 * process (`unshare --mount --propagation slave`) keeps the mount namespace,
 * and every podman command, the conmons it starts and their cleanup
 * processes, and the CNI plugins they run live inside it. What podman writes
 * outside its --root, --runroot and --tmpdir (all under the topology's work
 * dir) is covered there: tmpfs on /run (netns bind mounts, runc's state),
 * /dev/shm (libpod_lock), /var/tmp, and on /var/lib/cni (libcni's cache,
 * host-local's leases) and /var/lib/containers (the blob-info cache), which
 * sit on an overlay of /var/lib whose upper layer is in the work dir, since
 * neither exists on the machine and the host's /var/lib stays untouched.
 */

export const PODMAN = '/usr/bin/podman';
const CONMON = '/usr/bin/conmon';
const BUSYBOX = '/bin/busybox';
/** OCI runtimes podman finds by name (runc comes with docker.io; crun may be absent), in order of preference. */
const RUNTIMES: ReadonlyArray<readonly [string, readonly string[]]> = [
  ['runc', ['/usr/bin/runc', '/usr/sbin/runc', '/usr/local/bin/runc', '/usr/local/sbin/runc']],
  ['crun', ['/usr/bin/crun', '/usr/local/bin/crun']],
];
/** The image every podman harness imports: busybox-static with sh, httpd (root /www, CGI /cgi-bin/ip), nc, wget, ip, sleep, cat… */
export const PODMAN_IMAGE = IMAGE;
const DEFAULT_TIMEOUT_MS = 60_000;
/** How long processes started by podman may take to end on their own after `rm -af` (conmon's cleanup processes). */
const SETTLE_MS = 5_000;
/** How long the kernel may take to free container network namespaces (and their veths) once nothing holds them. */
const NETNS_GONE_MS = 5_000;
/** podman's cgroupfs parent of containers (not configurable in containers.conf), and conmon's cgroup under it. */
const CGROUP_PARENT = 'libpod_parent';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** podman could not start at all on this machine: scenarios skip with this message. */
export class PodmanUnavailable extends Error {}

export interface PodmanOptions {
  /** podman's network_config_dir: where it reads (and `podman network create` writes) conflists. */
  cniConfigDir: string;
  /** podman's cni_plugin_dirs: where it looks for the executables the conflists' `type`s name. */
  cniPluginDirs: string[];
  /**
   * Default seconds `podman stop` (and rm -f, restart) waits after SIGTERM
   * before SIGKILL (containers.conf stop_timeout; podman's own default is 10).
   * busybox's httpd and sleep as PID 1 ignore SIGTERM, so every stop waits
   * the whole time. Default 1.
   */
  stopTimeout?: number;
}

export interface PodmanRunOptions {
  timeoutMs?: number;
  input?: string;
}

export interface Podman {
  /** argv prefix that runs a command in podman's mount and network namespaces. */
  readonly enter: readonly string[];
  /**
   * argv prefix of a podman command, `enter` included (environment, binary and
   * global flags): for commands the caller runs itself, e.g. `podman events`.
   */
  readonly argv: readonly string[];
  /** Pid of the holder process that keeps the mount namespace (`/proc/PID/ns/mnt`). */
  readonly holderPid: number;
  /** This harness's directory (under the topology's work dir): root, runroot, tmpdir, containers.conf. */
  readonly dir: string;
  /** The CONTAINERS_CONF file podman runs with. */
  readonly containersConf: string;
  /** The OCI runtime podman was configured with (runc or crun). */
  readonly runtime: string;
  /** Runs podman with args; reports the outcome, never throws. */
  podman(args: string[], opts?: PodmanRunOptions): Promise<CommandResult>;
  /** podman, throwing with stdout and stderr on a non-zero exit; returns stdout trimmed. */
  ok(args: string[], opts?: PodmanRunOptions): Promise<string>;
  /** Runs cmd in podman's mount and network namespaces (e.g. `ls /var/lib/cni/networks/NET`). */
  inNs(cmd: string, args: string[], opts?: PodmanRunOptions): Promise<CommandResult>;
  /**
   * Removes every pod and container (`pod rm -af -t 0`, `rm -af -t 0`), ends
   * every process left in podman's namespaces (an error for podman's own,
   * conmon and containers, but not for what a test started with `enter`),
   * and the holder, waits for the containers' network
   * namespaces and veths to go, removes podman's cgroups and its directory,
   * and throws one error naming every step that failed or anything left
   * behind. A second call does nothing.
   */
  stop(): Promise<void>;
}

function runtimeHere(): { name: string; path: string } | undefined {
  for (const [name, paths] of RUNTIMES) {
    const found = paths.find((p) => existsSync(p));
    if (found) return { name, path: found };
  }
  return undefined;
}

/** Why podman cannot run here at all (missing binaries), or undefined. */
export function whyNoPodman(): string | undefined {
  for (const bin of [PODMAN, CONMON, BUSYBOX]) {
    if (!existsSync(bin)) return `${bin} is missing (podman, conmon and busybox-static are needed)`;
  }
  if (!runtimeHere()) return 'no OCI runtime: neither runc nor crun is installed (docker.io brings runc)';
  return undefined;
}

/**
 * The busybox image of dockerd.ts, with a CGI script that answers with the
 * client's address as IPv4 where it is one: podman's containers keep IPv6
 * on, so busybox's httpd listens on :: and sees `[::ffff:A.B.C.D]`.
 */
async function buildImage(dir: string): Promise<string> {
  const tar = await buildRootfs(dir);
  const root = path.join(dir, 'rootfs');
  await writeFile(
    path.join(root, 'www/cgi-bin/ip'),
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansions
    '#!/bin/sh\na=${REMOTE_ADDR#[}\na=${a%]}\na=${a#::ffff:}\nprintf "Content-Type: text/plain\\r\\n\\r\\n%s\\n" "$a"\n',
    { mode: 0o755 },
  );
  await must(['tar', '-C', root, '-cf', tar, '.'], 'build image rootfs');
  await rm(root, { recursive: true, force: true });
  return tar;
}

/** Identities (dev+inode) of the network namespaces podman bound under /run/netns in its mount namespace (that of pidInNs). */
async function containerNetns(pidInNs: number): Promise<{ dev: number; ino: number }[]> {
  const dir = `/proc/${pidInNs}/root/run/netns`;
  const ids: { dev: number; ino: number }[] = [];
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const st = await stat(path.join(dir, name)).catch(() => undefined);
    if (st) ids.push({ dev: st.dev, ino: st.ino });
  }
  return ids;
}

/** Programs of podman's own, whose processes (and their descendants: containers, CNI plugins) should be gone after `rm -af`. */
const PODMAN_COMMS = new Set(['podman', 'conmon', 'runc', 'crun']);

/**
 * Live processes in podman's namespaces: those in its mount namespace (the
 * holder, podman, conmon, cleanup processes, CNI plugins, and whatever a
 * test started with `enter`), their descendants (containers: conmon is
 * their parent), and those in the network namespaces `netns`. `made` marks
 * podman's own: its programs, their descendants and what is in `netns`.
 * Zombies and ourselves are left out.
 */
async function podmanProcesses(ns: string, netns: { dev: number; ino: number }[]): Promise<(ProcInfo & { made: boolean })[]> {
  const all = (await processes()).filter((p) => p.state !== 'Z' && p.pid !== process.pid);
  const inNetns = new Set(await pidsInNetns(netns));
  const inNs = new Set<number>(inNetns);
  for (const p of all) if ((await mntNs(p.pid)) === ns) inNs.add(p.pid);
  const made = new Set<number>(inNetns);
  for (const p of all) if (inNs.has(p.pid) && PODMAN_COMMS.has(p.comm)) made.add(p.pid);
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

/** The host ends (in the topology's host namespace) of the veths whose other end is in one of podman's containers. */
async function containerVeths(pidInNs: number, topo: Topology): Promise<{ index: number; name: string }[]> {
  const peers = new Set<number>();
  const dir = `/proc/${pidInNs}/root/run/netns`;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    for (const v of await vethsIn(path.join(dir, name)).catch(() => [])) peers.add(v.peer);
  }
  if (!peers.size) return [];
  return (await vethsIn(topo.hostNsPath)).filter((v) => peers.has(v.index));
}

/** Ids of the containers in podman's storage (what `rm` should remove), read from disk so that it works when podman does not. */
async function storedContainers(root: string): Promise<string[]> {
  const names = await readdir(path.join(root, 'overlay-containers')).catch(() => [] as string[]);
  return names.filter((n) => /^[0-9a-f]{64}$/.test(n));
}

export async function startPodman(topo: Topology, opts: PodmanOptions): Promise<Podman> {
  const missing = whyNoPodman();
  if (missing) throw new PodmanUnavailable(missing);
  const runtime = runtimeHere()!;
  for (const d of opts.cniPluginDirs) if (!existsSync(d)) throw new Error(`startPodman: CNI plugin dir ${d} does not exist`);
  if (!existsSync(opts.cniConfigDir)) throw new Error(`startPodman: CNI config dir ${opts.cniConfigDir} does not exist`);

  const dir = path.join(topo.workDir, 'podman');
  const d = {
    root: path.join(dir, 'root'),
    runroot: path.join(dir, 'runroot'),
    tmp: path.join(dir, 'tmp'),
    imageTmp: path.join(dir, 'image-tmp'),
    varLibUpper: path.join(dir, 'var-lib', 'upper'),
    varLibWork: path.join(dir, 'var-lib', 'work'),
  };
  for (const p of Object.values(d)) await mkdir(p, { recursive: true });
  const tar = await buildImage(dir);

  const containersConf = path.join(dir, 'containers.conf');
  await writeFile(
    containersConf,
    [
      '[containers]',
      // Root lacks CAP_SYS_RESOURCE here: podman's defaults (the host's hard limits) fail with "error setting rlimit type 7".
      'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]',
      '',
      '[network]',
      'network_backend = "cni"',
      `network_config_dir = ${toml(opts.cniConfigDir)}`,
      `cni_plugin_dirs = [${opts.cniPluginDirs.map(toml).join(', ')}]`,
      '',
      '[engine]',
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      `runtime = ${toml(runtime.name)}`,
      `image_copy_tmp_dir = ${toml(d.imageTmp)}`,
      // No registry here: a missing image fails at once instead of a pull attempt.
      'pull_policy = "never"',
      `stop_timeout = ${opts.stopTimeout ?? 1}`,
      '',
    ].join('\n'),
  );
  // Ours, not the host's (none exist today; they would be read if they did). Only
  // CONTAINERS_CONF reaches conmon's cleanup processes; the storage flags go with them.
  const storageConf = path.join(dir, 'storage.conf');
  await writeFile(storageConf, `[storage]\ndriver = "overlay"\ngraphroot = ${toml(d.root)}\nrunroot = ${toml(d.runroot)}\n`);
  const registriesConf = path.join(dir, 'registries.conf');
  await writeFile(registriesConf, 'unqualified-search-registries = []\n');

  const hadCgroupParent = new Set((await cgroupRoots()).filter((r) => existsSync(path.join(r, CGROUP_PARENT))));
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
      throw new Error(`podman holder ${holderPid} did not start (${exe})`);
    }
    await sleep(10);
  }
  const holderNs = (await mntNs(holderPid))!;
  // Held open until stop() has ended every process in it: the namespace (and so
  // the identity stop() looks processes up by, and the netns bind mounts in it)
  // cannot go and be reused by another test's namespace in the meantime.
  let mntHandle: FileHandle | undefined = await open(`/proc/${holderPid}/ns/mnt`, 'r');
  const enter = ['nsenter', `--target=${holderPid}`, '--mount', '--net', '--'] as const;
  const argv = [
    ...enter,
    'env',
    `CONTAINERS_CONF=${containersConf}`,
    `CONTAINERS_STORAGE_CONF=${storageConf}`,
    `CONTAINERS_REGISTRIES_CONF=${registriesConf}`,
    `TMPDIR=${d.imageTmp}`,
    PODMAN,
    '--root',
    d.root,
    '--runroot',
    d.runroot,
    '--tmpdir',
    d.tmp,
    '--storage-driver',
    'overlay',
  ] as const;
  const podman = (args: string[], o: PodmanRunOptions = {}) =>
    runCommand([...argv, ...args], { timeoutMs: o.timeoutMs ?? DEFAULT_TIMEOUT_MS, input: o.input });
  const inNs = (cmd: string, args: string[], o: PodmanRunOptions = {}) =>
    runCommand([...enter, cmd, ...args], { timeoutMs: o.timeoutMs ?? DEFAULT_TIMEOUT_MS, input: o.input });
  const ok = async (args: string[], o?: PodmanRunOptions): Promise<string> => {
    const r = await podman(args, o);
    if (r.exitCode !== 0) throw new Error(`podman ${args.join(' ')}: exit ${r.exitCode}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`);
    return r.stdout.trim();
  };

  let holderReaped = false;
  void holder.then(() => {
    holderReaped = true;
  });
  /** The holder is our child: until Node reaps it, its pid is not reused and a killed one shows as a zombie. */
  const holderEnded = async (): Promise<boolean> => {
    if (holderReaped) return true;
    const text = await readFile(`/proc/${holderPid}/stat`, 'utf8').catch(() => '');
    return !text || text.slice(text.lastIndexOf(')') + 2).startsWith('Z');
  };
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
    const ids = new Set(await storedContainers(d.root));
    const netns: { dev: number; ino: number }[] = [];
    const hostVeths = new Map<number, string>();
    /**
     * Notes the host ends of the veths into the network namespaces podman has
     * bound now and, with `pin`, those namespaces: only ones that stay bound
     * (pinned by mntHandle) until every process is ended, since the identity
     * of a namespace that goes may soon be another test's.
     */
    const survey = async (pin: boolean) => {
      // Through the holder, or after a crash through any process left in the mount namespace (conmon).
      let via: number | undefined = holderPid;
      if (await holderEnded()) {
        via = undefined;
        for (const p of await processes()) if (p.state !== 'Z' && (await mntNs(p.pid)) === holderNs) via ??= p.pid;
      }
      if (via === undefined) return;
      if (pin) netns.push(...(await containerNetns(via)));
      for (const v of await containerVeths(via, topo)) hostVeths.set(v.index, v.name);
    };

    const removing = !(await holderEnded());
    await step('survey containers', () => survey(!removing));
    if (removing) {
      await step('remove pods', async () => {
        const r = await podman(['pod', 'rm', '-af', '-t', '0']);
        if (r.exitCode !== 0) throw new Error(`exit ${r.exitCode}: ${r.stderr.trim()}`);
      });
      await step('remove containers', async () => {
        const r = await podman(['rm', '-af', '-t', '0']);
        if (r.exitCode !== 0) throw new Error(`exit ${r.exitCode}: ${r.stderr.trim()}`);
        const left = await storedContainers(d.root);
        if (left.length) throw new Error(`still in storage after rm -af: ${left.map((i) => i.slice(0, 12)).join(', ')}`);
      });
      await step('survey what rm left', async () => {
        await survey(true);
        const left = await readdir(`/proc/${holderPid}/root/run/netns`).catch(() => [] as string[]);
        if (left.length) throw new Error(`network namespaces still bound after rm: ${left.join(', ')}`);
      });
    } else {
      errors.push(`holder ${holderPid} had ended before stop: nothing removed the podman way`);
    }

    await step('processes podman started', async () => {
      // conmon's cleanup processes may still run after rm: they get a while to end on their own.
      // (What a test started with `enter` is ended next, without a word, as dockerd.ts does.)
      let left: ProcInfo[] = [];
      for (const deadline = Date.now() + (removing ? SETTLE_MS : 0); ; ) {
        left = (await podmanProcesses(holderNs, netns)).filter((p) => p.made);
        if (!left.length || Date.now() > deadline) break;
        await sleep(50);
      }
      if (left.length) throw new Error(`still running${removing ? ` ${SETTLE_MS} ms after rm` : ''} (killed next): ${describeProcs(left)}`);
    });

    await step('end the holder and everything in its namespaces', async () => {
      for (let round = 0; ; round++) {
        const left = await podmanProcesses(holderNs, netns);
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
    });
    await mntHandle?.close().catch(() => undefined);
    mntHandle = undefined;

    await step('veths in the host namespace', async () => {
      // The mount namespace went with its last process, and with it the netns
      // bind mounts: the kernel frees the namespaces (and their veths) soon after.
      let left: { index: number; name: string }[] = [];
      for (const deadline = Date.now() + NETNS_GONE_MS; ; ) {
        left = (await vethsIn(topo.hostNsPath)).filter((v) => hostVeths.get(v.index) === v.name);
        if (!left.length || Date.now() > deadline) break;
        await sleep(50);
      }
      if (left.length) {
        for (const v of left) await runCommand(nsenterArgv(topo.hostNsPath, 'ip', ['link', 'del', v.name]));
        throw new Error(`veths of podman's containers still there ${NETNS_GONE_MS} ms after the end (deleted): ${left.map((v) => v.name).join(', ')}`);
      }
    });

    await step('cgroups', async () => {
      const left: string[] = [];
      for (const root of await cgroupRoots()) {
        const parent = path.join(root, CGROUP_PARENT);
        // runc removes a container's cgroup when it deletes the container: these are what a kill leaves.
        for (const id of ids) await removeCgroupTree(path.join(parent, `libpod-${id}`), left);
        if (!hadCgroupParent.has(root)) {
          // Made by this podman: removed unless another podman uses them by now.
          await removeCgroupTree(path.join(parent, 'conmon'), []);
          await rmdir(parent).catch(() => undefined);
        }
      }
      if (left.length) throw new Error(`could not remove: ${left.join(', ')}`);
    });

    await step('mounts', async () => {
      // podman's own went with its mount namespace (no process is left in it, and our handle is closed).
      const ours = await mountsUnder(dir);
      if (ours.length) throw new Error(`mounted under ${dir} in the test's namespace: ${ours.join(', ')}`);
    });

    if (!errors.length) await step('remove podman dir', () => rm(dir, { recursive: true, force: true }));
    if (errors.length) throw new Error(`stop podman (topology ${topo.id}):\n${errors.map((e) => `  - ${e}`).join('\n')}`);
  };
  const stop = (): Promise<void> => {
    stopping ??= stopOnce();
    return stopping;
  };

  try {
    // /var/lib: an overlay whose writes land in the work dir, then tmpfs on what podman and CNI write there.
    await must(
      [...enter, 'mount', '-t', 'overlay', 'overlay', '-o', `lowerdir=/var/lib,upperdir=${d.varLibUpper},workdir=${d.varLibWork}`, '/var/lib'],
      'overlay /var/lib',
    );
    await must([...enter, 'mkdir', '-p', '/var/lib/cni', '/var/lib/containers'], 'make /var/lib/cni');
    for (const [target, mode, what] of [
      ['/run', '755', 'hide the host /run (netns bind mounts, runc state, locks)'],
      ['/dev/shm', '1777', 'hide the host /dev/shm (libpod_lock)'],
      ['/var/tmp', '1777', 'hide the host /var/tmp'],
      ['/var/lib/cni', '755', 'cover /var/lib/cni (libcni cache, host-local leases)'],
      ['/var/lib/containers', '700', 'cover /var/lib/containers (blob-info cache)'],
    ] as const) {
      await must([...enter, 'mount', '-t', 'tmpfs', '-o', `mode=${mode}`, 'tmpfs', target], what);
    }
    await ok(['import', tar, PODMAN_IMAGE]);
    const backend = await ok(['info', '--format', '{{.Host.NetworkBackend}}']);
    if (backend !== 'cni') throw new Error(`podman runs network backend "${backend}", not cni (CONTAINERS_CONF ignored?)`);
  } catch (err) {
    await stop().catch((e: unknown) => {
      throw new AggregateError([err, e], `start podman: ${message(err)}\n(and its stop failed: ${message(e)})`);
    });
    throw err;
  }

  return { enter, argv, holderPid, dir, containersConf, runtime: runtime.name, podman, ok, inNs, stop };
}

/** The topology and podman of a describe block (usePodman). */
export interface PodmanScenario {
  readonly topo: Topology;
  readonly pm: Podman;
  /** The scenario's environment, or a skip when podman cannot run on this machine. */
  env(ctx: { skip: (note?: string) => void }): { topo: Topology; pm: Podman };
}

/**
 * A topology and one podman for the scenarios of a describe block, made in
 * beforeAll and taken down in afterAll (podman first, every error reported).
 * `setup` runs once the topology exists and before podman starts (write a
 * conflist, start a bridgeport daemon…) and says where podman finds its CNI
 * configuration and plugins; `teardown` runs after podman stopped. When
 * podman cannot run here the scenarios skip (env), saying why.
 */
export function usePodman(o: {
  what: string;
  setup: (topo: Topology) => PodmanOptions | Promise<PodmanOptions>;
  teardown?: (topo: Topology) => Promise<void>;
}): PodmanScenario {
  const s = useRuntime({ ...o, runtime: 'podman', whyNot: whyNoPodman, start: startPodman, unavailable: PodmanUnavailable });
  return {
    get topo() {
      return s.topo;
    },
    get pm() {
      return s.runtime;
    },
    env(ctx) {
      const { topo, runtime } = s.env(ctx);
      return { topo, pm: runtime };
    },
  };
}
