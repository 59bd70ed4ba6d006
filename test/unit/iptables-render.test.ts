import { describe, expect, it } from 'vitest';
import type { DatapathModel, DpEndpoint, DpLinkPermit, DpNetwork, DpPort } from '../../src/datapath/datapath.js';
import { CHAINS, OWN_CHAINS, renderRules } from '../../src/datapath/iptables/render.js';

// Fixtures: one network "bridge" on bp0 (172.17.0.0/16), container web at 172.17.0.2.

function net(partial: Partial<DpNetwork> = {}): DpNetwork {
  return {
    name: 'bridge',
    bridge: 'bp0',
    subnet: '172.17.0.0/16',
    gateway: '172.17.0.1',
    icc: true,
    masquerade: true,
    internal: false,
    ...partial,
  };
}

function endpoint(partial: Partial<DpEndpoint> = {}): DpEndpoint {
  return {
    container: 'web',
    network: 'bridge',
    bridge: 'bp0',
    ip: '172.17.0.2',
    mac: '02:42:ac:11:00:02',
    hostIf: 'vethweb0',
    ...partial,
  };
}

function port(partial: Partial<DpPort> = {}): DpPort {
  return {
    container: 'web',
    network: 'bridge',
    bridge: 'bp0',
    proto: 'tcp',
    hostIp: '0.0.0.0',
    hostPort: 8080,
    containerIp: '172.17.0.2',
    containerPort: 80,
    ...partial,
  };
}

function model(partial: Partial<DatapathModel> = {}): DatapathModel {
  return { networks: [net()], endpoints: [endpoint()], ports: [], links: [], uplinks: ['eth0'], firewall: [], ...partial };
}

/** The three FORWARD-stage rules every rendering starts with. */
const FORWARD_HEAD = [
  '-A BRIDGEPORT-FORWARD -j BRIDGEPORT-CT',
  '-A BRIDGEPORT-FORWARD -j BRIDGEPORT-INTERNAL',
  '-A BRIDGEPORT-FORWARD -j BRIDGEPORT-BRIDGE',
];

describe('renderRules: default network, icc=true, -p 8080:80 (Docker §2.3 + --userland-proxy=false)', () => {
  const rules = renderRules(model({ ports: [port()] }));

  it('renders the filter table', () => {
    expect(rules.filter).toEqual([
      ...FORWARD_HEAD,
      '-A BRIDGEPORT-CT -o bp0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
      '-A BRIDGEPORT-BRIDGE -o bp0 -j BRIDGEPORT',
      '-A BRIDGEPORT-FORWARD -i bp0 -j ACCEPT',
      '-A BRIDGEPORT -d 172.17.0.2/32 ! -i bp0 -o bp0 -p tcp -m tcp --dport 80 -j ACCEPT',
      '-A BRIDGEPORT ! -i bp0 -o bp0 -m comment --comment bridgeport:drop:network_isolation -j DROP',
    ]);
  });

  it('renders the nat table: masquerade, LOCAL-source masquerade, own-port hairpin, DNAT without ! -i br', () => {
    expect(rules.nat).toEqual([
      '-A BRIDGEPORT-POSTROUTING -s 172.17.0.0/16 ! -o bp0 -m conntrack ! --ctstate DNAT -m comment --comment bridgeport:count:masq-out:bp0',
      '-A BRIDGEPORT-POSTROUTING -s 172.17.0.0/16 ! -o bp0 -m comment --comment bridgeport:masquerade:bridge -j MASQUERADE',
      '-A BRIDGEPORT-POSTROUTING -o bp0 -m addrtype --src-type LOCAL -j MASQUERADE',
      '-A BRIDGEPORT-POSTROUTING -s 172.17.0.2/32 -d 172.17.0.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE',
      '-A BRIDGEPORT -p tcp -m tcp --dport 8080 -m comment --comment bridgeport:port:tcp:0.0.0.0:8080 -j DNAT --to-destination 172.17.0.2:80',
    ]);
    expect(rules.nat.some((r) => r.includes('! -i bp0') && r.includes('DNAT'))).toBe(false);
  });

  it('renders the raw table: direct-access DROP per endpoint, network isolation first for traffic from a bridge', () => {
    expect(rules.raw).toEqual([
      '-A BRIDGEPORT-COUNT-PRE -s 172.17.0.2/32 -i bp0 -m comment --comment bridgeport:count:tx:vethweb0',
      '-A BRIDGEPORT-RAW -i bp0 -j MARK --set-xmark 0x100000/0x100000',
      '-A BRIDGEPORT-RAW -d 172.17.0.2/32 ! -i bp0 -m mark --mark 0x100000/0x100000 -m comment --comment bridgeport:drop:network_isolation -j DROP',
      '-A BRIDGEPORT-RAW -d 172.17.0.2/32 ! -i bp0 -m comment --comment bridgeport:drop:direct_access -j DROP',
      '-A BRIDGEPORT-RAW -j MARK --set-xmark 0x0/0x100000',
    ]);
  });

  it('only appends to chains of its own', () => {
    for (const table of ['filter', 'nat', 'raw', 'mangle'] as const) {
      for (const r of rules[table]) {
        const chain = r.split(' ')[1] ?? '';
        expect(r.startsWith('-A ')).toBe(true);
        expect(OWN_CHAINS[table]).toContain(chain);
      }
    }
    expect(rules.filter.some((r) => r.startsWith(`-A ${CHAINS.user} `))).toBe(false);
  });

  it('is deterministic', () => {
    expect(renderRules(model({ ports: [port()] }))).toEqual(rules);
  });
});

