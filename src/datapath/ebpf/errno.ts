import { constants as os } from 'node:os';

export const constants = os.errno;

const NAMES = new Map<number, string>(Object.entries(os.errno).map(([name, n]) => [n, name]));

/** Messages for the errnos BPF calls return; the symbolic name for the rest. */
const TEXT: Record<string, string> = {
  EPERM: 'operation not permitted',
  ENOENT: 'no such entry',
  ESRCH: 'no such process',
  EINVAL: 'invalid argument',
  E2BIG: 'argument list too long',
  ENOMEM: 'out of memory',
  EACCES: 'permission denied (verifier rejected the program?)',
  EBUSY: 'device or resource busy',
  EEXIST: 'already exists',
  ENODEV: 'no such device',
  ENOSPC: 'no space left (map full?)',
  EOPNOTSUPP: 'operation not supported',
  ENOTSUP: 'operation not supported',
  ENOTSUPP: 'operation not supported',
  EBADF: 'bad file descriptor',
};

export function strerror(errno: number): string {
  if (errno === 524) return 'operation not supported (ENOTSUPP)';
  const name = NAMES.get(errno);
  if (!name) return `error ${errno}`;
  return TEXT[name] ? `${TEXT[name]} (${name})` : name;
}
