import { ipv4Problem } from '../ipam/ipv4.js';
import { conflict, invalid } from './errors.js';

export type Proto = 'tcp' | 'udp' | 'sctp';
export const PROTOS: readonly Proto[] = ['tcp', 'udp', 'sctp'];

/** A parsed `-p` value. hostPortStart/hostPortEnd are 0,0 when the host port is ephemeral. */
export interface PortSpec {
  hostIp: string | undefined;
  hostPortStart: number;
  hostPortEnd: number;
  containerPortStart: number;
  containerPortEnd: number;
  proto: Proto;
}

/** One published port, as `docker ps` shows it. */
export interface PortBinding {
  proto: Proto;
  hostIp: string;
  hostPort: number;
  containerPort: number;
}

export interface ExposedPort {
  proto: Proto;
  start: number;
  end: number;
}

export interface ExpandContext {
  /** Used when spec.hostIp is undefined, e.g. "0.0.0.0". */
  defaultHostIp: string;
  /** Where host port 0 (and -P) picks from. */
  ephemeral: { low: number; high: number };
  /** Whether the port is already published elsewhere. */
  isTaken(proto: Proto, hostIp: string, hostPort: number): boolean;
}

const ANY_IPV4 = '0.0.0.0';

interface Range {
  start: number;
  end: number;
}

const rangeLength = (r: Range): number => r.end - r.start + 1;

function formatRange(start: number, end: number): string {
  return start === end ? `${start}` : `${start}-${end}`;
}

function describeRange(r: Range): string {
  const n = rangeLength(r);
  return `${formatRange(r.start, r.end)} (${n} ${n === 1 ? 'port' : 'ports'})`;
}

function mismatch(host: Range, container: Range): string {
  return `port range mismatch: host ${describeRange(host)} vs container ${describeRange(container)}`;
}

/** Why a piece of a spec is wrong; the public parsers wrap it with the whole input. */
class Cause extends Error {}

function withContext<T>(prefix: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof Cause) throw invalid(`${prefix}: ${err.message}`);
    throw err;
  }
}

/** Parses "80"; `what` names the port in the cause ("host port"). */
function parsePort(text: string, what: string): number {
  if (text === '') throw new Cause(`empty ${what}`);
  // Digits only: Number() would also take "+80", " 80", "0x50" and "8e1".
  if (!/^[0-9]+$/.test(text)) throw new Cause(`${what} "${text}" is not a decimal number`);
  const n = Number(text);
  if (n < 1 || n > 65535) throw new Cause(`${what} ${text} is out of range 1-65535`);
  return n;
}

/** Parses "80" or "8000-8010". */
function parseRange(text: string, what: string): Range {
  const parts = text.split('-');
  if (parts.length > 2) throw new Cause(`${what} range "${text}" has too many dashes`);
  const start = parsePort(parts[0]!, what);
  if (parts.length === 1) return { start, end: start };
  const end = parsePort(parts[1]!, what);
  if (start > end) throw new Cause(`${what} range ${text} is reversed (start > end)`);
  return { start, end };
}

function parseProto(text: string): Proto {
  const p = text.toLowerCase();
  if (!(PROTOS as readonly string[]).includes(p)) {
    throw new Cause(`unknown protocol "${text}" (want tcp, udp or sctp)`);
  }
  return p as Proto;
}

/** Splits "ports[/proto]"; the proto defaults to tcp. */
function splitProto(text: string): { body: string; proto: Proto } {
  const slash = text.indexOf('/');
  if (slash < 0) return { body: text, proto: 'tcp' };
  return { body: text.slice(0, slash), proto: parseProto(text.slice(slash + 1)) };
}

function looksLikeIpv6(hostIp: string): boolean {
  if (hostIp.includes('[') || hostIp.includes(']')) return true;
  return /^[0-9a-f:.]+$/i.test(hostIp) && (hostIp.includes('::') || /[a-f]/i.test(hostIp));
}

export function parsePortSpec(text: string): PortSpec {
  return withContext(`parse port spec "${text}"`, () => {
    if (text.trim() === '') throw new Cause('empty port spec');
    const { body, proto } = splitProto(text);

    const parts = body.split(':');
    if (parts.length > 3) {
      // An IPv6 host IP brings its own colons; tell that apart from a plain typo.
      if (looksLikeIpv6(parts.slice(0, -2).join(':'))) throw new Cause('IPv6 host addresses are not supported yet');
      throw new Cause('too many colons');
    }
    if (body.includes('[') || body.includes(']')) throw new Cause('IPv6 host addresses are not supported yet');

    let hostIp: string | undefined;
    let hostText: string | undefined;
    let containerText: string;
    if (parts.length === 3) {
      [hostIp, hostText, containerText] = parts as [string, string, string];
      if (hostIp === '') throw new Cause('empty host IP (omit it to publish on all addresses)');
      const problem = ipv4Problem(hostIp);
      if (problem !== undefined) throw new Cause(`invalid host IP "${hostIp}": ${problem}`);
    } else if (parts.length === 2) {
      [hostText, containerText] = parts as [string, string];
      if (hostText === '') throw new Cause('empty host port (omit it for an ephemeral port)');
    } else {
      containerText = parts[0]!;
    }

    const container = parseRange(containerText, 'container port');
    let host: Range = { start: 0, end: 0 };
    if (hostText !== undefined && hostText !== '') {
      host = parseRange(hostText, 'host port');
      // A host range for one container port means "first free one"; any other
      // length difference has no meaning.
      if (rangeLength(host) !== rangeLength(container) && rangeLength(container) !== 1) {
        throw new Cause(mismatch(host, container));
      }
    }

    return {
      hostIp,
      hostPortStart: host.start,
      hostPortEnd: host.end,
      containerPortStart: container.start,
      containerPortEnd: container.end,
      proto,
    };
  });
}

