/**
 * Builds and reads Ethernet frames for BPF_PROG_TEST_RUN tables: IPv4 with
 * TCP, UDP, ICMP echo and ICMP errors quoting the packet they are about, and
 * ARP. Every checksum the builders write is real, and the parser says which
 * ones of a frame still hold, so a table can check what a rewrite left behind.
 * Pure functions over Buffers: no BPF, no root.
 */

export const ETHERTYPE = { IPV4: 0x0800, ARP: 0x0806 } as const;
export const PROTO = { ICMP: 1, TCP: 6, UDP: 17 } as const;
export const TCP_FLAGS = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const;
export const ICMP = { ECHO_REPLY: 0, DEST_UNREACH: 3, ECHO: 8, TIME_EXCEEDED: 11 } as const;
/** Codes of ICMP_DEST_UNREACH. */
export const UNREACH = { PORT: 3, FRAG_NEEDED: 4 } as const;
export const BROADCAST_MAC = 'ff:ff:ff:ff:ff:ff';

const ETH_HLEN = 14;
const IP_HLEN = 20;

// --- addresses ---------------------------------------------------------------

function ipBytes(ip: string): Buffer {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`build packet: "${ip}" is not an IPv4 address`);
  return Buffer.from(parts);
}

function macBytes(mac: string): Buffer {
  const parts = mac.split(':').map((h) => Number.parseInt(h, 16));
  if (parts.length !== 6 || parts.some((p) => Number.isNaN(p) || p < 0 || p > 255)) throw new Error(`build packet: "${mac}" is not a MAC address`);
  return Buffer.from(parts);
}

