import { conflict, invalid } from '../model/errors.js';
import {
  broadcast,
  type Cidr,
  cidrContains,
  cidrContainsCidr,
  cidrSize,
  cidrsOverlap,
  formatCidr,
  formatIpv4,
  parseCidr,
  parseIpv4,
} from './ipv4.js';

export const DEFAULT_BRIDGE_SUBNET = '172.17.0.0/16';

export interface AddressPool {
  base: string;
  /** Prefix length of the subnets the base is split into. */
  size: number;
}

/** dockerd's built-in default-address-pools, in its order. */
export const DEFAULT_POOLS: readonly AddressPool[] = [
  { base: '172.17.0.0/16', size: 16 },
  { base: '172.18.0.0/16', size: 16 },
  { base: '172.19.0.0/16', size: 16 },
  { base: '172.20.0.0/14', size: 16 },
  { base: '172.24.0.0/14', size: 16 },
  { base: '172.28.0.0/14', size: 16 },
  { base: '192.168.0.0/16', size: 20 },
];

/** A subnet some existing network already uses; `name` is quoted in overlap errors. */
export interface SubnetInUse {
  name: string;
  cidr: Cidr;
}

export function chooseSubnet(inUse: readonly SubnetInUse[], pools: readonly AddressPool[] = DEFAULT_POOLS): Cidr {
  for (const pool of pools) {
    const base = parseCidr(pool.base, 'address pool');
    if (!Number.isInteger(pool.size) || pool.size < base.prefix || pool.size > 32) {
      throw invalid(`invalid address pool ${pool.base}: size ${pool.size} is out of range ${base.prefix}-32`);
    }
    const step = 2 ** (32 - pool.size);
    const last = broadcast(base);
    let network = base.network;
    while (network <= last) {
      const candidate = { network, prefix: pool.size };
      const used = inUse.find((u) => cidrsOverlap(u.cidr, candidate));
      if (used === undefined) return candidate;
      // Jump past the whole used subnet instead of stepping through it: a /8
      // in use would otherwise cost 65536 iterations for a /24 pool.
      const after = broadcast(used.cidr) + 1;
      network = Math.max(network + step, Math.ceil(after / step) * step);
    }
  }
  throw conflict('create network: no free subnet left in the default address pools');
}

export interface Addressing {
  subnet: Cidr;
  gateway: number;
  /** Where dynamic addresses come from; a static --ip may lie anywhere in `subnet`. */
  ipRange: Cidr;
}

export function planAddressing(opts: {
  subnet?: string;
  gateway?: string;
  ipRange?: string;
  inUse: readonly SubnetInUse[];
}): Addressing {
  let subnet: Cidr;
  if (opts.subnet === undefined) {
    if (opts.gateway !== undefined) {
      throw invalid(`create network: gateway ${opts.gateway} requires a subnet`);
    }
    if (opts.ipRange !== undefined) {
      throw invalid(`create network: ip range ${opts.ipRange} requires a subnet`);
    }
    subnet = chooseSubnet(opts.inUse);
  } else {
    subnet = parseCidr(opts.subnet, 'subnet');
    const text = formatCidr(subnet);
    if (subnet.prefix > 30) {
      throw invalid(`create network: subnet ${text} is too small (need /30 or larger for a gateway and one address)`);
    }
    const used = opts.inUse.find((u) => cidrsOverlap(u.cidr, subnet));
    if (used !== undefined) {
      throw conflict(`create network: subnet ${text} overlaps network ${used.name} (${formatCidr(used.cidr)})`);
    }
  }

  const subnetText = formatCidr(subnet);
  let gateway = subnet.network + 1;
  if (opts.gateway !== undefined) {
    gateway = parseIpv4(opts.gateway, 'gateway');
    const g = formatIpv4(gateway);
    if (!cidrContains(subnet, gateway)) {
      throw invalid(`create network: gateway ${g} is outside subnet ${subnetText}`);
    }
    if (gateway === subnet.network) {
      throw invalid(`create network: gateway ${g} is the network address of subnet ${subnetText}`);
    }
    if (gateway === broadcast(subnet)) {
      throw invalid(`create network: gateway ${g} is the broadcast address of subnet ${subnetText}`);
    }
  }

  let ipRange = subnet;
  if (opts.ipRange !== undefined) {
    ipRange = parseCidr(opts.ipRange, 'ip range');
    if (!cidrContainsCidr(subnet, ipRange)) {
      throw invalid(`create network: ip range ${formatCidr(ipRange)} is outside subnet ${subnetText}`);
    }
  }

  return { subnet, gateway, ipRange };
}

export function allocateAddress(a: Addressing, taken: ReadonlySet<number>, requested?: string): number {
  const subnetText = formatCidr(a.subnet);
  const last = broadcast(a.subnet);

  if (requested !== undefined) {
    const ip = parseIpv4(requested, '--ip');
    const text = formatIpv4(ip);
    if (!cidrContains(a.subnet, ip)) {
      throw invalid(`allocate address: --ip ${text} is outside network's subnet ${subnetText}`);
    }
    if (ip === a.subnet.network) {
      throw invalid(`allocate address: --ip ${text} is the network address of subnet ${subnetText}`);
    }
    if (ip === last) {
      throw invalid(`allocate address: --ip ${text} is the broadcast address of subnet ${subnetText}`);
    }
    if (ip === a.gateway) {
      throw conflict(`allocate address: --ip ${text} is the network's gateway`);
    }
    if (taken.has(ip)) {
      throw conflict(`allocate address: address ${text} is already in use`);
    }
    return ip;
  }

  const end = a.ipRange.network + cidrSize(a.ipRange);
  for (let ip = a.ipRange.network; ip < end; ip++) {
    if (ip === a.subnet.network || ip === last || ip === a.gateway || taken.has(ip)) continue;
    return ip;
  }
  throw conflict(`allocate address: no free address left in ${formatCidr(a.ipRange)}`);
}
