// Beds of the CNI suite (bench/cni.mjs): one per configuration, each a "host"
// network namespace of its own with an uplink veth to a client netns, as the
// other suites build them, where a runtime's plugin calls are made:
//
//   client netns ── eth0 ══ veth ══ uplink0 ── host netns ── bridge ─┬─ sandbox s-0 (eth0)
//   198.18.0.2/24                    198.18.0.1/24                   ├─ sandbox s-1
//                                                                    └─ …
//
// - ebpf, iptables: bridgeport's daemon (--datapath D) runs in the host netns
//   (its state, run and BPF folders under the bed's folder); the plugin is
//   dist/bridgeport-cni, one process per verb, relaying to the daemon's socket.
// - reference: no daemon; the chain `bridge` (isGateway, ipMasq, hairpinMode;
//   IPAM host-local with its dataDir in the bed's folder) then `portmap`
//   (capabilities portMappings) from /usr/lib/cni, driven as libcni drives a
//   conflist: ADD runs bridge, then portmap with prevResult = bridge's result;
//   DEL runs portmap, then bridge, each with prevResult = the chain's result.
//
// Sandboxes are plain network namespace files in the bed's folder (`unshare
// --net=FILE`, lo up), as a runtime's. Plugins run in the host netns through
// a small C timer (TIMER_C, built into the scratch folder): it reads the
// configuration, joins the namespace, then takes the wall time from fork to
// the plugin's exit, so neither Node's spawn nor nsenter is in the figure.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { CLIENT_IF, CLIENT_IP, Child, NETNS_DIR, UPLINK, hostIp, nsArgv, pidsInNamespaces, run, sleep } from './topology.mjs';

export const CNI_CONFIGS = ['ebpf', 'iptables', 'reference'];
export const LABELS = {
  ebpf: 'bridgeport-cni, daemon `--datapath ebpf`',
  iptables: 'bridgeport-cni, daemon `--datapath iptables`',
  reference: '`bridge` (isGateway, ipMasq, hairpinMode) + `host-local` + `portmap`, from /usr/lib/cni',
};
export const PREFIX = 'bpcni';
export const HOST_IP = hostIp(0);
export const NET_NAME = 'bpcni';
export const SUBNET = '10.89.0.0/16';
export const GATEWAY = '10.89.0.1';
export const CNI_VERSION = '1.0.0';
export const CNI_DIR = '/usr/lib/cni';
/** The environment a runtime gives its plugins: its own PATH (the reference plugins run iptables from it) and the CNI_* variables. */
const PATH_ENV = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const SHORT = { ebpf: 'eb', iptables: 'ip', reference: 'rf' };
/** Where the bridgeport daemon's Prometheus endpoint listens, inside the bed's own host netns. */
const METRICS_ADDR = '127.0.0.1:9477';
const PLUGIN_TIMEOUT_MS = 120_000;

/**
 * cni-timer NETNS|- PROG [ARG...]: reads its stdin whole, joins the network
 * namespace NETNS ("-": stays), puts the bytes in a pipe, then forks and
 * execs PROG with that pipe as stdin and this environment; prints
 * "<wall ns> <status>\n" (status: the exit code, 128+signal when killed, 127
 * when exec failed) and then PROG's stdout. Wall time: from just before the
 * fork to waitpid's return, stdout read meanwhile (as Go's exec does);
 * PROG's stderr is passed through.
 */
export const TIMER_C = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what) { fprintf(stderr, "cni-timer: %s: %s\n", what, strerror(errno)); exit(2); }

static char *grow(char *p, size_t *cap, size_t len) {
	if (len < *cap) return p;
	*cap *= 2;
	p = realloc(p, *cap);
	if (!p) die("realloc");
	return p;
}