describe('renderRules: a network with no containers', () => {
  it('still renders per-bridge rules, no DNAT, no raw', () => {
    const rules = renderRules(model({ endpoints: [] }));
    expect(rules.filter).toEqual([
      ...FORWARD_HEAD,
      '-A BRIDGEPORT-CT -o bp0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
      '-A BRIDGEPORT-BRIDGE -o bp0 -j BRIDGEPORT',
      '-A BRIDGEPORT-FORWARD -i bp0 -j ACCEPT',
      '-A BRIDGEPORT ! -i bp0 -o bp0 -m comment --comment bridgeport:drop:network_isolation -j DROP',
    ]);
    expect(rules.nat).toEqual([
      '-A BRIDGEPORT-POSTROUTING -s 172.17.0.0/16 ! -o bp0 -m conntrack ! --ctstate DNAT -m comment --comment bridgeport:count:masq-out:bp0',
      '-A BRIDGEPORT-POSTROUTING -s 172.17.0.0/16 ! -o bp0 -m comment --comment bridgeport:masquerade:bridge -j MASQUERADE',
      '-A BRIDGEPORT-POSTROUTING -o bp0 -m addrtype --src-type LOCAL -j MASQUERADE',
    ]);
    expect(rules.raw).toEqual([]);
  });
});

describe('renderRules: icc=false', () => {
  const rules = renderRules(model({ networks: [net({ icc: false })], ports: [port()] }));

  it('drops bridge-to-bridge traffic, then accepts egress (instead of -i br -j ACCEPT)', () => {
    const drop = '-A BRIDGEPORT-FORWARD -i bp0 -o bp0 -m comment --comment bridgeport:drop:icc_denied -j DROP';
    const egress = '-A BRIDGEPORT-FORWARD -i bp0 ! -o bp0 -j ACCEPT';
    expect(rules.filter).toEqual([
      ...FORWARD_HEAD,
      '-A BRIDGEPORT-CT -o bp0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
      '-A BRIDGEPORT-BRIDGE -o bp0 -j BRIDGEPORT',
      drop,
      egress,
      '-A BRIDGEPORT -d 172.17.0.2/32 ! -i bp0 -o bp0 -p tcp -m tcp --dport 80 -j ACCEPT',
      '-A BRIDGEPORT ! -i bp0 -o bp0 -m comment --comment bridgeport:drop:network_isolation -j DROP',
    ]);
    expect(rules.filter.indexOf(drop)).toBeLessThan(rules.filter.indexOf(egress));
    expect(rules.filter).not.toContain('-A BRIDGEPORT-FORWARD -i bp0 -j ACCEPT');
  });

  it('leaves nat and raw as with icc=true', () => {
    const icc = renderRules(model({ ports: [port()] }));
    expect(rules.nat).toEqual(icc.nat);
    expect(rules.raw).toEqual(icc.raw);
  });
});

