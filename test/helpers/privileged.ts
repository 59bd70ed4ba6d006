import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { describe } from 'vitest';

function whyNotPrivileged(): string | undefined {
  if (process.platform !== 'linux') return `platform is ${process.platform}, not linux`;
  if (process.getuid?.() !== 0) return `uid is ${process.getuid?.()}, not 0`;
  // `ip netns list` succeeds even where namespaces cannot be made (containers
  // without CAP_SYS_ADMIN, missing /var/run), so make and delete a real one.
  const name = `bpt-gate-${process.pid}-${randomBytes(2).toString('hex')}`;
  const add = spawnSync('ip', ['netns', 'add', name], { encoding: 'utf8', timeout: 10_000 });
  if (add.error) return `cannot run ip: ${add.error.message}`;
  if (add.status !== 0) return `ip netns add failed: ${add.stderr.trim() || `exit ${add.status}`}`;
  const del = spawnSync('ip', ['netns', 'del', name], { encoding: 'utf8', timeout: 10_000 });
  if (del.status !== 0) return `ip netns del failed: ${del.stderr.trim() || `exit ${del.status}`}`;
  return undefined;
}

const reason = whyNotPrivileged();

/** True when the process may build network namespaces (root, and `ip netns` works). */
export const isPrivileged: boolean = reason === undefined;

if (reason !== undefined) {
  console.warn(`[bridgeport] skipping privileged e2e tests: ${reason}`);
}

/** `describe` for root-only scenarios; skipped (with a warning) when not privileged. */
export const describePriv: typeof describe.skip = isPrivileged ? describe : describe.skip;

const DEFAULT_DATAPATHS = ['iptables', 'ebpf'] as const;

function datapathsFromEnv(value: string | undefined): readonly string[] | undefined {
  const list = (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  return list.length > 0 ? list : undefined;
}

/** Datapaths the suite is parametrized by; BRIDGEPORT_TEST_DATAPATHS (comma list) overrides. */
export const DATAPATHS: readonly string[] =
  datapathsFromEnv(process.env.BRIDGEPORT_TEST_DATAPATHS) ?? DEFAULT_DATAPATHS;
