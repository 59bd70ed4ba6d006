import { invalid } from './errors.js';

/** Docker's rule for container and network names. */
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export function checkName(kind: 'container' | 'network', name: string): void {
  if (!NAME.test(name)) {
    throw invalid(`invalid ${kind} name "${name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  }
  if (name.length > 128) throw invalid(`invalid ${kind} name "${name}": longer than 128 characters`);
}

/** Linux interface names: at most 15 bytes, no '/', ':', whitespace or quotes. */
export function checkInterfaceName(name: string, what = 'interface name'): void {
  if (Buffer.byteLength(name) > 15) {
    throw invalid(`invalid ${what} "${name}": interface names are limited to 15 bytes`);
  }
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name)) {
    throw invalid(`invalid ${what} "${name}": use letters, digits, '_', '.' and '-'`);
  }
}

/** Network names with a meaning of their own, as in Docker. */
export const RESERVED_NETWORKS = ['bridge', 'host', 'none'] as const;
