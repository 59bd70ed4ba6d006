/**
 * Codecs for the structs of bpf/include/bridgeport_abi.h: layout shared with
 * the BPF programs, keep in step (test/bpf/abi.priv.test.ts compares every
 * size and offset here with the compiled objects' BTF).
 *
 * Addresses and ports are in network byte order, as the programs read them
 * off the wire; every other field is in host byte order (little-endian on the
 * machines bridgeport supports).
 */
import type { Proto } from '../../model/port-spec.js';

export const ABI_VERSION = 6;

/** Sizes and field offsets, in bytes: what the BTF test checks. */
export const LAYOUT = {
  bp_settings: { size: 16, fields: { netns_cookie: 0, snat_port_first: 8, snat_port_last: 10, flags: 12 } },
  bp_published_key: { size: 8, fields: { host_ip: 0, host_port: 4, proto: 6, pad: 7 } },
  bp_published_value: {
    size: 24,
    fields: { container_ip: 0, container_port: 4, flags: 6, pad: 7, ifindex: 8, network_id: 12, epoch_from: 16, epoch_until: 20 },
  },
  bp_epoch: { size: 8, fields: { current: 0, pad: 4 } },
  bp_endpoint: { size: 20, fields: { ip: 0, ifindex: 4, network_id: 8, mac: 12, pad: 18 } },
  bp_network: { size: 64, fields: { subnet: 0, mask: 4, gateway: 8, bridge_ifindex: 12, bridge_mac: 16, pad: 22, flags: 24, routed_addr: 28, routed_mask: 44, n_routed: 60 } },
  bp_link_key: { size: 12, fields: { src_ip: 0, dst_ip: 4, port: 8, proto: 10, direction: 11 } },
  bp_uplink: { size: 12, fields: { ip: 0, mac: 4, pad: 10 } },
  bp_ct_key: { size: 16, fields: { saddr: 0, daddr: 4, sport: 8, dport: 10, proto: 12, pad: 13 } },
  bp_ct_value: {
    size: 48,
    fields: {
      last_seen: 0,
      new_saddr: 8,
      new_daddr: 12,
      new_sport: 16,
      new_dport: 18,
      ifindex: 20,
      origin: 24,
      flags: 32,
      tcp_flags: 33,
      peer_flags: 34,
      pad: 35,
      ts_last: 36,
      seq_end: 40,
      net_id: 44,
    },
  },
  bp_frag_key: { size: 12, fields: { saddr: 0, daddr: 4, id: 8, proto: 10, pad: 11 } },
  bp_firewall_key: { size: 12, fields: { prefixlen: 0, proto: 4, pad: 5, port: 6, addr: 8 } },
  bp_firewall_value: { size: 8, fields: { flags: 0, pad: 4 } },
  bp_sock_nat_key: { size: 16, fields: { cookie: 0, addr: 8, port: 12, pad: 14 } },
  bp_sock_nat_value: { size: 8, fields: { addr: 0, port: 4, pad: 6 } },
  bp_counter: { size: 16, fields: { packets: 0, bytes: 8 } },
  bp_port_stats_key: { size: 8, fields: { host_ip: 0, host_port: 4, proto: 6, dir: 7 } },
  bp_stats_key: { size: 8, fields: { id: 0, dir: 4 } },
  bp_meta: { size: 8, fields: { abi_version: 0, layout_hash: 4 } },
} as const;

export type AbiStruct = keyof typeof LAYOUT;

export const NET_ICC = 1 << 0;
export const NET_MASQUERADE = 1 << 1;
export const NET_INTERNAL = 1 << 2;
export const PUB_DIRECT = 1 << 0;
export const LINK_DPORT = 0;
export const LINK_SPORT = 1;

export const CT_SNAT = 1 << 0;
export const CT_DNAT = 1 << 1;
export const CT_REPLY = 1 << 2;
export const CT_MASQUERADE = 1 << 3;
export const CT_PUBLISHED = 1 << 4;
export const TCP_SYN = 1 << 0;
export const TCP_ACK = 1 << 1;
export const TCP_FIN = 1 << 2;
export const TCP_RST = 1 << 3;
/** In peerFlags of a reply entry: tsLast holds a timestamp (TSval) the original side sent. */
export const TCP_TS = 1 << 4;

/** Indexes of bp_drops: the C enum bp_drop_reason has the same order. */
export { DROP_REASONS, type DropReason } from '../datapath.js';

