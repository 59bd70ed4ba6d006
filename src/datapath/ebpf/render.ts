import { formatIpv4, parseCidr } from '../../ipam/ipv4.js';
import { invalid } from '../../model/errors.js';
import type { DatapathModel, DpPort } from '../datapath.js';
import {
  encodeEndpoint,
  encodeFirewallKey,
  encodeFirewallValue,
  encodeIpKey,
  encodeLinkKey,
  encodeNetwork,
  encodePublishedKey,
  encodePublishedValue,
  encodeU32,
  encodeUplink,
  LINK_DPORT,
  LINK_SPORT,
  maskOf,
  NET_ICC,
  NET_INTERNAL,
  NET_MASQUERADE,
  PROTO_NUMBER,
  PUB_DIRECT,
} from './abi.js';

/**
 * The eBPF rendering of the model: the contents of every policy map, as a
 * pure function of the model and the host's interfaces. Applying it (diff,
 * epochs, batches) is the datapath's separate step.
 */

/** What the kernel calls the interfaces the model names. */
export interface HostFacts {
  links: Map<string, { ifindex: number; mac: string; kind?: string }>;
  /** IPv4 addresses of the namespace, by interface. */
  addresses: { ifname: string; address: string }[];
}

/** A map's desired contents: hex of the key → value bytes. */
export type Entries = Map<string, Buffer>;

export interface MapContents {
  bp_networks: Entries;
  bp_endpoints: Entries;
  bp_endpoint_by_if: Entries;
  bp_links: Entries;
  bp_uplinks: Entries;
  bp_local_addrs: Entries;
  /** Published ports without their epochs (the apply step stamps them). */
  bp_published: Entries;
  bp_firewall: Entries;
}

export const POLICY_MAPS = [
  'bp_networks',
  'bp_endpoints',
  'bp_endpoint_by_if',
  'bp_links',
  'bp_uplinks',
  'bp_local_addrs',
  'bp_published',
  'bp_firewall',
] as const satisfies readonly (keyof MapContents)[];

/** Where a published port's packets go: its container's veth on the host and its network (by bridge ifindex). */
export interface PortTarget {
  ifindex: number;
  networkId: number;
  /** A network without masquerade: the container port is also published on the container's own address. */
  routed: boolean;
}

/** Port targets by "container/network". */
export type PortTargets = Map<string, PortTarget>;

export const targetKey = (container: string, network: string): string => `${container}/${network}`;

const hex = (b: Buffer): string => b.toString('hex');

function ifOf(facts: HostFacts, name: string, what: string): { ifindex: number; mac: string } {
  const link = facts.links.get(name);
  if (!link) throw new Error(`render eBPF maps: ${what} ${name}: no such interface`);
  return link;
}

/**
 * Refuses what the programs cannot do faithfully: an SCTP port translated to
 * another port would need the CRC32c over the whole packet recomputed, which
 * BPF has no helper for (addresses are outside the CRC, so same-port SCTP is fine).
 */
export function checkSupported(ports: DpPort[]): void {
  const bad = ports.find((p) => p.proto === 'sctp' && p.hostPort !== p.containerPort);
  if (bad) {
    throw invalid(
      `publish ${bad.hostPort}:${bad.containerPort}/sctp for ${bad.container}: the eBPF datapath cannot translate SCTP ports (the CRC32c covers them); publish SCTP on the same port (-p ${bad.containerPort}:${bad.containerPort}/sctp) or run --datapath iptables`,
    );
  }
}