int main(int argc, char **argv) {
	if (argc < 3) { fputs("usage: cni-timer NETNS|- PROG [ARG...]\n", stderr); return 2; }
	size_t cap = 65536, len = 0;
	char *in = malloc(cap);
	if (!in) die("malloc");
	for (;;) {
		in = grow(in, &cap, len);
		ssize_t n = read(0, in + len, cap - len);
		if (n < 0) { if (errno == EINTR) continue; die("read stdin"); }
		if (n == 0) break;
		len += (size_t)n;
	}
	if (strcmp(argv[1], "-")) {
		int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) die(argv[1]);
		close(fd);
	}
	int inp[2], outp[2];
	if (pipe2(inp, O_CLOEXEC) < 0 || pipe2(outp, O_CLOEXEC) < 0) die("pipe");
	if (len > 65536 && fcntl(inp[1], F_SETPIPE_SZ, (int)len) < 0) die("stdin larger than a pipe");
	for (size_t off = 0; off < len;) {
		ssize_t w = write(inp[1], in + off, len - off);
		if (w < 0) { if (errno == EINTR) continue; die("write stdin"); }
		off += (size_t)w;
	}
	close(inp[1]);
	size_t ocap = 65536, olen = 0;
	char *out = malloc(ocap);
	if (!out) die("malloc");
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid_t pid = fork();
	if (pid < 0) die("fork");
	if (pid == 0) {
		dup2(inp[0], 0);
		dup2(outp[1], 1);
		execv(argv[2], argv + 2);
		fprintf(stderr, "cni-timer: exec %s: %s\n", argv[2], strerror(errno));
		_exit(127);
	}
	close(inp[0]);
	close(outp[1]);
	for (;;) {
		out = grow(out, &ocap, olen);
		ssize_t n = read(outp[0], out + olen, ocap - olen);
		if (n < 0) { if (errno == EINTR) continue; die("read stdout"); }
		if (n == 0) break;
		olen += (size_t)n;
	}
	int st;
	while (waitpid(pid, &st, 0) < 0) if (errno != EINTR) die("waitpid");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long long ns = (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
	int status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	printf("%lld %d\n", ns, status);
	fwrite(out, 1, olen, stdout);
	return 0;
}
`;

/** Compiles C source text into dir/name with the first compiler found. */
export function buildC(dir, name, source, { file } = {}) {
  mkdirSync(dir, { recursive: true });
  const src = file ?? path.join(dir, `${name}.c`);
  if (!file) writeFileSync(src, source);
  const out = path.join(dir, name);
  let last;
  for (const cc of ['cc', 'gcc', 'clang']) {
    try {
      execFileSync(cc, ['-O2', '-Wall', '-o', out, src], { stdio: ['ignore', 'pipe', 'pipe'] });
      return out;
    } catch (e) {
      last = e;
    }
  }
  throw new Error(`build ${src}: ${last?.stderr?.toString() || last?.message}`);
}

/**
 * Runs prog through the timer: in nsPath ("-": here), stdin `input`, env the
 * variables given (nothing inherited). → { ms, exitCode, stdout, stderr }.
 */
export async function timed(timer, nsPath, prog, args, { input = '', env = {}, timeoutMs = PLUGIN_TIMEOUT_MS } = {}) {
  const r = await execa(timer, [nsPath, prog, ...args], { input, env: { PATH: PATH_ENV, ...env }, extendEnv: false, reject: false, timeout: timeoutMs, stripFinalNewline: false });
  const out = String(r.stdout ?? '');
  const nl = out.indexOf('\n');
  const m = /^(\d+) (\d+)$/.exec(nl < 0 ? out : out.slice(0, nl));
  if (r.exitCode !== 0 || !m) {
    throw new Error(`cni-timer ${prog}: ${r.timedOut ? 'timed out' : `exit ${r.exitCode}`}: ${(String(r.stderr ?? '') || out).trim().slice(-800)}`);
  }
  return { ms: Number(m[1]) / 1e6, exitCode: Number(m[2]), stdout: out.slice(nl + 1), stderr: String(r.stderr ?? '') };
}

/** A random 64-hex container ID, as podman and the CRI make them. */
export const containerId = () => randomBytes(32).toString('hex');


/** Mount points at or under dir, deepest first. */
export function mountsUnder(dir) {
  const prefix = `${dir}/`;
  const unoctal = (s) => s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(Number.parseInt(o, 8)));
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => unoctal(l.split(' ')[4] ?? ''))
    .filter((m) => m && (m === dir || m.startsWith(prefix)))
    .sort((a, b) => b.length - a.length);
}

/** Unmounts paths, many per umount call. */
async function unmountAll(paths) {
  for (let i = 0; i < paths.length; i += 200) await run(['umount', '-l', ...paths.slice(i, i + 200)], { timeoutMs: 120_000 });
}

/** A fresh id no namespace of this prefix uses yet. */
export function newRunId() {
  for (;;) {
    const id = randomBytes(3).toString('hex');
    if (!existsSync(NETNS_DIR) || !readdirSync(NETNS_DIR).some((n) => n.startsWith(`${PREFIX}-${id}-`))) return id;
  }
}

/** Names of netns left by an earlier run of this suite (a hint only; never removed here). */
export function leftoverNamespaces() {
  return existsSync(NETNS_DIR) ? readdirSync(NETNS_DIR).filter((n) => n.startsWith(`${PREFIX}-`)) : [];
}

function tailOf(file, chars = 3000) {
  try {
    return readFileSync(file, 'utf8').slice(-chars);
  } catch {
    return '';
  }
}

/** Prometheus text → value of `name{labels}` (labels as written), summed over matches of the given operation. */
export function metricValue(text, name, operation) {
  let v;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) || !line.includes(`operation="${operation}"`)) continue;
    v = (v ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return v;
}

/**
 * One configuration: its host and client namespaces, its daemon (bridgeport)
 * and its sandboxes. Everything it makes, tearDown() removes; it is safe at
 * any point of setUp() and more than once.
 */
export class CniBed {
  constructor({ config, runId, workDir, repo, timer, log }) {
    if (!SHORT[config]) throw new Error(`unknown configuration ${config}`);
    this.config = config;
    this.repo = repo;
    this.timer = timer;
    this.log = log;
    this.dir = path.join(workDir, config);
    this.sbDir = path.join(this.dir, 'sandboxes');
    this.bin = path.join(repo, 'bin', 'bridgeport');
    this.plugin = path.join(repo, 'dist', 'bridgeport-cni');
    const base = `${PREFIX}-${runId}-${SHORT[config]}`;
    this.ns = { host: `${base}-h`, client: `${base}-c` };
    this.paths = { host: path.join(NETNS_DIR, this.ns.host), client: path.join(NETNS_DIR, this.ns.client) };
    this.made = [];
    this.bridgeport = config !== 'reference';
    this.daemon = undefined;
    this.procs = new Set();
    /** Attachments that stay for the run (the fill): { id, sb, port, result }. */
    this.attached = [];
  }

  async setUp() {
    mkdirSync(this.sbDir, { recursive: true });
    for (const role of ['host', 'client']) {
      await run(['ip', 'netns', 'add', this.ns[role]], { must: true });
      this.made.push(this.ns[role]);
      await run(nsArgv(this.paths[role], 'ip', ['link', 'set', 'lo', 'up']), { must: true });
    }
    const host = (args) => run(nsArgv(this.paths.host, 'ip', args), { must: true });
    const client = (args) => run(nsArgv(this.paths.client, 'ip', args), { must: true });
    // Made from inside the host netns so that the pair never shows in the root namespace.
    await host(['link', 'add', UPLINK, 'type', 'veth', 'peer', 'name', CLIENT_IF, 'netns', this.ns.client]);
    await host(['addr', 'add', `${HOST_IP}/24`, 'dev', UPLINK]);
    await client(['addr', 'add', `${CLIENT_IP}/24`, 'dev', CLIENT_IF]);
    await host(['link', 'set', UPLINK, 'up']);
    await client(['link', 'set', CLIENT_IF, 'up']);
    await host(['route', 'add', 'default', 'via', CLIENT_IP, 'dev', UPLINK]);
    if (this.bridgeport) await this.startDaemon();
    else {
      this.ipamDir = path.join(this.dir, 'ipam');
      mkdirSync(this.ipamDir, { recursive: true });
    }
  }

  async startDaemon() {
    this.stateDir = path.join(this.dir, 'state');
    this.runDir = path.join(this.dir, 'run');
    this.socket = path.join(this.runDir, 'bridgeport.sock');
    mkdirSync(this.stateDir, { recursive: true });
    mkdirSync(this.runDir, { recursive: true });
    this.logFile = path.join(this.dir, 'daemon.log');
    const fd = openSync(this.logFile, 'a');
    const argv = nsArgv(this.paths.host, process.execPath, [
      this.bin,
      'daemon',
      '--datapath',
      this.config,
      '--uplink',
      UPLINK,
      '--state-dir',
      this.stateDir,
      '--run-dir',
      this.runDir,
      // Inside this bed's own host netns: the operation durations, for where the time goes.
      '--metrics-addr',
      METRICS_ADDR,
      // No Docker driver socket: the host's /run/docker/plugins is not the bench's to touch.
      '--docker-plugin',
      '',
    ]);
    const daemon = new Child(execa(argv[0], argv.slice(1), { reject: false, stdin: 'ignore', stdout: fd, stderr: fd }), 'bridgeport daemon');
    closeSync(fd);
    this.daemon = daemon;
    let ended;
    daemon.done.then((r) => {
      ended = r.exitCode ?? r.signal ?? 'ended';
    });
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (ended !== undefined) throw new Error(`bridgeport daemon (${this.config}) ended before it was ready (${ended}):\n${tailOf(this.logFile)}`);
      if (existsSync(this.socket) && (await this.cli(['status', '--json'], { must: false, timeoutMs: 10_000 })).exitCode === 0) break;
      if (Date.now() > deadline) throw new Error(`bridgeport daemon (${this.config}) not ready after 60 s:\n${tailOf(this.logFile)}`);
      await sleep(100);
    }
    const status = JSON.parse((await this.cli(['status', '--json'])).stdout);
    if (status.Datapath !== this.config) throw new Error(`bridgeport runs datapath ${status.Datapath}, asked ${this.config}: ${status.DatapathReason ?? ''}`);
  }

  cli(args, { timeoutMs = 120_000, must = true } = {}) {
    return run(nsArgv(this.paths.host, process.execPath, [this.bin, '-H', `unix://${this.socket}`, ...args]), { timeoutMs, must });
  }

  /** The daemon's /metrics text (bridgeport beds). */
  async scrape() {
    const r = await run(nsArgv(this.paths.host, 'curl', ['-s', '-S', '--max-time', '20', `http://${METRICS_ADDR}/metrics`]), { timeoutMs: 30_000, must: true });
    return r.stdout;
  }

  /** Daemon-side totals of the CNI operations so far: seconds and count of "attach endpoint …" and "delete endpoint …" (operation labels attach, delete). */
  async operationTotals() {
    if (!this.bridgeport) return undefined;
    const text = await this.scrape();
    const get = (op) => ({
      s: metricValue(text, 'bridgeport_operation_duration_seconds_sum', op) ?? 0,
      n: metricValue(text, 'bridgeport_operation_duration_seconds_count', op) ?? 0,
    });
    return { add: get('attach'), del: get('delete') };
  }

  /** A new sandbox: a network namespace file with lo up. */
  async sandbox(name) {
    const p = path.join(this.sbDir, name);
    writeFileSync(p, '');
    await run(['unshare', `--net=${p}`, 'ip', 'link', 'set', 'lo', 'up'], { must: true });
    return p;
  }

  async removeSandbox(p) {
    for (const pid of pidsInNamespaces([p])) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
    await run(['umount', '-l', p]);
    rmSync(p, { force: true });
  }

  /** The network configuration (for the reference: the conflist) with one port mapping hostPort → 80/tcp. */
  portMappings(hostPort) {
    return [{ hostPort, containerPort: 80, protocol: 'tcp', hostIP: '' }];
  }

  bridgeportConf(extra) {
    return {
      cniVersion: CNI_VERSION,
      name: NET_NAME,
      type: 'bridgeport',
      socket: this.socket,
      subnet: SUBNET,
      gateway: GATEWAY,
      capabilities: { portMappings: true },
      ...extra,
    };
  }

  /** The reference chain's plugin configurations, as libcni hands them out (name and cniVersion added; runtimeConfig only to the plugin that declares the capability). */
  bridgeConf(extra) {
    return {
      cniVersion: CNI_VERSION,
      name: NET_NAME,
      type: 'bridge',
      bridge: 'cni0',
      isGateway: true,
      ipMasq: true,
      hairpinMode: true,
      ipam: { type: 'host-local', ranges: [[{ subnet: SUBNET, gateway: GATEWAY }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: this.ipamDir },
      ...extra,
    };
  }

  portmapConf(extra) {
    return { cniVersion: CNI_VERSION, name: NET_NAME, type: 'portmap', capabilities: { portMappings: true }, snat: true, ...extra };
  }

  /** One plugin process, as a runtime runs it, in the host netns; throws on a CNI error. */
  async call(plugin, command, { id, sb, conf }) {
    const env = {
      CNI_COMMAND: command,
      CNI_CONTAINERID: id,
      CNI_NETNS: sb,
      CNI_IFNAME: 'eth0',
      CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAME=c-${id.slice(0, 12)}`,
      CNI_PATH: this.bridgeport ? path.dirname(this.plugin) : CNI_DIR,
    };
    const r = await timed(this.timer, this.paths.host, plugin, [], { input: JSON.stringify(conf), env });
    if (r.exitCode !== 0) throw new Error(`${this.config}: ${path.basename(plugin)} ${command}: exit ${r.exitCode}: ${(r.stdout.trim() || r.stderr.trim()).slice(-800)}`);
    let json;
    if (r.stdout.trim()) {
      try {
        json = JSON.parse(r.stdout);
      } catch {
        throw new Error(`${this.config}: ${path.basename(plugin)} ${command}: stdout is not JSON: ${r.stdout.slice(0, 300)}`);
      }
    }
    return { ms: r.ms, json };
  }

  /** CNI ADD of sandbox sb as container id with hostPort → 80/tcp: { ms, parts, result }. */
  async add(id, sb, hostPort) {
    const runtimeConfig = { portMappings: this.portMappings(hostPort) };
    if (this.bridgeport) {
      const r = await this.call(this.plugin, 'ADD', { id, sb, conf: this.bridgeportConf({ runtimeConfig }) });
      return { ms: r.ms, parts: { 'bridgeport-cni': r.ms }, result: r.json };
    }
    const b = await this.call(path.join(CNI_DIR, 'bridge'), 'ADD', { id, sb, conf: this.bridgeConf() });
    const p = await this.call(path.join(CNI_DIR, 'portmap'), 'ADD', { id, sb, conf: this.portmapConf({ runtimeConfig, prevResult: b.json }) });
    return { ms: b.ms + p.ms, parts: { bridge: b.ms, portmap: p.ms }, result: p.json };
  }

  /** CNI DEL, prevResult the result ADD gave (libcni's cached result): { ms, parts }. */
  async del(id, sb, hostPort, result) {
    const runtimeConfig = { portMappings: this.portMappings(hostPort) };
    if (this.bridgeport) {
      const r = await this.call(this.plugin, 'DEL', { id, sb, conf: this.bridgeportConf({ runtimeConfig, prevResult: result }) });
      return { ms: r.ms, parts: { 'bridgeport-cni': r.ms } };
    }
    const p = await this.call(path.join(CNI_DIR, 'portmap'), 'DEL', { id, sb, conf: this.portmapConf({ runtimeConfig, prevResult: result }) });
    const b = await this.call(path.join(CNI_DIR, 'bridge'), 'DEL', { id, sb, conf: this.bridgeConf({ prevResult: result }) });
    return { ms: p.ms + b.ms, parts: { portmap: p.ms, bridge: b.ms } };
  }

  /** Adds attachments (sandboxes s-i, host ports 10000+i) until n stay; → ms of the ADDs. progress(count) every `every`. */
  async fillTo(n, shouldStop, { every = 100, progress } = {}) {
    const ms = [];
    while (this.attached.length < n && !shouldStop()) {
      if (progress && this.attached.length % every === 0 && ms.length) progress(this.attached.length);
      const i = this.attached.length;
      const sb = await this.sandbox(`s-${i}`);
      const id = containerId();
      const port = 10000 + i;
      const r = await this.add(id, sb, port);
      this.attached.push({ id, sb, port, result: r.result });
      ms.push(r.ms);
    }
    return ms;
  }

  spawn(nsPath, cmd, args) {
    const argv = nsArgv(nsPath, cmd, args);
    const child = new Child(execa(argv[0], argv.slice(1), { reject: false, stdin: 'ignore', buffer: true }), argv.slice(3).join(' '));
    this.procs.add(child);
    child.done.then(() => this.procs.delete(child));
    return child;
  }

  async stop(child, graceMs = 3_000) {
    if (!child) return;
    if (child.running) {
      child.sub.kill('SIGTERM');
      const done = await Promise.race([child.done.then(() => true), sleep(graceMs).then(() => false)]);
      if (!done) child.sub.kill('SIGKILL');
    }
    await child.done;
  }

  /** GET http://HOST_IP:port/ from the client netns; the body is the address the server saw. */
  async fetchFromClient(port, maxTime = 3) {
    const r = await run(nsArgv(this.paths.client, 'curl', ['-s', '-S', '--max-time', String(maxTime), `http://${HOST_IP}:${port}/`]), { timeoutMs: (maxTime + 5) * 1000 });
    return { ok: r.exitCode === 0, seen: r.stdout.trim().split(':')[0], err: r.stderr.trim() };
  }

  /**
   * Before measuring: one ADD with a server in the sandbox, reached from the
   * client through the published port with its own address kept, and gone
   * after DEL. Returns the facts seen; throws at the first that is wrong.
   */
  async verify(httpd, port) {
    const facts = [];
    const must = (cond, msg) => {
      if (!cond) throw new Error(`${this.config}: ${msg}`);
      facts.push(msg);
    };
    const sb = await this.sandbox('check');
    const id = containerId();
    let added;
    let server;
    try {
      added = await this.add(id, sb, port);
      const addr = added.result?.ips?.[0]?.address;
      must(typeof addr === 'string' && addr.startsWith('10.89.'), `ADD gave the sandbox ${addr} in ${SUBNET}`);
      server = this.spawn(sb, httpd, ['80', '1']);
      let r;
      for (let i = 0; i < 50; i++) {
        r = await this.fetchFromClient(port);
        if (r.ok) break;
        await sleep(100);
      }
      must(r.ok, `client → ${HOST_IP}:${port} answered${r.ok ? '' : ` (${r.err})`}`);
      must(r.seen === CLIENT_IP, `the sandbox saw the client's own address ${CLIENT_IP} (saw ${r.seen})`);
      await this.stop(server);
      server = undefined;
      await this.del(id, sb, port, added.result);
      added = undefined;
      const gone = await this.fetchFromClient(port, 1);
      must(!gone.ok, `after DEL, ${HOST_IP}:${port} no longer answers`);
      const link = await run(nsArgv(sb, 'ip', ['link', 'show', 'eth0']));
      must(link.exitCode !== 0, 'after DEL, the sandbox has no eth0');
      if (this.bridgeport) {
        const save = (await run(nsArgv(this.paths.host, 'iptables-save', []), { must: true })).stdout;
        if (this.config === 'ebpf') must(!/BRIDGEPORT/.test(save), 'no iptables rule of bridgeport\'s (eBPF datapath)');
        else must(/BRIDGEPORT/.test(save), 'bridgeport\'s iptables chains are there (iptables datapath)');
      }
    } finally {
      if (server) await this.stop(server);
      if (added) await this.del(id, sb, port, added.result).catch(() => undefined);
      await this.removeSandbox(sb);
    }
    return facts;
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
    if (this.daemon) {
      await step('stop daemon', () => this.stop(this.daemon, 15_000));
      await step('daemon --cleanup', async () => {
        if (!existsSync(this.paths.host)) return;
        await run(nsArgv(this.paths.host, process.execPath, [this.bin, 'daemon', '--cleanup', '--state-dir', this.stateDir, '--run-dir', this.runDir, '--metrics-addr', '']), {
          must: true,
          timeoutMs: 600_000,
        });
      });
    }
    const sandboxes = existsSync(this.sbDir) ? readdirSync(this.sbDir).map((f) => path.join(this.sbDir, f)) : [];
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
    // The host netns first: its veths take their sandbox ends with them.
    for (const name of [...this.made].reverse()) {
      await step(`netns del ${name}`, async () => {
        if (existsSync(path.join(NETNS_DIR, name))) await run(['ip', 'netns', 'del', name], { must: true });
      });
    }
    this.made = [];
    await step('unmount', async () => {
      for (let i = 0; i < 5; i++) {
        const left = mountsUnder(this.dir);
        if (left.length === 0) return;
        await unmountAll(left);
      }
      const still = mountsUnder(this.dir);
      if (still.length) throw new Error(`still mounted: ${still.slice(0, 5).join(' ')}${still.length > 5 ? ` (${still.length} in all)` : ''}`);
    });
    await step('remove folder', async () => {
      if (mountsUnder(this.dir).length === 0) rmSync(this.dir, { recursive: true, force: true });
    });
    this.daemon = undefined;
    this.attached = [];
    if (errors.length) throw new Error(`cleanup of ${this.config}: ${errors.join('; ')}`);
  }
}
