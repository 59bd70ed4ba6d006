import { describe, expect, it } from 'vitest';
import { BridgeportError } from '../../src/model/errors.js';
import {
  bindingsOverlap,
  type ExpandContext,
  expandPortSpec,
  formatBinding,
  formatPortSpec,
  type PortBinding,
  PortIndex,
  type PortSpec,
  type Proto,
  parseExposedPort,
  parsePortSpec,
} from '../../src/model/port-spec.js';

function spec(partial: Partial<PortSpec>): PortSpec {
  return {
    hostIp: undefined,
    hostPortStart: 0,
    hostPortEnd: 0,
    containerPortStart: 80,
    containerPortEnd: 80,
    proto: 'tcp',
    ...partial,
  };
}

function ctx(taken: PortBinding[] = [], ephemeral = { low: 32768, high: 32775 }): ExpandContext {
  return {
    defaultHostIp: '0.0.0.0',
    ephemeral,
    isTaken: (proto: Proto, hostIp: string, hostPort: number) =>
      taken.some((t) => bindingsOverlap(t, { proto, hostIp, hostPort, containerPort: 0 })),
  };
}

function thrown(fn: () => unknown): BridgeportError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(BridgeportError);
    return err as BridgeportError;
  }
  throw new Error('expected an error');
}

describe('parsePortSpec', () => {
  it('parses a bare container port', () => {
    expect(parsePortSpec('80')).toEqual(spec({}));
  });

  it('parses a container port range with a protocol', () => {
    expect(parsePortSpec('80-82')).toEqual(spec({ containerPortEnd: 82 }));
    expect(parsePortSpec('53/udp')).toEqual(spec({ containerPortStart: 53, containerPortEnd: 53, proto: 'udp' }));
  });

  it('parses hostPort:containerPort', () => {
    expect(parsePortSpec('8080:80')).toEqual(spec({ hostPortStart: 8080, hostPortEnd: 8080 }));
  });

  it('parses equal-length host and container ranges', () => {
    expect(parsePortSpec('8000-8002:80-82/udp')).toEqual({
      hostIp: undefined,
      hostPortStart: 8000,
      hostPortEnd: 8002,
      containerPortStart: 80,
      containerPortEnd: 82,
      proto: 'udp',
    });
  });

  it('parses a host range for a single container port', () => {
    expect(parsePortSpec('8000-8010:80')).toEqual(spec({ hostPortStart: 8000, hostPortEnd: 8010 }));
  });

  it('parses hostIp:hostPort:containerPort', () => {
    expect(parsePortSpec('127.0.0.1:8080:80/sctp')).toEqual(
      spec({ hostIp: '127.0.0.1', hostPortStart: 8080, hostPortEnd: 8080, proto: 'sctp' }),
    );
  });

  it('parses hostIp::containerPort as an ephemeral host port', () => {
    expect(parsePortSpec('127.0.0.1::80')).toEqual(spec({ hostIp: '127.0.0.1' }));
    expect(parsePortSpec('10.1.2.3::80-81/udp')).toEqual(
      spec({ hostIp: '10.1.2.3', containerPortEnd: 81, proto: 'udp' }),
    );
  });

  it('reads the protocol case-insensitively', () => {
    expect(parsePortSpec('80/UDP').proto).toBe('udp');
    expect(parsePortSpec('80/Sctp').proto).toBe('sctp');
  });

  it.each([
    ['', /parse port spec "": empty port spec/],
    ['   ', /parse port spec " {3}": empty port spec/],
    ['0', /parse port spec "0": container port 0 is out of range 1-65535/],
    ['65536', /parse port spec "65536": container port 65536 is out of range 1-65535/],
    ['65536:80', /host port 65536 is out of range 1-65535/],
    ['8080:0', /container port 0 is out of range/],
    ['+80', /container port "\+80" is not a decimal number/],
    [' 80', /container port " 80" is not a decimal number/],
    ['0x50', /container port "0x50" is not a decimal number/],
    ['80/icmp', /parse port spec "80\/icmp": unknown protocol "icmp" \(want tcp, udp or sctp\)/],
    ['80/', /unknown protocol ""/],
    ['80:80:80:80', /parse port spec "80:80:80:80": too many colons/],
    ['1.2.3.4:80:80:80', /too many colons/],
    ['82-80', /container port range 82-80 is reversed/],
    ['8010-8000:80', /host port range 8010-8000 is reversed/],
    ['80-', /parse port spec "80-": empty container port/],
    ['80-81-82', /container port range "80-81-82" has too many dashes/],
    [':80', /empty host port/],
    ['::80', /empty host IP/],
    ['/tcp', /empty container port/],
    ['8000-8002:80-81', /port range mismatch: host 8000-8002 \(3 ports\) vs container 80-81 \(2 ports\)/],
    ['8080:80-81', /port range mismatch: host 8080 \(1 port\) vs container 80-81 \(2 ports\)/],
    ['1.2.3.256:80:80', /invalid host IP "1.2.3.256": octet 256 is out of range 0-255/],
    ['1.2.3:80:80', /invalid host IP "1.2.3": not a dotted-quad IPv4 address/],
    ['01.2.3.4:80:80', /invalid host IP "01.2.3.4": octet "01" has a leading zero/],
    ['localhost:80:80', /invalid host IP "localhost"/],
    ['[::1]:80:80', /parse port spec "\[::1\]:80:80": IPv6 host addresses are not supported yet/],
    ['::1:80:80', /IPv6 host addresses are not supported yet/],
    ['fe80::1:8080:80', /IPv6 host addresses are not supported yet/],
  ])('rejects %j', (text, message) => {
    const err = thrown(() => parsePortSpec(text));
    expect(err.kind).toBe('invalid');
    expect(err.message).toMatch(message);
  });
});

