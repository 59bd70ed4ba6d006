import { parseCidr } from '../../ipam/ipv4.js';
import type { Proto } from '../../model/port-spec.js';
import { type Counter, type DatapathStats, type DpNetwork, DROP_REASONS, type DropReason } from '../datapath.js';
import { OWN_CHAINS, type TableName } from './render.js';
import type { Saved, SavedTable } from './restore.js';

/**
 * The iptables datapath's counters: the rules' own packet/byte counters (one
 * `iptables-save -c`), found by their `bridgeport:count:…` and
 * `bridgeport:drop:…` comments, and flows from the kernel's conntrack table.
 * Pure: parsed text in, DatapathStats out.
 */

/** One conntrack entry, as `conntrack -L` prints it: the original and the reply tuple. */
export interface Flow {
  proto: string;
  orig: { src: string; dst: string };
  reply: { src: string; dst: string };
}

export function parseConntrack(text: string): Flow[] {
  const flows: Flow[] = [];
  for (const line of text.split('\n')) {
    const proto = /^(\w+)\s/.exec(line)?.[1];
    const src = [...line.matchAll(/\bsrc=(\S+)/g)].map((m) => m[1]!);
    const dst = [...line.matchAll(/\bdst=(\S+)/g)].map((m) => m[1]!);
    if (!proto || src.length < 2 || dst.length < 2) continue;
    flows.push({ proto, orig: { src: src[0]!, dst: dst[0]! }, reply: { src: src[1]!, dst: dst[1]! } });
  }
  return flows;
}

const counterOf = (text: string): Counter => {
  const m = /^\[(\d+):(\d+)\]$/.exec(text);
  return { packets: m ? Number(m[1]) : 0, bytes: m ? Number(m[2]) : 0 };
};
const add = (a: Counter, b: Counter): Counter => ({ packets: a.packets + b.packets, bytes: a.bytes + b.bytes });
const zero = (): Counter => ({ packets: 0, bytes: 0 });

/**
 * Drop reasons iptables can observe: each has DROP rules of its own. Absent, not zero:
 * spoofed_source: this datapath has no anti-spoofing (nor has Docker);
 * no_published_port: nothing drops it, the host's own stack answers;
 * conntrack_full, nat_ports_exhausted, tuple_clash: the kernel drops those itself, no rule sees them
 * (`conntrack -S` drop is packets only, and not only for a full table);
 * stale_flow: netfilter picks such a segment up as a flow (nf_conntrack_tcp_loose);
 * invalid_packet: no rule drops INVALID.
 */
export const OBSERVED_DROPS: readonly DropReason[] = ['icc_denied', 'network_isolation', 'internal_network', 'direct_access', 'deny_list'];

export function countersFrom(saved: Saved, flows: Flow[], networks: DpNetwork[]): DatapathStats {
  // Rules of one comment add up (a masquerade counter has one in nat and one in
  // mangle, a drop reason many); only bridgeport's own chains count, never the operator's.
  const byComment = new Map<string, Counter>();
  for (const [name, table] of Object.entries(saved) as [TableName, SavedTable | undefined][]) {
    const own = new Set(OWN_CHAINS[name] ?? []);
    table?.rules.forEach((rule, i) => {
      const comment = /--comment "?(bridgeport:[^\s"]+)"?/.exec(rule)?.[1];
      if (!comment || !own.has(rule.split(' ')[1] ?? '')) return;
      byComment.set(comment, add(byComment.get(comment) ?? zero(), counterOf(table.counters[i] ?? '')));
    });
  }

  const ports = new Map<string, DatapathStats['ports'][number]>();
  const endpoints = new Map<string, DatapathStats['endpoints'][number]>();
  const masquerade = new Map<string, DatapathStats['masquerade'][number]>();
  const drops: DatapathStats['drops'] = Object.fromEntries(OBSERVED_DROPS.map((r) => [r, zero()]));
  for (const [comment, c] of byComment) {
    const [, kind, what, ...rest] = comment.split(':');
    if (kind === 'drop' && (DROP_REASONS as readonly string[]).includes(what!) && drops[what as DropReason]) {
      drops[what as DropReason] = add(drops[what as DropReason]!, c);
    } else if (kind === 'count' && (what === 'port-in' || what === 'port-out')) {
      const [proto, hostIp, hostPort] = rest;
      const id = rest.join(':');
      const row = ports.get(id) ?? { proto: proto as Proto, hostIp: hostIp!, hostPort: Number(hostPort), in: zero(), out: zero() };
      const dir = what === 'port-in' ? 'in' : 'out';
      row[dir] = add(row[dir], c);
      ports.set(id, row);
    } else if (kind === 'count' && (what === 'rx' || what === 'tx')) {
      const hostIf = rest.join(':');
      const row = endpoints.get(hostIf) ?? { hostIf, rx: zero(), tx: zero() };
      row[what] = add(row[what], c);
      endpoints.set(hostIf, row);
    } else if (kind === 'count' && (what === 'masq-in' || what === 'masq-out')) {
      const bridge = rest.join(':');
      const row = masquerade.get(bridge) ?? { bridge, in: zero(), out: zero() };
      const dir = what === 'masq-in' ? 'in' : 'out';
      row[dir] = add(row[dir], c);
      masquerade.set(bridge, row);
    }
  }

  // Flows of containers (a network's gateway is the host's own address): DNATed
  // to a container (published), SNATed from one (masquerade), or any other.
  // Connections of host processes to a published port are DNATed and SNATed to
  // the gateway; they count as other, as in eBPF, where they involve no NAT.
  const subnets = networks.map((n) => ({ bridge: n.bridge, gateway: n.gateway, ...parseCidr(n.subnet) }));
  const networkOf = (ip: string) => subnets.find((s) => ip !== s.gateway && inSubnet(ip, s.network, s.prefix));
  const isGateway = (ip: string) => subnets.some((s) => s.gateway === ip);
  const conntrack = { published: 0, masquerade: 0, other: 0 };
  const natPorts = new Map<string, number>();
  for (const f of flows) {
    const dnat = f.reply.src !== f.orig.dst;
    const snat = f.reply.dst !== f.orig.src;
    const from = networkOf(f.orig.src);
    if (dnat && networkOf(f.reply.src) && (from || !(snat && isGateway(f.reply.dst)))) conntrack.published++;
    else if (snat && !dnat && from) {
      conntrack.masquerade++;
      natPorts.set(from.bridge, (natPorts.get(from.bridge) ?? 0) + 1);
    } else if (from || networkOf(f.orig.dst) || networkOf(f.reply.src) || networkOf(f.reply.dst)) conntrack.other++;
  }

  return {
    ports: [...ports.values()],
    endpoints: [...endpoints.values()],
    masquerade: [...masquerade.values()],
    drops,
    conntrack,
    natPortsInUse: [...natPorts].map(([bridge, ports]) => ({ bridge, ports })),
  };
}

function inSubnet(ip: string, network: number, prefix: number): boolean {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((x) => !Number.isInteger(x))) return false;
  const n = parts.reduce((acc, x) => acc * 256 + x, 0);
  const size = 2 ** (32 - prefix);
  return Math.floor(n / size) === Math.floor(network / size);
}
