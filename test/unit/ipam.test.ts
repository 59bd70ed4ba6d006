import { describe, expect, it } from 'vitest';
import {
  type Addressing,
  allocateAddress,
  chooseSubnet,
  DEFAULT_BRIDGE_SUBNET,
  DEFAULT_POOLS,
  planAddressing,
  type SubnetInUse,
} from '../../src/ipam/ipam.js';
import {
  broadcast,
  cidrContains,
  cidrContainsCidr,
  cidrSize,
  cidrsOverlap,
  formatCidr,
  formatIpv4,
  macFromIpv4,
  parseCidr,
  parseInterfaceCidr,
  parseIpv4,
} from '../../src/ipam/ipv4.js';
import { BridgeportError } from '../../src/model/errors.js';

const ip = (text: string) => parseIpv4(text);
const cidr = (text: string) => parseCidr(text);
const used = (name: string, text: string): SubnetInUse => ({ name, cidr: cidr(text) });

function thrown(fn: () => unknown): BridgeportError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(BridgeportError);
    return err as BridgeportError;
  }
  throw new Error('expected an error');
}

describe('ipv4', () => {
  it('parses and formats dotted quads as unsigned numbers', () => {
    expect(parseIpv4('0.0.0.0')).toBe(0);
    expect(parseIpv4('255.255.255.255')).toBe(0xffffffff);
    expect(parseIpv4('172.17.0.2')).toBe(0xac110002);
    expect(parseIpv4('192.168.1.1')).toBeGreaterThan(0);
    expect(formatIpv4(0xc0a80101)).toBe('192.168.1.1');
    expect(formatIpv4(0xffffffff)).toBe('255.255.255.255');
  });

  it.each([
    ['', /invalid gateway "": not a dotted-quad IPv4 address/],
    ['1.2.3', /invalid gateway "1.2.3": not a dotted-quad/],
    ['1.2.3.4.5', /invalid gateway "1.2.3.4.5": not a dotted-quad/],
    ['1.2.3.256', /invalid gateway "1.2.3.256": octet 256 is out of range 0-255/],
    ['1.2.03.4', /invalid gateway "1.2.03.4": octet "03" has a leading zero/],
    ['1.2.3.-4', /invalid gateway "1.2.3.-4": not a dotted-quad/],
    [' 1.2.3.4', /invalid gateway " 1.2.3.4"/],
    ['0x1.2.3.4', /invalid gateway "0x1.2.3.4"/],
  ])('parseIpv4 rejects %j', (text, message) => {
    expect(() => parseIpv4(text, 'gateway')).toThrow(message);
  });

  it('parses and formats CIDRs', () => {
    expect(parseCidr('172.20.0.0/16')).toEqual({ network: 0xac140000, prefix: 16 });
    expect(parseCidr('0.0.0.0/0')).toEqual({ network: 0, prefix: 0 });
    expect(parseCidr('10.1.2.3/32')).toEqual({ network: 0x0a010203, prefix: 32 });
    expect(formatCidr({ network: 0xc0a81000, prefix: 20 })).toBe('192.168.16.0/20');
  });

  it.each([
    ['172.20.0.1/16', /invalid subnet 172\.20\.0\.1\/16: host bits set \(did you mean 172\.20\.0\.0\/16\?\)/],
    ['172.20.0.0', /invalid subnet "172.20.0.0": missing \/prefix length/],
    ['172.20.0.0/33', /invalid subnet "172.20.0.0\/33": prefix length 33 is out of range 0-32/],
    ['172.20.0.0/', /invalid subnet "172.20.0.0\/": prefix length "" is not a decimal number/],
    ['172.20.0.0/016', /prefix length "016" is not a decimal number/],
    ['172.20.0.0/1/6', /prefix length "1\/6" is not a decimal number/],
    ['172.300.0.0/16', /invalid subnet "172.300.0.0\/16": octet 300 is out of range 0-255/],
  ])('parseCidr rejects %j', (text, message) => {
    expect(() => parseCidr(text)).toThrow(message);
  });

  it('names the thing being parsed', () => {
    expect(() => parseCidr('10.0.0.1/8', 'ip range')).toThrow('invalid ip range 10.0.0.1/8: host bits set');
  });

  it('parses an interface address with its subnet', () => {
    expect(parseInterfaceCidr('172.17.0.1/16')).toEqual({
      address: 0xac110001,
      cidr: { network: 0xac110000, prefix: 16 },
    });
    expect(() => parseInterfaceCidr('172.17.0.1', '--bip')).toThrow('invalid --bip "172.17.0.1": missing /prefix');
  });

  it('answers containment and overlap questions', () => {
    const net16 = cidr('172.20.0.0/16');
    expect(cidrContains(net16, ip('172.20.255.255'))).toBe(true);
    expect(cidrContains(net16, ip('172.21.0.0'))).toBe(false);
    expect(cidrContains(cidr('0.0.0.0/0'), ip('255.255.255.255'))).toBe(true);
    expect(cidrContains(cidr('200.0.0.0/8'), ip('200.1.2.3'))).toBe(true);
    expect(cidrContainsCidr(net16, cidr('172.20.5.0/24'))).toBe(true);
    expect(cidrContainsCidr(cidr('172.20.5.0/24'), net16)).toBe(false);
    expect(cidrContainsCidr(net16, cidr('172.21.0.0/24'))).toBe(false);
    expect(cidrsOverlap(net16, cidr('172.20.0.0/24'))).toBe(true);
    expect(cidrsOverlap(cidr('172.20.0.0/24'), net16)).toBe(true);
    expect(cidrsOverlap(cidr('172.20.0.0/24'), cidr('172.20.1.0/24'))).toBe(false);
  });

  it('computes sizes and broadcast addresses without sign trouble', () => {
    expect(cidrSize(cidr('0.0.0.0/0'))).toBe(4294967296);
    expect(cidrSize(cidr('10.0.0.0/30'))).toBe(4);
    expect(formatIpv4(broadcast(cidr('172.17.0.0/16')))).toBe('172.17.255.255');
    expect(broadcast(cidr('0.0.0.0/0'))).toBe(0xffffffff);
    expect(formatIpv4(broadcast(cidr('192.168.16.0/20')))).toBe('192.168.31.255');
  });

  it('derives Docker MAC addresses', () => {
    expect(macFromIpv4(ip('172.17.0.2'))).toBe('02:42:ac:11:00:02');
    expect(macFromIpv4(ip('192.168.255.254'))).toBe('02:42:c0:a8:ff:fe');
    expect(macFromIpv4(ip('10.0.0.1'))).toBe('02:42:0a:00:00:01');
  });
});