describe('renderRules: internal network', () => {
  const internal = net({ name: 'secret', bridge: 'bp-secret', subnet: '10.9.0.0/24', gateway: '10.9.0.1', internal: true, masquerade: false });
  const ep = endpoint({ container: 'db', network: 'secret', bridge: 'bp-secret', ip: '10.9.0.2' });

  it('with icc=true: both INTERNAL drops and an -i br -o br ACCEPT, no egress ACCEPT', () => {
    const rules = renderRules(model({ networks: [internal], endpoints: [ep] }));
    expect(rules.filter).toEqual([
      ...FORWARD_HEAD,
      '-A BRIDGEPORT-CT -o bp-secret -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
      '-A BRIDGEPORT-BRIDGE -o bp-secret -j BRIDGEPORT',
      '-A BRIDGEPORT-INTERNAL ! -s 10.9.0.0/24 -o bp-secret -m comment --comment bridgeport:drop:internal_network -j DROP',
      '-A BRIDGEPORT-INTERNAL ! -d 10.9.0.0/24 -i bp-secret -m comment --comment bridgeport:drop:internal_network -j DROP',
      '-A BRIDGEPORT-FORWARD -i bp-secret -o bp-secret -j ACCEPT',
      '-A BRIDGEPORT ! -i bp-secret -o bp-secret -m comment --comment bridgeport:drop:network_isolation -j DROP',
    ]);
    expect(rules.filter).not.toContain('-A BRIDGEPORT-FORWARD -i bp-secret -j ACCEPT');
    expect(rules.filter).not.toContain('-A BRIDGEPORT-FORWARD -i bp-secret ! -o bp-secret -j ACCEPT');
  });

  it('has no MASQUERADE and no DNAT, even with masquerade=true in the model', () => {
    const rules = renderRules(model({ networks: [{ ...internal, masquerade: true }], endpoints: [ep] }));
    expect(rules.nat).toEqual([]);
    expect(rules.raw).toEqual([
      '-A BRIDGEPORT-COUNT-PRE -s 10.9.0.2/32 -i bp-secret -m comment --comment bridgeport:count:tx:vethweb0',
      '-A BRIDGEPORT-RAW -i bp-secret -j MARK --set-xmark 0x100000/0x100000',
      '-A BRIDGEPORT-RAW -d 10.9.0.2/32 ! -i bp-secret -m mark --mark 0x100000/0x100000 -m comment --comment bridgeport:drop:network_isolation -j DROP',
      '-A BRIDGEPORT-RAW -d 10.9.0.2/32 ! -i bp-secret -m comment --comment bridgeport:drop:direct_access -j DROP',
      '-A BRIDGEPORT-RAW -j MARK --set-xmark 0x0/0x100000',
    ]);
  });

  it('with icc=false: the -i br -o br rule becomes a DROP', () => {
    const rules = renderRules(model({ networks: [{ ...internal, icc: false }], endpoints: [ep] }));
    const fwd = rules.filter.filter((r) => r.startsWith('-A BRIDGEPORT-FORWARD -i '));
    expect(fwd).toEqual([
      '-A BRIDGEPORT-FORWARD -i bp-secret -o bp-secret -m comment --comment bridgeport:drop:icc_denied -j DROP',
    ]);
    expect(rules.filter.filter((r) => r.startsWith('-A BRIDGEPORT-INTERNAL '))).toHaveLength(2);
  });

  it('next to a non-internal network, only the internal one gets INTERNAL drops and only the other NAT', () => {
    const rules = renderRules(model({ networks: [net(), internal], endpoints: [endpoint(), ep], ports: [port()] }));
    expect(rules.filter.filter((r) => r.startsWith('-A BRIDGEPORT-INTERNAL '))).toEqual([
      '-A BRIDGEPORT-INTERNAL ! -s 10.9.0.0/24 -o bp-secret -m comment --comment bridgeport:drop:internal_network -j DROP',
      '-A BRIDGEPORT-INTERNAL ! -d 10.9.0.0/24 -i bp-secret -m comment --comment bridgeport:drop:internal_network -j DROP',
    ]);
    expect(rules.nat.some((r) => r.includes('bp-secret') || r.includes('10.9.0.'))).toBe(false);
  });
});

