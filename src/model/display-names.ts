import { RESERVED_NETWORKS } from './names.js';
import type { State } from './state.js';

/**
 * The names records are shown by (views, metric labels) and may be named by:
 * the front end's own name of what it made (Docker's container and network
 * names, looked up after the fact) once it is known, else the record's name.
 * A front end's name that is already another record's name is not used, so
 * that a name shown always leads back to its records and a label never
 * stands for two networks. Only the records whose shown name differs from
 * their record name are in the maps.
 */
export interface DisplayNames {
  /** Container record name → name shown. */
  containers: Map<string, string>;
  /** Network record name → name shown. */
  networks: Map<string, string>;
}

export function displayNames(state: State): DisplayNames {
  const containers = new Map<string, string>();
  const networks = new Map<string, string>();
  const containerRecords = new Set(state.containers.map((c) => c.name));
  for (const c of state.containers) {
    const name = c.endpoints.find((e) => e.owner?.container)?.owner?.container?.name;
    if (name && !containerRecords.has(name)) containers.set(c.name, name);
  }
  const networkRecords = new Set<string>([...state.networks.map((n) => n.name), ...RESERVED_NETWORKS]);
  for (const n of state.networks) {
    const name = n.owner?.name;
    if (name && !networkRecords.has(name)) networks.set(n.name, name);
  }
  return { containers, networks };
}

/** The name `record` is shown by. */
export const shown = (names: Map<string, string>, record: string): string => names.get(record) ?? record;

/** The records shown as `name` (several when one Docker container has endpoints on several networks). */
export function recordsShownAs(names: Map<string, string>, name: string): string[] {
  const out: string[] = [];
  for (const [record, display] of names) if (display === name) out.push(record);
  return out;
}
