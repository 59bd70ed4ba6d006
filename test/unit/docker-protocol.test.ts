import { describe, expect, it } from 'vitest';
import { endpointSpec, exposedPorts, externalPorts, networkSpec, portSpecs } from '../../src/docker/protocol.js';

const NET = '5b9a9ba3d7e0c1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f80912';
const EP = 'e1d2c3b4a5968778695a4b3c2d1e0f1e2d3c4b5a69788796a5b4c3d2e1f00112';

describe('docker driver: CreateNetwork', () => {
  it('takes the pool, gateway (CIDR form), aux addresses, internal flag and -o options', () => {
    const spec = networkSpec({
      NetworkID: NET,
      Options: {
        'com.docker.network.enable_ipv6': false,
        'com.docker.network.internal': true,
        'com.docker.network.generic': { 'com.docker.network.bridge.enable_icc': 'false' },
      },
      IPv4Data: [{ AddressSpace: 'LocalDefault', Pool: '10.66.0.0/24', Gateway: '10.66.0.1/24', AuxAddresses: { router: '10.66.0.5/24' } }],
      IPv6Data: [],
    });
    expect(spec).toEqual({
      name: `docker-${NET.slice(0, 12)}`,
      subnet: '10.66.0.0/24',
      gateway: '10.66.0.1',
      internal: true,
      options: { 'com.docker.network.bridge.enable_icc': 'false' },
      auxAddresses: ['10.66.0.5'],
      owner: { frontEnd: 'docker', key: NET },
      bridgeName: `br-${NET.slice(0, 12)}`,
    });
  });

  it('leaves the bridge name to -o com.docker.network.bridge.name when given', () => {
    const spec = networkSpec({
      NetworkID: NET,
      Options: { 'com.docker.network.generic': { 'com.docker.network.bridge.name': 'bpdock0' } },
      IPv4Data: [{ Pool: '10.66.0.0/24', Gateway: '10.66.0.1/24' }],
    });
    expect(spec.bridgeName).toBeUndefined();
    expect(spec.options).toEqual({ 'com.docker.network.bridge.name': 'bpdock0' });
    expect(spec.internal).toBe(false);
  });

  it.each([
    [{ NetworkID: 'x', IPv4Data: [{ Pool: '10.0.0.0/24' }] }, /network ID "x" is not a Docker ID/],
    [{ NetworkID: NET, IPv4Data: [] }, /exactly one IPv4 pool per network, not 0/],
    [{ NetworkID: NET, IPv4Data: [{ Pool: '10.0.0.0/24' }, { Pool: '10.0.1.0/24' }] }, /not 2/],
    [{ NetworkID: NET, Options: { 'com.docker.network.enable_ipv6': true }, IPv4Data: [{ Pool: '10.0.0.0/24' }] }, /IPv6 is not supported/],
    [{ NetworkID: NET, IPv4Data: [{ Pool: '10.0.0.0/24' }], IPv6Data: [{ Pool: 'fd00::/64' }] }, /IPv6 is not supported/],
    [{ NetworkID: NET, Options: { 'com.docker.network.generic': { a: { b: 1 } } }, IPv4Data: [{ Pool: '10.0.0.0/24' }] }, /option a: a string value/],
  ])('refuses %j', (req, message) => {
    expect(() => networkSpec(req as any)).toThrow(message);
  });
});

