/**
 * Typed handles over libbpf: object, program, map, link, and the attach
 * points bridgeport uses (tc clsact, XDP, cgroup links). Each handle owning
 * an fd closes it in close(); nothing above this module sees a raw pointer.
 */
import { unlinkSync } from 'node:fs';
import { constants } from './errno.js';
import { BpfError, check, checkPtr, lastErrno, libbpf, type Ptr, readAt } from './libbpf.js';

export { BpfError };

export const PROG_TYPE = { SCHED_CLS: 3, XDP: 6, CGROUP_SOCK_ADDR: 18 } as const;
export const MAP_TYPE = { HASH: 1, ARRAY: 2, PERCPU_ARRAY: 6, LRU_HASH: 9, LPM_TRIE: 11 } as const;

/** Helper ids (enum bpf_func_id, from linux/bpf.h's __BPF_FUNC_MAPPER order). */
export const HELPER = {
  map_lookup_elem: 1,
  map_update_elem: 2,
  map_delete_elem: 3,
  ktime_get_ns: 5,
  get_prandom_u32: 7,
  skb_store_bytes: 9,
  l3_csum_replace: 10,
  l4_csum_replace: 11,
  redirect: 23,
  skb_load_bytes: 26,
  csum_diff: 28,
  get_socket_cookie: 46,
  fib_lookup: 69,
  get_netns_cookie: 122,
  redirect_neigh: 152,
  redirect_peer: 155,
  loop: 181,
} as const;

const ATTACH = { cgroup_inet4_connect: 10, cgroup_udp4_sendmsg: 14, cgroup_udp4_recvmsg: 19, cgroup_inet4_getpeername: 29 } as const;
export type CgroupAttach = keyof typeof ATTACH;

const UPDATE_FLAGS = { any: 0, noexist: 1, exist: 2 } as const;

const closeFd = (fd: number): void => {
  if (fd >= 0) libbpf().close(fd);
};

// --- objects ------------------------------------------------------------------

export class BpfObject {
  private ptr: Ptr | null;

  private constructor(
    readonly path: string,
    ptr: Ptr,
  ) {
    this.ptr = ptr;
  }

  /**
   * Opens an object file. Maps declared with LIBBPF_PIN_BY_NAME are pinned at
   * `<pinDir>/<name>` on load, and an existing compatible pin there is reused.
   * `rodata` replaces the initial value of .rodata (per-instance constants).
   */
  static open(path: string, opts: { pinDir?: string; rodata?: Buffer } = {}): BpfObject {
    const l = libbpf();
    const ptr = checkPtr('bpf_object__open_file', l.bpf_object__open_file(path, null) as Ptr | null, path);
    const obj = new BpfObject(path, ptr);
    try {
      for (const m of obj.mapPtrs()) {
        const name = l.bpf_map__name(m) as string;
        if (opts.pinDir && l.bpf_map__pin_path(m)) check('bpf_map__set_pin_path', l.bpf_map__set_pin_path(m, `${opts.pinDir}/${name}`), name);
        if (opts.rodata && name.endsWith('.rodata')) {
          const size = obj.rodataSize();
          if (size !== opts.rodata.length) {
            throw new Error(`open ${path}: .rodata is ${size} bytes, the settings given are ${opts.rodata.length}`);
          }
          check('bpf_map__set_initial_value', l.bpf_map__set_initial_value(m, opts.rodata, opts.rodata.length), name);
        }
      }
    } catch (err) {
      obj.close();
      throw err;
    }
    return obj;
  }

  private get handle(): Ptr {
    if (!this.ptr) throw new Error(`BPF object ${this.path} is closed`);
    return this.ptr;
  }

  private *mapPtrs(): Generator<Ptr> {
    let m: Ptr | null = null;
    for (;;) {
      m = libbpf().bpf_object__next_map(this.handle, m) as Ptr | null;
      if (!m) return;
      yield m;
    }
  }

