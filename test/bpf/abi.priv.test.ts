import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type AbiStruct, LAYOUT } from '../../src/datapath/ebpf/abi.js';
import { type StructLayout, structLayout } from '../../src/datapath/ebpf/handles.js';
import { OBJECT_DIR } from '../../src/datapath/ebpf/objects.js';

/**
 * The codecs of src/datapath/ebpf/abi.ts against the compiled objects: every
 * struct of bridgeport_abi.h has, in the BTF of each object that carries it,
 * the size and member offsets LAYOUT states. Every object includes the header
 * through lib/maps.h, so each is checked on its own: one built with other
 * flags or a stale header shows up here, not as a map of the wrong shape.
 *
 * Reads BTF from the object files only (no bpf() call), so it needs no root;
 * it lives with the BPF tests because it needs `make bpf`.
 */

const OBJECTS = ['tc_uplink', 'tc_endpoint', 'xdp_prefilter', 'sock'];

/** The struct's layout in one object, or undefined when that object's BTF has no such struct. */
function layoutIn(object: string, struct: string): StructLayout | undefined {
  try {
    return structLayout(join(OBJECT_DIR, `${object}.o`), struct);
  } catch (err) {
    if (err instanceof Error && err.message.includes(`no struct ${struct}`)) return undefined;
    throw err;
  }
}

const structs = Object.keys(LAYOUT) as AbiStruct[];

describe('ABI: LAYOUT and the objects’ BTF agree', () => {
  it('the objects are built', () => {
    const missing = OBJECTS.filter((o) => !existsSync(join(OBJECT_DIR, `${o}.o`)));
    expect(missing, `missing in ${OBJECT_DIR}: run make bpf`).toEqual([]);
  });

  it.each(structs)('struct %s: size and member offsets', (struct) => {
    const want = LAYOUT[struct];
    const found = OBJECTS.map((object) => ({ object, layout: layoutIn(object, struct) })).filter((f) => f.layout !== undefined);
    expect(found.map((f) => f.object), `struct ${struct} is in no object's BTF`).not.toEqual([]);
    for (const { object, layout } of found) {
      const offsets = Object.fromEntries(layout!.members.map((m) => [m.name, m.offset]));
      expect({ object, size: layout!.size, offsets }).toEqual({ object, size: want.size, offsets: want.fields });
    }
  });

  // Hash keys are compared byte for byte, and the codecs zero what they do not
  // write: padding the compiler adds on its own would be bytes neither side owns.
  it.each(structs)('struct %s: every byte belongs to a member (padding is explicit)', (struct) => {
    const layout = OBJECTS.map((o) => layoutIn(o, struct)).find((l) => l !== undefined);
    expect(layout, `struct ${struct} is in no object's BTF`).toBeDefined();
    let end = 0;
    for (const m of [...layout!.members].sort((a, b) => a.offset - b.offset)) {
      expect({ member: m.name, offset: m.offset }).toEqual({ member: m.name, offset: end });
      end = m.offset + m.size;
    }
    expect(end).toBe(layout!.size);
  });
});
