import { formatCidr, parseCidr, parseIpv4 } from '../ipam/ipv4.js';
import { invalid } from './errors.js';
import type { Proto } from './port-spec.js';

/**
 * The operator's deny list (`bridgeport firewall deny`): traffic from a source
 * CIDR arriving on an uplink, optionally only to one destination port, is
 * dropped before anything else sees it. The counterpart of DOCKER-USER rules.
 */
export interface FirewallRule {
  /** Normalized CIDR: "10.0.0.0/8"; a bare address becomes /32. */
  cidr: string;
  proto?: Proto;
  port?: number;
}

/** Parses `CIDR` and `--port P/PROTO` (PROTO defaults to tcp) into a rule. */
export function parseFirewallRule(cidrText: string, portText?: string): FirewallRule {
  const text = cidrText.includes('/') ? cidrText : `${cidrText}/32`;
  let cidr: string;
  try {
    parseIpv4(text.split('/')[0] ?? '', 'address');
    cidr = formatCidr(parseCidr(text, 'CIDR'));
  } catch (err) {
    throw invalid(`firewall: invalid CIDR "${cidrText}": ${(err as Error).message.replace(/^invalid [^:]*: /, '')}`);
  }
  if (portText === undefined || portText === '') return { cidr };
  const m = /^(\d{1,5})(?:\/(tcp|udp|sctp))?$/.exec(portText);
  const port = Number(m?.[1]);
  if (!m || port < 1 || port > 65535) throw invalid(`firewall: invalid --port "${portText}": use PORT[/tcp|udp|sctp] with PORT 1-65535`);
  return { cidr, port, proto: (m[2] as Proto | undefined) ?? 'tcp' };
}

export const sameRule = (a: FirewallRule, b: FirewallRule): boolean => a.cidr === b.cidr && a.proto === b.proto && a.port === b.port;

export const formatRule = (r: FirewallRule): string => (r.port ? `${r.cidr} ${r.port}/${r.proto}` : r.cidr);