  /** Size of the object's .rodata (0 when it has none). */
  rodataSize(): number {
    for (const m of this.mapPtrs()) {
      if (!(libbpf().bpf_map__name(m) as string).endsWith('.rodata')) continue;
      const size = [0];
      libbpf().bpf_map__initial_value(m, size);
      return Number(size[0]);
    }
    return 0;
  }

  /** Loads every program (and creates or reuses every map); the error carries the verifier log. */
  load(): void {
    const rc = libbpf().bpf_object__load(this.handle) as number;
    if (rc >= 0) return;
    throw new BpfError('bpf_object__load', -rc, `${this.path}${verifierLog(this.path)}`);
  }

  program(name: string): BpfProgram {
    const p = checkPtr('bpf_object__find_program_by_name', libbpf().bpf_object__find_program_by_name(this.handle, name) as Ptr | null, name);
    return new BpfProgram(name, check('bpf_program__fd', libbpf().bpf_program__fd(p) as number, name), false);
  }

  map(name: string): BpfMap {
    const m = checkPtr('bpf_object__find_map_by_name', libbpf().bpf_object__find_map_by_name(this.handle, name) as Ptr | null, name);
    return BpfMap.fromFd(name, check('bpf_map__fd', libbpf().bpf_map__fd(m) as number, name), false);
  }

  maps(): BpfMap[] {
    return [...this.mapPtrs()].map((m) => BpfMap.fromFd(libbpf().bpf_map__name(m) as string, libbpf().bpf_map__fd(m) as number, false));
  }

  /** Closes the object and every fd it owns: programs and maps taken from it are invalid afterwards unless pinned. */
  close(): void {
    if (this.ptr) libbpf().bpf_object__close(this.ptr);
    this.ptr = null;
  }
}

/** Re-opens and loads an object that failed with verifier logging on, and returns the log's tail. */
function verifierLog(path: string): string {
  const l = libbpf();
  const ptr = l.bpf_object__open_file(path, null) as Ptr | null;
  if (!ptr) return '';
  const bufs: Buffer[] = [];
  try {
    let p: Ptr | null = null;
    for (;;) {
      p = l.bpf_object__next_program(ptr, p) as Ptr | null;
      if (!p) break;
      const buf = Buffer.alloc(4 << 20);
      bufs.push(buf);
      l.bpf_program__set_log_buf(p, buf, buf.length);
      l.bpf_program__set_log_level(p, 1);
    }
    l.bpf_object__load(ptr);
  } finally {
    l.bpf_object__close(ptr);
  }
  const text = bufs
    .map((b) => b.subarray(0, b.indexOf(0) < 0 ? b.length : b.indexOf(0)).toString('utf8'))
    .filter(Boolean)
    .join('\n');
  return text ? `\nverifier log (tail):\n${text.slice(-4000)}` : '';
}

// --- programs -----------------------------------------------------------------

export interface TestRunResult {
  retval: number;
  data: Buffer;
  durationNs: number;
}

export class BpfProgram {
  private _fd: number;

  constructor(
    readonly name: string,
    fd: number,
    private readonly owned: boolean,
  ) {
    this._fd = fd;
  }

  get fd(): number {
    if (this._fd < 0) throw new Error(`BPF program ${this.name} is closed`);
    return this._fd;
  }

  static fromPin(path: string): BpfProgram {
    return new BpfProgram(path.split('/').pop() ?? path, check('bpf_obj_get', libbpf().bpf_obj_get(path) as number, path), true);
  }

  pin(path: string): void {
    check('bpf_obj_pin', libbpf().bpf_obj_pin(this.fd, path) as number, path);
  }

  /** The kernel's id of the program (what tc and XDP queries report). */
  get id(): number {
    return objInfo(this.fd).readUInt32LE(4);
  }

  get type(): number {
    return objInfo(this.fd).readUInt32LE(0);
  }

