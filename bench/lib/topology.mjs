// Test beds of the data-plane suite: one per configuration, side by side, each
// in network namespaces of its own (never the root namespace's links,
// addresses, routes or firewall):
//
//   client netns ── eth0 ══ veth ══ uplink0 ── host netns ── bridge ─┬─ web netns   (172.30.0.2)
//   198.18.0.2/24                    198.18.0.1/24     │             ├─ peer netns  (172.30.0.3)
//                                    (+ 198.18.0.101,  │             └─ srv netns   (172.30.0.4)
//                                     .102 … when N    │
//                                     needs more than  └─ 2nd bridge ── routed netns (172.31.0.2)
//                                     one host IP)
//
// - nonat:    plain bridges and veths made with ip, no rule anywhere; the client
//             has routes to 172.30.0.0/24 and 172.31.0.0/24 via the host and
//             talks to the container's own address, the containers' traffic
//             leaves as is.
// - ebpf, iptables: bridgeport's daemon (--datapath D) in the host netns; an
//             --icc=false network, `web` publishing N ports (and a second host
//             port, ALT_PORT, for the port under test's container port),
//             `srv` exposing the port under test (--expose, nothing
//             published), `peer` run with --link srv:srv; a second network,
//             `routed` (--icc=false --masquerade=false), with one container
//             `routed` whose traffic leaves untranslated (the client netns
//             routes 172.31.0.0/24 back via the host).
// - nftables: the same plain bridges and veths as nonat, plus the reference
//             ruleset bench/nftables/ruleset.nft with N entries (and ALT_PORT)
//             in its DNAT map, peer → srv's port in its link sets, and one
//             forward rule letting the second bridge out unmasqueraded.
//
// peer is the client of the masquerade and container-to-container workloads.
// It links to srv rather than to web because a link permits every port the
// linked container exposes, and web exposes N: at N = 100 000 (50 000
// distinct container ports) that is 100 000 link permits, more than eBPF's
// link map holds (BP_LINKS_MAX 65536), and 200 000 extra iptables rules.
//
// Addresses are the same in every bed (they are separate namespaces).
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, openSync, closeSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';

export const NETNS_DIR = '/var/run/netns';
export const PREFIX = 'bpd';
export const UPLINK = 'uplink0';
export const CLIENT_IF = 'eth0';
export const CLIENT_IP = '198.18.0.2';
export const SUBNET = '172.30.0.0/24';
export const GATEWAY = '172.30.0.1';
export const WEB_IP = '172.30.0.2';
export const PEER_IP = '172.30.0.3';
export const SRV_IP = '172.30.0.4';
/** Container (and host) ports published start here: above the well-known ports, one range per host IP. */
export const FIRST_PORT = 10000;
/** Ports per host IP: N = 100 000 needs two host IPs. */
export const PORTS_PER_IP = 50000;
/** A port on srv that nothing exposes or links: peer must not reach it where icc=false. */
export const UNLINKED_PORT = 9000;
/** The masquerade workloads' servers in the client netns. */
export const CLIENT_HTTP_PORT = 8080;
export const CLIENT_IPERF_PORT = 5201;
/**
 * A second host port published to the container port under test (`-p A:P -p
 * ALT:P`, below FIRST_PORT so it never meets a range): crr_two_ports
 * alternates between the two, tcp_crr warms up through it. nonat has no host
 * port: there it is a second port of web's own, served by a second server.
 */
export const ALT_PORT = 9080;
/** The routed network (bridgeport: --masquerade=false), its gateway and its one container. */
export const ROUTED_SUBNET = '172.31.0.0/24';
export const ROUTED_GATEWAY = '172.31.0.1';
export const ROUTED_IP = '172.31.0.2';

const SHORT = { nonat: 'nn', ebpf: 'eb', iptables: 'ip', nftables: 'nf' };
const BRIDGEPORT_CONFIGS = new Set(['ebpf', 'iptables']);
const PLAIN_BRIDGE = 'br0';
const PLAIN_ROUTED_BRIDGE = 'br1';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * The argv that starts bed's bridgeport daemon in its host netns: bed has
 * paths.host, bin, config (the datapath), stateDir and runDir.
 */
