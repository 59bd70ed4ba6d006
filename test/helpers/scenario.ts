import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, expect } from 'vitest';
import type { CommandResult, DaemonHandle, Topology } from './topology.js';
import { useTopology } from './topology.js';
import { FIXTURES, type ProbeResult, probe } from './traffic.js';

/** What a scenario works with: its own topology and a daemon running in its host namespace. */
export interface Env {
  topo: Topology;
  d: DaemonHandle;
}

export type Runner = (cmd: string, args: string[]) => Promise<CommandResult>;

/** A topology and a daemon of the given datapath for each test of the calling describe. */
export function useDaemon(datapath: string, args: string[] = []): () => Env {
  const topology = useTopology();
  let env: Env | undefined;
  beforeEach(async () => {
    const topo = topology();
    env = { topo, d: await topo.startDaemon({ datapath, args }) };
  });
  return () => {
    if (!env) throw new Error('useDaemon: no daemon (beforeEach failed?)');
    return env;
  };
}

/** Runs the CLI and requires success; returns stdout. */
export async function ok(d: DaemonHandle, args: string[]): Promise<string> {
  const r = await d.cli(args);
  if (r.exitCode !== 0) {
    throw new Error(`bridgeport ${args.join(' ')}: exit ${r.exitCode}\n${r.stderr}\n--- daemon log ---\n${d.logs().slice(-4000)}`);
  }
  return r.stdout;
}

/** Runs the CLI and requires failure; returns stderr. */
export async function fails(d: DaemonHandle, args: string[]): Promise<string> {
  const r = await d.cli(args);
  expect(r.exitCode, `bridgeport ${args.join(' ')} should fail; stdout: ${r.stdout}`).not.toBe(0);
  return r.stderr;
}

export async function inspect(d: DaemonHandle, name: string): Promise<any> {
  return ((await d.cliJson(['inspect', name])) as any[])[0];
}

export const ipOf = (info: any, network: string): string => info.NetworkSettings.Networks[network].IPAddress;

/**
 * Starts an echo server container (`bridgeport run -d`) and waits until it listens.
 * `specs` are echo-server port specs (tcp:80, udp:53, tcp:7000-7002).
 */
export async function runEcho(
  d: DaemonHandle,
  name: string,
  opts: { network?: string; flags?: string[]; specs?: string[] } = {},
): Promise<any> {
  const net = opts.network ? ['--network', opts.network] : [];
  await ok(d, ['run', '-d', '--name', name, ...net, ...(opts.flags ?? []), '--', 'node', FIXTURES.echoServer, ...(opts.specs ?? ['tcp:80', 'udp:53'])]);
  const info = await inspect(d, name);
  for (let i = 0; i < 200; i++) {
    const log = await readFile(info.LogPath, 'utf8').catch(() => '');
    if (log.includes('listening')) return info;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`container ${name} did not start listening: ${await readFile(info.LogPath, 'utf8').catch(() => '')}`);
}

/** Runs a command inside a container via `bridgeport exec`. */
export const inContainer =
  (d: DaemonHandle, name: string): Runner =>
  (cmd, args) =>
    d.cli(['exec', name, '--', cmd, ...args]);

export const peerIp = (r: ProbeResult): string | undefined => r.peer?.split(':')[0];
export const localPort = (r: ProbeResult): number | undefined => (r.local ? Number(r.local.split(':').pop()) : undefined);

/** The lines of bridgeport's own in iptables-save (chains, rules and jumps), for before/after comparisons. */
export async function bridgeportRules(topo: Topology): Promise<string[]> {
  const r = await topo.inHost('iptables-save', []);
  return r.stdout.split('\n').filter((l) => l.includes('BRIDGEPORT'));
}

/**
 * Everything a datapath installed, as comparable lines: bridgeport's iptables
 * lines, and on eBPF the entries of the policy maps pinned in the daemon's
 * bpffs (an endpoint's line names its address) and the tc filters on the uplink.
 */
export async function installed(topo: Topology, d: DaemonHandle): Promise<string[]> {
  const lines = await bridgeportRules(topo);
  const maps = join(d.runDir, 'bpf', 'maps');
  if (!existsSync(maps)) return lines;
  const { BpfMap } = await import('../../src/datapath/ebpf/handles.js');
  const { POLICY_MAPS } = await import('../../src/datapath/ebpf/render.js');
  const { LAYOUT, readIp } = await import('../../src/datapath/ebpf/abi.js');
  for (const name of POLICY_MAPS) {
    const map = BpfMap.fromPin(join(maps, name));
    try {
      for (const [k, v] of map.entries()) {
        const ip = name === 'bp_endpoints' && k.length === 4 ? ` ${readIp(k, 0)}` : '';
        // A published entry's epochs say when it became live, not what it does.
        const value = name === 'bp_published' ? v.subarray(0, LAYOUT.bp_published_value.fields.epoch_from) : v;
        lines.push(`${name} ${k.toString('hex')} ${value.toString('hex')}${ip}`);
      }
    } finally {
      map.close();
    }
  }
  const tc = await topo.inHost('tc', ['filter', 'show', 'dev', topo.uplink, 'ingress']);
  lines.push(...tc.stdout.split('\n').filter((l) => l.includes('bp_')));
  return lines.sort();
}

/** Empties a pinned map behind the daemon's back (what a stray tool could do). */
export async function clearPinnedMap(pin: string): Promise<void> {
  const { BpfMap } = await import('../../src/datapath/ebpf/handles.js');
  const map = BpfMap.fromPin(pin);
  try {
    map.deleteBatch([...map.keys()]);
  } finally {
    map.close();
  }
}

export { FIXTURES, probe };