describe('docker driver: port maps', () => {
  it('translates every form dockerd sends', () => {
    expect(
      portSpecs([
        // -p 8080:80
        { Proto: 6, IP: '', Port: 80, HostIP: '', HostPort: 8080, HostPortEnd: 8080 },
        // -P / -p 80
        { Proto: 6, IP: '', Port: 81, HostIP: '', HostPort: 0, HostPortEnd: 0 },
        // -p 127.0.0.1::83/udp
        { Proto: 17, IP: '', Port: 83, HostIP: '127.0.0.1', HostPort: 0, HostPortEnd: 0 },
        // -p 9200-9210:200
        { Proto: 6, IP: '', Port: 200, HostIP: '', HostPort: 9200, HostPortEnd: 9210 },
        // sctp, and a HostPortEnd of 0 with a fixed host port (older clients)
        { Proto: 132, Port: 5000, HostPort: 5000 },
      ]),
    ).toEqual([
      { hostIp: undefined, hostPortStart: 8080, hostPortEnd: 8080, containerPortStart: 80, containerPortEnd: 80, proto: 'tcp' },
      { hostIp: undefined, hostPortStart: 0, hostPortEnd: 0, containerPortStart: 81, containerPortEnd: 81, proto: 'tcp' },
      { hostIp: '127.0.0.1', hostPortStart: 0, hostPortEnd: 0, containerPortStart: 83, containerPortEnd: 83, proto: 'udp' },
      { hostIp: undefined, hostPortStart: 9200, hostPortEnd: 9210, containerPortStart: 200, containerPortEnd: 200, proto: 'tcp' },
      { hostIp: undefined, hostPortStart: 5000, hostPortEnd: 5000, containerPortStart: 5000, containerPortEnd: 5000, proto: 'sctp' },
    ]);
    expect(portSpecs(null)).toEqual([]);
  });

  it.each([
    [[{ Proto: 1, Port: 80 }], /unsupported protocol number 1/],
    [[{ Proto: 6, Port: 0 }], /container port 0 is out of range/],
    [[{ Proto: 6, Port: 80, HostPort: 70000 }], /host port 70000 is out of range/],
    ['80', /must be a list/],
  ])('refuses %j', (value, message) => {
    expect(() => portSpecs(value)).toThrow(message);
  });

  it('translates exposed ports', () => {
    expect(exposedPorts([{ Proto: 6, Port: 80 }, { Proto: 17, Port: 53 }])).toEqual([
      { proto: 'tcp', start: 80, end: 80 },
      { proto: 'udp', start: 53, end: 53 },
    ]);
  });
});

describe('docker driver: CreateEndpoint', () => {
  it('keeps the address dockerd gives and its MAC when given; checks the port map, which ProgramExternalConnectivity publishes', () => {
    const spec = endpointSpec(
      {
        NetworkID: NET,
        EndpointID: EP,
        Interface: { Address: '10.66.0.2/24', AddressIPv6: '', MacAddress: '02:42:0a:42:00:63' },
        Options: {
          'com.docker.network.endpoint.exposedports': [{ Proto: 6, Port: 80 }],
          'com.docker.network.portmap': [{ Proto: 6, IP: '', Port: 80, HostIP: '', HostPort: 8080, HostPortEnd: 8080 }],
        },
      },
      'docker-5b9a9ba3d7e0',
    );
    expect(spec).toMatchObject({
      network: 'docker-5b9a9ba3d7e0',
      name: `docker-${EP.slice(0, 12)}`,
      owner: { frontEnd: 'docker', key: EP, network: NET },
      ip: '10.66.0.2',
      mac: '02:42:0a:42:00:63',
      exposed: [{ proto: 'tcp', start: 80, end: 80 }],
    });
    const noMac = endpointSpec({ NetworkID: NET, EndpointID: EP, Interface: { Address: '10.66.0.2/24', MacAddress: '' } }, 'n');
    expect(noMac.mac).toBeUndefined();
    const badMap = { 'com.docker.network.portmap': [{ Proto: 6, Port: 80, HostPort: 70000 }] };
    expect(() => endpointSpec({ NetworkID: NET, EndpointID: EP, Interface: { Address: '10.66.0.2/24' }, Options: badMap }, 'n')).toThrow(/host port 70000 is out of range/);
    expect(externalPorts({ NetworkID: NET, EndpointID: EP, Options: { 'com.docker.network.portmap': [{ Proto: 17, Port: 53, HostIP: '', HostPort: 5353 }] } })).toEqual([
      { hostIp: undefined, hostPortStart: 5353, hostPortEnd: 5353, containerPortStart: 53, containerPortEnd: 53, proto: 'udp' },
    ]);
    expect(externalPorts({ NetworkID: NET, EndpointID: EP })).toEqual([]);
  });

  it('refuses an endpoint without an IPv4 address, or with IPv6', () => {
    expect(() => endpointSpec({ NetworkID: NET, EndpointID: EP, Interface: {} }, 'n')).toThrow(/no IPv4 address given/);
    expect(() => endpointSpec({ NetworkID: NET, EndpointID: EP, Interface: { Address: '10.0.0.2/24', AddressIPv6: 'fd00::2/64' } }, 'n')).toThrow(
      /IPv6 is not supported/,
    );
  });
});
