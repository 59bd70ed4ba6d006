import { describe, expect, it } from 'vitest';
import type { DatapathModel } from '../../src/datapath/datapath.js';
import {
  decodeEndpoint,
  decodeFirewallKey,
  decodePublishedKey,
  decodePublishedValue,
  NET_ICC,
  NET_INTERNAL,
  NET_MASQUERADE,
  PUB_DIRECT,
} from '../../src/datapath/ebpf/abi.js';
import { checkSupported, type HostFacts, renderMaps } from '../../src/datapath/ebpf/render.js';

const facts: HostFacts = {
  links: new Map([
    ['eth0', { ifindex: 2, mac: '02:00:00:00:00:02' }],
    ['br-a', { ifindex: 10, mac: '02:00:00:00:00:10' }],
    ['br-r', { ifindex: 20, mac: '02:00:00:00:00:20' }],
    ['veth-web', { ifindex: 11, mac: '0a:00:00:00:00:11' }],
    ['veth-db', { ifindex: 21, mac: '0a:00:00:00:00:21' }],
  ]),
  addresses: [
    { ifname: 'lo', address: '127.0.0.1' },
    { ifname: 'eth0', address: '10.0.0.1' },
    { ifname: 'eth0', address: '10.0.0.9' },
    { ifname: 'br-a', address: '172.20.0.1' },
  ],
};

function model(partial: Partial<DatapathModel> = {}): DatapathModel {
  return {
    networks: [
      { name: 'a', bridge: 'br-a', subnet: '172.20.0.0/16', gateway: '172.20.0.1', icc: false, masquerade: true, internal: false },
      { name: 'r', bridge: 'br-r', subnet: '172.30.0.0/24', gateway: '172.30.0.1', icc: true, masquerade: false, internal: false },
    ],
    endpoints: [
      { container: 'web', network: 'a', bridge: 'br-a', ip: '172.20.0.2', mac: '02:42:ac:14:00:02', hostIf: 'veth-web' },
      { container: 'db', network: 'r', bridge: 'br-r', ip: '172.30.0.2', mac: '02:42:ac:1e:00:02', hostIf: 'veth-db' },
    ],
    ports: [],
    links: [],
    uplinks: ['eth0'],
    firewall: [],
    ...partial,
  };
}

const values = (m: Map<string, Buffer>) => [...m.values()];
const keys = (m: Map<string, Buffer>) => [...m.keys()].map((k) => Buffer.from(k, 'hex'));

describe('renderMaps', () => {
  it('keys networks by bridge ifindex with their flags, mask and gateway', () => {
    const out = renderMaps(model({ networks: [{ ...model().networks[0]!, internal: true }, model().networks[1]!] }), facts);
    const a = out.bp_networks.get(Buffer.from([10, 0, 0, 0]).toString('hex'))!;
    expect(a.readUInt32LE(24)).toBe(NET_INTERNAL); // internal: no masquerade, icc off
    expect([...a.subarray(0, 12)]).toEqual([172, 20, 0, 0, 255, 255, 0, 0, 172, 20, 0, 1]);
    const r = out.bp_networks.get(Buffer.from([20, 0, 0, 0]).toString('hex'))!;
    expect(r.readUInt32LE(24)).toBe(NET_ICC);
    const masq = renderMaps(model(), facts).bp_networks.get(Buffer.from([10, 0, 0, 0]).toString('hex'))!;
    expect(masq.readUInt32LE(24)).toBe(NET_MASQUERADE);
  });

  it('indexes endpoints by address and by host-side ifindex', () => {
    const out = renderMaps(model(), facts);
    expect(values(out.bp_endpoints).map(decodeEndpoint)).toContainEqual({ ip: '172.20.0.2', ifindex: 11, networkId: 10, mac: '02:42:ac:14:00:02' });
    expect(out.bp_endpoint_by_if.get(Buffer.from([21, 0, 0, 0]).toString('hex'))).toEqual(
      out.bp_endpoints.get(Buffer.from([172, 30, 0, 2]).toString('hex')),
    );
  });

  it('uses the first address of each uplink for masquerade and lists every local address', () => {
    const out = renderMaps(model(), facts);
    expect(out.bp_uplinks.size).toBe(1);
    expect([...values(out.bp_uplinks)[0]!.subarray(0, 4)]).toEqual([10, 0, 0, 1]);
    expect(out.bp_local_addrs.size).toBe(4);
  });

  it('renders published ports; a routed network also gets its container port by the container address', () => {
    const out = renderMaps(
      model({
        ports: [
          { container: 'web', network: 'a', bridge: 'br-a', proto: 'tcp', hostIp: '0.0.0.0', hostPort: 8080, containerIp: '172.20.0.2', containerPort: 80 },
          { container: 'db', network: 'r', bridge: 'br-r', proto: 'udp', hostIp: '10.0.0.1', hostPort: 5353, containerIp: '172.30.0.2', containerPort: 53 },
        ],
      }),
      facts,
    );
    const rows = [...out.bp_published].map(([k, v]) => ({ ...decodePublishedKey(Buffer.from(k, 'hex')), ...decodePublishedValue(v) }));
    expect(rows).toHaveLength(3);
    expect(rows).toContainEqual(expect.objectContaining({ proto: 'tcp', hostIp: '0.0.0.0', hostPort: 8080, containerIp: '172.20.0.2', containerPort: 80, ifindex: 11, networkId: 10, flags: 0 }));
    expect(rows).toContainEqual(expect.objectContaining({ proto: 'udp', hostIp: '172.30.0.2', hostPort: 53, flags: PUB_DIRECT }));
  });

  it('refuses SCTP published on another port (its CRC32c covers the ports), accepts it on the same port', () => {
    const sctp = (hostPort: number) =>
      model({ ports: [{ container: 'web', network: 'a', bridge: 'br-a', proto: 'sctp', hostIp: '0.0.0.0', hostPort, containerIp: '172.20.0.2', containerPort: 3868 }] });
    expect(() => checkSupported(sctp(3868).ports)).not.toThrow();
    expect(() => checkSupported(sctp(3869).ports)).toThrow(/3869:3868\/sctp for web: the eBPF datapath cannot translate SCTP ports/);
  });

  it('renders both directions of a link permit', () => {
    const out = renderMaps(
      model({ links: [{ network: 'a', bridge: 'br-a', parent: 'web', parentIp: '172.20.0.2', child: 'x', childIp: '172.20.0.3', proto: 'tcp', port: 5432 }] }),
      facts,
    );
    const ks = keys(out.bp_links).map((k) => [[...k.subarray(0, 8)].join('.'), k.readUInt16BE(8), k[10], k[11]]);
    expect(ks).toEqual([
      ['172.20.0.2.172.20.0.3', 5432, 6, 0],
      ['172.20.0.3.172.20.0.2', 5432, 6, 1],
    ]);
  });

  it('renders deny rules with and without a port', () => {
    const out = renderMaps(model({ firewall: [{ cidr: '192.0.2.0/24' }, { cidr: '198.51.100.7/32', proto: 'udp', port: 53 }] }), facts);
    expect(keys(out.bp_firewall).map(decodeFirewallKey)).toEqual([
      { addr: '192.0.2.0', prefixLen: 24, port: 0, proto: 0 },
      { addr: '198.51.100.7', prefixLen: 32, port: 53, proto: 17 },
    ]);
  });

  it('names a missing interface', () => {
    const missing: HostFacts = { links: new Map([...facts.links].filter(([n]) => n !== 'veth-db')), addresses: facts.addresses };
    expect(() => renderMaps(model(), missing)).toThrow(/endpoint db: veth veth-db: no such interface/);
  });
});