describe('renderRules: masquerade=false', () => {
  it('drops the egress MASQUERADE but keeps the LOCAL-source one and the hairpin', () => {
    const rules = renderRules(model({ networks: [net({ masquerade: false })], ports: [port()] }));
    expect(rules.nat).toEqual([
      '-A BRIDGEPORT-POSTROUTING -o bp0 -m addrtype --src-type LOCAL -j MASQUERADE',
      '-A BRIDGEPORT-POSTROUTING -s 172.17.0.2/32 -d 172.17.0.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE',
      '-A BRIDGEPORT -p tcp -m tcp --dport 8080 -m comment --comment bridgeport:port:tcp:0.0.0.0:8080 -j DNAT --to-destination 172.17.0.2:80',
    ]);
    expect(rules.nat.some((r) => r.includes('-s 172.17.0.0/16'))).toBe(false);
  });
});

describe('renderRules: host addresses', () => {
  it('a port bound to 127.0.0.1: DNAT -d 127.0.0.1/32 and a raw ! -i lo DROP', () => {
    const rules = renderRules(model({ ports: [port({ hostIp: '127.0.0.1' })] }));
    expect(rules.nat).toContain(
      '-A BRIDGEPORT -d 127.0.0.1/32 -p tcp -m tcp --dport 8080 -m comment --comment bridgeport:port:tcp:127.0.0.1:8080 -j DNAT --to-destination 172.17.0.2:80',
    );
    expect(rules.raw).toEqual([
      '-A BRIDGEPORT-COUNT-PRE -s 172.17.0.2/32 -i bp0 -m comment --comment bridgeport:count:tx:vethweb0',
      '-A BRIDGEPORT-RAW -i bp0 -j MARK --set-xmark 0x100000/0x100000',
      '-A BRIDGEPORT-RAW -d 172.17.0.2/32 ! -i bp0 -m mark --mark 0x100000/0x100000 -m comment --comment bridgeport:drop:network_isolation -j DROP',
      '-A BRIDGEPORT-RAW -d 172.17.0.2/32 ! -i bp0 -m comment --comment bridgeport:drop:direct_access -j DROP',
      '-A BRIDGEPORT-RAW -d 127.0.0.1/32 ! -i lo -p tcp -m tcp --dport 8080 -m comment --comment bridgeport:drop:direct_access -j DROP',
      '-A BRIDGEPORT-RAW -j MARK --set-xmark 0x0/0x100000',
    ]);
  });

  it('a port bound to a specific host address: DNAT -d IP/32 and no raw port DROP', () => {
    const rules = renderRules(model({ ports: [port({ hostIp: '192.0.2.10' })] }));
    expect(rules.nat).toContain(
      '-A BRIDGEPORT -d 192.0.2.10/32 -p tcp -m tcp --dport 8080 -m comment --comment bridgeport:port:tcp:192.0.2.10:8080 -j DNAT --to-destination 172.17.0.2:80',
    );
    expect(rules.raw).toEqual([
      '-A BRIDGEPORT-COUNT-PRE -s 172.17.0.2/32 -i bp0 -m comment --comment bridgeport:count:tx:vethweb0',
      '-A BRIDGEPORT-RAW -i bp0 -j MARK --set-xmark 0x100000/0x100000',
      '-A BRIDGEPORT-RAW -d 172.17.0.2/32 ! -i bp0 -m mark --mark 0x100000/0x100000 -m comment --comment bridgeport:drop:network_isolation -j DROP',
      '-A BRIDGEPORT-RAW -d 172.17.0.2/32 ! -i bp0 -m comment --comment bridgeport:drop:direct_access -j DROP',
      '-A BRIDGEPORT-RAW -j MARK --set-xmark 0x0/0x100000',
    ]);
  });

  it('filter ACCEPT does not depend on the host address', () => {
    const lo = renderRules(model({ ports: [port({ hostIp: '127.0.0.1' })] }));
    const any = renderRules(model({ ports: [port()] }));
    expect(lo.filter).toEqual(any.filter);
  });
});

