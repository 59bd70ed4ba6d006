import { describe, expect, it } from 'vitest';
import type { DatapathModel } from '../../src/datapath/datapath.js';
import { countersFrom, OBSERVED_DROPS, parseConntrack } from '../../src/datapath/iptables/counters.js';
import { renderCounters, renderRules } from '../../src/datapath/iptables/render.js';
import { parseSave } from '../../src/datapath/iptables/restore.js';

const model: DatapathModel = {
  networks: [
    { name: 'bridge', bridge: 'bp0', subnet: '172.17.0.0/16', gateway: '172.17.0.1', icc: true, masquerade: true, internal: false },
    { name: 'other', bridge: 'br-o', subnet: '172.18.0.0/16', gateway: '172.18.0.1', icc: true, masquerade: true, internal: false },
  ],
  endpoints: [
    { container: 'web', network: 'bridge', bridge: 'bp0', ip: '172.17.0.2', mac: '02:42:ac:11:00:02', hostIf: 'veth1' },
    { container: 'db', network: 'other', bridge: 'br-o', ip: '172.18.0.2', mac: '02:42:ac:12:00:02', hostIf: 'veth2' },
  ],
  ports: [
    { container: 'web', network: 'bridge', bridge: 'bp0', proto: 'udp', hostIp: '0.0.0.0', hostPort: 5330, containerIp: '172.17.0.2', containerPort: 53 },
    { container: 'web', network: 'bridge', bridge: 'bp0', proto: 'tcp', hostIp: '10.0.0.1', hostPort: 8080, containerIp: '172.17.0.2', containerPort: 80 },
  ],
  links: [],
  uplinks: ['eth0'],
  firewall: [],
};