export function daemonArgv(bed, metricsAddr, extra = []) {
  return nsArgv(bed.paths.host, process.execPath, [
    bed.bin,
    'daemon',
    '--datapath',
    bed.config,
    '--uplink',
    UPLINK,
    '--state-dir',
    bed.stateDir,
    '--run-dir',
    bed.runDir,
    '--metrics-addr',
    metricsAddr,
    // No Docker driver socket: the host's /run/docker/plugins is not the bench's to touch.
    '--docker-plugin',
    '',
    ...extra,
  ]);
}

/** i-th host IP on the uplink: 198.18.0.1, then 198.18.0.101, .102 … */
export const hostIp = (i) => (i === 0 ? '198.18.0.1' : `198.18.0.${100 + i}`);

/**
 * How N TCP ports are published: consecutive ranges of at most perIp ports
 * from FIRST_PORT, one per host IP, the same numbers on the container side.
 * The port under test is the last port of the last range.
 */
export function planPorts(n, perIp = PORTS_PER_IP) {
  if (!Number.isInteger(n) || n < 1) throw new Error(`planPorts: N must be a positive integer, got ${n}`);
  if (!Number.isInteger(perIp) || perIp < 1 || FIRST_PORT + perIp - 1 > 65535) {
    throw new Error(`planPorts: ports per host IP must be 1..${65535 - FIRST_PORT + 1}, got ${perIp}`);
  }
  const ranges = [];
  for (let left = n, i = 0; left > 0; i++) {
    const count = Math.min(left, perIp);
    ranges.push({ ip: hostIp(i), first: FIRST_PORT, last: FIRST_PORT + count - 1 });
    left -= count;
  }
  if (ranges.length > 150) throw new Error(`planPorts: N=${n} needs ${ranges.length} host IPs, too many`);
  const last = ranges[ranges.length - 1];
  return { ranges, hostIps: ranges.map((r) => r.ip), target: { ip: last.ip, port: last.last } };
}

/** argv running cmd inside the network namespace file nsPath (nothing else unshared). */
export const nsArgv = (nsPath, cmd, args) => ['nsenter', `--net=${nsPath}`, '--', cmd, ...args];

/** Runs argv (no shell); never throws on failure unless must is set. */
export async function run(argv, { timeoutMs = 30_000, input, must = false, cancelSignal } = {}) {
  const [file, ...args] = argv;
  const r = await execa(file, args, {
    reject: false,
    timeout: timeoutMs,
    maxBuffer: 256 * 1024 * 1024,
    ...(cancelSignal ? { cancelSignal } : {}),
    ...(input === undefined ? { stdin: 'ignore' } : { input }),
  });
  const out = {
    exitCode: r.exitCode ?? 128,
    stdout: typeof r.stdout === 'string' ? r.stdout : '',
    stderr: typeof r.stderr === 'string' ? r.stderr : '',
    timedOut: r.timedOut === true,
    canceled: r.isCanceled === true,
  };
  if (r.exitCode === undefined) out.stderr += `${out.stderr ? '\n' : ''}${r.shortMessage ?? r.message}`;
  if (must && out.exitCode !== 0) {
    throw new Error(`${argv.join(' ').slice(0, 400)}: exit ${out.exitCode}${out.timedOut ? ' (timed out)' : ''}: ${(out.stderr.trim() || out.stdout.trim()).slice(-2000)}`);
  }
  return out;
}

/** dev:inode of a namespace file, or undefined when it is not a live namespace. */
export function nsIdentity(p) {
  try {
    const st = statSync(p);
    const self = statSync('/proc/self/ns/net');
    // nsfs files share the device of /proc/self/ns/net; a leftover placeholder file does not.
    if (st.dev !== self.dev) return undefined;
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

/** Pids (not ours) whose network namespace is one of the given namespace files. */
export function pidsInNamespaces(nsPaths) {
  const ids = new Set(nsPaths.map(nsIdentity).filter(Boolean));
  if (ids.size === 0) return [];
  const found = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      const st = statSync(`/proc/${d}/ns/net`);
      if (ids.has(`${st.dev}:${st.ino}`)) found.push(Number(d));
    } catch {}
  }
  return found;
}