  /** Runs the program on a packet with BPF_PROG_TEST_RUN. */
  testRun(opts: { data: Buffer; repeat?: number; dataOutSize?: number }): TestRunResult {
    const out = Buffer.alloc(opts.dataOutSize ?? opts.data.length + 256);
    const o = {
      sz: 80,
      data_in: opts.data,
      data_out: out,
      data_size_in: opts.data.length,
      data_size_out: out.length,
      ctx_in: null,
      ctx_out: null,
      ctx_size_in: 0,
      ctx_size_out: 0,
      retval: 0,
      repeat: opts.repeat ?? 1,
      duration: 0,
      flags: 0,
      cpu: 0,
      batch_size: 0,
    };
    check('bpf_prog_test_run_opts', libbpf().bpf_prog_test_run_opts(this.fd, o) as number, this.name);
    return { retval: o.retval, data: out.subarray(0, o.data_size_out), durationNs: o.duration };
  }

  close(): void {
    if (this.owned && this._fd >= 0) closeFd(this._fd);
    this._fd = -1;
  }
}

function objInfo(fd: number): Buffer {
  const info = Buffer.alloc(256);
  const len = [info.length];
  check('bpf_obj_get_info_by_fd', libbpf().bpf_obj_get_info_by_fd(fd, info, len) as number);
  return info;
}

// --- maps ---------------------------------------------------------------------

export class BpfMap {
  private _fd: number;

  private constructor(
    readonly name: string,
    fd: number,
    private readonly owned: boolean,
    readonly type: number,
    readonly keySize: number,
    readonly valueSize: number,
    readonly maxEntries: number,
  ) {
    this._fd = fd;
  }

  static fromFd(name: string, fd: number, owned: boolean): BpfMap {
    const info = objInfo(fd);
    return new BpfMap(name, fd, owned, info.readUInt32LE(0), info.readUInt32LE(8), info.readUInt32LE(12), info.readUInt32LE(16));
  }

  static fromPin(path: string): BpfMap {
    const fd = check('bpf_obj_get', libbpf().bpf_obj_get(path) as number, path);
    try {
      return BpfMap.fromFd(path.split('/').pop() ?? path, fd, true);
    } catch (err) {
      closeFd(fd);
      throw err;
    }
  }

  get fd(): number {
    if (this._fd < 0) throw new Error(`BPF map ${this.name} is closed`);
    return this._fd;
  }

  private get perCpu(): boolean {
    return this.type === MAP_TYPE.PERCPU_ARRAY || this.type === 5 /* PERCPU_HASH */ || this.type === 10 /* LRU_PERCPU_HASH */;
  }

  private valueBuffer(): Buffer {
    return Buffer.alloc(this.perCpu ? Math.ceil(this.valueSize / 8) * 8 * numPossibleCpus() : this.valueSize);
  }

  private checkKey(key: Buffer): void {
    if (key.length !== this.keySize) throw new Error(`map ${this.name}: key is ${key.length} bytes, the map's are ${this.keySize}`);
  }

  lookup(key: Buffer): Buffer | undefined {
    this.checkKey(key);
    const value = this.valueBuffer();
    const rc = libbpf().bpf_map_lookup_elem(this.fd, key, value) as number;
    if (rc === -constants.ENOENT) return undefined;
    check('bpf_map_lookup_elem', rc, this.name);
    return value;
  }

  /** Per-CPU maps: one value per possible CPU. */
  lookupPerCpu(key: Buffer): Buffer[] | undefined {
    const all = this.lookup(key);
    if (!all) return undefined;
    const slot = Math.ceil(this.valueSize / 8) * 8;
    const out: Buffer[] = [];
    for (let off = 0; off < all.length; off += slot) out.push(all.subarray(off, off + this.valueSize));
    return out;
  }

  update(key: Buffer, value: Buffer, flags: keyof typeof UPDATE_FLAGS = 'any'): void {
    this.checkKey(key);
    if (value.length !== this.valueSize) throw new Error(`map ${this.name}: value is ${value.length} bytes, the map's are ${this.valueSize}`);
    check('bpf_map_update_elem', libbpf().bpf_map_update_elem(this.fd, key, value, UPDATE_FLAGS[flags]) as number, this.name);
  }