export function formatPortSpec(spec: PortSpec): string {
  const container = `${formatRange(spec.containerPortStart, spec.containerPortEnd)}/${spec.proto}`;
  const host = spec.hostPortStart === 0 ? '' : formatRange(spec.hostPortStart, spec.hostPortEnd);
  if (spec.hostIp !== undefined) return `${spec.hostIp}:${host}:${container}`;
  return host === '' ? container : `${host}:${container}`;
}

export function parseExposedPort(text: string): ExposedPort {
  return withContext(`parse exposed port "${text}"`, () => {
    if (text.trim() === '') throw new Cause('empty port');
    const { body, proto } = splitProto(text);
    if (body.includes(':')) throw new Cause('an exposed port takes no host part');
    const { start, end } = parseRange(body, 'port');
    return { proto, start, end };
  });
}

export function formatBinding(b: PortBinding): string {
  return `${b.hostIp}:${b.hostPort}->${b.containerPort}/${b.proto}`;
}

export function bindingsOverlap(a: PortBinding, b: PortBinding): boolean {
  return (
    a.proto === b.proto &&
    a.hostPort === b.hostPort &&
    (a.hostIp === b.hostIp || a.hostIp === ANY_IPV4 || b.hostIp === ANY_IPV4)
  );
}

/**
 * Published host ports by protocol and port, for `bindingsOverlap` questions in
 * constant time: checking each of N new ports against N published ones by a
 * scan took minutes at N = 100 000. An index made `over` another one sees both
 * and changes only itself (what one operation chooses, before it commits).
 */
export class PortIndex<T extends PortBinding = PortBinding> {
  /** "proto/port" → the bindings on it (any host IP). */
  private readonly bound = new Map<string, T[]>();

  constructor(
    bindings: Iterable<T> = [],
    private readonly over?: PortIndex<T>,
  ) {
    for (const b of bindings) this.add(b);
  }

  add(b: T): void {
    const key = `${b.proto}/${b.hostPort}`;
    const list = this.bound.get(key);
    if (list) list.push(b);
    else this.bound.set(key, [b]);
  }

  /** Forgets `b` (this very object); false when it was not in this index. */
  remove(b: T): boolean {
    const key = `${b.proto}/${b.hostPort}`;
    const list = this.bound.get(key);
    const i = list ? list.indexOf(b) : -1;
    if (!list || i < 0) return false;
    if (list.length === 1) this.bound.delete(key);
    else list.splice(i, 1);
    return true;
  }

  /** The bindings on (proto, hostPort), whatever their host IP. */
  on(proto: Proto, hostPort: number): readonly T[] {
    const own = this.bound.get(`${proto}/${hostPort}`) ?? [];
    return this.over ? [...this.over.on(proto, hostPort), ...own] : own;
  }

  /** Whether a binding on (proto, hostIp, hostPort) would overlap one in the index. */
  overlaps(proto: Proto, hostIp: string, hostPort: number): boolean {
    const probe = { proto, hostIp, hostPort, containerPort: 0 };
    if (this.bound.get(`${proto}/${hostPort}`)?.some((b) => bindingsOverlap(b, probe))) return true;
    return this.over?.overlaps(proto, hostIp, hostPort) ?? false;
  }
}

export function expandPortSpec(spec: PortSpec, ctx: ExpandContext): PortBinding[] {
  const label = `publish ${formatPortSpec(spec)}`;
  const { proto } = spec;
  const hostIp = spec.hostIp ?? ctx.defaultHostIp;
  const container: Range = { start: spec.containerPortStart, end: spec.containerPortEnd };
  const bindings: PortBinding[] = [];

  if (spec.hostPortStart === 0) {
    const { low, high } = ctx.ephemeral;
    const chosen = new Set<number>();
    for (let cp = container.start; cp <= container.end; cp++) {
      let picked: number | undefined;
      for (let hp = low; hp <= high; hp++) {
        if (!chosen.has(hp) && !ctx.isTaken(proto, hostIp, hp)) {
          picked = hp;
          break;
        }
      }
      if (picked === undefined) {
        throw conflict(`${label}: no free host port left in ephemeral range ${low}-${high}/${proto} on ${hostIp}`);
      }
      chosen.add(picked);
      bindings.push({ proto, hostIp, hostPort: picked, containerPort: cp });
    }
    return bindings;
  }

  const host: Range = { start: spec.hostPortStart, end: spec.hostPortEnd };
  const hLen = rangeLength(host);
  const cLen = rangeLength(container);

  if (hLen === cLen) {
    for (let i = 0; i < cLen; i++) {
      const hostPort = host.start + i;
      if (ctx.isTaken(proto, hostIp, hostPort)) {
        throw conflict(`${label}: host port ${hostPort}/${proto} on ${hostIp} is already published`);
      }
      bindings.push({ proto, hostIp, hostPort, containerPort: container.start + i });
    }
    return bindings;
  }

  if (cLen === 1) {
    for (let hp = host.start; hp <= host.end; hp++) {
      if (!ctx.isTaken(proto, hostIp, hp)) {
        return [{ proto, hostIp, hostPort: hp, containerPort: container.start }];
      }
    }
    throw conflict(`${label}: no free host port left in range ${formatRange(host.start, host.end)}/${proto} on ${hostIp}`);
  }

  throw invalid(`${label}: ${mismatch(host, container)}`);
}
