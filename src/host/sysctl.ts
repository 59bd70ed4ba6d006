import { readFile, writeFile } from 'node:fs/promises';

/**
 * sysctls of the daemon's own network namespace: /proc/sys/net shows the
 * namespace of the process that opens it, and the daemon runs inside the
 * namespace it manages.
 */
const pathOf = (key: string): string => `/proc/sys/${key.replaceAll('.', '/')}`;

export async function readSysctl(key: string): Promise<string> {
  return (await readFile(pathOf(key), 'utf8')).trim();
}

/** Writes a sysctl and returns the value it had before. */
export async function writeSysctl(key: string, value: string): Promise<string> {
  const before = await readSysctl(key);
  // With a newline: an empty value must still reach the kernel (a 0-byte write is a no-op).
  if (before !== value) await writeFile(pathOf(key), `${value}\n`);
  return before;
}

/** Interface names may contain dots, which sysctl keys use as separators. */
export const interfaceSysctl = (ifname: string, leaf: string): string =>
  `net.ipv4.conf.${ifname.replaceAll('.', '/')}.${leaf}`;

export async function ephemeralPortRange(): Promise<{ low: number; high: number }> {
  const [low, high] = (await readSysctl('net.ipv4.ip_local_port_range')).split(/\s+/).map(Number);
  return { low: low ?? 32768, high: high ?? 60999 };
}
