import { describe, expect, it } from 'vitest';
import type { DatapathModel } from '../../src/datapath/datapath.js';
import { countersFrom, parseConntrack } from '../../src/datapath/iptables/counters.js';
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

  it('count each endpoint both ways, each published port both ways by its original destination, and masquerade', () => {
    expect(rules).toContain('-A BRIDGEPORT-COUNT-PRE -s 172.17.0.2/32 -i bp0 -m comment --comment bridgeport:count:tx:veth1');
    expect(rules).toContain('-A BRIDGEPORT-COUNT-POST -d 172.17.0.2/32 -o bp0 -m comment --comment bridgeport:count:rx:veth1');
    expect(rules).toContain(
      '-A BRIDGEPORT-COUNT-POST -d 172.17.0.2/32 -o bp0 -p udp -m udp --dport 53 -m conntrack --ctstate DNAT --ctorigdstport 5330 --ctdir ORIGINAL -m addrtype ! --src-type LOCAL -m comment --comment bridgeport:count:port-in:udp:0.0.0.0:5330',
    );
    expect(rules).toContain(
      '-A BRIDGEPORT-COUNT-POST -s 172.17.0.2/32 -p tcp -m tcp --sport 80 -m conntrack --ctstate DNAT --ctorigdst 10.0.0.1 --ctorigdstport 8080 --ctdir REPLY -m addrtype ! --dst-type LOCAL -m comment --comment bridgeport:count:port-out:tcp:10.0.0.1:8080',
    );
    expect(rules).toContain('-A BRIDGEPORT-COUNT-POST -s 172.17.0.0/16 ! -o bp0 -m comment --comment bridgeport:count:masq-out:bp0');
    // Counting rules carry no verdict.
    expect(rules.every((r) => !/ -j /.test(r))).toBe(true);
  });

  it('are part of the rendered rule set; traffic from another bridge to a container counts as network isolation', () => {
    const set = renderRules(model);
    expect(set.mangle).toEqual(rules);
    const isolation = set.raw.findIndex((r) => r.includes('-d 172.18.0.2/32') && r.includes('network_isolation'));
    const direct = set.raw.findIndex((r) => r.includes('-d 172.18.0.2/32') && r.includes('direct_access'));
    expect(isolation).toBeGreaterThanOrEqual(0);
    expect(isolation).toBeLessThan(direct);
    expect(set.raw).toContain('-A BRIDGEPORT-RAW -i bp0 -j MARK --set-xmark 0x100000/0x100000');
    expect(set.raw.at(-1)).toBe('-A BRIDGEPORT-RAW -j MARK --set-xmark 0x0/0x100000');
  });
});

describe('countersFrom', () => {
  const save = `*mangle
[25:800] -A BRIDGEPORT-COUNT-POST -d 172.17.0.2/32 -o bp0 -p udp -m udp --dport 53 -m conntrack --ctstate DNAT --ctdir ORIGINAL --ctorigdstport 5330 -m addrtype ! --src-type LOCAL -m comment --comment bridgeport:count:port-in:udp:0.0.0.0:5330
[25:1500] -A BRIDGEPORT-COUNT-POST -s 172.17.0.2/32 -p udp -m udp --sport 53 -m conntrack --ctstate DNAT --ctdir REPLY --ctorigdstport 5330 -m addrtype ! --dst-type LOCAL -m comment --comment bridgeport:count:port-out:udp:0.0.0.0:5330
[30:900] -A BRIDGEPORT-COUNT-PRE -s 172.17.0.2/32 -i bp0 -m comment --comment bridgeport:count:tx:veth1
[10:320] -A BRIDGEPORT-COUNT-POST -s 172.17.0.0/16 ! -o bp0 -m comment --comment bridgeport:count:masq-out:bp0
COMMIT
*filter
[4:128] -A BRIDGEPORT-FORWARD -i bp0 -o bp0 -m comment --comment bridgeport:drop:icc_denied -j DROP
[1:32] -A BRIDGEPORT-FORWARD -i br-o -o br-o -m comment --comment bridgeport:drop:icc_denied -j DROP
COMMIT
*raw
[2:64] -A BRIDGEPORT-RAW -s 203.0.113.0/24 -i eth0 -m comment --comment bridgeport:drop:deny_list -j DROP
COMMIT
`;
  const flows = parseConntrack(
    [
      'udp      17 29 src=198.18.0.2 dst=198.18.0.1 sport=40530 dport=5330 src=172.17.0.2 dst=198.18.0.2 sport=53 dport=40530 mark=0 use=1',
      'udp      17 20 src=172.17.0.2 dst=198.18.0.2 sport=40531 dport=9 src=198.18.0.2 dst=198.18.0.1 sport=9 dport=40531 mark=0 use=1',
      'tcp      6 431999 ESTABLISHED src=172.18.0.2 dst=172.18.0.1 sport=5000 dport=22 src=172.18.0.1 dst=172.18.0.2 sport=22 dport=5000 [ASSURED] mark=0 use=1',
      'tcp      6 30 TIME_WAIT src=127.0.0.1 dst=127.0.0.1 sport=4000 dport=9477 src=127.0.0.1 dst=127.0.0.1 sport=9477 dport=4000 [ASSURED] mark=0 use=1',
      '',
    ].join('\n'),
  );
  const stats = countersFrom(parseSave(save), flows, model.networks);

  it('reads rule counters by comment, summing drops of one reason over rules', () => {
    expect(stats.ports).toEqual([{ proto: 'udp', hostIp: '0.0.0.0', hostPort: 5330, in: { packets: 25, bytes: 800 }, out: { packets: 25, bytes: 1500 } }]);
    expect(stats.endpoints).toEqual([{ hostIf: 'veth1', rx: { packets: 0, bytes: 0 }, tx: { packets: 30, bytes: 900 } }]);
    expect(stats.masquerade).toEqual([{ bridge: 'bp0', out: { packets: 10, bytes: 320 }, in: { packets: 0, bytes: 0 } }]);
    expect(stats.drops.icc_denied).toEqual({ packets: 5, bytes: 160 });
    expect(stats.drops.deny_list).toEqual({ packets: 2, bytes: 64 });
    expect(stats.drops.network_isolation).toEqual({ packets: 0, bytes: 0 });
    expect(stats.drops.spoofed_source).toBeUndefined();
    expect(stats.xdp).toBeUndefined();
  });

  it('classifies conntrack flows of its networks: DNATed, SNATed, other; NAT ports per network', () => {
    expect(flows).toHaveLength(4);
    expect(stats.conntrack).toEqual({ published: 1, masquerade: 1, other: 1 });
    expect(stats.natPortsInUse).toEqual([{ bridge: 'bp0', ports: 1 }]);
  });
});
