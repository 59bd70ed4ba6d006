import { run } from './exec.js';

/** Reads and changes links, addresses and routes with iproute2 (`ip -json` to read, `ip -batch` to write). */

export interface Link {
  ifname: string;
  ifindex: number;
  address: string;
  mtu: number;
  master?: string;
  operstate: string;
  linkinfo?: { info_kind?: string; info_slave_kind?: string; info_slave_data?: { hairpin?: boolean } };
}

export interface Ipv4Address {
  ifname: string;
  address: string;
  prefix: number;
}

export interface Route {
  dst: string;
  dev?: string;
  gateway?: string;
}

async function ipJson<T>(args: string[], netns?: string): Promise<T> {
  const out = await run('ip', ['-json', ...args], { netns });
  return (out.trim() ? JSON.parse(out) : []) as T;
}

export async function listLinks(netns?: string): Promise<Link[]> {
  return ipJson<Link[]>(['-details', 'link', 'show'], netns);
}

export async function getLink(name: string, netns?: string): Promise<Link | undefined> {
  return (await listLinks(netns)).find((l) => l.ifname === name);
}

type AddrInfo = { family: string; local: string; prefixlen: number }[];

const ipv4Of = (l: { ifname: string; addr_info?: AddrInfo }): Ipv4Address[] =>
  (l.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => ({ ifname: l.ifname, address: a.local, prefix: a.prefixlen }));

export async function listIpv4Addresses(netns?: string): Promise<Ipv4Address[]> {
  return (await ipJson<{ ifname: string; addr_info?: AddrInfo }[]>(['-4', 'addr', 'show'], netns)).flatMap(ipv4Of);
}

/** Every link and every IPv4 address, from one run of `ip` (each run costs a process: tens of milliseconds here). */
export async function listLinksAndIpv4(netns?: string): Promise<{ links: Link[]; addresses: Ipv4Address[] }> {
  const raw = await ipJson<(Link & { addr_info?: AddrInfo })[]>(['-details', 'addr', 'show'], netns);
  return { links: raw, addresses: raw.flatMap(ipv4Of) };
}

export async function listRoutes(netns?: string): Promise<Route[]> {
  return ipJson<Route[]>(['-4', 'route', 'show', 'table', 'main'], netns);
}

export async function defaultRouteInterface(netns?: string): Promise<string | undefined> {
  return (await listRoutes(netns)).find((r) => r.dst === 'default')?.dev;
}

/**
 * Applies many changes in one `ip` process. ip stops at the first failing
 * line; callers undo what earlier batches did.
 */
export async function ipBatch(lines: readonly string[], netns?: string): Promise<void> {
  if (lines.length === 0) return;
  for (const line of lines) {
    // Tokens are split on whitespace by ip itself; refuse anything that could smuggle more.
    if (/[\n\r"'\\#]/.test(line)) throw new Error(`ip batch line has a forbidden character: ${line}`);
  }
  await run('ip', ['-batch', '-'], { input: `${lines.join('\n')}\n`, netns });
}
