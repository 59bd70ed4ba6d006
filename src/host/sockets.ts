import { readFile } from 'node:fs/promises';
import { sockDiagDump } from '../datapath/ebpf/libbpf.js';
import { formatIpv4 } from '../ipam/ipv4.js';
import type { PortBinding, Proto } from '../model/port-spec.js';

/** The kernel prints each __be32 word of an address as a host-order (little-endian) hex number. */
function word(hex: string): string {
  const n = Number.parseInt(hex, 16);
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24].join('.');
}

/** The IPv4 address an IPv6 socket also serves: `::` (dual stack) and `::ffff:a.b.c.d`; none for real IPv6. */
function v4Of(hex: string): string | undefined {
  if (hex.length === 8) return word(hex);
  if (/^0{32}$/.test(hex)) return '0.0.0.0';
  if (hex.startsWith('0000000000000000FFFF0000')) return word(hex.slice(24));
  return undefined;
}

const AF_INET = 2;
const AF_INET6 = 10;
const IPPROTO = { tcp: 6, udp: 17 } as const;
const TCPF_LISTEN = 1 << 10;
const ALL_STATES = 0xffffffff;

/**
 * Ports that processes of the daemon's own namespace listen on (TCP) or are
 * bound to (UDP): a published port must not silently steal their traffic, and
 * -P must not pick them. Asked of the kernel by sock_diag, which lists TCP
 * listeners without walking every connection's hash bucket (/proc/net/tcp took
 * 7 ms per call, most of a port operation); /proc where sock_diag cannot run.
 */
export async function hostListeners(): Promise<PortBinding[]> {
  try {
    return diagListeners();
  } catch {
    return procListeners();
  }
}

export function diagListeners(): PortBinding[] {
  const out: PortBinding[] = [];
  for (const proto of ['tcp', 'udp'] as const satisfies readonly Proto[]) {
    for (const family of [AF_INET, AF_INET6]) {
      for (const msg of sockDiagDump(family, IPPROTO[proto], proto === 'tcp' ? TCPF_LISTEN : ALL_STATES)) {
        // inet_diag_msg: family, state, timer, retrans, then inet_diag_sockid (sport, dport big-endian; src, dst 16 bytes each).
        const hostPort = msg.readUInt16BE(4);
        const src = msg.subarray(8, 24);
        const hostIp = family === AF_INET ? formatIpv4(src.readUInt32BE(0)) : v4OfBytes(src);
        if (hostIp) out.push({ proto, hostIp, hostPort, containerPort: 0 });
      }
    }
  }
  return out;
}

/** The IPv4 address an IPv6 socket also serves: `::` (dual stack) and `::ffff:a.b.c.d`; none for real IPv6. */
function v4OfBytes(a: Buffer): string | undefined {
  if (a.every((b) => b === 0)) return '0.0.0.0';
  if (a.subarray(0, 10).every((b) => b === 0) && a[10] === 0xff && a[11] === 0xff) return formatIpv4(a.readUInt32BE(12));
  return undefined;
}

export async function procListeners(): Promise<PortBinding[]> {
  const out: PortBinding[] = [];
  for (const proto of ['tcp', 'udp'] as const satisfies readonly Proto[]) {
    for (const file of [proto, `${proto}6`]) {
      const text = await readFile(`/proc/net/${file}`, 'utf8').catch(() => '');
      for (const line of text.split('\n').slice(1)) {
        const f = line.trim().split(/\s+/);
        const local = f[1];
        if (!local || (proto === 'tcp' && f[3] !== '0A')) continue;
        const [hexIp, hexPort] = local.split(':');
        const hostIp = hexIp && v4Of(hexIp.toUpperCase());
        if (!hostIp || !hexPort) continue;
        out.push({ proto, hostIp, hostPort: Number.parseInt(hexPort, 16), containerPort: 0 });
      }
    }
  }
  return out;
}