describe('renderRules: protocols', () => {
  it.each([
    ['udp', '-p udp -m udp'],
    ['sctp', '-p sctp -m sctp'],
  ] as const)('%s ports match with %s everywhere', (proto, match) => {
    const rules = renderRules(model({ ports: [port({ proto, hostPort: 5353, containerPort: 53, hostIp: '127.0.0.1' })] }));
    expect(rules.filter).toContain(`-A BRIDGEPORT -d 172.17.0.2/32 ! -i bp0 -o bp0 ${match} --dport 53 -j ACCEPT`);
    expect(rules.nat).toContain(`-A BRIDGEPORT-POSTROUTING -s 172.17.0.2/32 -d 172.17.0.2/32 ${match} --dport 53 -j MASQUERADE`);
    expect(rules.nat).toContain(
      `-A BRIDGEPORT -d 127.0.0.1/32 ${match} --dport 5353 -m comment --comment bridgeport:port:${proto}:127.0.0.1:5353 -j DNAT --to-destination 172.17.0.2:53`,
    );
    expect(rules.raw).toContain(
      `-A BRIDGEPORT-RAW -d 127.0.0.1/32 ! -i lo ${match} --dport 5353 -m comment --comment bridgeport:drop:direct_access -j DROP`,
    );
    for (const table of ['filter', 'nat', 'raw', 'mangle'] as const) {
      expect(rules[table].some((r) => r.includes('-p tcp'))).toBe(false);
    }
  });

  it('the same port number in two protocols gives separate rules', () => {
    const rules = renderRules(model({ ports: [port(), port({ proto: 'udp' })] }));
    expect(rules.filter.filter((r) => r.includes('--dport 80 -j ACCEPT'))).toEqual([
      '-A BRIDGEPORT -d 172.17.0.2/32 ! -i bp0 -o bp0 -p tcp -m tcp --dport 80 -j ACCEPT',
      '-A BRIDGEPORT -d 172.17.0.2/32 ! -i bp0 -o bp0 -p udp -m udp --dport 80 -j ACCEPT',
    ]);
    expect(rules.nat.filter((r) => r.includes('-j DNAT'))).toHaveLength(2);
  });
});