  delete(key: Buffer): boolean {
    this.checkKey(key);
    const rc = libbpf().bpf_map_delete_elem(this.fd, key) as number;
    if (rc === -constants.ENOENT) return false;
    check('bpf_map_delete_elem', rc, this.name);
    return true;
  }

  *keys(): Generator<Buffer> {
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.keySize);
      const rc = libbpf().bpf_map_get_next_key(this.fd, prev, next) as number;
      if (rc === -constants.ENOENT) return;
      check('bpf_map_get_next_key', rc, this.name);
      yield next;
      prev = next;
    }
  }

  /** Every entry. Keys deleted meanwhile are skipped. */
  *entries(): Generator<[Buffer, Buffer]> {
    for (const k of [...this.keys()]) {
      const v = this.lookup(k);
      if (v) yield [k, v];
    }
  }

  /**
   * Every entry, read in batches of `chunk` (bpf_map_lookup_batch: a few
   * syscalls for a large map); map types without batch support are walked
   * key by key. Values of per-CPU maps hold every CPU's slot.
   */
  dump(chunk = 4096): [Buffer, Buffer][] {
    const valueLen = this.valueBuffer().length;
    const keys = Buffer.alloc(this.keySize * chunk);
    const values = Buffer.alloc(valueLen * chunk);
    const token = Buffer.alloc(Math.max(this.keySize, 8));
    const next = Buffer.alloc(token.length);
    const out: [Buffer, Buffer][] = [];
    for (let first = true; ; first = false) {
      const count = [chunk];
      const rc = libbpf().bpf_map_lookup_batch(this.fd, first ? null : token, next, keys, values, count, batchOpts()) as number;
      if (rc < 0 && rc !== -constants.ENOENT) {
        if (first && batchUnsupported(rc)) return [...this.entries()];
        // A hash bucket larger than the chunk: walk instead.
        if (rc === -constants.ENOSPC) return [...this.entries()];
        check('bpf_map_lookup_batch', rc, this.name);
      }
      const n = count[0] ?? 0;
      for (let i = 0; i < n; i++) {
        out.push([
          Buffer.from(keys.subarray(i * this.keySize, (i + 1) * this.keySize)),
          Buffer.from(values.subarray(i * valueLen, (i + 1) * valueLen)),
        ]);
      }
      if (rc === -constants.ENOENT) return out;
      next.copy(token);
    }
  }

  /**
   * Reads every entry into `keys` and `values` (room for maxEntries + chunk
   * entries: a batch may end past the last), in batches of `chunk`; returns
   * how many. The buffers can be kept and reused: a large walk then touches
   * no new memory.
   */
  dumpInto(keys: Buffer, values: Buffer, chunk = 4096): number {
    const valueLen = this.valueBuffer().length;
    if (keys.length < this.keySize * (this.maxEntries + chunk) || values.length < valueLen * (this.maxEntries + chunk)) {
      throw new Error(`map ${this.name}: dump buffers hold fewer than ${this.maxEntries + chunk} entries`);
    }
    const token = Buffer.alloc(Math.max(this.keySize, 8));
    const next = Buffer.alloc(token.length);
    let total = 0;
    const walk = (): number => {
      let n = 0;
      for (const [k, v] of this.entries()) {
        if (n >= this.maxEntries) break;
        k.copy(keys, n * this.keySize);
        v.copy(values, n * valueLen);
        n++;
      }
      return n;
    };
    for (let first = true; ; first = false) {
      const count = [chunk];
      const rc = libbpf().bpf_map_lookup_batch(
        this.fd,
        first ? null : token,
        next,
        keys.subarray(total * this.keySize),
        values.subarray(total * valueLen),
        count,
        batchOpts(),
      ) as number;
      if (rc < 0 && rc !== -constants.ENOENT) {
        if (first && batchUnsupported(rc)) return walk();
        // A hash bucket larger than the chunk: walk instead.
        if (rc === -constants.ENOSPC) return walk();
        check('bpf_map_lookup_batch', rc, this.name);
      }
      // Entries added while the walk goes on can push a batch past maxEntries: the rest waits for the next walk.
      total = Math.min(total + (count[0] ?? 0), this.maxEntries);
      if (rc === -constants.ENOENT || total >= this.maxEntries) return total;
      next.copy(token);
    }
  }

  /** Writes many entries in one syscall where the map type supports it. */
  updateBatch(keys: Buffer[], values: Buffer[]): void {
    if (keys.length !== values.length) throw new Error(`map ${this.name}: ${keys.length} keys for ${values.length} values`);
    if (keys.length === 0) return;
    for (const k of keys) this.checkKey(k);
    const count = [keys.length];
    const rc = libbpf().bpf_map_update_batch(this.fd, Buffer.concat(keys), Buffer.concat(values), count, batchOpts()) as number;
    if (rc >= 0) return;
    if (!batchUnsupported(rc) || count[0] !== 0) check('bpf_map_update_batch', rc, this.name);
    for (const [i, k] of keys.entries()) this.update(k, values[i]!);
  }

  /** Deletes many entries; keys that are already gone are fine. */
  deleteBatch(keys: Buffer[]): void {
    if (keys.length === 0) return;
    for (const k of keys) this.checkKey(k);
    const count = [keys.length];
    const rc = libbpf().bpf_map_delete_batch(this.fd, Buffer.concat(keys), count, batchOpts()) as number;
    if (rc >= 0) return;
    // The batch stops at the first missing key: finish one by one.
    if (rc !== -constants.ENOENT && !batchUnsupported(rc)) check('bpf_map_delete_batch', rc, this.name);
    for (const k of keys.slice(count[0] ?? 0)) this.delete(k);
  }

  pin(path: string): void {
    check('bpf_obj_pin', libbpf().bpf_obj_pin(this.fd, path) as number, path);
  }

  close(): void {
    if (this.owned && this._fd >= 0) closeFd(this._fd);
    this._fd = -1;
  }
}

