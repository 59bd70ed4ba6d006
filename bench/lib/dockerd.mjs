// Test beds of the Docker suite (bench/docker.mjs): one per configuration, side
// by side, each a real dockerd (Debian's docker.io) in network namespaces of
// its own and a mount namespace of its own, so that nothing of the machine's
// /run, /etc/docker or /run/docker/plugins is seen or changed (as
// test/helpers/dockerd.ts does for the driver scenarios):
//
//   client netns ── eth0 ══ veth ══ uplink0 ── host netns (dockerd, containerd, [bridgeport daemon])
//   198.18.0.2/24                   198.18.0.1/24      └─ network "bench" 10.77.0.0/24: web, peer, …
//
// - docker:          dockerd's defaults: its bridge driver, iptables, docker-proxy (--userland-proxy=true)
// - docker-noproxy:  the same with --userland-proxy=false
// - ebpf, iptables:  the same dockerd (defaults) and bridgeport's daemon in its
//                    mount and network namespaces, --datapath D, serving the
//                    driver socket; "bench" is `-d bridgeport`
//
// A holder process (`unshare --mount --propagation slave`, sleeping) keeps the
// mount namespace; tmpfs covers /run and /etc/docker in it; dockerd, the
// bridgeport daemon and every command needing their files run inside it.
import { chmodSync, closeSync, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, rmdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { CLIENT_IF, CLIENT_IP, Child, NETNS_DIR, NamespaceProcesses, UPLINK, nsArgv, run, sleep } from './topology.mjs';

export const DOCKERD = '/usr/sbin/dockerd';
export const DOCKER = '/usr/bin/docker';
const BUSYBOX = '/bin/busybox';
export const IMAGE = 'bpdb-busybox:1';
export const PREFIX = 'bpdb';
export const HOST_IP = '198.18.0.1';
export const NET = 'bench';
export const NET_SUBNET = '10.77.0.0/24';
/** Configurations, in the order tables show them. */
export const DOCKER_CONFIGS = ['docker', 'docker-noproxy', 'ebpf', 'iptables'];
export const LABELS = {
  docker: "Docker's bridge driver (docker-proxy)",
  'docker-noproxy': "Docker's bridge driver (--userland-proxy=false)",
  ebpf: 'bridgeport driver, eBPF',
  iptables: 'bridgeport driver, iptables',
};
const SHORT = { docker: 'dp', 'docker-noproxy': 'dn', ebpf: 'eb', iptables: 'ip' };
const READY_MS = 60_000;
const APPLETS = ['sh', 'sleep', 'cat', 'echo', 'ls', 'true', 'wget', 'ip'];

/** Why this suite cannot run here (a missing binary), or undefined. */
export function whyNoDockerd() {
  for (const bin of [DOCKERD, DOCKER, BUSYBOX]) {
    if (!existsSync(bin)) return `${bin} is missing (make deps installs docker.io and busybox-static)`;
  }
  return undefined;
}

/** A rootfs tar of busybox-static and its applets (the servers are bind-mounted static binaries). */
export async function buildImageTar(dir) {
  const root = path.join(dir, 'rootfs');
  for (const d of ['bin', 'etc', 'tmp']) mkdirSync(path.join(root, d), { recursive: true });
  copyFileSync(BUSYBOX, path.join(root, 'bin/busybox'));
  chmodSync(path.join(root, 'bin/busybox'), 0o755);
  for (const a of APPLETS) symlinkSync('busybox', path.join(root, 'bin', a));
  writeFileSync(path.join(root, 'etc/passwd'), 'root:x:0:0:root:/:/bin/sh\n');
  const tar = path.join(dir, 'rootfs.tar');
  await run(['tar', '-C', root, '-cf', tar, '.'], { must: true, timeoutMs: 60_000 });
  return tar;
}

const mntNs = (pid) => {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return undefined;
  }
};

/** Pids whose mount namespace is ns, ours excepted. */
function pidsInMntNs(ns) {
  const out = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    if (mntNs(e) === ns) out.push(Number(e));
  }
  return out;
}

/** Mount points of every cgroup hierarchy (v1 and v2): where --cgroup-parent makes folders. */
function cgroupRoots() {
  const roots = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [pre, post] = line.split(' - ');
    if (post?.startsWith('cgroup ') || post?.startsWith('cgroup2 ')) roots.push(pre.split(' ')[4]);
  }
  return roots;
}