describe('chooseSubnet', () => {
  it('has the default bridge subnet first in the default pools', () => {
    expect(DEFAULT_BRIDGE_SUBNET).toBe('172.17.0.0/16');
    expect(DEFAULT_POOLS[0]).toEqual({ base: '172.17.0.0/16', size: 16 });
  });

  it('walks the /16s from 172.17 to 172.31', () => {
    const inUse: SubnetInUse[] = [];
    const chosen: string[] = [];
    for (let i = 0; i < 15; i++) {
      const c = chooseSubnet(inUse);
      chosen.push(formatCidr(c));
      inUse.push({ name: `n${i}`, cidr: c });
    }
    expect(chosen[0]).toBe('172.17.0.0/16');
    expect(chosen[1]).toBe('172.18.0.0/16');
    expect(chosen[14]).toBe('172.31.0.0/16');
    // Then 192.168.0.0/16 in /20s.
    expect(formatCidr(chooseSubnet(inUse))).toBe('192.168.0.0/20');
  });

  it('skips subnets that overlap anything in use, including smaller ones', () => {
    const inUse = [used('bridge', '172.17.0.0/16'), used('web', '172.18.5.0/24')];
    expect(formatCidr(chooseSubnet(inUse))).toBe('172.19.0.0/16');
  });

  it('skips past a large subnet in use', () => {
    const inUse = [used('big', '172.16.0.0/12'), used('lan', '192.168.0.0/19')];
    expect(formatCidr(chooseSubnet(inUse))).toBe('192.168.32.0/20');
  });

  it('takes custom pools', () => {
    const pools = [{ base: '10.10.0.0/16', size: 24 }];
    expect(formatCidr(chooseSubnet([used('a', '10.10.0.0/23')], pools))).toBe('10.10.2.0/24');
  });

  it('fails when every pool subnet is taken', () => {
    const inUse = [used('a', '172.16.0.0/12'), used('b', '192.168.0.0/16')];
    const err = thrown(() => chooseSubnet(inUse));
    expect(err.kind).toBe('conflict');
    expect(err.message).toBe('create network: no free subnet left in the default address pools');
  });

  it('rejects a pool split into subnets larger than itself', () => {
    expect(() => chooseSubnet([], [{ base: '10.0.0.0/16', size: 8 }])).toThrow(
      'invalid address pool 10.0.0.0/16: size 8 is out of range 16-32',
    );
  });
});

