import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where the compiled BPF objects ship: bpf/obj at the package root (beside dist/ and src/). */
export const OBJECT_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bpf', 'obj');