/** Mount points at or under dir, deepest first. */
function mountsUnder(dir) {
  const prefix = `${dir}/`;
  const unescape = (s) => s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(Number.parseInt(o, 8)));
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => unescape(l.split(' ')[4] ?? ''))
    .filter((m) => m && (m === dir || m.startsWith(prefix)))
    .sort((a, b) => b.length - a.length);
}

/** A fresh id no namespace of this prefix uses yet. */
export function newRunId() {
  for (;;) {
    const id = randomBytes(3).toString('hex');
    const taken = existsSync(NETNS_DIR) && readdirSync(NETNS_DIR).some((n) => n.startsWith(`${PREFIX}-${id}-`));
    if (!taken) return id;
  }
}

/**
 * Processes in a bed's network namespaces: commands run to their end, and
 * servers (Child) that stop() or the bed's tearDown() ends. A subclass says
 * where a namespace is: pathOf(where) → its file.
 */
export class NamespaceProcesses {
  constructor() {
    this.procs = new Set(); // servers spawn() started (Child)
  }

  /** Runs a command in one of the bed's namespaces (pathOf(where) names its file). */
  exec(where, cmd, args, opts) {
    return run(nsArgv(this.pathOf(where), cmd, args), opts);
  }

  /** Starts a long-running process in one of the namespaces; tearDown() ends it. */
  spawn(where, cmd, args) {
    const argv = nsArgv(this.pathOf(where), cmd, args);
    const child = new Child(execa(argv[0], argv.slice(1), { reject: false, stdin: 'ignore', buffer: true, maxBuffer: 16 * 1024 * 1024 }), argv.slice(3).join(' '));
    this.procs.add(child);
    child.done.then(() => this.procs.delete(child));
    return child;
  }

  /** Ends a Child: SIGTERM, then SIGKILL after graceMs. */
  async stop(child, graceMs = 3_000) {
    if (!child) return;
    if (child.running) {
      child.sub.kill('SIGTERM');
      const done = await Promise.race([child.done.then(() => true), sleep(graceMs).then(() => false)]);
      if (!done) child.sub.kill('SIGKILL');
    }
    await child.done;
  }

  /** Waits until something listens on port (tcp or udp) in the namespace. */
  async waitListening(where, proto, port, child, timeoutMs = 10_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (child && !child.running) {
        const r = await child.done;
        throw new Error(`${child.what} ended before listening: ${(r.stderr || r.stdout || `exit ${r.exitCode}`).toString().slice(-500)}`);
      }
      const r = await this.exec(where, 'ss', ['-H', proto === 'udp' ? '-lun' : '-ltn', `sport = :${port}`]);
      if (r.stdout.trim()) return;
      if (Date.now() > deadline) throw new Error(`nothing listening on ${proto}/${port} in ${where} after ${timeoutMs} ms`);
      await sleep(20);
    }
  }
}

/**
 * One configuration's namespaces, servers and (for ebpf/iptables) daemon.
 * Everything it makes it also removes in tearDown(), which is safe to call at
 * any point of setUp() and more than once.
 */
export class Bed extends NamespaceProcesses {
  /** daemonArgs: extra daemon flags, for the ebpf bed only (e.g. --xdp-mode generic). */
  constructor({ config, runId, workDir, repo, log, daemonArgs = [] }) {
    super();
    if (!SHORT[config]) throw new Error(`unknown configuration ${config}`);
    this.config = config;
    this.repo = repo;
    this.log = log;
    this.dir = path.join(workDir, config);
    this.bin = path.join(repo, 'bin', 'bridgeport');
    const base = `${PREFIX}-${runId}-${SHORT[config]}`;
    this.ns = { host: `${base}-h`, client: `${base}-c`, web: `${base}-w`, peer: `${base}-p`, srv: `${base}-s`, routed: `${base}-r` };
    this.paths = { host: path.join(NETNS_DIR, this.ns.host), client: path.join(NETNS_DIR, this.ns.client) };
    this.made = []; // netns names created, for tearDown
    this.daemon = undefined;
    this.bridgeport = BRIDGEPORT_CONFIGS.has(config);
    this.daemonArgs = config === 'ebpf' ? daemonArgs : [];
    this.bridge = PLAIN_BRIDGE;
    this.routedBridge = PLAIN_ROUTED_BRIDGE;
    this.plan = undefined;
  }