/** Pids in a cgroup folder and below. */
function cgroupPids(dir) {
  const pids = [];
  const walk = (d) => {
    try {
      for (const l of readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n')) if (l) pids.push(Number(l));
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(path.join(d, e.name));
    } catch {}
  };
  walk(dir);
  return pids;
}

function removeCgroupTree(dir) {
  let entries = [];
  try {
    entries = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory());
  } catch {
    return;
  }
  for (const e of entries) removeCgroupTree(path.join(dir, e.name));
  try {
    rmdirSync(dir);
  } catch {}
}

const killAll = (pids) => {
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {}
  }
};

/**
 * One configuration: its namespaces, dockerd (and bridgeport daemon), the
 * network "bench". tearDown() removes everything setUp() made, at any point
 * of it, and keeps going after an error.
 */
export class DockerBed extends NamespaceProcesses {
  constructor({ config, runId, workDir, repo, log }) {
    super();
    if (!SHORT[config]) throw new Error(`unknown configuration ${config} (known: ${DOCKER_CONFIGS.join(', ')})`);
    this.config = config;
    this.repo = repo;
    this.log = log;
    this.dir = path.join(workDir, SHORT[config]);
    this.bin = path.join(repo, 'bin', 'bridgeport');
    this.base = `${PREFIX}-${runId}-${SHORT[config]}`;
    this.ns = { host: `${this.base}-h`, client: `${this.base}-c` };
    this.paths = { host: path.join(NETNS_DIR, this.ns.host), client: path.join(NETNS_DIR, this.ns.client) };
    this.made = [];
    this.bridgeport = config === 'ebpf' || config === 'iptables';
    this.cgroupParent = this.base;
    this.sock = path.join(this.dir, 'docker.sock');
    this.pids = new Map(); // container name → pid
  }

  get enter() {
    return ['nsenter', `--target=${this.holderPid}`, '--mount', '--net', '--'];
  }

  /** Runs docker against this bed's dockerd. */
  docker(args, { timeoutMs = 120_000, must = true, cancelSignal } = {}) {
    return run([DOCKER, '-H', `unix://${this.sock}`, '--config', path.join(this.dir, 'cli'), ...args], { timeoutMs, must, cancelSignal });
  }

  /** Runs the bridgeport CLI against this bed's daemon (inside the bed's namespaces). */
  cli(args, { timeoutMs = 60_000, must = true } = {}) {
    return run([...this.enter, process.execPath, this.bin, '-H', `unix://${this.bpSocket}`, ...args], { timeoutMs, must });
  }

  async setUp(tar) {
    mkdirSync(path.join(this.dir, 'cli'), { recursive: true });
    for (const role of ['host', 'client']) {
      await run(['ip', 'netns', 'add', this.ns[role]], { must: true });
      this.made.push(this.ns[role]);
    }
    const host = (args) => run(nsArgv(this.paths.host, 'ip', args), { must: true });
    const client = (args) => run(nsArgv(this.paths.client, 'ip', args), { must: true });
    await host(['link', 'add', UPLINK, 'type', 'veth', 'peer', 'name', CLIENT_IF, 'netns', this.ns.client]);
    await host(['addr', 'add', `${HOST_IP}/24`, 'dev', UPLINK]);
    await client(['addr', 'add', `${CLIENT_IP}/24`, 'dev', CLIENT_IF]);
    for (const f of [host, client]) await f(['link', 'set', 'lo', 'up']);
    await host(['link', 'set', UPLINK, 'up']);
    await client(['link', 'set', CLIENT_IF, 'up']);
    await host(['route', 'add', 'default', 'via', CLIENT_IP, 'dev', UPLINK]);

    // The holder: nsenter and unshare exec, so the pid is sleep's once the mount namespace is made.
    const holderArgv = nsArgv(this.paths.host, 'unshare', ['--mount', '--propagation', 'slave', '--', 'sleep', 'infinity']);
    this.holder = new Child(execa(holderArgv[0], holderArgv.slice(1), { reject: false, buffer: false, stdin: 'ignore' }), 'mount namespace holder');
    this.holderPid = this.holder.sub.pid;
    const own = mntNs(process.pid);
    for (let i = 0; ; i++) {
      let exe = '';
      try {
        exe = readlinkSync(`/proc/${this.holderPid}/exe`);
      } catch {}
      if (exe.endsWith('/sleep') && mntNs(this.holderPid) !== own) break;
      if (i > 500 || !this.holder.running) throw new Error(`${this.config}: mount namespace holder ${this.holderPid} did not start (${exe})`);
      await sleep(10);
    }
    this.holderNs = mntNs(this.holderPid);
    for (const target of ['/run', '/etc/docker']) await run([...this.enter, 'mount', '-t', 'tmpfs', '-o', 'mode=755', 'tmpfs', target], { must: true });
    await run([...this.enter, 'mkdir', '-p', '/run/docker/plugins'], { must: true });

    if (this.bridgeport) await this.startBridgeport();
    await this.startDockerd();
    await this.docker(['import', tar, IMAGE], { timeoutMs: 120_000 });
    const driver = this.bridgeport ? ['-d', 'bridgeport'] : [];
    await this.docker(['network', 'create', ...driver, '--subnet', NET_SUBNET, NET]);
  }