export const PROTO_NUMBER: Record<Proto | 'icmp', number> = { icmp: 1, tcp: 6, udp: 17, sctp: 132 };
export const PROTO_NAME: Record<number, Proto | 'icmp'> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 132: 'sctp' };

// --- primitive field codecs ---------------------------------------------------

export function writeIp(buf: Buffer, off: number, ip: string): void {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new Error(`encode address: "${ip}" is not an IPv4 address`);
  }
  for (let i = 0; i < 4; i++) buf[off + i] = parts[i]!;
}

export const readIp = (buf: Buffer, off: number): string => `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;

export function writeMac(buf: Buffer, off: number, mac: string): void {
  const parts = mac.split(':').map((h) => Number.parseInt(h, 16));
  if (parts.length !== 6 || parts.some((p) => Number.isNaN(p) || p < 0 || p > 255)) {
    throw new Error(`encode MAC: "${mac}" is not a MAC address`);
  }
  for (let i = 0; i < 6; i++) buf[off + i] = parts[i]!;
}

export const readMac = (buf: Buffer, off: number): string =>
  [...buf.subarray(off, off + 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');

/** A prefix length as the network mask, network byte order (for bp_network.mask). */
export function maskOf(prefixLen: number): string {
  const m = prefixLen === 0 ? 0 : (0xffffffff << (32 - prefixLen)) >>> 0;
  return [m >>> 24, (m >>> 16) & 255, (m >>> 8) & 255, m & 255].join('.');
}

// --- structs ------------------------------------------------------------------

export interface Settings {
  netnsCookie: bigint;
  snatPortFirst: number;
  snatPortLast: number;
  flags: number;
}

export function encodeSettings(s: Settings): Buffer {
  const b = Buffer.alloc(LAYOUT.bp_settings.size);
  b.writeBigUInt64LE(s.netnsCookie, 0);
  b.writeUInt16LE(s.snatPortFirst, 8);
  b.writeUInt16LE(s.snatPortLast, 10);
  b.writeUInt32LE(s.flags, 12);
  return b;
}

export interface PublishedKey {
  proto: Proto;
  hostIp: string;
  hostPort: number;
}

export function encodePublishedKey(k: PublishedKey): Buffer {
  const b = Buffer.alloc(LAYOUT.bp_published_key.size);
  writeIp(b, 0, k.hostIp);
  b.writeUInt16BE(k.hostPort, 4);
  b.writeUInt8(PROTO_NUMBER[k.proto], 6);
  return b;
}

export function decodePublishedKey(b: Buffer): PublishedKey {
  return { hostIp: readIp(b, 0), hostPort: b.readUInt16BE(4), proto: PROTO_NAME[b.readUInt8(6)] as Proto };
}

export interface PublishedValue {
  containerIp: string;
  containerPort: number;
  flags: number;
  ifindex: number;
  networkId: number;
  epochFrom: number;
  epochUntil: number;
}

export function encodePublishedValue(v: PublishedValue): Buffer {
  const b = Buffer.alloc(LAYOUT.bp_published_value.size);
  writeIp(b, 0, v.containerIp);
  b.writeUInt16BE(v.containerPort, 4);
  b.writeUInt8(v.flags, 6);
  b.writeUInt32LE(v.ifindex, 8);
  b.writeUInt32LE(v.networkId, 12);
  b.writeUInt32LE(v.epochFrom, 16);
  b.writeUInt32LE(v.epochUntil, 20);
  return b;
}

export function decodePublishedValue(b: Buffer): PublishedValue {
  return {
    containerIp: readIp(b, 0),
    containerPort: b.readUInt16BE(4),
    flags: b.readUInt8(6),
    ifindex: b.readUInt32LE(8),
    networkId: b.readUInt32LE(12),
    epochFrom: b.readUInt32LE(16),
    epochUntil: b.readUInt32LE(20),
  };
}

export function encodeEpoch(current: number): Buffer {
  const b = Buffer.alloc(LAYOUT.bp_epoch.size);
  b.writeUInt32LE(current, 0);
  return b;
}

export const decodeEpoch = (b: Buffer): number => b.readUInt32LE(0);

export interface EndpointValue {
  ip: string;
  ifindex: number;
  networkId: number;
  mac: string;
}

export function encodeEndpoint(e: EndpointValue): Buffer {
  const b = Buffer.alloc(LAYOUT.bp_endpoint.size);
  writeIp(b, 0, e.ip);
  b.writeUInt32LE(e.ifindex, 4);
  b.writeUInt32LE(e.networkId, 8);
  writeMac(b, 12, e.mac);
  return b;
}

export function decodeEndpoint(b: Buffer): EndpointValue {
  return { ip: readIp(b, 0), ifindex: b.readUInt32LE(4), networkId: b.readUInt32LE(8), mac: readMac(b, 12) };
}

/** Keys of bp_endpoints (an address) and bp_endpoint_by_if (an ifindex). */
export function encodeIpKey(ip: string): Buffer {
  const b = Buffer.alloc(4);
  writeIp(b, 0, ip);
  return b;
}

export function encodeU32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n, 0);
  return b;
}

export interface NetworkValue {
  subnet: string;
  mask: string;
  gateway: string;
  bridgeIfindex: number;
  bridgeMac: string;
  flags: number;
  /** Routed CIDRs: network address and mask, at most ROUTED_MAX. */
  routed?: { addr: string; mask: string }[];
}

/** BP_ROUTED_MAX: the routed CIDRs a network's map entry holds. */
export const ROUTED_MAX = 4;

export function encodeNetwork(n: NetworkValue): Buffer {
  const b = Buffer.alloc(LAYOUT.bp_network.size);
  writeIp(b, 0, n.subnet);
  writeIp(b, 4, n.mask);
  writeIp(b, 8, n.gateway);
  b.writeUInt32LE(n.bridgeIfindex, 12);
  writeMac(b, 16, n.bridgeMac);
  b.writeUInt32LE(n.flags, 24);
  const routed = n.routed ?? [];
  if (routed.length > ROUTED_MAX) throw new Error(`network entry: ${routed.length} routed CIDRs, at most ${ROUTED_MAX}`);
  for (const [i, r] of routed.entries()) {
    writeIp(b, 28 + 4 * i, r.addr);
    writeIp(b, 44 + 4 * i, r.mask);
  }
  b.writeUInt32LE(routed.length, 60);
  return b;
}

export interface LinkKey {
  srcIp: string;
  dstIp: string;
  port: number;
  proto: Proto;
  direction: number;
}

export function encodeLinkKey(k: LinkKey): Buffer {
  const b = Buffer.alloc(LAYOUT.bp_link_key.size);
  writeIp(b, 0, k.srcIp);
  writeIp(b, 4, k.dstIp);
  b.writeUInt16BE(k.port, 8);
  b.writeUInt8(PROTO_NUMBER[k.proto], 10);
  b.writeUInt8(k.direction, 11);
  return b;
}

export interface UplinkValue {
  ip: string;
  mac: string;
}

export function encodeUplink(u: UplinkValue): Buffer {
  const b = Buffer.alloc(LAYOUT.bp_uplink.size);
  writeIp(b, 0, u.ip);
  writeMac(b, 4, u.mac);
  return b;
}

export interface CtKey {
  saddr: string;
  daddr: string;
  sport: number;
  dport: number;
  proto: number;
}

export function encodeCtKey(k: CtKey): Buffer {
  const b = Buffer.alloc(LAYOUT.bp_ct_key.size);
  writeIp(b, 0, k.saddr);
  writeIp(b, 4, k.daddr);
  b.writeUInt16BE(k.sport, 8);
  b.writeUInt16BE(k.dport, 10);
  b.writeUInt8(k.proto, 12);
  return b;
}

export function decodeCtKey(b: Buffer): CtKey {
  return { saddr: readIp(b, 0), daddr: readIp(b, 4), sport: b.readUInt16BE(8), dport: b.readUInt16BE(10), proto: b.readUInt8(12) };
}

export interface CtValue {
  lastSeenNs: bigint;
  newSaddr: string;
  newDaddr: string;
  newSport: number;
  newDport: number;
  ifindex: number;
  origin: { hostIp: string; hostPort: number; proto: number };
  flags: number;
  tcpFlags: number;
  /** TCP flags of the other direction, copied in from either side's first FIN or RST on (bp_ct_mirror). */
  peerFlags?: number;
  /** Reply entry of a closing TCP flow: the original side's highest TSval (peerFlags TCP_TS) and the sequence number after its FIN (0: none yet). */
  tsLast?: number;
  seqEnd?: number;
  /** A masqueraded flow's network (0: none recorded). */
  netId?: number;
}

export function decodeCtValue(b: Buffer): CtValue {
  return {
    lastSeenNs: b.readBigUInt64LE(0),
    newSaddr: readIp(b, 8),
    newDaddr: readIp(b, 12),
    newSport: b.readUInt16BE(16),
    newDport: b.readUInt16BE(18),
    ifindex: b.readUInt32LE(20),
    origin: { hostIp: readIp(b, 24), hostPort: b.readUInt16BE(28), proto: b.readUInt8(30) },
    flags: b.readUInt8(32),
    tcpFlags: b.readUInt8(33),
    peerFlags: b.readUInt8(34),
    tsLast: b.readUInt32LE(36),
    seqEnd: b.readUInt32LE(40),
    netId: b.readUInt32LE(44),
  };
}

export function encodeCtValue(v: CtValue): Buffer {
  const b = Buffer.alloc(LAYOUT.bp_ct_value.size);
  b.writeBigUInt64LE(v.lastSeenNs, 0);
  writeIp(b, 8, v.newSaddr);
  writeIp(b, 12, v.newDaddr);
  b.writeUInt16BE(v.newSport, 16);
  b.writeUInt16BE(v.newDport, 18);
  b.writeUInt32LE(v.ifindex, 20);
  writeIp(b, 24, v.origin.hostIp);
  b.writeUInt16BE(v.origin.hostPort, 28);
  b.writeUInt8(v.origin.proto, 30);
  b.writeUInt8(v.flags, 32);
  b.writeUInt8(v.tcpFlags, 33);
  b.writeUInt8(v.peerFlags ?? 0, 34);
  b.writeUInt32LE(v.tsLast ?? 0, 36);
  b.writeUInt32LE(v.seqEnd ?? 0, 40);
  b.writeUInt32LE(v.netId ?? 0, 44);
  return b;
}

export interface FirewallKey {
  /** Source CIDR. */
  addr: string;
  prefixLen: number;
  /** 0 with proto 0: every port. */
  port: number;
  proto: number;
}

export function encodeFirewallKey(k: FirewallKey): Buffer {
  const b = Buffer.alloc(LAYOUT.bp_firewall_key.size);
  b.writeUInt32LE(32 + k.prefixLen, 0);
  b.writeUInt8(k.proto, 4);
  b.writeUInt16BE(k.port, 6);
  writeIp(b, 8, k.addr);
  return b;
}

export function decodeFirewallKey(b: Buffer): FirewallKey {
  return { prefixLen: b.readUInt32LE(0) - 32, proto: b.readUInt8(4), port: b.readUInt16BE(6), addr: readIp(b, 8) };
}

export const encodeFirewallValue = (): Buffer => Buffer.alloc(LAYOUT.bp_firewall_value.size);

export interface Counter {
  packets: bigint;
  bytes: bigint;
}

/** Sums a per-CPU bp_counter value (one slot per possible CPU, 8-byte aligned). */
export function sumCounters(perCpu: Buffer[]): Counter {
  let packets = 0n;
  let bytes = 0n;
  for (const b of perCpu) {
    packets += b.readBigUInt64LE(0);
    bytes += b.readBigUInt64LE(8);
  }
  return { packets, bytes };
}

/** Direction of a counter: toward the container, or from it. */
export const DIR_IN = 0;
export const DIR_OUT = 1;
export const XDP_PASS = 0;
export const XDP_DROP = 1;

export function decodePortStatsKey(b: Buffer): PublishedKey & { dir: number } {
  return { ...decodePublishedKey(b), dir: b.readUInt8(7) };
}

export function decodeStatsKey(b: Buffer): { id: number; dir: number } {
  return { id: b.readUInt32LE(0), dir: b.readUInt32LE(4) };
}

export function encodeStatsKey(id: number, dir: number): Buffer {
  const b = Buffer.alloc(LAYOUT.bp_stats_key.size);
  b.writeUInt32LE(id, 0);
  b.writeUInt32LE(dir, 4);
  return b;
}

export function encodeMeta(abiVersion: number, layoutHash: number): Buffer {
  const b = Buffer.alloc(LAYOUT.bp_meta.size);
  b.writeUInt32LE(abiVersion, 0);
  b.writeUInt32LE(layoutHash >>> 0, 4);
  return b;
}

export function decodeMeta(b: Buffer): { abiVersion: number; layoutHash: number } {
  return { abiVersion: b.readUInt32LE(0), layoutHash: b.readUInt32LE(4) };
}