describe('planAddressing', () => {
  it('picks a free subnet with the first host as gateway when nothing is given', () => {
    const a = planAddressing({ inUse: [used('bridge', '172.17.0.0/16')] });
    expect(formatCidr(a.subnet)).toBe('172.18.0.0/16');
    expect(formatIpv4(a.gateway)).toBe('172.18.0.1');
    expect(a.ipRange).toEqual(a.subnet);
  });

  it('takes an explicit subnet, gateway and ip range', () => {
    const a = planAddressing({
      subnet: '172.20.0.0/16',
      gateway: '172.20.0.254',
      ipRange: '172.20.5.0/24',
      inUse: [used('bridge', '172.17.0.0/16')],
    });
    expect(formatCidr(a.subnet)).toBe('172.20.0.0/16');
    expect(formatIpv4(a.gateway)).toBe('172.20.0.254');
    expect(formatCidr(a.ipRange)).toBe('172.20.5.0/24');
  });

  it('accepts a /30 but nothing smaller', () => {
    expect(formatIpv4(planAddressing({ subnet: '10.0.0.0/30', inUse: [] }).gateway)).toBe('10.0.0.1');
    expect(() => planAddressing({ subnet: '10.0.0.0/31', inUse: [] })).toThrow(
      'create network: subnet 10.0.0.0/31 is too small',
    );
  });

  it('refuses a subnet that overlaps an existing network', () => {
    const err = thrown(() => planAddressing({ subnet: '172.20.0.0/16', inUse: [used('web', '172.20.0.0/24')] }));
    expect(err.kind).toBe('conflict');
    expect(err.message).toBe('create network: subnet 172.20.0.0/16 overlaps network web (172.20.0.0/24)');
  });

  it('reports a malformed subnet', () => {
    expect(() => planAddressing({ subnet: '172.20.0.1/16', inUse: [] })).toThrow(
      'invalid subnet 172.20.0.1/16: host bits set (did you mean 172.20.0.0/16?)',
    );
  });

  it.each([
    [{ gateway: '10.0.0.1' }, 'create network: gateway 10.0.0.1 requires a subnet'],
    [{ ipRange: '10.0.0.0/24' }, 'create network: ip range 10.0.0.0/24 requires a subnet'],
    [{ subnet: '172.20.0.0/16', gateway: '10.0.0.1' }, 'gateway 10.0.0.1 is outside subnet 172.20.0.0/16'],
    [
      { subnet: '172.20.0.0/16', gateway: '172.20.0.0' },
      'gateway 172.20.0.0 is the network address of subnet 172.20.0.0/16',
    ],
    [
      { subnet: '172.20.0.0/16', gateway: '172.20.255.255' },
      'gateway 172.20.255.255 is the broadcast address of subnet 172.20.0.0/16',
    ],
    [{ subnet: '172.20.0.0/16', gateway: '172.20.0.300' }, 'invalid gateway "172.20.0.300": octet 300'],
    [{ subnet: '172.20.0.0/16', ipRange: '172.21.0.0/24' }, 'ip range 172.21.0.0/24 is outside subnet 172.20.0.0/16'],
    [{ subnet: '172.20.0.0/24', ipRange: '172.20.0.0/16' }, 'ip range 172.20.0.0/16 is outside subnet 172.20.0.0/24'],
    [{ subnet: '172.20.0.0/16', ipRange: '172.20.5.1/24' }, 'invalid ip range 172.20.5.1/24: host bits set'],
  ])('rejects %j', (opts, message) => {
    const err = thrown(() => planAddressing({ ...opts, inUse: [] }));
    expect(err.kind).toBe('invalid');
    expect(err.message).toContain(message);
  });
});