const batchUnsupported = (rc: number): boolean => rc === -constants.EINVAL || rc === -constants.EOPNOTSUPP || rc === -524;

function batchOpts(): Buffer {
  const b = Buffer.alloc(24);
  b.writeBigUInt64LE(24n, 0);
  return b;
}

let cpus: number | undefined;
export function numPossibleCpus(): number {
  cpus ??= check('libbpf_num_possible_cpus', libbpf().libbpf_num_possible_cpus() as number);
  return cpus;
}

// --- tc (clsact, netlink) ----------------------------------------------------------

const TC_POINT = { ingress: 1, egress: 2 } as const;
const TC_F_REPLACE = 1;

function tcHook(ifindex: number, direction: 'ingress' | 'egress'): Buffer {
  const b = Buffer.alloc(24);
  b.writeBigUInt64LE(24n, 0);
  b.writeInt32LE(ifindex, 8);
  b.writeUInt32LE(TC_POINT[direction], 12);
  return b;
}

function tcOpts(o: { fd?: number; flags?: number; handle: number; priority: number }): Buffer {
  const b = Buffer.alloc(32);
  b.writeBigUInt64LE(32n, 0);
  b.writeInt32LE(o.fd ?? 0, 8);
  b.writeUInt32LE(o.flags ?? 0, 12);
  b.writeUInt32LE(o.handle, 20);
  b.writeUInt32LE(o.priority, 24);
  return b;
}

const fdOf = (p: BpfProgram | number): number => (typeof p === 'number' ? p : p.fd);

export function attachTc(
  ifindex: number,
  direction: 'ingress' | 'egress',
  prog: BpfProgram | number,
  o: { handle: number; priority: number; replace?: boolean },
): void {
  const hook = tcHook(ifindex, direction);
  const rc = libbpf().bpf_tc_hook_create(hook) as number;
  if (rc < 0 && rc !== -constants.EEXIST) check('bpf_tc_hook_create', rc, `ifindex ${ifindex}`);
  const opts = tcOpts({ fd: fdOf(prog), flags: o.replace ? TC_F_REPLACE : 0, handle: o.handle, priority: o.priority });
  check('bpf_tc_attach', libbpf().bpf_tc_attach(hook, opts) as number, `ifindex ${ifindex} ${direction}`);
}