  async startBridgeport() {
    this.stateDir = path.join(this.dir, 'bp-state');
    this.runDir = path.join(this.dir, 'bp-run');
    this.bpSocket = path.join(this.runDir, 'bridgeport.sock');
    mkdirSync(this.stateDir, { recursive: true });
    mkdirSync(this.runDir, { recursive: true });
    const logFile = path.join(this.dir, 'bridgeport.log');
    const fd = openSync(logFile, 'a');
    const argv = [
      ...this.enter,
      process.execPath,
      this.bin,
      'daemon',
      '--datapath',
      this.config,
      '--uplink',
      UPLINK,
      // Its default network apart from dockerd's docker0 (--bip below).
      '--bip',
      '10.212.0.1/24',
      '--state-dir',
      this.stateDir,
      '--run-dir',
      this.runDir,
      '--metrics-addr',
      '',
      '--docker-plugin',
      '/run/docker/plugins/bridgeport.sock',
      // This dockerd's API: names and the reconciler ask it, not the host's.
      '--docker-host',
      `unix://${this.sock}`,
    ];
    this.daemon = new Child(execa(argv[0], argv.slice(1), { reject: false, stdin: 'ignore', stdout: fd, stderr: fd }), 'bridgeport daemon');
    closeSync(fd);
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (!this.daemon.running) throw new Error(`${this.config}: bridgeport daemon ended before it was ready; log ${logFile}:\n${readFileSync(logFile, 'utf8').slice(-3000)}`);
      if (existsSync(this.bpSocket) && (await this.cli(['status', '--json'], { must: false, timeoutMs: 5_000 })).exitCode === 0) break;
      if (Date.now() > deadline) throw new Error(`${this.config}: bridgeport daemon not ready after 30 s; log ${logFile}`);
      await sleep(100);
    }
    const status = JSON.parse((await this.cli(['status', '--json'])).stdout);
    if (status.Datapath !== this.config) throw new Error(`bridgeport runs datapath ${status.Datapath}, asked ${this.config}: ${status.DatapathReason ?? ''}`);
  }

  async startDockerd() {
    writeFileSync(path.join(this.dir, 'daemon.json'), '{}\n');
    const logFile = path.join(this.dir, 'dockerd.log');
    const fd = openSync(logFile, 'a');
    const argv = [
      ...this.enter,
      DOCKERD,
      '--data-root',
      path.join(this.dir, 'data'),
      '--exec-root',
      path.join(this.dir, 'exec'),
      '-H',
      `unix://${this.sock}`,
      '--pidfile',
      path.join(this.dir, 'docker.pid'),
      '--cgroup-parent',
      `/${this.cgroupParent}`,
      '--storage-driver',
      'overlay2',
      '--config-file',
      path.join(this.dir, 'daemon.json'),
      // docker0 apart from bridgeport's default network (172.17.0.0/16) and from "bench".
      '--bip',
      '10.211.0.1/24',
      ...(this.config === 'docker-noproxy' ? ['--userland-proxy=false'] : []),
    ];
    this.dockerd = new Child(execa(argv[0], argv.slice(1), { reject: false, stdin: 'ignore', stdout: fd, stderr: fd }), 'dockerd');
    closeSync(fd);
    const deadline = Date.now() + READY_MS;
    for (;;) {
      if (!this.dockerd.running) throw new Error(`${this.config}: dockerd ended before it was ready; log ${logFile}:\n${readFileSync(logFile, 'utf8').slice(-3000)}`);
      if (existsSync(this.sock) && (await this.docker(['version'], { must: false, timeoutMs: 5_000 })).exitCode === 0) break;
      if (Date.now() > deadline) throw new Error(`${this.config}: dockerd not ready after ${READY_MS} ms; log ${logFile}`);
      await sleep(100);
    }
  }

  /** The pid of a running container's first process (to enter its network namespace). */
  async containerPid(name) {
    const pid = Number((await this.docker(['inspect', '-f', '{{.State.Pid}}', name])).stdout.trim());
    if (!(pid > 0)) throw new Error(`${this.config}: container ${name} has no pid`);
    this.pids.set(name, pid);
    return pid;
  }

  /** Network namespace file of 'host', 'client' or a container by name. */
  pathOf(where) {
    if (this.paths[where]) return this.paths[where];
    const pid = this.pids.get(where);
    if (!pid) throw new Error(`${this.config}: no namespace ${where}`);
    return `/proc/${pid}/ns/net`;
  }

  async tearDown() {
    const errors = [];
    const step = async (what, fn) => {
      try {
        await fn();
      } catch (e) {
        errors.push(`${what}: ${e?.message ?? e}`);
      }
    };
    for (const p of [...this.procs]) await step(`stop ${p.what}`, () => this.stop(p, 2_000));
    if (this.dockerd?.running) {
      // Containers first, while bridgeport still answers: their endpoints go the normal way.
      await step('docker rm -f', async () => {
        const ids = (await this.docker(['ps', '-aq'], { must: false })).stdout.split('\n').filter(Boolean);
        for (let i = 0; i < ids.length; i += 50) await this.docker(['rm', '-f', ...ids.slice(i, i + 50)], { timeoutMs: 600_000 });
      });
      await step('docker network rm', async () => {
        const nets = (await this.docker(['network', 'ls', '-q', '--filter', `name=^${NET}$`], { must: false })).stdout.split('\n').filter(Boolean);
        if (!nets.length) return;
        // After `rm -f` of a hundred containers dockerd may still hold some of their endpoints for a while.
        for (let i = 0; ; i++) {
          const r = await this.docker(['network', 'rm', ...nets], { must: i === 20 });
          if (r.exitCode === 0 || !/active endpoints/.test(r.stderr)) {
            if (r.exitCode !== 0) throw new Error(`docker network rm: ${r.stderr.trim()}`);
            return;
          }
          await sleep(500);
        }
      });
      await step('stop dockerd', () => this.stop(this.dockerd, 20_000));
    }
    if (this.daemon) {
      await step('stop bridgeport daemon', () => this.stop(this.daemon, 15_000));
      if (this.holder?.running) {
        // Programs, pins (in the holder's bpffs), tc filters and sysctls of the instance.
        await step('bridgeport daemon --cleanup', () =>
          run([...this.enter, process.execPath, this.bin, 'daemon', '--cleanup', '--state-dir', this.stateDir, '--run-dir', this.runDir, '--uplink', UPLINK, '--metrics-addr', ''], {
            must: true,
            timeoutMs: 120_000,
          }),
        );
      }
    }
    // containerd, shims, containers left: the holder's mount namespace and the cgroups dockerd made.
    await step('kill processes', async () => {
      const roots = cgroupRoots();
      for (let round = 0; round < 100; round++) {
        const pids = [
          ...(this.holderNs ? pidsInMntNs(this.holderNs).filter((p) => p !== this.holderPid) : []),
          ...roots.flatMap((r) => cgroupPids(path.join(r, this.cgroupParent))),
        ].filter((p) => p !== process.pid);
        if (!pids.length) return;
        killAll(pids);
        await sleep(50);
      }
      throw new Error('processes still running in the bed after 5 s of SIGKILL');
    });
    if (this.holder) await step('stop holder', () => this.stop(this.holder, 1_000));
    await step('remove cgroups', async () => {
      for (const r of cgroupRoots()) removeCgroupTree(path.join(r, this.cgroupParent));
    });
    for (const name of [...this.made].reverse()) {
      await step(`netns del ${name}`, async () => {
        if (existsSync(path.join(NETNS_DIR, name))) await run(['ip', 'netns', 'del', name], { must: true });
      });
    }
    this.made = [];
    await step('remove folder', async () => {
      if (!readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${this.dir}/`)) rmSync(this.dir, { recursive: true, force: true });
      else throw new Error(`mounts left under ${this.dir}: kept`);
    });
    if (errors.length) throw new Error(`cleanup of ${this.config}: ${errors.join('; ')}`);
  }
}

/** Names of netns an earlier run of this suite left (for a hint only). */
export function leftoverNamespaces() {
  if (!existsSync(NETNS_DIR)) return [];
  return readdirSync(NETNS_DIR).filter((n) => n.startsWith(`${PREFIX}-`));
}