describe('allocateAddress', () => {
  const plan = (subnet: string, extra: { gateway?: string; ipRange?: string } = {}): Addressing =>
    planAddressing({ subnet, ...extra, inUse: [] });

  it('hands out the lowest free address after the gateway', () => {
    const a = plan('172.20.0.0/16');
    const taken = new Set<number>();
    const first = allocateAddress(a, taken);
    expect(formatIpv4(first)).toBe('172.20.0.2');
    taken.add(first);
    expect(formatIpv4(allocateAddress(a, taken))).toBe('172.20.0.3');
    taken.delete(first);
    expect(formatIpv4(allocateAddress(a, taken))).toBe('172.20.0.2');
  });

  it('skips a gateway placed elsewhere and fills the gap before it', () => {
    const a = plan('10.0.0.0/29', { gateway: '10.0.0.3' });
    const taken = new Set<number>();
    const order: string[] = [];
    for (let i = 0; i < 5; i++) {
      const next = allocateAddress(a, taken);
      taken.add(next);
      order.push(formatIpv4(next));
    }
    expect(order).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.4', '10.0.0.5', '10.0.0.6']);
    const err = thrown(() => allocateAddress(a, taken));
    expect(err.kind).toBe('conflict');
    expect(err.message).toBe('allocate address: no free address left in 10.0.0.0/29');
  });

  it('allocates from the ip range only, skipping the subnet network address', () => {
    const a = plan('172.20.0.0/16', { ipRange: '172.20.5.0/30' });
    const taken = new Set<number>();
    const got: string[] = [];
    for (let i = 0; i < 4; i++) {
      const next = allocateAddress(a, taken);
      taken.add(next);
      got.push(formatIpv4(next));
    }
    // The range's own network and broadcast addresses are ordinary hosts of the /16.
    expect(got).toEqual(['172.20.5.0', '172.20.5.1', '172.20.5.2', '172.20.5.3']);
    expect(() => allocateAddress(a, taken)).toThrow('allocate address: no free address left in 172.20.5.0/30');

    const low = plan('172.20.0.0/16', { ipRange: '172.20.0.0/30' });
    expect(formatIpv4(allocateAddress(low, new Set()))).toBe('172.20.0.2');
  });

  it('exhausts a /30 after one address', () => {
    const a = plan('172.20.0.0/30');
    const only = allocateAddress(a, new Set());
    expect(formatIpv4(only)).toBe('172.20.0.2');
    const err = thrown(() => allocateAddress(a, new Set([only])));
    expect(err.kind).toBe('conflict');
    expect(err.message).toBe('allocate address: no free address left in 172.20.0.0/30');
  });

  it('grants a free static address, even outside the ip range', () => {
    const a = plan('172.20.0.0/16', { ipRange: '172.20.5.0/24' });
    expect(formatIpv4(allocateAddress(a, new Set(), '172.20.0.9'))).toBe('172.20.0.9');
    expect(formatIpv4(allocateAddress(a, new Set(), '172.20.5.7'))).toBe('172.20.5.7');
  });

  it.each([
    ['10.0.0.5', 'invalid', "allocate address: --ip 10.0.0.5 is outside network's subnet 172.20.0.0/16"],
    ['172.20.0.0', 'invalid', '--ip 172.20.0.0 is the network address of subnet 172.20.0.0/16'],
    ['172.20.255.255', 'invalid', '--ip 172.20.255.255 is the broadcast address of subnet 172.20.0.0/16'],
    ['172.20.0.1', 'conflict', "--ip 172.20.0.1 is the network's gateway"],
    ['172.20.0.2', 'conflict', 'allocate address: address 172.20.0.2 is already in use'],
    ['172.20.0.256', 'invalid', 'invalid --ip "172.20.0.256": octet 256 is out of range 0-255'],
    ['abc', 'invalid', 'invalid --ip "abc": not a dotted-quad IPv4 address'],
  ])('rejects static --ip %s', (requested, kind, message) => {
    const a = plan('172.20.0.0/16');
    const err = thrown(() => allocateAddress(a, new Set([ip('172.20.0.2')]), requested));
    expect(err.kind).toBe(kind);
    expect(err.message).toContain(message);
  });

  it('allocates in a /8 by hand-built addressing', () => {
    const a: Addressing = { subnet: cidr('10.0.0.0/8'), gateway: ip('10.0.0.1'), ipRange: cidr('10.0.0.0/8') };
    expect(formatIpv4(allocateAddress(a, new Set([ip('10.0.0.2')])))).toBe('10.0.0.3');
  });
});