  /** Where the client connects for a published port, and the container port behind it. */
  get target() {
    if (this.config === 'nonat') return { ip: WEB_IP, port: this.plan.target.port };
    return this.plan.target;
  }

  get containerPort() {
    return this.plan.target.port;
  }

  /** The second way to the same server: hostIP:ALT_PORT → web:containerPort (nonat: web's own address, ALT_PORT). */
  get altTarget() {
    if (this.config === 'nonat') return { ip: WEB_IP, port: ALT_PORT };
    return { ip: this.plan.target.ip, port: ALT_PORT };
  }

  async setUp(n, { perIp = PORTS_PER_IP, timeoutMs } = {}) {
    this.plan = planPorts(n, perIp);
    mkdirSync(this.dir, { recursive: true });
    await this.addNs('host');
    await this.addNs('client');
    const host = (args) => run(nsArgv(this.paths.host, 'ip', args), { must: true });
    const client = (args) => run(nsArgv(this.paths.client, 'ip', args), { must: true });
    // Made from inside the host netns so the pair never shows in the root namespace.
    await host(['link', 'add', UPLINK, 'type', 'veth', 'peer', 'name', CLIENT_IF, 'netns', this.ns.client]);
    for (const ip of this.plan.hostIps) await host(['addr', 'add', `${ip}/24`, 'dev', UPLINK]);
    await client(['addr', 'add', `${CLIENT_IP}/24`, 'dev', CLIENT_IF]);
    await host(['link', 'set', 'lo', 'up']);
    await host(['link', 'set', UPLINK, 'up']);
    await client(['link', 'set', 'lo', 'up']);
    await client(['link', 'set', CLIENT_IF, 'up']);
    await host(['route', 'add', 'default', 'via', CLIENT_IP, 'dev', UPLINK]);
    await this.waitUp(this.paths.host, UPLINK);
    await this.waitUp(this.paths.client, CLIENT_IF);
    if (this.bridgeport) await this.setUpBridgeport(timeoutMs ?? 1_800_000);
    else await this.setUpPlain();
  }

  /** The client's way back to the routed network's untranslated addresses: via the host, in every configuration. */
  async routeBackToRouted() {
    await run(nsArgv(this.paths.client, 'ip', ['route', 'add', ROUTED_SUBNET, 'via', hostIp(0)]), { must: true });
  }

  async addNs(role) {
    await run(['ip', 'netns', 'add', this.ns[role]], { must: true });
    this.made.push(this.ns[role]);
    this.paths[role] ??= path.join(NETNS_DIR, this.ns[role]);
    await run(nsArgv(this.paths[role], 'ip', ['link', 'set', 'lo', 'up']), { must: true });
  }

  async waitUp(nsPath, dev) {
    const deadline = Date.now() + 5_000;
    for (;;) {
      const r = await run(nsArgv(nsPath, 'ip', ['-o', 'link', 'show', 'dev', dev]));
      if (/ state UP /.test(r.stdout)) return;
      if (Date.now() > deadline) throw new Error(`${dev} in ${nsPath} not up: ${r.stdout}${r.stderr}`);
      await sleep(25);
    }
  }

  async sysctl(nsPath, key, value, { optional = false } = {}) {
    const r = await run(nsArgv(nsPath, 'sysctl', ['-q', '-w', `${key}=${value}`]));
    if (r.exitCode !== 0 && !optional) throw new Error(`sysctl ${key}=${value}: ${r.stderr.trim()}`);
    return r.exitCode === 0;
  }