describe('counting rules', () => {
  const rules = renderCounters(model);

  it('count what each endpoint sends in raw (before any drop) and receives in mangle', () => {
    expect(rules.raw).toEqual([
      '-A BRIDGEPORT-COUNT-PRE -s 172.17.0.2/32 -i bp0 -m comment --comment bridgeport:count:tx:veth1',
      '-A BRIDGEPORT-COUNT-PRE -s 172.18.0.2/32 -i br-o -m comment --comment bridgeport:count:tx:veth2',
    ]);
    expect(rules.mangle).toContain('-A BRIDGEPORT-COUNT-POST -d 172.17.0.2/32 -o bp0 -m comment --comment bridgeport:count:rx:veth1');
  });

  it('count each published port both ways by its original destination, not for host processes', () => {
    expect(rules.mangle).toContain(
      '-A BRIDGEPORT-COUNT-POST -d 172.17.0.2/32 -o bp0 -p udp -m udp --dport 53 -m conntrack --ctstate DNAT --ctorigdstport 5330 --ctdir ORIGINAL -m addrtype ! --src-type LOCAL -m comment --comment bridgeport:count:port-in:udp:0.0.0.0:5330',
    );
    expect(rules.mangle).toContain(
      '-A BRIDGEPORT-COUNT-POST -s 172.17.0.2/32 -p tcp -m tcp --sport 80 -m conntrack --ctstate DNAT --ctorigdst 10.0.0.1 --ctorigdstport 8080 --ctdir REPLY -m addrtype ! --dst-type LOCAL -m comment --comment bridgeport:count:port-out:tcp:10.0.0.1:8080',
    );
  });

  it('count masquerade both ways by conntrack state, published (DNATed) flows excluded', () => {
    expect(rules.mangle).toContain(
      '-A BRIDGEPORT-COUNT-POST -s 172.17.0.0/16 ! -o bp0 -m conntrack --ctstate SNAT --ctdir ORIGINAL -m conntrack ! --ctstate DNAT -m comment --comment bridgeport:count:masq-out:bp0',
    );
    expect(rules.mangle).toContain(
      '-A BRIDGEPORT-COUNT-POST -d 172.17.0.0/16 -o bp0 -m conntrack --ctstate SNAT --ctdir REPLY -m conntrack ! --ctstate DNAT -m comment --comment bridgeport:count:masq-in:bp0',
    );
    // Counting rules carry no verdict, and each comment is unique within its table.
    for (const table of [rules.raw, rules.mangle]) {
      expect(table.every((r) => !/ -j /.test(r))).toBe(true);
      const comments = table.map((r) => /--comment (\S+)/.exec(r)?.[1]);
      expect(new Set(comments).size).toBe(table.length);
    }
  });

  it('no masquerade counters for internal or routed networks; one port counter per host address and port', () => {
    const m: DatapathModel = {
      ...model,
      networks: [{ ...model.networks[0]!, masquerade: false }, { ...model.networks[1]!, internal: true }],
      ports: [...model.ports, { ...model.ports[0]!, containerIp: '172.17.0.3', container: 'web2' }],
    };
    const r = renderCounters(m);
    expect(r.mangle.some((x) => x.includes('masq-'))).toBe(false);
    expect(r.mangle.filter((x) => x.includes('port-in:udp:0.0.0.0:5330'))).toHaveLength(1);
    expect(renderRules(m).nat.some((x) => x.includes('masq-'))).toBe(false);
  });

  it('are part of the rendered rule set: tx first in raw, the first packet of a masqueraded flow beside its MASQUERADE', () => {
    const set = renderRules(model);
    expect(set.mangle).toEqual(rules.mangle);
    expect(set.raw.slice(0, rules.raw.length)).toEqual(rules.raw);
    // nat POSTROUTING is the first place the first packet is masqueraded: counted right before it, DNATed flows excepted.
    const masq = set.nat.indexOf('-A BRIDGEPORT-POSTROUTING -s 172.17.0.0/16 ! -o bp0 -m comment --comment bridgeport:masquerade:bridge -j MASQUERADE');
    expect(set.nat[masq - 1]).toBe(
      '-A BRIDGEPORT-POSTROUTING -s 172.17.0.0/16 ! -o bp0 -m conntrack ! --ctstate DNAT -m comment --comment bridgeport:count:masq-out:bp0',
    );
    const isolation = set.raw.findIndex((r) => r.includes('-d 172.18.0.2/32') && r.includes('network_isolation'));
    const direct = set.raw.findIndex((r) => r.includes('-d 172.18.0.2/32') && r.includes('direct_access'));
    expect(isolation).toBeGreaterThanOrEqual(0);
    expect(isolation).toBeLessThan(direct);
    expect(set.raw).toContain('-A BRIDGEPORT-RAW -i bp0 -j MARK --set-xmark 0x100000/0x100000');
    expect(set.raw.at(-1)).toBe('-A BRIDGEPORT-RAW -j MARK --set-xmark 0x0/0x100000');
  });
});