const ipAt = (b: Buffer, off: number): string => `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
const macAt = (b: Buffer, off: number): string => [...b.subarray(off, off + 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');

// --- checksums ---------------------------------------------------------------

/** One's-complement sum of 16-bit big-endian words, folded to 16 bits (not inverted). */
function sum16(buf: Buffer, initial = 0): number {
  let s = initial;
  for (let i = 0; i + 1 < buf.length; i += 2) s += buf.readUInt16BE(i);
  if (buf.length % 2) s += buf[buf.length - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

const checksum = (buf: Buffer, initial = 0): number => ~sum16(buf, initial) & 0xffff;

/** The TCP/UDP pseudo-header's sum. */
const pseudoSum = (src: Buffer, dst: Buffer, proto: number, len: number): number =>
  sum16(Buffer.concat([src, dst, Buffer.from([0, proto, len >> 8, len & 0xff])]));

/** A region with its checksum field filled in sums to 0xffff. */
const sumsToOnes = (buf: Buffer, initial = 0): boolean => sum16(buf, initial) === 0xffff;

// --- builders ----------------------------------------------------------------

export interface Ipv4Options {
  src: string;
  dst: string;
  proto: number;
  payload: Buffer;
  ttl?: number;
  id?: number;
  /** Don't Fragment; on unless told otherwise. */
  df?: boolean;
  /** More Fragments. */
  mf?: boolean;
  /** Fragment offset in 8-byte units. */
  fragOffset?: number;
  /** IP options, a multiple of 4 bytes. */
  options?: Buffer;
}

/** An IPv4 packet around an L4 payload, with its header checksum. */
export function ipv4(o: Ipv4Options): Buffer {
  const options = o.options ?? Buffer.alloc(0);
  if (options.length % 4 || options.length > 40) throw new Error(`build packet: IPv4 options of ${options.length} bytes (a multiple of 4, at most 40)`);
  const h = Buffer.alloc(IP_HLEN + options.length);
  h[0] = 0x40 | (h.length / 4);
  options.copy(h, IP_HLEN);
  h.writeUInt16BE(h.length + o.payload.length, 2);
  h.writeUInt16BE(o.id ?? 0x1234, 4);
  h.writeUInt16BE(((o.df ?? true) ? 0x4000 : 0) | (o.mf ? 0x2000 : 0) | ((o.fragOffset ?? 0) & 0x1fff), 6);
  h[8] = o.ttl ?? 64;
  h[9] = o.proto;
  ipBytes(o.src).copy(h, 12);
  ipBytes(o.dst).copy(h, 16);
  h.writeUInt16BE(checksum(h), 10);
  return Buffer.concat([h, o.payload]);
}

export interface TcpOptions {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  /** TCP_FLAGS, or'ed. */
  flags: number;
  seq?: number;
  ack?: number;
  data?: Buffer;
  ttl?: number;
  /** A timestamp option (RFC 7323) with this TSval, laid out as Linux sends it (SYN: MSS, SACK-permitted, TS, NOP, WS; else NOP, NOP, TS). */
  tsval?: number;
}

/** The TCP options Linux sends with a timestamp: 20 bytes on a SYN, 12 on other segments. */
function timestampOptions(tsval: number, syn: boolean): Buffer {
  const ts = Buffer.from([8, 10, 0, 0, 0, 0, 0, 0, 0, 0]);
  ts.writeUInt32BE(tsval >>> 0, 2);
  return syn ? Buffer.concat([Buffer.from([2, 4, 0x05, 0xb4, 4, 2]), ts, Buffer.from([1, 3, 3, 7])]) : Buffer.concat([Buffer.from([1, 1]), ts]);
}

/** An IPv4 packet with a TCP segment (options only with `tsval`), checksummed over the pseudo-header. */
export function tcp(o: TcpOptions): Buffer {
  const data = o.data ?? Buffer.alloc(0);
  const opts = o.tsval === undefined ? Buffer.alloc(0) : timestampOptions(o.tsval, (o.flags & TCP_FLAGS.SYN) !== 0);
  const hlen = 20 + opts.length;
  const seg = Buffer.alloc(hlen + data.length);
  seg.writeUInt16BE(o.sport, 0);
  seg.writeUInt16BE(o.dport, 2);
  seg.writeUInt32BE(o.seq ?? 1000, 4);
  seg.writeUInt32BE(o.ack ?? (o.flags & TCP_FLAGS.ACK ? 2000 : 0), 8);
  seg[12] = (hlen / 4) << 4;
  seg[13] = o.flags;
  seg.writeUInt16BE(64240, 14);
  opts.copy(seg, 20);
  data.copy(seg, hlen);
  seg.writeUInt16BE(checksum(seg, pseudoSum(ipBytes(o.src), ipBytes(o.dst), PROTO.TCP, seg.length)), 16);
  return ipv4({ src: o.src, dst: o.dst, proto: PROTO.TCP, payload: seg, ttl: o.ttl });
}

export interface UdpOptions {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  data?: Buffer;
  ttl?: number;
}

/** An IPv4 packet with a UDP datagram; a computed checksum of 0 is sent as 0xffff (RFC 768). */
export function udp(o: UdpOptions): Buffer {
  const data = o.data ?? Buffer.from('ping');
  const dg = Buffer.alloc(8 + data.length);
  dg.writeUInt16BE(o.sport, 0);
  dg.writeUInt16BE(o.dport, 2);
  dg.writeUInt16BE(dg.length, 4);
  data.copy(dg, 8);
  dg.writeUInt16BE(checksum(dg, pseudoSum(ipBytes(o.src), ipBytes(o.dst), PROTO.UDP, dg.length)) || 0xffff, 6);
  return ipv4({ src: o.src, dst: o.dst, proto: PROTO.UDP, payload: dg, ttl: o.ttl });
}

export interface IcmpEchoOptions {
  src: string;
  dst: string;
  id: number;
  seq?: number;
  /** An echo reply instead of a request. */
  reply?: boolean;
  data?: Buffer;
  ttl?: number;
}

/** An IPv4 packet with an ICMP echo request (or reply), checksummed over the whole message. */
export function icmpEcho(o: IcmpEchoOptions): Buffer {
  const data = o.data ?? Buffer.from('bridgeport');
  const msg = Buffer.alloc(8 + data.length);
  msg[0] = o.reply ? ICMP.ECHO_REPLY : ICMP.ECHO;
  msg.writeUInt16BE(o.id, 4);
  msg.writeUInt16BE(o.seq ?? 1, 6);
  data.copy(msg, 8);
  msg.writeUInt16BE(checksum(msg), 2);
  return ipv4({ src: o.src, dst: o.dst, proto: PROTO.ICMP, payload: msg, ttl: o.ttl });
}

export interface IcmpErrorOptions {
  src: string;
  dst: string;
  /** ICMP.DEST_UNREACH or ICMP.TIME_EXCEEDED. */
  type: number;
  code: number;
  /** The IPv4 packet the error is about, as its sender put it on the wire. */
  quoted: Buffer;
  /** How much of it to quote: the header and 8 bytes (RFC 792) unless told. */
  quoteBytes?: number;
  /** The next-hop MTU of "fragmentation needed". */
  mtu?: number;
}

/** An IPv4 packet with an ICMP error quoting the start of another packet. */
export function icmpError(o: IcmpErrorOptions): Buffer {
  const quoted = o.quoted.subarray(0, o.quoteBytes ?? IP_HLEN + 8);
  const msg = Buffer.concat([Buffer.alloc(8), quoted]);
  msg[0] = o.type;
  msg[1] = o.code;
  if (o.mtu !== undefined) msg.writeUInt16BE(o.mtu, 6);
  msg.writeUInt16BE(checksum(msg), 2);
  return ipv4({ src: o.src, dst: o.dst, proto: PROTO.ICMP, payload: msg });
}

/**
 * Splits an IPv4 packet in two fragments, the first carrying `firstBytes` of
 * its payload (a multiple of 8). The L4 checksum stays as it was: it covers
 * the whole datagram, as on the wire.
 */
export function fragment(packet: Buffer, firstBytes: number): [Buffer, Buffer] {
  const ihl = (packet[0]! & 0x0f) * 4;
  const payload = packet.subarray(ihl, packet.readUInt16BE(2));
  if (firstBytes % 8 || firstBytes <= 0 || firstBytes >= payload.length) {
    throw new Error(`fragment packet: ${firstBytes} bytes of a ${payload.length}-byte payload (a positive multiple of 8, less than all)`);
  }
  const piece = (data: Buffer, offsetBytes: number, more: boolean): Buffer => {
    const h = Buffer.from(packet.subarray(0, ihl));
    h.writeUInt16BE(ihl + data.length, 2);
    h.writeUInt16BE((more ? 0x2000 : 0) | (offsetBytes / 8), 6);
    h.writeUInt16BE(0, 10);
    h.writeUInt16BE(checksum(h), 10);
    return Buffer.concat([h, data]);
  };
  return [piece(payload.subarray(0, firstBytes), 0, true), piece(payload.subarray(firstBytes), firstBytes, false)];
}

/** An Ethernet frame around a payload (an IPv4 packet unless `type` says otherwise). */
export function ethernet(o: { src: string; dst: string; type?: number }, payload: Buffer): Buffer {
  const h = Buffer.alloc(ETH_HLEN);
  macBytes(o.dst).copy(h, 0);
  macBytes(o.src).copy(h, 6);
  h.writeUInt16BE(o.type ?? ETHERTYPE.IPV4, 12);
  return Buffer.concat([h, payload]);
}

export interface ArpOptions {
  /** 1 = request, 2 = reply. */
  op?: 1 | 2;
  senderMac: string;
  senderIp: string;
  targetMac?: string;
  targetIp: string;
  /** The frame's destination; broadcast unless told. */
  dstMac?: string;
}

/** A whole Ethernet frame with an ARP packet for IPv4, sent from `senderMac`. */
export function arp(o: ArpOptions): Buffer {
  const p = Buffer.alloc(28);
  p.writeUInt16BE(1, 0); // Ethernet
  p.writeUInt16BE(ETHERTYPE.IPV4, 2);
  p[4] = 6;
  p[5] = 4;
  p.writeUInt16BE(o.op ?? 1, 6);
  macBytes(o.senderMac).copy(p, 8);
  ipBytes(o.senderIp).copy(p, 14);
  macBytes(o.targetMac ?? '00:00:00:00:00:00').copy(p, 18);
  ipBytes(o.targetIp).copy(p, 24);
  return ethernet({ src: o.senderMac, dst: o.dstMac ?? BROADCAST_MAC, type: ETHERTYPE.ARP }, p);
}

// --- parser ------------------------------------------------------------------

/** The packet an ICMP error quotes, as far as the quote goes. */
export interface QuotedPacket {
  src: string;
  dst: string;
  proto: number;
  /** TCP/UDP ports; for a quoted echo request, sport is its id (what conntrack tracks). */
  sport: number;
  dport: number;
  /** The quoted IPv4 header's own checksum. */
  ipChecksumOk: boolean;
}

export interface ParsedArp {
  op: number;
  senderMac: string;
  senderIp: string;
  targetMac: string;
  targetIp: string;
}

/** What a table compares: every field is present only when the frame carries it. */
export interface ParsedFrame {
  dstMac: string;
  srcMac: string;
  ethertype: number;
  arp?: ParsedArp;
  src?: string;
  dst?: string;
  proto?: number;
  ttl?: number;
  /** More Fragments, and the fragment offset in bytes. */
  moreFragments?: boolean;
  fragOffset?: number;
  /** TCP/UDP ports. */
  sport?: number;
  dport?: number;
  tcpFlags?: number;
  icmpType?: number;
  icmpCode?: number;
  /** Echo request/reply id. */
  echoId?: number;
  /** ICMP errors: the packet quoted. */
  inner?: QuotedPacket;
  ipChecksumOk?: boolean;
  /**
   * TCP/UDP over the pseudo-header, ICMP over its whole message; absent for
   * a fragment, which does not hold all the bytes the checksum covers. A UDP
   * checksum of 0 counts as wrong here: the builders always fill it in, so a
   * 0 after a rewrite means the rewrite lost it.
   */
  l4ChecksumOk?: boolean;
}

function parseQuoted(q: Buffer): QuotedPacket {
  if (q.length < IP_HLEN) throw new Error(`parse frame: the ICMP error quotes ${q.length} bytes, less than an IPv4 header`);
  const ihl = (q[0]! & 0x0f) * 4;
  const proto = q[9]!;
  const l4 = q.subarray(ihl);
  let sport = 0;
  let dport = 0;
  if (proto === PROTO.ICMP) {
    if (l4.length >= 6) sport = l4.readUInt16BE(4);
  } else if (l4.length >= 4) {
    sport = l4.readUInt16BE(0);
    dport = l4.readUInt16BE(2);
  }
  return { src: ipAt(q, 12), dst: ipAt(q, 16), proto, sport, dport, ipChecksumOk: sumsToOnes(q.subarray(0, ihl)) };
}

/** Reads a frame as the tables compare it; throws on a frame too short for what it claims to be. */
export function parseFrame(frame: Buffer): ParsedFrame {
  if (frame.length < ETH_HLEN) throw new Error(`parse frame: ${frame.length} bytes, less than an Ethernet header`);
  const out: ParsedFrame = { dstMac: macAt(frame, 0), srcMac: macAt(frame, 6), ethertype: frame.readUInt16BE(12) };
  const body = frame.subarray(ETH_HLEN);
  if (out.ethertype === ETHERTYPE.ARP) {
    if (body.length < 28) throw new Error(`parse frame: ARP of ${body.length} bytes`);
    out.arp = { op: body.readUInt16BE(6), senderMac: macAt(body, 8), senderIp: ipAt(body, 14), targetMac: macAt(body, 18), targetIp: ipAt(body, 24) };
    return out;
  }
  if (out.ethertype !== ETHERTYPE.IPV4) return out;

  if (body.length < IP_HLEN) throw new Error(`parse frame: IPv4 header cut at ${body.length} bytes`);
  const ihl = (body[0]! & 0x0f) * 4;
  const total = body.readUInt16BE(2);
  if (ihl < IP_HLEN || total < ihl || total > body.length) throw new Error(`parse frame: IPv4 header length ${ihl}, total ${total}, frame holds ${body.length}`);
  const ip = body.subarray(0, total);
  const proto = ip[9]!;
  const src = ipAt(ip, 12);
  const dst = ipAt(ip, 16);
  const frag = ip.readUInt16BE(6);
  const moreFragments = (frag & 0x2000) !== 0;
  const fragOffset = (frag & 0x1fff) * 8;
  Object.assign(out, { src, dst, proto, ttl: ip[8]!, moreFragments, fragOffset, ipChecksumOk: sumsToOnes(ip.subarray(0, ihl)) });
  // Later fragments carry no L4 header; a first one only part of what its checksum covers.
  if (fragOffset) return out;
  const l4 = ip.subarray(ihl);
  const pseudo = (): number => pseudoSum(ip.subarray(12, 16), ip.subarray(16, 20), proto, l4.length);
  const verify = (ok: () => boolean): boolean | undefined => (moreFragments ? undefined : ok());
  switch (proto) {
    case PROTO.TCP:
      if (l4.length < 20) throw new Error(`parse frame: TCP header cut at ${l4.length} bytes`);
      Object.assign(out, { sport: l4.readUInt16BE(0), dport: l4.readUInt16BE(2), tcpFlags: l4[13]!, l4ChecksumOk: verify(() => sumsToOnes(l4, pseudo())) });
      break;
    case PROTO.UDP:
      if (l4.length < 8) throw new Error(`parse frame: UDP header cut at ${l4.length} bytes`);
      Object.assign(out, { sport: l4.readUInt16BE(0), dport: l4.readUInt16BE(2), l4ChecksumOk: verify(() => l4.readUInt16BE(6) !== 0 && sumsToOnes(l4, pseudo())) });
      break;
    case PROTO.ICMP: {
      if (l4.length < 8) throw new Error(`parse frame: ICMP header cut at ${l4.length} bytes`);
      const type = l4[0]!;
      Object.assign(out, { icmpType: type, icmpCode: l4[1]!, l4ChecksumOk: verify(() => sumsToOnes(l4)) });
      if (type === ICMP.ECHO || type === ICMP.ECHO_REPLY) out.echoId = l4.readUInt16BE(4);
      if (type === ICMP.DEST_UNREACH || type === ICMP.TIME_EXCEEDED) out.inner = parseQuoted(l4.subarray(8));
      break;
    }
    default:
      break;
  }
  return out;
}
