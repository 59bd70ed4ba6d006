import { readFile } from 'node:fs/promises';
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

/**
 * Ports that processes of the daemon's own namespace listen on (TCP) or are
 * bound to (UDP), from /proc/net/{tcp,udp}{,6}: a published port must not
 * silently steal their traffic, and -P must not pick them.
 */
export async function hostListeners(): Promise<PortBinding[]> {
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
