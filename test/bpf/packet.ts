/** Builds and reads Ethernet/IPv4 frames for BPF_PROG_TEST_RUN tables; checksums are real. */

const ip4 = (s: string): Buffer => Buffer.from(s.split('.').map(Number));
const ipStr = (b: Buffer, off: number): string => `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
const mac = (s: string): Buffer => Buffer.from(s.split(':').map((h) => Number.parseInt(h, 16)));
const macStr = (b: Buffer, off: number): string => [...b.subarray(off, off + 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');

export const PROTO = { icmp: 1, tcp: 6, udp: 17 } as const;
export const TCP = { FIN: 0x01, SYN: 0x02, RST: 0x04, ACK: 0x10 } as const;

/** One's-complement sum of 16-bit words, folded (not inverted). */
function sum16(buf: Buffer, initial = 0): number {
  let s = initial;
  for (let i = 0; i + 1 < buf.length; i += 2) s += buf.readUInt16BE(i);
  if (buf.length % 2) s += buf[buf.length - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}
const checksum = (buf: Buffer, initial = 0): number => ~sum16(buf, initial) & 0xffff;
const pseudo = (src: string, dst: string, proto: number, len: number): number =>
  sum16(Buffer.concat([ip4(src), ip4(dst), Buffer.from([0, proto, len >> 8, len & 0xff])]));

export function ipv4(o: { src: string; dst: string; proto: number; payload: Buffer; ttl?: number }): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + o.payload.length, 2);
  h.writeUInt16BE(0x4000, 6); // DF
  h[8] = o.ttl ?? 64;
  h[9] = o.proto;
  ip4(o.src).copy(h, 12);
  ip4(o.dst).copy(h, 16);
  h.writeUInt16BE(checksum(h), 10);
  return Buffer.concat([h, o.payload]);
}

export function tcp(o: { src: string; dst: string; sport: number; dport: number; flags: number; data?: Buffer }): Buffer {
  const data = o.data ?? Buffer.alloc(0);
  const seg = Buffer.alloc(20 + data.length);
  seg.writeUInt16BE(o.sport, 0);
  seg.writeUInt16BE(o.dport, 2);
  seg.writeUInt32BE(1000, 4);
  seg.writeUInt32BE(o.flags & TCP.ACK ? 2000 : 0, 8);
  seg[12] = 5 << 4;
  seg[13] = o.flags;
  seg.writeUInt16BE(64240, 14);
  data.copy(seg, 20);
  seg.writeUInt16BE(checksum(seg, pseudo(o.src, o.dst, PROTO.tcp, seg.length)), 16);
  return ipv4({ src: o.src, dst: o.dst, proto: PROTO.tcp, payload: seg });
}

export function udp(o: { src: string; dst: string; sport: number; dport: number; data?: Buffer }): Buffer {
  const data = o.data ?? Buffer.from('ping');
  const dg = Buffer.alloc(8 + data.length);
  dg.writeUInt16BE(o.sport, 0);
  dg.writeUInt16BE(o.dport, 2);
  dg.writeUInt16BE(dg.length, 4);
  data.copy(dg, 8);
  dg.writeUInt16BE(checksum(dg, pseudo(o.src, o.dst, PROTO.udp, dg.length)) || 0xffff, 6);
  return ipv4({ src: o.src, dst: o.dst, proto: PROTO.udp, payload: dg });
}

/** An ICMP error (3 = unreachable, 11 = time exceeded) quoting the IP header + 8 bytes of `quoted`. */
export function icmpError(o: { src: string; dst: string; type: number; code: number; quoted: Buffer }): Buffer {
  const msg = Buffer.concat([Buffer.alloc(8), o.quoted.subarray(0, 28)]);
  msg[0] = o.type;
  msg[1] = o.code;
  msg.writeUInt16BE(checksum(msg), 2);
  return ipv4({ src: o.src, dst: o.dst, proto: PROTO.icmp, payload: msg });
}

export function eth(dst: string, src: string, payload: Buffer, type = 0x0800): Buffer {
  const h = Buffer.alloc(14);
  mac(dst).copy(h, 0);
  mac(src).copy(h, 6);
  h.writeUInt16BE(type, 12);
  return Buffer.concat([h, payload]);
}

export function arp(o: { senderMac: string; senderIp: string; targetIp: string }): Buffer {
  const p = Buffer.alloc(28);
  p.writeUInt16BE(1, 0);
  p.writeUInt16BE(0x0800, 2);
  p[4] = 6;
  p[5] = 4;
  p.writeUInt16BE(1, 6);
  mac(o.senderMac).copy(p, 8);
  ip4(o.senderIp).copy(p, 14);
  ip4(o.targetIp).copy(p, 24);
  return eth('ff:ff:ff:ff:ff:ff', o.senderMac, p, 0x0806);
}

export interface Parsed {
  dstMac: string;
  srcMac: string;
  src: string;
  dst: string;
  proto: number;
  sport: number;
  dport: number;
  ipChecksumOk: boolean;
  /** TCP/UDP over the pseudo-header; ICMP over the whole message. */
  l4ChecksumOk: boolean;
  icmp?: { type: number; code: number; quoted: { src: string; dst: string; sport: number; dport: number; ipChecksumOk: boolean } };
}

export function parse(frame: Buffer): Parsed {
  const ip = frame.subarray(14);
  const ihl = (ip[0]! & 0xf) * 4;
  const proto = ip[9]!;
  const l4 = ip.subarray(ihl, ip.readUInt16BE(2));
  const src = ipStr(ip, 12);
  const dst = ipStr(ip, 16);
  const out: Parsed = {
    dstMac: macStr(frame, 0),
    srcMac: macStr(frame, 6),
    src,
    dst,
    proto,
    sport: 0,
    dport: 0,
    ipChecksumOk: sum16(ip.subarray(0, ihl)) === 0xffff,
    l4ChecksumOk: false,
  };
  if (proto === PROTO.tcp || proto === PROTO.udp) {
    out.sport = l4.readUInt16BE(0);
    out.dport = l4.readUInt16BE(2);
    out.l4ChecksumOk = sum16(l4, pseudo(src, dst, proto, l4.length)) === 0xffff;
  } else if (proto === PROTO.icmp) {
    out.l4ChecksumOk = sum16(l4) === 0xffff;
    const q = l4.subarray(8);
    if (l4[0] === 3 || l4[0] === 11) {
      out.icmp = {
        type: l4[0]!,
        code: l4[1]!,
        quoted: {
          src: ipStr(q, 12),
          dst: ipStr(q, 16),
          sport: q.readUInt16BE(20),
          dport: q.readUInt16BE(22),
          ipChecksumOk: sum16(q.subarray(0, 20)) === 0xffff,
        },
      };
    }
  }
  return out;
}
