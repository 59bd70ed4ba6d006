import { describe, expect, it } from 'vitest';
import { CT_DNAT, CT_MASQUERADE, CT_PUBLISHED, CT_REPLY, CT_SNAT, type CtKey, type CtValue, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from '../../src/datapath/ebpf/abi.js';
import { CtTable, DEFAULT_TIMEOUTS, expiredEntries, flowTimeout, parseTimeouts } from '../../src/datapath/ebpf/conntrack-gc.js';

const S = 1_000_000_000n;
const origin = { hostIp: '10.0.0.1', hostPort: 8080, proto: 6 };

/** Both directions of a client → 10.0.0.1:8080 → 172.20.0.2:80 flow. */
interface Entry {
  key: CtKey;
  value: CtValue;
}

/** The entries the GC would delete, as the test's entries. */
const expired = (entries: Entry[], nowNs: bigint, t = DEFAULT_TIMEOUTS, isPublished = () => true): Entry[] =>
  expiredEntries(CtTable.of(entries), nowNs, t, isPublished)
    .sort((a, b) => a - b)
    .map((i) => entries[i]!);

function flow(lastSeen: bigint, flags: [number, number], proto = 6): Entry[] {
  const k1: CtKey = { saddr: '10.0.0.2', daddr: '10.0.0.1', sport: 40000, dport: 8080, proto };
  const v1: CtValue = { lastSeenNs: lastSeen, newSaddr: '0.0.0.0', newDaddr: '172.20.0.2', newSport: 0, newDport: 80, ifindex: 11, origin, flags: CT_DNAT | CT_PUBLISHED, tcpFlags: flags[0] };
  const k2: CtKey = { saddr: '172.20.0.2', daddr: '10.0.0.2', sport: 80, dport: 40000, proto };
  const v2: CtValue = { ...v1, newSaddr: '10.0.0.1', newDaddr: '0.0.0.0', newSport: 8080, newDport: 0, ifindex: 0, flags: CT_SNAT | CT_REPLY | CT_PUBLISHED, tcpFlags: flags[1] };
  return [
    { key: k1, value: v1 },
    { key: k2, value: v2 },
  ];
}

describe('conntrack GC', () => {
  it('gives TCP flows the timeout of their state', () => {
    const [a, b] = flow(0n, [TCP_SYN | TCP_ACK, TCP_SYN | TCP_ACK]);
    expect(flowTimeout(6, a!.value.tcpFlags, b!.value.tcpFlags, DEFAULT_TIMEOUTS)).toBe(21600);
    expect(flowTimeout(6, TCP_SYN, 0, DEFAULT_TIMEOUTS)).toBe(60);
    expect(flowTimeout(6, TCP_SYN, undefined, DEFAULT_TIMEOUTS)).toBe(60);
    // Closed by FIN both ways: kept as long as the far end's TIME_WAIT; a reset leaves none.
    expect(flowTimeout(6, TCP_ACK | TCP_FIN, TCP_ACK | TCP_FIN, DEFAULT_TIMEOUTS)).toBe(60);
    expect(flowTimeout(6, TCP_ACK | TCP_RST, TCP_ACK, DEFAULT_TIMEOUTS)).toBe(10);
    expect(flowTimeout(17, a!.value.tcpFlags, b!.value.tcpFlags, DEFAULT_TIMEOUTS)).toBe(60);
  });

  it('expires both directions together once idle past the timeout, and not before', () => {
    const entries = flow(10n * S, [0, 0], 17);
    const t = parseTimeouts('udp=5');
    expect(expired(entries, 14n * S, t)).toEqual([]);
    expect(expired(entries, 16n * S, t)).toEqual(entries);
  });

  it('keeps a flow alive while either direction is active', () => {
    const entries = flow(0n, [0, 0], 17);
    entries[1]!.value.lastSeenNs = 100n * S;
    expect(expired(entries, 101n * S, parseTimeouts('udp=5'))).toEqual([]);
  });

  it('an entry whose reply tuple another flow took over is stale: it goes alone, the other flow stays', () => {
    // client:40000 → :8080 closed; the same client port to :8081 (same container port) took the reply tuple over.
    const [stale] = flow(0n, [TCP_SYN | TCP_ACK | TCP_FIN, 0]);
    const other = flow(100n * S, [TCP_SYN | TCP_ACK, TCP_SYN | TCP_ACK]).map((e) =>
      e.value.flags & CT_REPLY ? { ...e, value: { ...e.value, newSport: 8081 } } : { ...e, key: { ...e.key, dport: 8081 } },
    );
    const entries = [stale!, ...other];
    // Both live flows' entries lead to each other; the stale one's partner leads elsewhere.
    expect(expired(entries, 101n * S)).toEqual([stale]);
  });

  it('removes flows through ports that are no longer published', () => {
    const entries = flow(10n * S, [TCP_SYN | TCP_ACK, TCP_SYN | TCP_ACK]);
    expect(expired(entries, 10n * S, DEFAULT_TIMEOUTS, () => false)).toEqual(entries);
  });

  it('pairs masqueraded flows by their translated source, across a large table', () => {
    // 10 000 masqueraded flows container:P → remote:80, leaving as uplink:(P+1); one half-flow whose reply entry is gone.
    const entries: Entry[] = [];
    for (let p = 0; p < 10_000; p++) {
      const sport = 10_000 + p;
      const key: CtKey = { saddr: '172.20.0.2', daddr: '198.18.0.2', sport, dport: 80, proto: 6 };
      const value: CtValue = { lastSeenNs: 100n * S, newSaddr: '198.18.0.1', newDaddr: '0.0.0.0', newSport: sport + 1, newDport: 0, ifindex: 3, origin: { hostIp: '0.0.0.0', hostPort: 0, proto: 0 }, flags: CT_SNAT | CT_MASQUERADE, tcpFlags: TCP_SYN | TCP_ACK };
      const rkey: CtKey = { saddr: '198.18.0.2', daddr: '198.18.0.1', sport: 80, dport: sport + 1, proto: 6 };
      const rvalue: CtValue = { ...value, newSaddr: '0.0.0.0', newDaddr: '172.20.0.2', newSport: 0, newDport: sport, flags: CT_DNAT | CT_REPLY | CT_MASQUERADE };
      entries.push({ key, value }, { key: rkey, value: rvalue });
    }
    const half = entries.pop()!;
    // Established and recent: nothing goes but the lone original entry, which waits only tcp-syn.
    expect(expired(entries, 120n * S)).toEqual([]);
    expect(expired(entries, 161n * S)).toEqual([entries.at(-1)]);
    expect(half.value.flags & CT_REPLY).toBeTruthy();
  });

  it('rejects malformed timeout flags with the allowed names', () => {
    expect(() => parseTimeouts('udp=0')).toThrow(/"udp=0" is not NAME=SECONDS/);
    expect(() => parseTimeouts('sctp=3')).toThrow(/names: tcp, tcp-syn/);
    expect(parseTimeouts('tcp=7,icmp=3')).toMatchObject({ tcp: 7, icmp: 3, udp: 60 });
  });
});