describe('formatPortSpec', () => {
  it.each([
    ['80', '80/tcp'],
    ['80-82/UDP', '80-82/udp'],
    ['8080:80', '8080:80/tcp'],
    ['8000-8002:80-82/udp', '8000-8002:80-82/udp'],
    ['8000-8010:80', '8000-8010:80/tcp'],
    ['127.0.0.1::80', '127.0.0.1::80/tcp'],
    ['127.0.0.1:8080:80/sctp', '127.0.0.1:8080:80/sctp'],
  ])('formats %j canonically as %j and round-trips', (input, canonical) => {
    const parsed = parsePortSpec(input);
    expect(formatPortSpec(parsed)).toBe(canonical);
    expect(parsePortSpec(canonical)).toEqual(parsed);
  });
});

describe('parseExposedPort', () => {
  it('parses single ports and ranges', () => {
    expect(parseExposedPort('80')).toEqual({ proto: 'tcp', start: 80, end: 80 });
    expect(parseExposedPort('80/udp')).toEqual({ proto: 'udp', start: 80, end: 80 });
    expect(parseExposedPort('8000-8010/TCP')).toEqual({ proto: 'tcp', start: 8000, end: 8010 });
  });

  it.each([
    ['', /parse exposed port "": empty port/],
    ['0', /parse exposed port "0": port 0 is out of range 1-65535/],
    ['70000/udp', /port 70000 is out of range/],
    ['80/gre', /unknown protocol "gre"/],
    ['8080:80', /parse exposed port "8080:80": an exposed port takes no host part/],
    ['90-80', /port range 90-80 is reversed/],
  ])('rejects %j', (text, message) => {
    expect(() => parseExposedPort(text)).toThrow(message);
  });
});

describe('formatBinding', () => {
  it('formats like docker ps', () => {
    expect(formatBinding({ proto: 'tcp', hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80 })).toBe(
      '0.0.0.0:8080->80/tcp',
    );
    expect(formatBinding({ proto: 'udp', hostIp: '127.0.0.1', hostPort: 5353, containerPort: 53 })).toBe(
      '127.0.0.1:5353->53/udp',
    );
  });
});

describe('bindingsOverlap', () => {
  const b = (hostIp: string, hostPort = 8080, proto: Proto = 'tcp'): PortBinding => ({
    proto,
    hostIp,
    hostPort,
    containerPort: 80,
  });

  it('overlaps on the same address, or when either side is 0.0.0.0', () => {
    expect(bindingsOverlap(b('127.0.0.1'), b('127.0.0.1'))).toBe(true);
    expect(bindingsOverlap(b('0.0.0.0'), b('127.0.0.1'))).toBe(true);
    expect(bindingsOverlap(b('10.0.0.1'), b('0.0.0.0'))).toBe(true);
    expect(bindingsOverlap(b('0.0.0.0'), b('0.0.0.0'))).toBe(true);
  });

  it('does not overlap on different addresses, ports or protocols', () => {
    expect(bindingsOverlap(b('127.0.0.1'), b('10.0.0.1'))).toBe(false);
    expect(bindingsOverlap(b('0.0.0.0', 8080), b('0.0.0.0', 8081))).toBe(false);
    expect(bindingsOverlap(b('0.0.0.0', 8080, 'tcp'), b('0.0.0.0', 8080, 'udp'))).toBe(false);
  });
});

