import { readdir, readFile, readlink, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { createTopology, nsenterArgv, runCommand, type Topology } from './topology.js';

/**
 * What the harnesses of real runtimes (podman.ts, containerd.ts) share: a
 * runtime runs in a mount namespace of its own joined to the test's host
 * network namespace, and its teardown finds its processes, veths, cgroups
 * and mounts from /proc and /sys to end them and to check nothing is left.
 */

const DEFAULT_TIMEOUT_MS = 60_000;

export async function must(argv: readonly string[], what: string): Promise<string> {
  const r = await runCommand(argv, { timeoutMs: DEFAULT_TIMEOUT_MS });
  if (r.exitCode !== 0) throw new Error(`${what}: ${argv.join(' ')}: exit ${r.exitCode}: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

export async function mntNs(pid: number): Promise<string | undefined> {
  return readlink(`/proc/${pid}/ns/mnt`).catch(() => undefined);
}

export async function processes(): Promise<ProcInfo[]> {
  const out: ProcInfo[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const text = await readFile(`/proc/${e}/stat`, 'utf8').catch(() => '');
    // pid (comm) state ppid …; comm may hold spaces and parentheses.
    const close = text.lastIndexOf(')');
    if (close < 0) continue;
    const [state, ppid] = text.slice(close + 2).split(' ');
    out.push({ pid: Number(e), ppid: Number(ppid), state: state ?? '?', comm: text.slice(text.indexOf('(') + 1, close) });
  }
  return out;
}

export async function cgroupRoots(): Promise<string[]> {
  const roots: string[] = [];
  for (const line of (await readFile('/proc/self/mountinfo', 'utf8')).split('\n')) {
    const [pre, post] = line.split(' - ');
    if (post?.startsWith('cgroup ') || post?.startsWith('cgroup2 ')) roots.push(pre!.split(' ')[4]!);
  }
  return roots;
}

/** Removes an empty cgroup and its empty children; reports what stays (busy or not empty). */
export async function removeCgroupTree(dir: string, left: string[]): Promise<void> {
  let entries: string[];
  try {
    entries = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch {
    return;
  }
  for (const e of entries) await removeCgroupTree(path.join(dir, e), left);
  await rmdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') left.push(`${dir} (${err.code})`);
  });
}

/** index and name of the veths in a network namespace, with their peer's index (`eth0@if7`). */
export async function vethsIn(nsPath: string): Promise<{ index: number; name: string; peer: number }[]> {
  const r = await runCommand(nsenterArgv(nsPath, 'ip', ['-o', 'link', 'show', 'type', 'veth']));
  if (r.exitCode !== 0) throw new Error(`list veths in ${nsPath}: exit ${r.exitCode}: ${r.stderr.trim()}`);
  const out: { index: number; name: string; peer: number }[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /^(\d+):\s+([^:@\s]+)(?:@if(\d+))?/.exec(line);
    if (m) out.push({ index: Number(m[1]), name: m[2]!, peer: Number(m[3] ?? 0) });
  }
  return out;
}

/** Mount points at or under dir in our own mount namespace. */
export async function mountsUnder(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const line of (await readFile('/proc/self/mountinfo', 'utf8')).split('\n')) {
    const mp = (line.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
    if (mp === dir || mp.startsWith(`${dir}/`)) found.push(mp);
  }
  return found;
}

export const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** A TOML string (JSON's escapes are TOML's for what paths hold). */
export const toml = (s: string): string => JSON.stringify(s);

export const describeProcs = (ps: ProcInfo[]): string => ps.map((p) => `${p.pid} (${p.comm})`).join(', ');

export interface ProcInfo {
  pid: number;
  ppid: number;
  state: string;
  comm: string;
}

/** A real runtime's scenario: its topology and the runtime, or a skip saying why it cannot run here. */
export interface RuntimeScenario<R> {
  readonly topo: Topology;
  readonly runtime: R;
  env(ctx: { skip: (note?: string) => void }): { topo: Topology; runtime: R };
}

/**
 * A topology and one runtime for the scenarios of a describe block, made in
 * beforeAll and taken down in afterAll (the runtime first, every error
 * reported). `setup` runs once the topology exists and before the runtime
 * starts (start a bridgeport daemon, write a conflist…) and gives the
 * runtime's options; `teardown` runs after the runtime stopped. When the
 * runtime cannot run here (`whyNot`, or `start` throwing `unavailable`) the
 * scenarios skip (env), saying why.
 */
export function useRuntime<R extends { stop(): Promise<void> }, O>(o: {
  what: string;
  runtime: string;
  whyNot: () => string | undefined;
  start: (topo: Topology, opts: O) => Promise<R>;
  unavailable: abstract new (...args: never[]) => Error;
  setup: (topo: Topology) => O | Promise<O>;
  teardown?: (topo: Topology) => Promise<void>;
}): RuntimeScenario<R> {
  let topo: Topology | undefined;
  let runtime: R | undefined;
  let unavailable: string | undefined = o.whyNot();
  const started = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new Error(`${o.what}: ${what} is not running (${unavailable ?? 'beforeAll did not finish'})`);
    return v;
  };

  beforeAll(async () => {
    if (unavailable !== undefined) {
      console.warn(`[bridgeport] skipping the ${o.what} scenarios: ${unavailable}`);
      return;
    }
    topo = await createTopology();
    const opts = await o.setup(topo);
    try {
      runtime = await o.start(topo, opts);
    } catch (err) {
      if (!(err instanceof o.unavailable)) throw err;
      unavailable = err.message;
      console.warn(`[bridgeport] skipping the ${o.what} scenarios: ${o.runtime} cannot start here: ${err.message}`);
    }
  }, 120_000);

  afterAll(async () => {
    const errors: unknown[] = [];
    await runtime?.stop().catch((e: unknown) => errors.push(e));
    if (topo && o.teardown) await o.teardown(topo).catch((e: unknown) => errors.push(e));
    await topo?.cleanup().catch((e: unknown) => errors.push(e));
    if (errors.length) throw new AggregateError(errors, errors.map(message).join('; '));
  }, 120_000);

  return {
    get topo() {
      return started(topo, 'the topology');
    },
    get runtime() {
      return started(runtime, o.runtime);
    },
    env(ctx) {
      if (unavailable !== undefined) ctx.skip(`${o.runtime} cannot run: ${unavailable}`);
      return { topo: started(topo, 'the topology'), runtime: started(runtime, o.runtime) };
    },
  };
}
