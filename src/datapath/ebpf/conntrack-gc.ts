import { CT_PUBLISHED, type CtKey, type CtValue, ctReverse, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from './abi.js';

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

/** The idle timeout of a flow from both directions' flags. */
export function flowTimeout(proto: number, a: CtValue, b: CtValue | undefined, t: ConntrackTimeouts): number {
  if (proto === 6) {
    const flags = a.tcpFlags | (b?.tcpFlags ?? 0);
    if (flags & TCP_RST) return t.tcpClosing;
    // Closed once both sides sent FIN: the side that closed first holds TIME_WAIT.
    if (a.tcpFlags & TCP_FIN && (b?.tcpFlags ?? 0) & TCP_FIN) return t.tcpTimeWait;
    // Established once the other side answered.
    const answered = b !== undefined && (b.tcpFlags & (TCP_ACK | TCP_SYN)) !== 0 && (a.tcpFlags & TCP_ACK) !== 0;
    return answered ? t.tcp : t.tcpSyn;
  }
  if (proto === 17) return t.udp;
  if (proto === 1) return t.icmp;
  return t.other;
}

export interface CtEntry {
  key: CtKey;
  value: CtValue;
  /** Hex of the encoded key, for deletion. */
  id: string;
}

/**
 * Which entries to delete: a flow (both directions together) idle for longer
 * than its timeout, an entry whose other direction is gone or is another
 * flow's (the reply tuple was taken over: the entry is stale), and flows
 * through a published port that no longer exists.
 */
export function expiredEntries(
  entries: CtEntry[],
  nowNs: bigint,
  t: ConntrackTimeouts,
  encodeKey: (k: CtKey) => string,
  isPublished: (origin: CtValue['origin']) => boolean,
): string[] {
  const byId = new Map(entries.map((e) => [e.id, e]));
  const out = new Set<string>();
  for (const e of entries) {
    if (out.has(e.id)) continue;
    const candidate = byId.get(encodeKey(ctReverse(e.key, e.value)));
    // Only a partner that leads back here is this flow's other direction.
    const partner = candidate && encodeKey(ctReverse(candidate.key, candidate.value)) === e.id ? candidate : undefined;
    const last = partner && partner.value.lastSeenNs > e.value.lastSeenNs ? partner.value.lastSeenNs : e.value.lastSeenNs;
    const idleS = Number(nowNs - last) / 1e9;
    const unpublished = (e.value.flags & CT_PUBLISHED) !== 0 && !isPublished(e.value.origin);
    // An entry without its other direction is only half a flow: it gets the short timeout.
    const timeout = partner ? flowTimeout(e.key.proto, e.value, partner.value, t) : Math.min(flowTimeout(e.key.proto, e.value, undefined, t), t.tcpSyn);
    if (unpublished || idleS > timeout) {
      out.add(e.id);
      if (partner) out.add(partner.id);
    }
  }
  return [...out];
}