  /** nonat and nftables: two bridges and four veths made with ip, no daemon. */
  async setUpPlain() {
    const host = (args) => run(nsArgv(this.paths.host, 'ip', args), { must: true });
    for (const [bridge, gateway] of [
      [this.bridge, GATEWAY],
      [this.routedBridge, ROUTED_GATEWAY],
    ]) {
      await host(['link', 'add', bridge, 'type', 'bridge']);
      await host(['addr', 'add', `${gateway}/24`, 'dev', bridge]);
      await host(['link', 'set', bridge, 'up']);
    }
    for (const [role, ip, bridge, gateway] of [
      ['web', WEB_IP, this.bridge, GATEWAY],
      ['peer', PEER_IP, this.bridge, GATEWAY],
      ['srv', SRV_IP, this.bridge, GATEWAY],
      ['routed', ROUTED_IP, this.routedBridge, ROUTED_GATEWAY],
    ]) {
      await this.addNs(role);
      const hostIf = `v${role}`;
      const inside = (args) => run(nsArgv(this.paths[role], 'ip', args), { must: true });
      await host(['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.ns[role]]);
      await host(['link', 'set', hostIf, 'master', bridge]);
      await host(['link', 'set', hostIf, 'up']);
      await inside(['addr', 'add', `${ip}/24`, 'dev', 'eth0']);
      await inside(['link', 'set', 'eth0', 'up']);
      await inside(['route', 'add', 'default', 'via', gateway]);
      await this.waitUp(this.paths[role], 'eth0');
    }
    await this.sysctl(this.paths.host, 'net.ipv4.ip_forward', 1);
    // br_netfilter (loaded on this machine by iptables-based bridging) would
    // send bridged frames through the IPv4 hooks too; neither the no-NAT path
    // nor the nftables reference (which filters bridged traffic in its bridge
    // table) wants that. Per netns since Linux 5.3; absent without the module.
    await this.sysctl(this.paths.host, 'net.bridge.bridge-nf-call-iptables', 0, { optional: true });
    await this.routeBackToRouted();
    if (this.config === 'nonat') {
      await run(nsArgv(this.paths.client, 'ip', ['route', 'add', SUBNET, 'via', hostIp(0)]), { must: true });
    } else {
      await this.loadNftables();
    }
  }

  /**
   * The reference ruleset, with N DNAT map entries (and ALT_PORT to the port
   * under test), the link permit peer → srv, and the routed bridge let out
   * (the ruleset masquerades $SUBNET only, so its traffic leaves as is).
   */
  async loadNftables() {
    const ruleset = path.join(this.repo, 'bench', 'nftables', 'ruleset.nft');
    const target = this.plan.target;
    const lines = [
      `define BRIDGE = "${this.bridge}"`,
      `define SUBNET = ${SUBNET}`,
      `include "${ruleset}"`,
    ];
    // Elements in chunks: one command line per 10 000 keeps nft's parser happy at N = 100 000.
    const chunk = 10_000;
    const pub = [];
    for (const r of this.plan.ranges) {
      for (let p = r.first; p <= r.last; p++) pub.push(`${r.ip} . tcp . ${p} : ${WEB_IP} . ${p}`);
    }
    pub.push(`${target.ip} . udp . ${target.port} : ${WEB_IP} . ${target.port}`);
    pub.push(`${target.ip} . tcp . ${ALT_PORT} : ${WEB_IP} . ${target.port}`);
    // As `--link srv:srv` does: the ports srv exposes, from peer, and the replies.
    const linkFwd = [`${PEER_IP} . ${SRV_IP} . ${target.port}`];
    const linkRev = [`${SRV_IP} . ${PEER_IP} . ${target.port}`];
    const add = (table, set, elems) => {
      for (let i = 0; i < elems.length; i += chunk) lines.push(`add element ${table} ${set} { ${elems.slice(i, i + chunk).join(', ')} }`);
    };
    add('ip bpbench', 'published', pub);
    add('bridge bpbench_icc', 'link_dport', linkFwd);
    add('bridge bpbench_icc', 'link_sport', linkRev);
    lines.push(`add rule ip bpbench forward iifname "${this.routedBridge}" oifname != "${this.routedBridge}" accept`);
    const file = path.join(this.dir, 'load.nft');
    writeFileSync(file, `${lines.join('\n')}\n`);
    await run(nsArgv(this.paths.host, 'nft', ['-f', file]), { must: true, timeoutMs: 600_000 });
  }

  /** Runs the bridgeport CLI against this bed's daemon. */
  cli(args, { timeoutMs = 120_000, must = true } = {}) {
    return run(nsArgv(this.paths.host, process.execPath, [this.bin, '-H', `unix://${this.socket}`, ...args]), { timeoutMs, must });
  }

  async setUpBridgeport(timeoutMs) {
    this.stateDir = path.join(this.dir, 'state');
    this.runDir = path.join(this.dir, 'run');
    this.socket = path.join(this.runDir, 'bridgeport.sock');
    mkdirSync(this.stateDir, { recursive: true });
    mkdirSync(this.runDir, { recursive: true });
    const logFile = path.join(this.dir, 'daemon.log');
    const fd = openSync(logFile, 'a');
    const argv = daemonArgv(this, '', this.daemonArgs);
    const daemon = new Child(execa(argv[0], argv.slice(1), { reject: false, stdin: 'ignore', stdout: fd, stderr: fd }), 'bridgeport daemon');
    closeSync(fd);
    this.daemon = daemon;
    let ended;
    daemon.done.then((r) => {
      ended = r.exitCode ?? r.signal ?? 'ended';
    });
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (ended !== undefined) throw new Error(`bridgeport daemon (${this.config}) ended before it was ready (${ended}); log: ${logFile}\n${tailOf(logFile)}`);
      if (existsSync(this.socket) && (await this.cli(['status', '--json'], { must: false, timeoutMs: 5_000 })).exitCode === 0) break;
      if (Date.now() > deadline) throw new Error(`bridgeport daemon (${this.config}) not ready after 30 s; log: ${logFile}\n${tailOf(logFile)}`);
      await sleep(100);
    }
    const status = JSON.parse((await this.cli(['status', '--json'])).stdout);
    this.datapathInUse = status.Datapath;
    if (status.Datapath !== this.config) throw new Error(`bridgeport runs datapath ${status.Datapath}, asked ${this.config}: ${status.DatapathReason ?? ''}`);

    await this.cli(['network', 'create', 'bench', '--subnet', SUBNET, '--gateway', GATEWAY, '--icc=false']);
    const publish = this.plan.ranges.flatMap((r) => ['-p', `${r.ip}:${r.first}-${r.last}:${r.first}-${r.last}`]);
    const t = this.plan.target;
    publish.push('-p', `${t.ip}:${t.port}:${t.port}/udp`, '-p', `${t.ip}:${ALT_PORT}:${t.port}`);
    const started = Date.now();
    await this.cli(['run', '-d', '--name', 'web', '--network', 'bench', '--ip', WEB_IP, ...publish, '--', 'sleep', 'infinity'], { timeoutMs });
    this.publishSeconds = (Date.now() - started) / 1000;
    await this.cli(['run', '-d', '--name', 'srv', '--network', 'bench', '--ip', SRV_IP, '--expose', `${t.port}/tcp`, '--', 'sleep', 'infinity'], { timeoutMs });
    await this.cli(['run', '-d', '--name', 'peer', '--network', 'bench', '--ip', PEER_IP, '--link', 'srv:srv', '--', 'sleep', 'infinity'], { timeoutMs });
    // The same daemon's routed network: as `bench` but without masquerade.
    await this.cli(['network', 'create', 'routed', '--subnet', ROUTED_SUBNET, '--gateway', ROUTED_GATEWAY, '--icc=false', '--masquerade=false']);
    await this.cli(['run', '-d', '--name', 'routed', '--network', 'routed', '--ip', ROUTED_IP, '--', 'sleep', 'infinity'], { timeoutMs });
    await this.routeBackToRouted();
    const where = { web: ['bench', WEB_IP], peer: ['bench', PEER_IP], srv: ['bench', SRV_IP], routed: ['routed', ROUTED_IP] };
    for (const [role, [network, want]] of Object.entries(where)) {
      const info = JSON.parse((await this.cli(['inspect', role])).stdout);
      const key = info?.[0]?.NetworkSettings?.SandboxKey;
      if (!key || !existsSync(key)) throw new Error(`${role}: no sandbox namespace in inspect: ${JSON.stringify(info?.[0]?.NetworkSettings)}`);
      this.paths[role] = key;
      const ip = info[0].NetworkSettings.Networks?.[network]?.IPAddress;
      if (ip !== want) throw new Error(`${role} got address ${ip}`);
    }
    const bridgeOf = async (name, fallback) => {
      const net = JSON.parse((await this.cli(['network', 'inspect', name])).stdout);
      return net?.[0]?.Options?.['com.docker.network.bridge.name'] ?? net?.[0]?.Bridge ?? fallback;
    };
    this.bridge = await bridgeOf('bench', this.bridge);
    this.routedBridge = await bridgeOf('routed', this.routedBridge);
  }

  /** eBPF only: bridgeport's drop counters by reason (undefined for the other configurations). */
  async datapathDrops() {
    if (this.config !== 'ebpf' || !this.daemon?.running) return undefined;
    const r = await this.cli(['status', '--json'], { must: false, timeoutMs: 30_000 });
    if (r.exitCode !== 0) return undefined;
    return JSON.parse(r.stdout).DatapathInfo?.drops;
  }

  pathOf(where) {
    const p = this.paths[where];
    if (!p) throw new Error(`${this.config}: no namespace ${where}`);
    return p;
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
    // Servers and clients first (the daemon last: it owns the containers).
    for (const p of [...this.procs]) await step(`stop ${p.what}`, () => this.stop(p, 2_000));
    if (this.daemon) {
      if (this.daemon.running) {
        for (const name of ['routed', 'peer', 'srv', 'web']) await step(`rm ${name}`, () => this.cli(['rm', '-f', name], { must: false, timeoutMs: 600_000 }));
      }
      await step('stop daemon', () => this.stop(this.daemon, 15_000));
      await step('daemon --cleanup', async () => {
        if (!existsSync(this.paths.host)) return;
        await run(
          nsArgv(this.paths.host, process.execPath, [this.bin, 'daemon', '--cleanup', '--state-dir', this.stateDir, '--run-dir', this.runDir, '--metrics-addr', '']),
          { must: true, timeoutMs: 600_000 },
        );
      });
    }
    // Whatever still runs in the bed's namespaces (containers' commands, stray servers).
    const sandboxes = mountsUnder(this.dir).filter((m) => nsIdentity(m));
    await step('kill processes', async () => {
      const nsPaths = [...this.made.map((n) => path.join(NETNS_DIR, n)), ...sandboxes];
      for (let i = 0; i < 5; i++) {
        const pids = pidsInNamespaces(nsPaths);
        if (pids.length === 0) return;
        for (const pid of pids) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {}
        }
        await sleep(100);
      }
      const left = pidsInNamespaces(nsPaths);
      if (left.length) throw new Error(`still running: ${left.join(' ')}`);
    });
    await step('unmount', async () => {
      for (let i = 0; i < 5; i++) {
        const left = mountsUnder(this.dir);
        if (left.length === 0) return;
        for (const m of left) await run(['umount', '-l', m]);
      }
      const still = mountsUnder(this.dir);
      if (still.length) throw new Error(`still mounted: ${still.join(' ')}`);
    });
    for (const name of [...this.made].reverse()) {
      await step(`netns del ${name}`, async () => {
        if (existsSync(path.join(NETNS_DIR, name))) await run(['ip', 'netns', 'del', name], { must: true });
      });
    }
    this.made = [];
    await step('remove folder', async () => {
      if (mountsUnder(this.dir).length === 0) rmSync(this.dir, { recursive: true, force: true });
    });
    this.daemon = undefined;
    if (errors.length) throw new Error(`cleanup of ${this.config}: ${errors.join('; ')}`);
  }
}

/**
 * A child process. Not a thenable on purpose: an execa subprocess is one, and
 * returning it from an async function would wait for it to end.
 */
export class Child {
  constructor(sub, what) {
    this.sub = sub;
    this.what = what;
    this.running = true;
    this.done = sub.then(
      (r) => r,
      (e) => ({ exitCode: 128, stdout: '', stderr: String(e?.message ?? e) }),
    );
    this.done.then(() => {
      this.running = false;
    });
  }
}

function tailOf(file, chars = 4000) {
  try {
    const t = readFileSync(file, 'utf8');
    return t.slice(-chars);
  } catch {
    return '';
  }
}

/** Names of netns left by an earlier run of this suite (for a hint only; never removed here). */
export function leftoverNamespaces() {
  if (!existsSync(NETNS_DIR)) return [];
  return readdirSync(NETNS_DIR).filter((n) => n.startsWith(`${PREFIX}-`));
}