describe('renderRules: links and ordering in chain BRIDGEPORT', () => {
  const db = endpoint({ container: 'db', ip: '172.17.0.3', hostIf: 'vethdb0' });
  const link = (partial: Partial<DpLinkPermit> = {}): DpLinkPermit => ({
    network: 'bridge',
    bridge: 'bp0',
    parent: 'web',
    parentIp: '172.17.0.2',
    child: 'db',
    childIp: '172.17.0.3',
    proto: 'tcp',
    port: 5432,
    ...partial,
  });

  const rules = renderRules(
    model({
      networks: [net({ icc: false })],
      endpoints: [endpoint(), db],
      ports: [port()],
      links: [link(), link({ proto: 'udp', port: 5433 })],
    }),
  );
  const chain = rules.filter.filter((r) => r.startsWith('-A BRIDGEPORT '));

  it('renders forward and reverse ACCEPTs per permit, before per-port ACCEPTs, before the isolation DROP', () => {
    expect(chain).toEqual([
      '-A BRIDGEPORT -s 172.17.0.2/32 -d 172.17.0.3/32 -i bp0 -o bp0 -p tcp -m tcp --dport 5432 -m comment --comment bridgeport:link:web:db -j ACCEPT',
      '-A BRIDGEPORT -s 172.17.0.3/32 -d 172.17.0.2/32 -i bp0 -o bp0 -p tcp -m tcp --sport 5432 -m comment --comment bridgeport:link:web:db -j ACCEPT',
      '-A BRIDGEPORT -s 172.17.0.2/32 -d 172.17.0.3/32 -i bp0 -o bp0 -p udp -m udp --dport 5433 -m comment --comment bridgeport:link:web:db -j ACCEPT',
      '-A BRIDGEPORT -s 172.17.0.3/32 -d 172.17.0.2/32 -i bp0 -o bp0 -p udp -m udp --sport 5433 -m comment --comment bridgeport:link:web:db -j ACCEPT',
      '-A BRIDGEPORT -d 172.17.0.2/32 ! -i bp0 -o bp0 -p tcp -m tcp --dport 80 -j ACCEPT',
      '-A BRIDGEPORT ! -i bp0 -o bp0 -m comment --comment bridgeport:drop:network_isolation -j DROP',
    ]);
  });

  it('every ACCEPT in BRIDGEPORT precedes every DROP, with several networks', () => {
    const other = net({ name: 'back', bridge: 'bp-back', subnet: '10.1.0.0/24', gateway: '10.1.0.1' });
    const r = renderRules(
      model({
        networks: [net(), other],
        endpoints: [endpoint(), db, endpoint({ container: 'api', network: 'back', bridge: 'bp-back', ip: '10.1.0.2' })],
        ports: [port(), port({ container: 'api', network: 'back', bridge: 'bp-back', containerIp: '10.1.0.2', hostPort: 9090, containerPort: 90 })],
        links: [link()],
      }),
    );
    const c = r.filter.filter((x) => x.startsWith('-A BRIDGEPORT '));
    const lastAccept = c.map((x) => x.endsWith('-j ACCEPT')).lastIndexOf(true);
    const firstDrop = c.findIndex((x) => x.endsWith('-j DROP'));
    expect(lastAccept).toBeGreaterThanOrEqual(0);
    expect(firstDrop).toBeGreaterThan(lastAccept);
    expect(c.slice(firstDrop)).toEqual([
      '-A BRIDGEPORT ! -i bp0 -o bp0 -m comment --comment bridgeport:drop:network_isolation -j DROP',
      '-A BRIDGEPORT ! -i bp-back -o bp-back -m comment --comment bridgeport:drop:network_isolation -j DROP',
    ]);
    expect(c).toContain('-A BRIDGEPORT -d 10.1.0.2/32 ! -i bp-back -o bp-back -p tcp -m tcp --dport 90 -j ACCEPT');
  });

  it('links add nothing to nat or raw', () => {
    const without = renderRules(model({ networks: [net({ icc: false })], endpoints: [endpoint(), db], ports: [port()] }));
    expect(rules.nat).toEqual(without.nat);
    expect(rules.raw).toEqual(without.raw);
  });
});

