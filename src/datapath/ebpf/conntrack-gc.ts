import { CT_DNAT, CT_PUBLISHED, CT_SNAT, type CtKey, type CtValue, encodeCtKey, encodeCtValue, LAYOUT, readIp, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from './abi.js';

/**
 * Idle timeouts in seconds, Cilium's defaults for TCP and the kernel's for the
 * rest. A flow closed with FIN both ways is kept for `tcpTimeWait`, Linux's
 * TIME_WAIT length: while the far end may still hold the tuple, the entry says
 * which new SYN it would accept (bpf/lib/conntrack.h, bp_tw_accepts); a new
 * flow takes such an entry over at once when it may. A reset leaves no
 * TIME_WAIT: `tcpClosing`.
 */
export interface ConntrackTimeouts {
  tcp: number;
  tcpSyn: number;
  tcpClosing: number;
  tcpTimeWait: number;
  udp: number;
  icmp: number;
  other: number;
}

export const DEFAULT_TIMEOUTS: ConntrackTimeouts = { tcp: 21600, tcpSyn: 60, tcpClosing: 10, tcpTimeWait: 60, udp: 60, icmp: 30, other: 60 };

/** Parses `tcp=21600,udp=60,...` (the --conntrack-timeouts flag) over the defaults. */
export function parseTimeouts(text: string): ConntrackTimeouts {
  const out = { ...DEFAULT_TIMEOUTS };
  const names: Record<string, keyof ConntrackTimeouts> = {
    tcp: 'tcp',
    'tcp-syn': 'tcpSyn',
    'tcp-closing': 'tcpClosing',
    'tcp-time-wait': 'tcpTimeWait',
    udp: 'udp',
    icmp: 'icmp',
    other: 'other',
  };
  for (const part of text.split(',').filter(Boolean)) {
    const [name, value] = part.split('=');
    const key = names[name?.trim() ?? ''];
    const n = Number(value);
    if (!key || !Number.isFinite(n) || n <= 0) {
      throw new Error(`invalid --conntrack-timeouts "${text}": "${part}" is not NAME=SECONDS (names: ${Object.keys(names).join(', ')})`);
    }
    out[key] = n;
  }
  return out;
}

/** The idle timeout of a flow from both directions' TCP flags (`b`: the other direction's, when it exists). */
export function flowTimeout(proto: number, a: number, b: number | undefined, t: ConntrackTimeouts): number {
  if (proto === 6) {
    const flags = a | (b ?? 0);
    if (flags & TCP_RST) return t.tcpClosing;
    // Closed once both sides sent FIN: the side that closed first holds TIME_WAIT.
    if (a & TCP_FIN && (b ?? 0) & TCP_FIN) return t.tcpTimeWait;
    // Established once the other side answered.
    const answered = b !== undefined && (b & (TCP_ACK | TCP_SYN)) !== 0 && (a & TCP_ACK) !== 0;
    return answered ? t.tcp : t.tcpSyn;
  }
  if (proto === 17) return t.udp;
  if (proto === 1) return t.icmp;
  return t.other;
}

const K = LAYOUT.bp_ct_key.fields;
const V = LAYOUT.bp_ct_value.fields;
const KEY_WORDS = LAYOUT.bp_ct_key.size / 4;
const VALUE_WORDS = LAYOUT.bp_ct_value.size / 4;

/** 32-bit words of a buffer of `words`-word records: a view where the buffer is aligned, else a copy. */
function wordsOf(buf: Buffer, count: number, words: number): Uint32Array {
  if (buf.byteOffset % 4 === 0) return new Uint32Array(buf.buffer, buf.byteOffset, count * words);
  const out = new Uint32Array(count * words);
  new Uint8Array(out.buffer).set(buf.subarray(0, count * words * 4));
  return out;
}

/**
 * The conntrack table as one dump reads it: keys and values back to back,
 * entry i's key at i × keySize, read in place as 32-bit words (in the host's
 * byte order, like the kernel's own). At a full table (262 144 entries) an
 * object or a string per entry cost the daemon more CPU every GC period than
 * the datapath spent on the flows (bench tcp_crr at N = 10 000); a walk over
 * words costs a few milliseconds.
 */
export class CtTable {
  readonly k: Uint32Array;
  readonly v: Uint32Array;

  constructor(
    readonly keys: Buffer,
    values: Buffer,
    readonly count: number,
  ) {
    if (keys.length < count * LAYOUT.bp_ct_key.size || values.length < count * LAYOUT.bp_ct_value.size) {
      throw new Error(`conntrack table: ${count} entries need ${count * LAYOUT.bp_ct_key.size}/${count * LAYOUT.bp_ct_value.size} bytes, got ${keys.length}/${values.length}`);
    }
    this.k = wordsOf(keys, count, KEY_WORDS);
    this.v = wordsOf(values, count, VALUE_WORDS);
  }

  /** A table of decoded entries (tests, small maps). */
  static of(entries: { key: CtKey; value: CtValue }[]): CtTable {
    return new CtTable(Buffer.concat(entries.map((e) => encodeCtKey(e.key))), Buffer.concat(entries.map((e) => encodeCtValue(e.value))), entries.length);
  }

  key(i: number): Buffer {
    return this.keys.subarray(i * LAYOUT.bp_ct_key.size, (i + 1) * LAYOUT.bp_ct_key.size);
  }

  private byte(i: number, off: number): number {
    return (this.v[i * VALUE_WORDS + (off >> 2)]! >>> ((off & 3) * 8)) & 0xff;
  }

  flags(i: number): number {
    return this.byte(i, V.flags);
  }

  tcpFlags(i: number): number {
    return this.byte(i, V.tcp_flags);
  }

  proto(i: number): number {
    return this.k[i * KEY_WORDS + (K.proto >> 2)]! & 0xff;
  }

  /** Nanoseconds (bpf_ktime_get_ns) as a double: exact to the microsecond for years of uptime. */
  lastSeen(i: number): number {
    const w = i * VALUE_WORDS + (V.last_seen >> 2);
    return this.v[w]! + this.v[w + 1]! * 2 ** 32;
  }

  /** The address a DNAT entry rewrites the destination to (a masqueraded flow's reply: the container's). */
  newDaddr(i: number): string {
    return readIp(Buffer.from(this.v.buffer, this.v.byteOffset + (i * VALUE_WORDS + (V.new_daddr >> 2)) * 4, 4), 0);
  }

  /** The published port a flow came in by (its origin), decoded. */
  origin(i: number): CtValue['origin'] {
    const b = Buffer.from(this.v.buffer, this.v.byteOffset + (i * VALUE_WORDS + (V.origin >> 2)) * 4, 8);
    return { hostIp: readIp(b, 0), hostPort: b.readUInt16BE(4), proto: b[6]! };
  }

  /** The origin's raw words as one number-pair string, to look each origin up once per walk. */
  originId(i: number): string {
    const w = i * VALUE_WORDS + (V.origin >> 2);
    return `${this.v[w]}:${this.v[w + 1]}`;
  }

  /**
   * Index of every entry by its key, and the entry each one's other direction
   * has: its reply tuple translated back (bp_ct_reverse in C), or -1. An open
   * addressing table over the key words (four 32-bit words; the padding is zero).
   */
  partners(): Int32Array {
    const { k, v, count } = this;
    let size = 1;
    while (size < count * 2) size <<= 1;
    const mask = size - 1;
    const slots = new Int32Array(size).fill(-1);
    const hash = (a: number, b: number, c: number, d: number): number => {
      let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b);
      h = Math.imul(h ^ b ^ (h >>> 13), 0xc2b2ae35);
      h = Math.imul(h ^ c ^ (h >>> 16), 0x85ebca6b);
      h = Math.imul(h ^ d ^ (h >>> 13), 0xc2b2ae35);
      return (h ^ (h >>> 16)) & mask;
    };
    for (let i = 0; i < count; i++) {
      const o = i * KEY_WORDS;
      let s = hash(k[o]!, k[o + 1]!, k[o + 2]!, k[o + 3]!);
      while (slots[s] !== -1) s = (s + 1) & mask;
      slots[s] = i;
    }
    const find = (a: number, b: number, c: number, d: number): number => {
      for (let s = hash(a, b, c, d); ; s = (s + 1) & mask) {
        const j = slots[s]!;
        if (j === -1) return -1;
        const o = j * KEY_WORDS;
        if (k[o] === a && k[o + 1] === b && k[o + 2] === c && k[o + 3] === d) return j;
      }
    };
    // Words of a key: saddr, daddr, sport | dport << 16 (network order bytes), proto.
    // Of a value: new_saddr (word 2), new_daddr (3), new_sport | new_dport << 16 (4), flags (byte 32).
    const out = new Int32Array(count);
    for (let i = 0; i < count; i++) {
      const o = i * KEY_WORDS;
      const w = i * VALUE_WORDS;
      const flags = this.flags(i);
      const snat = (flags & CT_SNAT) !== 0;
      const dnat = (flags & CT_DNAT) !== 0;
      const ports = k[o + 2]!;
      const newPorts = v[w + (V.new_sport >> 2)]!;
      const rsport = dnat ? newPorts >>> 16 : ports >>> 16;
      const rdport = snat ? newPorts & 0xffff : ports & 0xffff;
      out[i] = find(dnat ? v[w + (V.new_daddr >> 2)]! : k[o + 1]!, snat ? v[w + (V.new_saddr >> 2)]! : k[o]!, (rsport | (rdport << 16)) >>> 0, k[o + 3]!);
    }
    return out;
  }
}