describe('PortIndex', () => {
  it('answers every probe as a scan with bindingsOverlap would', () => {
    const ips = ['0.0.0.0', '127.0.0.1', '10.0.0.1', '10.0.0.2'];
    const protos: Proto[] = ['tcp', 'udp', 'sctp'];
    // A deterministic spread of bindings over few ports, so that probes hit and miss.
    const published: PortBinding[] = [];
    for (let i = 0; i < 40; i++) {
      published.push({ proto: protos[i % 3] as Proto, hostIp: ips[(i * 7) % 4] as string, hostPort: 8000 + ((i * 5) % 11), containerPort: 80 });
    }
    const index = new PortIndex(published.slice(0, 20));
    for (const b of published.slice(20)) index.add(b);
    let hits = 0;
    let misses = 0;
    for (const proto of protos) {
      for (const hostIp of [...ips, '192.0.2.1']) {
        for (let hostPort = 7999; hostPort <= 8012; hostPort++) {
          const probe = { proto, hostIp, hostPort, containerPort: 0 };
          const expected = published.some((p) => bindingsOverlap(p, probe));
          expect(index.overlaps(proto, hostIp, hostPort), `${proto} ${hostIp}:${hostPort}`).toBe(expected);
          if (expected) hits++;
          else misses++;
        }
      }
    }
    expect(hits).toBeGreaterThan(50);
    expect(misses).toBeGreaterThan(50);
  });

  it('is empty when built from nothing', () => {
    expect(new PortIndex().overlaps('tcp', '0.0.0.0', 80)).toBe(false);
  });

  it('forgets a removed binding, and only that one', () => {
    const a = { proto: 'tcp' as const, hostIp: '10.0.0.1', hostPort: 80, containerPort: 80 };
    const b = { proto: 'tcp' as const, hostIp: '10.0.0.2', hostPort: 80, containerPort: 81 };
    const index = new PortIndex([a, b]);
    expect(index.remove({ ...a })).toBe(false); // an equal object is not the one indexed
    expect(index.remove(a)).toBe(true);
    expect(index.overlaps('tcp', '10.0.0.1', 80)).toBe(false);
    expect(index.overlaps('tcp', '10.0.0.2', 80)).toBe(true);
    expect(index.overlaps('tcp', '0.0.0.0', 80)).toBe(true);
    expect(index.remove(a)).toBe(false);
    expect(index.remove(b)).toBe(true);
    expect(index.overlaps('tcp', '0.0.0.0', 80)).toBe(false);
    expect(index.on('tcp', 80)).toEqual([]);
  });

  it('made over another index, sees both and changes only itself', () => {
    const base = new PortIndex<PortBinding>([{ proto: 'udp', hostIp: '0.0.0.0', hostPort: 53, containerPort: 53 }]);
    const draft = new PortIndex([], base);
    const added = { proto: 'tcp' as const, hostIp: '10.0.0.1', hostPort: 80, containerPort: 80 };
    draft.add(added);
    expect(draft.overlaps('udp', '10.0.0.9', 53)).toBe(true);
    expect(draft.overlaps('tcp', '10.0.0.1', 80)).toBe(true);
    expect(base.overlaps('tcp', '10.0.0.1', 80)).toBe(false);
    expect(draft.on('tcp', 80)).toEqual([added]);
    expect(draft.on('udp', 53)).toHaveLength(1);
  });
});

