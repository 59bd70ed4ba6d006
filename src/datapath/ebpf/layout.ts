import { createHash } from 'node:crypto';
import { type AbiStruct, LAYOUT } from './abi.js';
import { structLayout } from './handles.js';

/**
 * A fingerprint of every ABI struct as compiled into an object (sizes and
 * member offsets from its BTF). Pinned maps remember the fingerprint of the
 * build that created them; another one refuses to adopt them.
 */
export function layoutHash(objectPath: string): number {
  const h = createHash('sha256');
  for (const name of Object.keys(LAYOUT) as AbiStruct[]) {
    const l = structLayout(objectPath, name);
    h.update(`${name}:${l.size}:${l.members.map((m) => `${m.name}@${m.offset}/${m.size}`).join(',')};`);
  }
  return h.digest().readUInt32LE(0);
}