describe('renderRules: two host ports to the same container port', () => {
  const rules = renderRules(model({ ports: [port(), port({ hostPort: 8081 })] }));

  it('one filter ACCEPT, one hairpin, two DNATs', () => {
    expect(rules.filter.filter((r) => r.includes('--dport 80 '))).toEqual([
      '-A BRIDGEPORT -d 172.17.0.2/32 ! -i bp0 -o bp0 -p tcp -m tcp --dport 80 -j ACCEPT',
    ]);
    expect(rules.nat.filter((r) => r.includes('-d 172.17.0.2/32'))).toEqual([
      '-A BRIDGEPORT-POSTROUTING -s 172.17.0.2/32 -d 172.17.0.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE',
    ]);
    expect(rules.nat.filter((r) => r.includes('-j DNAT'))).toEqual([
      '-A BRIDGEPORT -p tcp -m tcp --dport 8080 -m comment --comment bridgeport:port:tcp:0.0.0.0:8080 -j DNAT --to-destination 172.17.0.2:80',
      '-A BRIDGEPORT -p tcp -m tcp --dport 8081 -m comment --comment bridgeport:port:tcp:0.0.0.0:8081 -j DNAT --to-destination 172.17.0.2:80',
    ]);
  });

  it('two containers with the same container port each get their ACCEPT', () => {
    const r = renderRules(
      model({
        endpoints: [endpoint(), endpoint({ container: 'web2', ip: '172.17.0.3' })],
        ports: [port(), port({ container: 'web2', containerIp: '172.17.0.3', hostPort: 8081 })],
      }),
    );
    expect(r.filter.filter((x) => x.includes('--dport 80 -j ACCEPT'))).toEqual([
      '-A BRIDGEPORT -d 172.17.0.2/32 ! -i bp0 -o bp0 -p tcp -m tcp --dport 80 -j ACCEPT',
      '-A BRIDGEPORT -d 172.17.0.3/32 ! -i bp0 -o bp0 -p tcp -m tcp --dport 80 -j ACCEPT',
    ]);
  });
});

describe('renderRules: routed CIDRs (network create --routed-cidr, a cluster pod CIDR)', () => {
  const rules = renderRules(model({ networks: [net({ routedCidrs: ['10.244.0.0/16'] })] }));
  const grep = (table: string[], text: string) => table.filter((l) => l.includes(text));

  it('does not masquerade toward them: a RETURN before the count and MASQUERADE rules', () => {
    const ret = rules.nat.findIndex((l) => l.includes('-d 10.244.0.0/16') && l.endsWith('-j RETURN'));
    const masq = rules.nat.findIndex((l) => l.includes('bridgeport:masquerade:bridge'));
    expect(rules.nat[ret]).toBe('-A BRIDGEPORT-POSTROUTING -s 172.17.0.0/16 -d 10.244.0.0/16 ! -o bp0 -m comment --comment bridgeport:routed:bridge -j RETURN');
    expect(ret).toBeGreaterThanOrEqual(0);
    expect(ret).toBeLessThan(masq);
    expect(ret).toBeLessThan(rules.nat.findIndex((l) => l.includes('bridgeport:count:masq-out:bp0')));
  });

  it('lets them in to every container address, on an uplink only, ahead of the direct-access drops', () => {
    expect(grep(rules.filter, 'bridgeport:routed:')).toEqual(['-A BRIDGEPORT -s 10.244.0.0/16 -i eth0 -o bp0 -m comment --comment bridgeport:routed:bridge -j ACCEPT']);
    const accept = rules.raw.findIndex((l) => l.includes('bridgeport:routed:bridge'));
    expect(rules.raw[accept]).toBe('-A BRIDGEPORT-RAW -s 10.244.0.0/16 -d 172.17.0.0/16 -i eth0 -m comment --comment bridgeport:routed:bridge -j ACCEPT');
    expect(accept).toBeLessThan(rules.raw.findIndex((l) => l.includes('bridgeport:drop:direct_access')));
    expect(rules.filter.findIndex((l) => l.includes('bridgeport:routed:'))).toBeLessThan(rules.filter.findIndex((l) => l.includes('bridgeport:drop:network_isolation')));
  });

  it('renders nothing of the kind without them', () => {
    const plain = renderRules(model());
    expect([...plain.filter, ...plain.nat, ...plain.raw].filter((l) => l.includes('routed'))).toEqual([]);
  });
});