/**
 * Which entries to delete (indices into the table): a flow (both directions
 * together) idle for longer than its timeout, an entry whose other direction
 * is gone or is another flow's (the reply tuple was taken over: the entry is
 * stale), and flows through a published port that no longer exists.
 */
export function expiredEntries(table: CtTable, nowNs: bigint, t: ConntrackTimeouts, isPublished: (origin: CtValue['origin']) => boolean): number[] {
  const partnerOf = table.partners();
  // Published ports are few: each origin is looked up once per walk.
  const published = new Map<string, boolean>();
  const originPublished = (i: number): boolean => {
    const id = table.originId(i);
    let yes = published.get(id);
    if (yes === undefined) {
      yes = isPublished(table.origin(i));
      published.set(id, yes);
    }
    return yes;
  };

  const now = Number(nowNs);
  const out = new Uint8Array(table.count);
  const expired: number[] = [];
  const expire = (i: number) => {
    if (out[i]) return;
    out[i] = 1;
    expired.push(i);
  };
  for (let i = 0; i < table.count; i++) {
    if (out[i]) continue;
    const candidate = partnerOf[i]!;
    // Only a partner that leads back here is this flow's other direction.
    const partner = candidate >= 0 && partnerOf[candidate] === i ? candidate : undefined;
    const last = partner !== undefined ? Math.max(table.lastSeen(i), table.lastSeen(partner)) : table.lastSeen(i);
    const idleS = (now - last) / 1e9;
    const proto = table.proto(i);
    // An entry without its other direction is only half a flow: it gets the short timeout.
    const timeout =
      partner !== undefined
        ? flowTimeout(proto, table.tcpFlags(i), table.tcpFlags(partner), t)
        : Math.min(flowTimeout(proto, table.tcpFlags(i), undefined, t), t.tcpSyn);
    const unpublished = (table.flags(i) & CT_PUBLISHED) !== 0 && !originPublished(i);
    if (unpublished || idleS > timeout) {
      expire(i);
      if (partner !== undefined) expire(partner);
    }
  }
  return expired;
}