export function renderMaps(model: DatapathModel, facts: HostFacts): MapContents & { targets: PortTargets } {
  const out: MapContents = {
    bp_networks: new Map(),
    bp_endpoints: new Map(),
    bp_endpoint_by_if: new Map(),
    bp_links: new Map(),
    bp_uplinks: new Map(),
    bp_local_addrs: new Map(),
    bp_published: new Map(),
    bp_firewall: new Map(),
  };

  // A network's id is its bridge's ifindex: unique and stable while it exists.
  const netId = new Map<string, number>();
  const routed = new Set<string>();
  for (const n of model.networks) {
    const br = ifOf(facts, n.bridge, `network ${n.name}: bridge`);
    netId.set(n.name, br.ifindex);
    const { network, prefix } = parseCidr(n.subnet);
    const flags = (n.icc ? NET_ICC : 0) | (n.masquerade && !n.internal ? NET_MASQUERADE : 0) | (n.internal ? NET_INTERNAL : 0);
    if (!n.masquerade && !n.internal) routed.add(n.name);
    out.bp_networks.set(
      hex(encodeU32(br.ifindex)),
      encodeNetwork({
        subnet: formatIpv4(network),
        mask: maskOf(prefix),
        gateway: n.gateway,
        bridgeIfindex: br.ifindex,
        bridgeMac: br.mac,
        flags,
        routed: (n.routedCidrs ?? []).map((c) => {
          const cidr = parseCidr(c);
          return { addr: formatIpv4(cidr.network), mask: maskOf(cidr.prefix) };
        }),
      }),
    );
  }

  const targets: PortTargets = new Map();
  for (const e of model.endpoints) {
    const id = netId.get(e.network);
    if (id === undefined) continue;
    const veth = ifOf(facts, e.hostIf, `endpoint ${e.container}: veth`);
    targets.set(targetKey(e.container, e.network), { ifindex: veth.ifindex, networkId: id, routed: routed.has(e.network) });
    const value = encodeEndpoint({ ip: e.ip, ifindex: veth.ifindex, networkId: id, mac: e.mac });
    out.bp_endpoints.set(hex(encodeIpKey(e.ip)), value);
    out.bp_endpoint_by_if.set(hex(encodeU32(veth.ifindex)), value);
  }

  for (const l of model.links) {
    const one = Buffer.from([1, 0, 0, 0]);
    const there = encodeLinkKey({ srcIp: l.parentIp, dstIp: l.childIp, port: l.port, proto: l.proto, direction: LINK_DPORT });
    const back = encodeLinkKey({ srcIp: l.childIp, dstIp: l.parentIp, port: l.port, proto: l.proto, direction: LINK_SPORT });
    out.bp_links.set(hex(there), one);
    out.bp_links.set(hex(back), one);
  }

  const uplinks = new Set(model.uplinks);
  for (const a of facts.addresses) {
    out.bp_local_addrs.set(hex(encodeIpKey(a.address)), Buffer.from([1, 0, 0, 0]));
    if (!uplinks.has(a.ifname)) continue;
    const up = ifOf(facts, a.ifname, 'uplink');
    const key = hex(encodeU32(up.ifindex));
    // The first address of an uplink is the one masquerade uses, as MASQUERADE does.
    if (!out.bp_uplinks.has(key)) out.bp_uplinks.set(key, encodeUplink({ ip: a.address, mac: up.mac }));
  }

  renderPorts(model.ports, targets, out.bp_published);
  for (const r of model.firewall) {
    const { network, prefix } = parseCidr(r.cidr);
    const key = encodeFirewallKey({ addr: formatIpv4(network), prefixLen: prefix, port: r.port ?? 0, proto: r.proto ? PROTO_NUMBER[r.proto] : 0 });
    out.bp_firewall.set(hex(key), encodeFirewallValue());
  }
  return { ...out, targets };
}

/**
 * The bp_published entries of `ports`, without their epochs (the apply step
 * stamps them), added to `out`. A port whose endpoint has no target is not
 * rendered, as its endpoint is not.
 */
export function renderPorts(ports: DpPort[], targets: PortTargets, out: Entries = new Map()): Entries {
  for (const p of ports) {
    const t = targets.get(targetKey(p.container, p.network));
    if (!t) continue;
    const value = { containerIp: p.containerIp, containerPort: p.containerPort, ifindex: t.ifindex, networkId: t.networkId, epochFrom: 0, epochUntil: 0 };
    out.set(hex(encodePublishedKey({ proto: p.proto, hostIp: p.hostIp, hostPort: p.hostPort })), encodePublishedValue({ ...value, flags: 0 }));
    // A routed network's published container port is reachable by the container's address too.
    if (t.routed) {
      out.set(
        hex(encodePublishedKey({ proto: p.proto, hostIp: p.containerIp, hostPort: p.containerPort })),
        encodePublishedValue({ ...value, flags: PUB_DIRECT }),
      );
    }
  }
  return out;
}