/** Removes a filter; false when it (or the interface) was not there. */
export function detachTc(ifindex: number, direction: 'ingress' | 'egress', o: { handle: number; priority: number }): boolean {
  const rc = libbpf().bpf_tc_detach(tcHook(ifindex, direction), tcOpts(o)) as number;
  if (rc === -constants.ENOENT || rc === -constants.ENODEV || rc === -constants.EINVAL) return false;
  check('bpf_tc_detach', rc, `ifindex ${ifindex} ${direction}`);
  return true;
}

/** The id of the program in a filter, or undefined when there is none. */
export function queryTc(ifindex: number, direction: 'ingress' | 'egress', o: { handle: number; priority: number }): number | undefined {
  const opts = tcOpts(o);
  const rc = libbpf().bpf_tc_query(tcHook(ifindex, direction), opts) as number;
  if (rc < 0) return undefined;
  return opts.readUInt32LE(16);
}

// --- XDP ---------------------------------------------------------------------------

const XDP_FLAGS = { generic: 2, native: 4 } as const;

export function attachXdp(ifindex: number, prog: BpfProgram | number, mode: 'native' | 'generic' | 'auto'): 'native' | 'generic' {
  const fd = fdOf(prog);
  if (mode !== 'generic') {
    const rc = libbpf().bpf_xdp_attach(ifindex, fd, XDP_FLAGS.native, null) as number;
    if (rc >= 0) return 'native';
    if (mode === 'native') check('bpf_xdp_attach', rc, `ifindex ${ifindex} native`);
  }
  check('bpf_xdp_attach', libbpf().bpf_xdp_attach(ifindex, fd, XDP_FLAGS.generic, null) as number, `ifindex ${ifindex} generic`);
  return 'generic';
}

export function queryXdp(ifindex: number): { progId: number; mode: 'native' | 'generic' } | undefined {
  for (const mode of ['native', 'generic'] as const) {
    const id = [0];
    const rc = libbpf().bpf_xdp_query_id(ifindex, XDP_FLAGS[mode], id) as number;
    if (rc >= 0 && id[0]) return { progId: id[0], mode };
  }
  return undefined;
}

export function detachXdp(ifindex: number): boolean {
  const q = queryXdp(ifindex);
  if (!q) return false;
  check('bpf_xdp_detach', libbpf().bpf_xdp_detach(ifindex, XDP_FLAGS[q.mode], null) as number, `ifindex ${ifindex}`);
  return true;
}

// --- links -------------------------------------------------------------------------

export class BpfLink {
  private _fd: number;

  private constructor(fd: number) {
    this._fd = fd;
  }

  get fd(): number {
    if (this._fd < 0) throw new Error('BPF link is closed');
    return this._fd;
  }

  /** Attaches a program to a cgroup v2 directory through a link (detached when the last fd and pin are gone). */
  static createCgroup(prog: BpfProgram | number, cgroupPath: string, attach: CgroupAttach): BpfLink {
    const O_RDONLY_DIRECTORY = 0o200000;
    const cg = libbpf().open(cgroupPath, O_RDONLY_DIRECTORY) as number;
    if (cg < 0) throw new BpfError('open cgroup', lastErrno(), cgroupPath);
    try {
      return new BpfLink(check('bpf_link_create', libbpf().bpf_link_create(fdOf(prog), cg, ATTACH[attach], null) as number, `${attach} on ${cgroupPath}`));
    } finally {
      closeFd(cg);
    }
  }

  static fromPin(path: string): BpfLink {
    return new BpfLink(check('bpf_obj_get', libbpf().bpf_obj_get(path) as number, path));
  }