describe('expandPortSpec', () => {
  it('maps a single host port to a single container port on the default IP', () => {
    expect(expandPortSpec(parsePortSpec('8080:80'), ctx())).toEqual([
      { proto: 'tcp', hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80 },
    ]);
  });

  it('maps equal-length ranges one to one', () => {
    expect(expandPortSpec(parsePortSpec('127.0.0.1:8000-8002:80-82/udp'), ctx()).map(formatBinding)).toEqual([
      '127.0.0.1:8000->80/udp',
      '127.0.0.1:8001->81/udp',
      '127.0.0.1:8002->82/udp',
    ]);
  });

  it('picks the first free port of a host range for a single container port', () => {
    const taken = [
      { proto: 'tcp' as const, hostIp: '0.0.0.0', hostPort: 8000, containerPort: 1 },
      { proto: 'tcp' as const, hostIp: '0.0.0.0', hostPort: 8001, containerPort: 1 },
    ];
    expect(expandPortSpec(parsePortSpec('8000-8010:80'), ctx(taken))).toEqual([
      { proto: 'tcp', hostIp: '0.0.0.0', hostPort: 8002, containerPort: 80 },
    ]);
  });

  it('gives each container port the lowest free ephemeral port, skipping taken ones', () => {
    const taken = [
      { proto: 'tcp' as const, hostIp: '0.0.0.0', hostPort: 32768, containerPort: 1 },
      { proto: 'tcp' as const, hostIp: '127.0.0.1', hostPort: 32770, containerPort: 1 },
      // Other protocols do not block the port.
      { proto: 'udp' as const, hostIp: '0.0.0.0', hostPort: 32769, containerPort: 1 },
    ];
    expect(expandPortSpec(parsePortSpec('80-82'), ctx(taken)).map(formatBinding)).toEqual([
      '0.0.0.0:32769->80/tcp',
      '0.0.0.0:32771->81/tcp',
      '0.0.0.0:32772->82/tcp',
    ]);
  });

  it('uses the spec host IP for ephemeral ports', () => {
    const taken = [{ proto: 'tcp' as const, hostIp: '10.0.0.1', hostPort: 32768, containerPort: 1 }];
    expect(expandPortSpec(parsePortSpec('127.0.0.1::80'), ctx(taken)).map(formatBinding)).toEqual([
      '127.0.0.1:32768->80/tcp',
    ]);
  });

  it('refuses a port already published on 0.0.0.0 when binding a specific IP', () => {
    const taken = [{ proto: 'tcp' as const, hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80 }];
    const err = thrown(() => expandPortSpec(parsePortSpec('127.0.0.1:8080:80'), ctx(taken)));
    expect(err.kind).toBe('conflict');
    expect(err.message).toBe(
      'publish 127.0.0.1:8080:80/tcp: host port 8080/tcp on 127.0.0.1 is already published',
    );
  });

  it('refuses 0.0.0.0 when a specific IP already has the port', () => {
    const taken = [{ proto: 'tcp' as const, hostIp: '127.0.0.1', hostPort: 8001, containerPort: 80 }];
    const err = thrown(() => expandPortSpec(parsePortSpec('8000-8002:80-82'), ctx(taken)));
    expect(err.kind).toBe('conflict');
    expect(err.message).toMatch(/host port 8001\/tcp on 0\.0\.0\.0 is already published/);
  });

  it('allows the same port on two different specific IPs', () => {
    const taken = [{ proto: 'tcp' as const, hostIp: '127.0.0.1', hostPort: 8080, containerPort: 80 }];
    expect(expandPortSpec(parsePortSpec('10.0.0.1:8080:80'), ctx(taken))).toHaveLength(1);
  });

  it('fails when the ephemeral range is exhausted, naming the range', () => {
    const taken = [{ proto: 'udp' as const, hostIp: '0.0.0.0', hostPort: 40000, containerPort: 1 }];
    const small = { low: 40000, high: 40001 };
    // 40001 is the only free one, so the second container port finds none.
    const err = thrown(() => expandPortSpec(parsePortSpec('53-54/udp'), ctx(taken, small)));
    expect(err.kind).toBe('conflict');
    expect(err.message).toBe(
      'publish 53-54/udp: no free host port left in ephemeral range 40000-40001/udp on 0.0.0.0',
    );
  });

  it('fails when every port of a host range is taken, naming the range', () => {
    const taken = [8000, 8001].map((hostPort) => ({
      proto: 'tcp' as const,
      hostIp: '0.0.0.0',
      hostPort,
      containerPort: 1,
    }));
    const err = thrown(() => expandPortSpec(parsePortSpec('8000-8001:80'), ctx(taken)));
    expect(err.kind).toBe('conflict');
    expect(err.message).toMatch(/no free host port left in range 8000-8001\/tcp on 0\.0\.0\.0/);
  });

  it('rejects mismatched ranges built without the parser', () => {
    const bad = spec({ hostPortStart: 8000, hostPortEnd: 8002, containerPortStart: 80, containerPortEnd: 81 });
    const err = thrown(() => expandPortSpec(bad, ctx()));
    expect(err.kind).toBe('invalid');
    expect(err.message).toMatch(/port range mismatch: host 8000-8002 \(3 ports\) vs container 80-81 \(2 ports\)/);
  });
});
