import { describe, expect, it } from 'vitest';
import { CT_DNAT, CT_PUBLISHED, CT_REPLY, CT_SNAT, type CtKey, type CtValue, encodeCtKey, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from '../../src/datapath/ebpf/abi.js';
import { type CtEntry, DEFAULT_TIMEOUTS, expiredEntries, flowTimeout, parseTimeouts } from '../../src/datapath/ebpf/conntrack-gc.js';

const S = 1_000_000_000n;
const id = (k: CtKey) => encodeCtKey(k).toString('hex');
const origin = { hostIp: '10.0.0.1', hostPort: 8080, proto: 6 };

/** Both directions of a client → 10.0.0.1:8080 → 172.20.0.2:80 flow. */
function flow(lastSeen: bigint, flags: [number, number], proto = 6): CtEntry[] {
  const k1: CtKey = { saddr: '10.0.0.2', daddr: '10.0.0.1', sport: 40000, dport: 8080, proto };
  const v1: CtValue = { lastSeenNs: lastSeen, newSaddr: '0.0.0.0', newDaddr: '172.20.0.2', newSport: 0, newDport: 80, ifindex: 11, origin, flags: CT_DNAT | CT_PUBLISHED, tcpFlags: flags[0] };
  const k2: CtKey = { saddr: '172.20.0.2', daddr: '10.0.0.2', sport: 80, dport: 40000, proto };
  const v2: CtValue = { ...v1, newSaddr: '10.0.0.1', newDaddr: '0.0.0.0', newSport: 8080, newDport: 0, ifindex: 0, flags: CT_SNAT | CT_REPLY | CT_PUBLISHED, tcpFlags: flags[1] };
  return [
    { key: k1, value: v1, id: id(k1) },
    { key: k2, value: v2, id: id(k2) },
  ];
}

describe('conntrack GC', () => {
  it('gives TCP flows the timeout of their state', () => {
    const [a, b] = flow(0n, [TCP_SYN | TCP_ACK, TCP_SYN | TCP_ACK]);
    expect(flowTimeout(6, a!.value, b!.value, DEFAULT_TIMEOUTS)).toBe(21600);
    expect(flowTimeout(6, { ...a!.value, tcpFlags: TCP_SYN }, { ...b!.value, tcpFlags: 0 }, DEFAULT_TIMEOUTS)).toBe(60);
    // Closed by FIN both ways: kept as long as the far end's TIME_WAIT; a reset leaves none.
    expect(flowTimeout(6, { ...a!.value, tcpFlags: TCP_ACK | TCP_FIN }, { ...b!.value, tcpFlags: TCP_ACK | TCP_FIN }, DEFAULT_TIMEOUTS)).toBe(60);
    expect(flowTimeout(6, { ...a!.value, tcpFlags: TCP_ACK | TCP_RST }, { ...b!.value, tcpFlags: TCP_ACK }, DEFAULT_TIMEOUTS)).toBe(10);
    expect(flowTimeout(17, a!.value, b!.value, DEFAULT_TIMEOUTS)).toBe(60);
  });

  it('expires both directions together once idle past the timeout, and not before', () => {
    const entries = flow(10n * S, [0, 0], 17);
    const t = parseTimeouts('udp=5');
    expect(expiredEntries(entries, 14n * S, t, id, () => true)).toEqual([]);
    expect(expiredEntries(entries, 16n * S, t, id, () => true).sort()).toEqual(entries.map((e) => e.id).sort());
  });

  it('keeps a flow alive while either direction is active', () => {
    const entries = flow(0n, [0, 0], 17);
    entries[1]!.value.lastSeenNs = 100n * S;
    expect(expiredEntries(entries, 101n * S, parseTimeouts('udp=5'), id, () => true)).toEqual([]);
  });

  it('an entry whose reply tuple another flow took over is stale: it goes alone, the other flow stays', () => {
    // client:40000 → :8080 closed; the same client port to :8081 (same container port) took the reply tuple over.
    const [stale] = flow(0n, [TCP_SYN | TCP_ACK | TCP_FIN, 0]);
    const other = flow(100n * S, [TCP_SYN | TCP_ACK, TCP_SYN | TCP_ACK]).map((e) =>
      e.value.flags & CT_REPLY ? { ...e, value: { ...e.value, newSport: 8081 } } : { ...e, key: { ...e.key, dport: 8081 }, id: id({ ...e.key, dport: 8081 }) },
    );
    const entries = [stale!, ...other];
    // Both live flows' entries lead to each other; the stale one's partner leads elsewhere.
    expect(expiredEntries(entries, 101n * S, DEFAULT_TIMEOUTS, id, () => true)).toEqual([stale!.id]);
  });

  it('removes flows through ports that are no longer published', () => {
    const entries = flow(10n * S, [TCP_SYN | TCP_ACK, TCP_SYN | TCP_ACK]);
    expect(expiredEntries(entries, 10n * S, DEFAULT_TIMEOUTS, id, () => false)).toHaveLength(2);
  });

  it('rejects malformed timeout flags with the allowed names', () => {
    expect(() => parseTimeouts('udp=0')).toThrow(/"udp=0" is not NAME=SECONDS/);
    expect(() => parseTimeouts('sctp=3')).toThrow(/names: tcp, tcp-syn/);
    expect(parseTimeouts('tcp=7,icmp=3')).toMatchObject({ tcp: 7, icmp: 3, udp: 60 });
  });
});