  static unpin(path: string): void {
    // Unlinking the pin drops the kernel's reference; with no fd left the link detaches.
    requireUnlink(path);
  }

  pin(path: string): void {
    check('bpf_obj_pin', libbpf().bpf_obj_pin(this.fd, path) as number, path);
  }

  /** Swaps the program atomically. */
  update(prog: BpfProgram | number): void {
    check('bpf_link_update', libbpf().bpf_link_update(this.fd, fdOf(prog), null) as number);
  }

  close(): void {
    closeFd(this._fd);
    this._fd = -1;
  }
}

function requireUnlink(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

// --- system ------------------------------------------------------------------------

export function ifNameToIndex(name: string): number {
  const i = libbpf().if_nametoindex(name) as number;
  if (!i) throw new Error(`interface ${name}: no such interface in this network namespace`);
  return i;
}

/** The cookie of the calling process's network namespace (SO_NETNS_COOKIE). */
export function netnsCookie(): bigint {
  const l = libbpf();
  const fd = l.socket(2 /* AF_INET */, 2 /* SOCK_DGRAM */, 0) as number;
  if (fd < 0) throw new BpfError('socket', lastErrno());
  try {
    const value = Buffer.alloc(8);
    const len = [8];
    if ((l.getsockopt(fd, 1 /* SOL_SOCKET */, 71 /* SO_NETNS_COOKIE */, value, len) as number) < 0) {
      throw new BpfError('getsockopt SO_NETNS_COOKIE', lastErrno());
    }
    return value.readBigUInt64LE(0);
  } finally {
    closeFd(fd);
  }
}

function fsType(path: string): bigint | undefined {
  const buf = Buffer.alloc(120);
  if ((libbpf().statfs(path, buf) as number) < 0) return undefined;
  return buf.readBigUInt64LE(0);
}

export const isBpffs = (path: string): boolean => fsType(path) === 0xcafe4a11n;
export const isCgroup2 = (path: string): boolean => fsType(path) === 0x63677270n;

/** Whether the kernel loads programs of this type (throws when bpf() itself is refused). */
export function probeProgType(progType: number): boolean {
  return check('libbpf_probe_bpf_prog_type', libbpf().libbpf_probe_bpf_prog_type(progType, null) as number) === 1;
}

export function probeHelper(progType: number, helperId: number): boolean {
  return check('libbpf_probe_bpf_helper', libbpf().libbpf_probe_bpf_helper(progType, helperId, null) as number) === 1;
}

// --- BTF ---------------------------------------------------------------------------

export interface StructLayout {
  size: number;
  members: { name: string; offset: number; size: number }[];
}

/** A struct's size and member offsets as an object's BTF describes them. */
export function structLayout(objectPath: string, structName: string): StructLayout {
  const l = libbpf();
  const btf = checkPtr('btf__parse', l.btf__parse(objectPath, null) as Ptr | null, objectPath);
  try {
    const id = l.btf__find_by_name_kind(btf, structName, 4 /* BTF_KIND_STRUCT */) as number;
    if (id < 0) throw new Error(`BTF of ${objectPath}: no struct ${structName}`);
    const t = l.btf__type_by_id(btf, id);
    const head = readAt(t, 12);
    const info = head.readUInt32LE(4);
    const vlen = info & 0xffff;
    const kindFlag = info >>> 31;
    const size = head.readUInt32LE(8);
    const all = readAt(t, 12 + vlen * 12);
    const members = [];
    for (let i = 0; i < vlen; i++) {
      const off = 12 + i * 12;
      const nameOff = all.readUInt32LE(off);
      const type = all.readUInt32LE(off + 4);
      const bits = all.readUInt32LE(off + 8);
      const bitOffset = kindFlag ? bits & 0xffffff : bits;
      members.push({ name: l.btf__name_by_offset(btf, nameOff) as string, offset: bitOffset / 8, size: Number(l.btf__resolve_size(btf, type)) });
    }
    return { size, members };
  } finally {
    l.btf__free(btf);
  }
}
