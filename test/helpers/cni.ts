import { randomBytes } from 'node:crypto';
import { mkdir, symlink } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { expect } from 'vitest';
import { createNetns, deleteNetns } from '../../src/host/netns.js';
import { ok } from './scenario.js';
import { type DaemonHandle, REPO_ROOT, type Topology } from './topology.js';

/** The plugin executable as `make build` leaves it (a static C relay). */
export const CNI_PLUGIN = path.join(REPO_ROOT, 'dist', 'bridgeport-cni');

export interface CniInvocation {
  command: string;
  containerId?: string;
  netns?: string;
  ifname?: string;
  args?: string;
  /** The network configuration: an object (written as JSON) or raw stdin text. */
  config: Record<string, unknown> | string;
}

export interface CniOutcome {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** stdout parsed, when it is JSON. */
  json?: any;
}

/**
 * Runs the plugin as a runtime does: the CNI_* environment, the configuration
 * on stdin, in `hostNs` (the runtime's network namespace).
 */
export async function cniCall(hostNs: string, inv: CniInvocation): Promise<CniOutcome> {
  const env: Record<string, string> = { CNI_COMMAND: inv.command, CNI_PATH: path.dirname(CNI_PLUGIN) };
  if (inv.containerId !== undefined) env.CNI_CONTAINERID = inv.containerId;
  if (inv.netns !== undefined) env.CNI_NETNS = inv.netns;
  if (inv.ifname !== undefined) env.CNI_IFNAME = inv.ifname;
  if (inv.args !== undefined) env.CNI_ARGS = inv.args;
  const input = typeof inv.config === 'string' ? inv.config : JSON.stringify(inv.config);
  const r = await execa('nsenter', [`--net=${hostNs}`, '--', CNI_PLUGIN], { input, env, extendEnv: false, reject: false, timeout: 60_000 });
  const stdout = String(r.stdout ?? '');
  let json: unknown;
  try {
    json = stdout.trim() ? JSON.parse(stdout) : undefined;
  } catch {
    json = undefined;
  }
  return { exitCode: r.exitCode ?? 128, stdout, stderr: String(r.stderr ?? ''), json };
}

/**
 * What a runtime needs to attach to bridgeport: a daemon of `datapath` in the
 * topology's host namespace, network `net`, its conflist written by
 * `bridgeport cni conflist` into `confDir`, and the plugin as `bridgeport` in
 * `pluginDir`, both under the topology's work dir.
 */
export async function startCniBed(topo: Topology, datapath: string, net: string, subnet: string): Promise<{ d: DaemonHandle; confDir: string; pluginDir: string }> {
  const d = await topo.startDaemon({ datapath, args: ['--cni-gc-interval', '1'] });
  await ok(d, ['network', 'create', net, '--subnet', subnet]);
  const confDir = path.join(topo.workDir, 'net.d');
  await ok(d, ['cni', 'conflist', net, '--write', confDir]);
  const pluginDir = path.join(topo.workDir, 'cni-bin');
  await mkdir(pluginDir, { recursive: true });
  await symlink(CNI_PLUGIN, path.join(pluginDir, 'bridgeport'));
  return { d, confDir, pluginDir };
}

/** A random 64-hex container ID, as podman and the CRI make them. */
export const containerId = (): string => randomBytes(32).toString('hex');

/** An empty network namespace standing for a runtime's sandbox; removed by the returned function. */
export async function makeSandbox(dir: string, name: string): Promise<{ path: string; remove: () => Promise<void> }> {
  const p = path.join(dir, `sandbox-${name}`);
  await createNetns(p);
  return { path: p, remove: () => deleteNetns(p) };
}

const CIDR_V4 = /^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/;
const IP_V4 = /^\d{1,3}(\.\d{1,3}){3}$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/**
 * ADD's result against the spec's schema for `version` (SPEC.md "Success",
 * and the 0.4.0 result's per-IP "version"): every field the spec names, of
 * the right type, and nothing it does not name.
 */
export function expectAddResult(version: string, result: any, ifname: string, netns: string): void {
  expect(result.cniVersion).toBe(version);
  expect(Object.keys(result).sort()).toEqual(expect.arrayContaining(['cniVersion', 'interfaces', 'ips']));
  for (const k of Object.keys(result)) expect(['cniVersion', 'interfaces', 'ips', 'routes', 'dns']).toContain(k);
  expect(Array.isArray(result.interfaces)).toBe(true);
  const sandboxIf = result.interfaces.findIndex((i: any) => i.sandbox !== undefined);
  expect(sandboxIf).toBeGreaterThanOrEqual(0);
  const iface = result.interfaces[sandboxIf];
  expect(iface.name).toBe(ifname);
  expect(iface.mac).toMatch(MAC);
  expect(iface.sandbox).toBe(netns);
  const allowedIf = version === '1.1.0' ? ['name', 'mac', 'mtu', 'sandbox', 'socketPath', 'pciID'] : ['name', 'mac', 'sandbox'];
  for (const k of Object.keys(iface)) expect(allowedIf).toContain(k);
  expect(result.ips.length).toBeGreaterThan(0);
  for (const ip of result.ips) {
    expect(ip.address).toMatch(CIDR_V4);
    if (ip.gateway !== undefined) expect(ip.gateway).toMatch(IP_V4);
    expect(ip.interface).toBe(sandboxIf);
    if (version === '0.4.0') expect(ip.version).toBe('4');
    else expect(ip.version).toBeUndefined();
  }
  for (const r of result.routes ?? []) {
    expect(r.dst).toMatch(CIDR_V4);
    if (r.gw !== undefined) expect(r.gw).toMatch(IP_V4);
  }
}

/** A CNI error object on stdout and a non-zero exit (SPEC.md "Error"). */
export function expectCniError(out: CniOutcome, code: number, message?: RegExp): void {
  expect(out.exitCode, `expected CNI error ${code}; stdout: ${out.stdout} stderr: ${out.stderr}`).not.toBe(0);
  expect(out.json, `stdout is not a CNI error object: ${out.stdout}`).toBeDefined();
  expect(out.json.code).toBe(code);
  expect(typeof out.json.msg).toBe('string');
  expect(typeof out.json.cniVersion).toBe('string');
  if (message) expect(out.json.msg).toMatch(message);
}