describe('countersFrom', () => {
  // As iptables-save -c prints it (comments quoted, its own option order).
  const save = `# Generated by iptables-save v1.8.9 (nf_tables)
*raw
:PREROUTING ACCEPT [0:0]
:BRIDGEPORT-COUNT-PRE - [0:0]
:BRIDGEPORT-RAW - [0:0]
[30:900] -A BRIDGEPORT-COUNT-PRE -s 172.17.0.2/32 -i bp0 -m comment --comment "bridgeport:count:tx:veth1"
[2:64] -A BRIDGEPORT-RAW -s 203.0.113.0/24 -i eth0 -m comment --comment "bridgeport:drop:deny_list" -j DROP
[3:96] -A BRIDGEPORT-RAW -d 172.18.0.2/32 ! -i br-o -m mark --mark 0x100000/0x100000 -m comment --comment "bridgeport:drop:network_isolation" -j DROP
COMMIT
*mangle
:BRIDGEPORT-COUNT-POST - [0:0]
:BRIDGEPORT-COUNT-RETIRED - [0:0]
[25:800] -A BRIDGEPORT-COUNT-POST -d 172.17.0.2/32 -o bp0 -p udp -m udp --dport 53 -m conntrack --ctstate DNAT --ctorigdstport 5330 --ctdir ORIGINAL -m addrtype ! --src-type LOCAL -m comment --comment "bridgeport:count:port-in:udp:0.0.0.0:5330"
[25:1500] -A BRIDGEPORT-COUNT-POST -s 172.17.0.2/32 -p udp -m udp --sport 53 -m conntrack --ctstate DNAT --ctorigdstport 5330 --ctdir REPLY -m addrtype ! --dst-type LOCAL -m comment --comment "bridgeport:count:port-out:udp:0.0.0.0:5330"
[9:288] -A BRIDGEPORT-COUNT-POST -s 172.17.0.0/16 ! -o bp0 -m conntrack --ctstate SNAT --ctdir ORIGINAL -m conntrack ! --ctstate DNAT -m comment --comment "bridgeport:count:masq-out:bp0"
[10:600] -A BRIDGEPORT-COUNT-POST -d 172.17.0.0/16 -o bp0 -m conntrack --ctstate SNAT --ctdir REPLY -m conntrack ! --ctstate DNAT -m comment --comment "bridgeport:count:masq-in:bp0"
[6:192] -A BRIDGEPORT-COUNT-RETIRED -m comment --comment "bridgeport:drop:icc_denied"
COMMIT
*nat
:BRIDGEPORT-POSTROUTING - [0:0]
[1:32] -A BRIDGEPORT-POSTROUTING -s 172.17.0.0/16 ! -o bp0 -m conntrack ! --ctstate DNAT -m comment --comment "bridgeport:count:masq-out:bp0"
[1:32] -A BRIDGEPORT-POSTROUTING -s 172.17.0.0/16 ! -o bp0 -m comment --comment "bridgeport:masquerade:bridge" -j MASQUERADE
COMMIT
*filter
:BRIDGEPORT-USER - [0:0]
:BRIDGEPORT-FORWARD - [0:0]
[50:5000] -A BRIDGEPORT-USER -m comment --comment "bridgeport:drop:icc_denied" -j DROP
[4:128] -A BRIDGEPORT-FORWARD -i bp0 -o bp0 -m comment --comment "bridgeport:drop:icc_denied" -j DROP
[1:32] -A BRIDGEPORT-FORWARD -i br-o -o br-o -m comment --comment "bridgeport:drop:icc_denied" -j DROP
COMMIT
`;
  const flows = parseConntrack(
    [
      // published: from outside; hairpin to itself (SNATed to the gateway); from another network (SNATed to that bridge)
      'udp      17 29 src=198.18.0.2 dst=198.18.0.1 sport=40530 dport=5330 src=172.17.0.2 dst=198.18.0.2 sport=53 dport=40530 mark=0 use=1',
      'udp      17 29 src=172.17.0.2 dst=198.18.0.1 sport=41044 dport=5330 src=172.17.0.2 dst=172.17.0.1 sport=53 dport=41044 mark=0 use=1',
      'udp      17 29 src=172.18.0.2 dst=198.18.0.1 sport=41045 dport=5330 src=172.17.0.2 dst=172.17.0.1 sport=53 dport=41045 mark=0 use=1',
      // masquerade
      'udp      17 20 src=172.17.0.2 dst=198.18.0.2 sport=40531 dport=9 src=198.18.0.2 dst=198.18.0.1 sport=9 dport=40531 mark=0 use=1',
      'tcp      6 431999 ESTABLISHED src=172.17.0.2 dst=198.18.0.2 sport=40532 dport=80 src=198.18.0.2 dst=198.18.0.1 sport=80 dport=40532 [ASSURED] mark=0 use=1',
      // other: a container and its gateway; a host process through a published port (eBPF: no NAT, not a published flow)
      'tcp      6 431999 ESTABLISHED src=172.18.0.2 dst=172.18.0.1 sport=5000 dport=22 src=172.18.0.1 dst=172.18.0.2 sport=22 dport=5000 [ASSURED] mark=0 use=1',
      'udp      17 28 src=127.0.0.1 dst=127.0.0.1 sport=41040 dport=5330 src=172.17.0.2 dst=172.17.0.1 sport=53 dport=41040 mark=0 use=1',
      // not a container's: the host's own, and the bridge's own IGMP from the gateway address
      'tcp      6 30 TIME_WAIT src=127.0.0.1 dst=127.0.0.1 sport=4000 dport=9477 src=127.0.0.1 dst=127.0.0.1 sport=9477 dport=4000 [ASSURED] mark=0 use=1',
      'unknown  2 577 src=172.17.0.1 dst=224.0.0.22 [UNREPLIED] src=224.0.0.22 dst=172.17.0.1 mark=0 use=1',
      '',
    ].join('\n'),
  );
  const stats = countersFrom(parseSave(save), flows, model.networks);

  it('reads rule counters by comment, summing the rules of one comment', () => {
    expect(stats.ports).toEqual([{ proto: 'udp', hostIp: '0.0.0.0', hostPort: 5330, in: { packets: 25, bytes: 800 }, out: { packets: 25, bytes: 1500 } }]);
    expect(stats.endpoints).toEqual([{ hostIf: 'veth1', rx: { packets: 0, bytes: 0 }, tx: { packets: 30, bytes: 900 } }]);
    // out: the first packet counted in nat + the rest in mangle.
    expect(stats.masquerade).toEqual([{ bridge: 'bp0', out: { packets: 10, bytes: 320 }, in: { packets: 10, bytes: 600 } }]);
  });

  it('sums drops per reason, with those of rules gone since, and only from chains of its own', () => {
    expect(stats.drops).toEqual({
      icc_denied: { packets: 11, bytes: 352 },
      network_isolation: { packets: 3, bytes: 96 },
      internal_network: { packets: 0, bytes: 0 },
      direct_access: { packets: 0, bytes: 0 },
      deny_list: { packets: 2, bytes: 64 },
    });
    expect(Object.keys(stats.drops)).toEqual([...OBSERVED_DROPS]);
    expect(stats.xdp).toBeUndefined();
    expect(stats.maps).toBeUndefined();
  });

  it('classifies conntrack flows of containers: DNATed, SNATed, other; NAT ports per network', () => {
    expect(flows).toHaveLength(9);
    expect(stats.conntrack).toEqual({ published: 3, masquerade: 2, other: 2 });
    expect(stats.natPortsInUse).toEqual([{ bridge: 'bp0', ports: 2 }]);
  });

  it('an empty save and an empty conntrack table give zeros, not errors', () => {
    expect(parseConntrack('')).toEqual([]);
    expect(parseConntrack('conntrack v1.4.7 (conntrack-tools): 0 flow entries have been shown.\n')).toEqual([]);
    const empty = countersFrom(parseSave(''), [], model.networks);
    expect(empty).toMatchObject({ ports: [], endpoints: [], masquerade: [], conntrack: { published: 0, masquerade: 0, other: 0 }, natPortsInUse: [] });
  });
});

describe('parseConntrack', () => {
  it('reads the original and reply tuples of every protocol, ignoring anything else', () => {
    const text = [
      'icmp     1 29 src=172.17.0.2 dst=198.18.0.2 type=8 code=0 id=7 src=198.18.0.2 dst=198.18.0.1 type=0 code=0 id=7 mark=0 use=1',
      'sctp     132 10 ESTABLISHED src=198.18.0.2 dst=198.18.0.1 sport=5000 dport=3868 src=172.17.0.2 dst=198.18.0.2 sport=3868 dport=5000 [ASSURED] mark=0 use=1',
      'garbage line',
      'tcp      6 10 SYN_SENT src=172.17.0.2 dst=198.18.0.2 sport=1 dport=2 [UNREPLIED]',
    ].join('\n');
    expect(parseConntrack(text)).toEqual([
      { proto: 'icmp', orig: { src: '172.17.0.2', dst: '198.18.0.2' }, reply: { src: '198.18.0.2', dst: '198.18.0.1' } },
      { proto: 'sctp', orig: { src: '198.18.0.2', dst: '198.18.0.1' }, reply: { src: '172.17.0.2', dst: '198.18.0.2' } },
    ]);
  });
});
