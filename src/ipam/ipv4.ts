import { invalid } from '../model/errors.js';

/** An IPv4 subnet: `network` has no host bits set. Addresses are uint32 numbers. */
export interface Cidr {
  network: number;
  prefix: number;
}

const DIGITS = /^[0-9]+$/;

/**
 * Why `text` is not a strict dotted-quad IPv4 address, or undefined if it is
 * one. Leading zeros are refused because inet_aton reads them as octal.
 */
export function ipv4Problem(text: string): string | undefined {
  const octets = text.split('.');
  if (octets.length !== 4 || octets.some((o) => !DIGITS.test(o))) {
    return 'not a dotted-quad IPv4 address';
  }
  for (const o of octets) {
    if (o.length > 1 && o.startsWith('0')) return `octet "${o}" has a leading zero`;
    if (Number(o) > 255) return `octet ${o} is out of range 0-255`;
  }
  return undefined;
}

export function parseIpv4(text: string, what = 'IPv4 address'): number {
  const problem = ipv4Problem(text);
  if (problem !== undefined) throw invalid(`invalid ${what} "${text}": ${problem}`);
  const [a, b, c, d] = text.split('.').map(Number) as [number, number, number, number];
  return (((a << 24) | (b << 16) | (c << 8) | d) >>> 0);
}

export function formatIpv4(n: number): string {
  const v = n >>> 0;
  return `${v >>> 24}.${(v >>> 16) & 0xff}.${(v >>> 8) & 0xff}.${v & 0xff}`;
}

function prefixMask(prefix: number): number {
  // `x << 32` is `x << 0` in JavaScript, so /0 needs its own case.
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

function splitCidr(text: string, what: string): { address: number; prefix: number } {
  const slash = text.indexOf('/');
  if (slash < 0) throw invalid(`invalid ${what} "${text}": missing /prefix length`);
  const addrText = text.slice(0, slash);
  const prefixText = text.slice(slash + 1);
  const problem = ipv4Problem(addrText);
  if (problem !== undefined) throw invalid(`invalid ${what} "${text}": ${problem}`);
  if (!DIGITS.test(prefixText) || (prefixText.length > 1 && prefixText.startsWith('0'))) {
    throw invalid(`invalid ${what} "${text}": prefix length "${prefixText}" is not a decimal number`);
  }
  const prefix = Number(prefixText);
  if (prefix > 32) throw invalid(`invalid ${what} "${text}": prefix length ${prefix} is out of range 0-32`);
  return { address: parseIpv4(addrText, what), prefix };
}

export function parseCidr(text: string, what = 'subnet'): Cidr {
  const { address, prefix } = splitCidr(text, what);
  const network = (address & prefixMask(prefix)) >>> 0;
  if (network !== address) {
    const fixed = formatCidr({ network, prefix });
    throw invalid(`invalid ${what} ${text}: host bits set (did you mean ${fixed}?)`);
  }
  return { network, prefix };
}

/** "172.17.0.1/16" as in dockerd --bip: an interface address together with its subnet. */
export function parseInterfaceCidr(text: string, what = 'address'): { address: number; cidr: Cidr } {
  const { address, prefix } = splitCidr(text, what);
  return { address, cidr: { network: (address & prefixMask(prefix)) >>> 0, prefix } };
}

export function formatCidr(c: Cidr): string {
  return `${formatIpv4(c.network)}/${c.prefix}`;
}

export function cidrContains(c: Cidr, ip: number): boolean {
  return ((ip & prefixMask(c.prefix)) >>> 0) === c.network >>> 0;
}

export function cidrContainsCidr(outer: Cidr, inner: Cidr): boolean {
  return inner.prefix >= outer.prefix && cidrContains(outer, inner.network);
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return cidrContainsCidr(a, b) || cidrContainsCidr(b, a);
}

export function cidrSize(c: Cidr): number {
  return 2 ** (32 - c.prefix);
}

export function broadcast(c: Cidr): number {
  return c.network + cidrSize(c) - 1;
}

/** Docker's container MAC: 02:42 followed by the four address bytes. */
export function macFromIpv4(ip: number): string {
  const v = ip >>> 0;
  const bytes = [0x02, 0x42, v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}
