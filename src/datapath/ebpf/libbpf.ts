/**
 * libbpf 1.x and the few libc calls bridgeport needs, through koffi. The only
 * module that imports koffi: everything above it sees fds, Buffers and the
 * opaque pointer type below, never koffi itself.
 *
 * libbpf 1.x reports errors as negative errno from int functions and as NULL
 * with errno set from pointer functions; both become BpfError.
 */
import koffi from 'koffi';
import { constants, strerror } from './errno.js';

/** An opaque libbpf pointer (struct bpf_object *, struct bpf_map *, ...). */
export type Ptr = { readonly __brand: 'libbpf pointer' } & object;

export class BpfError extends Error {
  constructor(
    readonly op: string,
    readonly errno: number,
    detail?: string,
  ) {
    super(`${op}: ${strerror(errno)} (errno ${errno})${detail ? `: ${detail}` : ''}`);
    this.name = 'BpfError';
  }
}

let lib: ReturnType<typeof bind> | undefined;

/** The bound functions, loaded on first use so that merely importing this module needs no libbpf. */
export function libbpf(): ReturnType<typeof bind> {
  lib ??= bind();
  return lib;
}

function bind() {
  const bpf = koffi.load('libbpf.so.1');
  const libc = koffi.load('libc.so.6');
  koffi.opaque('bpf_object');
  koffi.opaque('bpf_map');
  koffi.opaque('bpf_program');
  koffi.opaque('btf');
  koffi.struct('bpf_test_run_opts', {
    sz: 'size_t',
    data_in: 'void *',
    data_out: 'void *',
    data_size_in: 'uint32_t',
    data_size_out: 'uint32_t',
    ctx_in: 'void *',
    ctx_out: 'void *',
    ctx_size_in: 'uint32_t',
    ctx_size_out: 'uint32_t',
    retval: 'uint32_t',
    repeat: 'int',
    duration: 'uint32_t',
    flags: 'uint32_t',
    cpu: 'uint32_t',
    batch_size: 'uint32_t',
  });
  return {
    // objects
    bpf_object__open_file: bpf.func('bpf_object *bpf_object__open_file(const char *path, void *opts)'),
    bpf_object__load: bpf.func('int bpf_object__load(bpf_object *obj)'),
    bpf_object__close: bpf.func('void bpf_object__close(bpf_object *obj)'),
    bpf_object__next_map: bpf.func('bpf_map *bpf_object__next_map(bpf_object *obj, bpf_map *prev)'),
    bpf_object__next_program: bpf.func('bpf_program *bpf_object__next_program(bpf_object *obj, bpf_program *prev)'),
    bpf_object__find_program_by_name: bpf.func('bpf_program *bpf_object__find_program_by_name(bpf_object *obj, const char *name)'),
    bpf_object__find_map_by_name: bpf.func('bpf_map *bpf_object__find_map_by_name(bpf_object *obj, const char *name)'),
    // maps of an object
    bpf_map__name: bpf.func('const char *bpf_map__name(bpf_map *map)'),
    bpf_map__fd: bpf.func('int bpf_map__fd(bpf_map *map)'),
    bpf_map__pin_path: bpf.func('const char *bpf_map__pin_path(bpf_map *map)'),
    bpf_map__set_pin_path: bpf.func('int bpf_map__set_pin_path(bpf_map *map, const char *path)'),
    bpf_map__initial_value: bpf.func('void *bpf_map__initial_value(bpf_map *map, _Out_ size_t *psize)'),
    bpf_map__set_initial_value: bpf.func('int bpf_map__set_initial_value(bpf_map *map, const void *data, size_t size)'),
    // programs of an object
    bpf_program__name: bpf.func('const char *bpf_program__name(bpf_program *prog)'),
    bpf_program__fd: bpf.func('int bpf_program__fd(bpf_program *prog)'),
    bpf_program__set_log_level: bpf.func('int bpf_program__set_log_level(bpf_program *prog, uint32_t level)'),
    bpf_program__set_log_buf: bpf.func('int bpf_program__set_log_buf(bpf_program *prog, void *buf, size_t size)'),
    // fds
    bpf_obj_pin: bpf.func('int bpf_obj_pin(int fd, const char *path)'),
    bpf_obj_get: bpf.func('int bpf_obj_get(const char *path)'),
    bpf_obj_get_info_by_fd: bpf.func('int bpf_obj_get_info_by_fd(int fd, void *info, _Inout_ uint32_t *len)'),
    bpf_map_update_elem: bpf.func('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)'),
    bpf_map_lookup_elem: bpf.func('int bpf_map_lookup_elem(int fd, const void *key, void *value)'),
    bpf_map_delete_elem: bpf.func('int bpf_map_delete_elem(int fd, const void *key)'),
    bpf_map_get_next_key: bpf.func('int bpf_map_get_next_key(int fd, const void *key, void *next)'),
    bpf_map_update_batch: bpf.func('int bpf_map_update_batch(int fd, const void *keys, const void *values, _Inout_ uint32_t *count, const void *opts)'),
    bpf_map_lookup_batch: bpf.func(
      'int bpf_map_lookup_batch(int fd, void *in_batch, _Out_ void *out_batch, _Out_ void *keys, _Out_ void *values, _Inout_ uint32_t *count, const void *opts)',
    ),
    bpf_map_delete_batch: bpf.func('int bpf_map_delete_batch(int fd, const void *keys, _Inout_ uint32_t *count, const void *opts)'),
    bpf_prog_test_run_opts: bpf.func('int bpf_prog_test_run_opts(int fd, _Inout_ bpf_test_run_opts *opts)'),
    libbpf_num_possible_cpus: bpf.func('int libbpf_num_possible_cpus(void)'),
    // attach
    bpf_tc_hook_create: bpf.func('int bpf_tc_hook_create(void *hook)'),
    bpf_tc_attach: bpf.func('int bpf_tc_attach(const void *hook, void *opts)'),
    bpf_tc_detach: bpf.func('int bpf_tc_detach(const void *hook, const void *opts)'),
    bpf_tc_query: bpf.func('int bpf_tc_query(const void *hook, void *opts)'),
    bpf_xdp_attach: bpf.func('int bpf_xdp_attach(int ifindex, int prog_fd, uint32_t flags, const void *opts)'),
    bpf_xdp_detach: bpf.func('int bpf_xdp_detach(int ifindex, uint32_t flags, const void *opts)'),
    bpf_xdp_query_id: bpf.func('int bpf_xdp_query_id(int ifindex, int flags, _Out_ uint32_t *prog_id)'),
    bpf_link_create: bpf.func('int bpf_link_create(int prog_fd, int target_fd, int attach_type, const void *opts)'),
    bpf_link_update: bpf.func('int bpf_link_update(int link_fd, int new_prog_fd, const void *opts)'),
    // probes
    libbpf_probe_bpf_prog_type: bpf.func('int libbpf_probe_bpf_prog_type(int prog_type, const void *opts)'),
    libbpf_probe_bpf_helper: bpf.func('int libbpf_probe_bpf_helper(int prog_type, int helper_id, const void *opts)'),
    // BTF
    btf__parse: bpf.func('btf *btf__parse(const char *path, void *ext)'),
    btf__free: bpf.func('void btf__free(btf *btf)'),
    btf__find_by_name_kind: bpf.func('int btf__find_by_name_kind(btf *btf, const char *name, uint32_t kind)'),
    btf__type_by_id: bpf.func('const void *btf__type_by_id(btf *btf, uint32_t id)'),
    btf__resolve_size: bpf.func('int64_t btf__resolve_size(btf *btf, uint32_t id)'),
    btf__name_by_offset: bpf.func('const char *btf__name_by_offset(btf *btf, uint32_t offset)'),
    // libc
    close: libc.func('int close(int fd)'),
    if_nametoindex: libc.func('unsigned int if_nametoindex(const char *name)'),
    socket: libc.func('int socket(int domain, int type, int protocol)'),
    getsockopt: libc.func('int getsockopt(int fd, int level, int name, void *value, _Inout_ uint32_t *len)'),
    statfs: libc.func('int statfs(const char *path, void *buf)'),
    open: libc.func('int open(const char *path, int flags)'),
  };
}

let libcOnly: ReturnType<typeof bindLibc> | undefined;

/** libc alone, for callers that must work where libbpf is not installed (the iptables datapath's hosts). */
function bindLibc() {
  const libc = koffi.load('libc.so.6');
  return {
    socket: libc.func('int socket(int domain, int type, int protocol)'),
    send: libc.func('intptr_t send(int fd, const void *buf, size_t len, int flags)'),
    recv: libc.func('intptr_t recv(int fd, _Out_ void *buf, size_t len, int flags)'),
    close: libc.func('int close(int fd)'),
  };
}

const AF_NETLINK = 16;
const SOCK_DGRAM_CLOEXEC = 2 | 0o2000000;
const NETLINK_SOCK_DIAG = 4;
const SOCK_DIAG_BY_FAMILY = 20;
const NLM_F_REQUEST_DUMP = 0x1 | 0x300;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;

/**
 * One sock_diag dump (NETLINK_SOCK_DIAG, inet_diag_req_v2) of the calling
 * thread's network namespace: the inet_diag_msg bodies of the sockets of
 * `family`/`protocol` in `states` (a bit per TCP state). Asked for listeners
 * only, the kernel walks only its listening hash, where /proc/net/tcp walks
 * every bucket of the established hash too (milliseconds on any host).
 */
export function sockDiagDump(family: number, protocol: number, states: number): Buffer[] {
  libcOnly ??= bindLibc();
  const c = libcOnly;
  const fd = c.socket(AF_NETLINK, SOCK_DGRAM_CLOEXEC, NETLINK_SOCK_DIAG) as number;
  if (fd < 0) throw new BpfError('socket(AF_NETLINK, NETLINK_SOCK_DIAG)', lastErrno());
  try {
    // nlmsghdr (16 bytes) + inet_diag_req_v2 (56 bytes)
    const req = Buffer.alloc(72);
    req.writeUInt32LE(72, 0);
    req.writeUInt16LE(SOCK_DIAG_BY_FAMILY, 4);
    req.writeUInt16LE(NLM_F_REQUEST_DUMP, 6);
    req.writeUInt32LE(1, 8);
    req.writeUInt8(family, 16);
    req.writeUInt8(protocol, 17);
    req.writeUInt32LE(states >>> 0, 20);
    if ((c.send(fd, req, req.length, 0) as number) < 0) throw new BpfError('sock_diag: send', lastErrno());
    const out: Buffer[] = [];
    const buf = Buffer.alloc(64 * 1024);
    for (;;) {
      const n = Number(c.recv(fd, buf, buf.length, 0));
      if (n < 0) throw new BpfError('sock_diag: recv', lastErrno());
      for (let off = 0; off + 16 <= n; ) {
        const len = buf.readUInt32LE(off);
        const type = buf.readUInt16LE(off + 4);
        if (len < 16 || off + len > n) throw new BpfError('sock_diag: recv', constants.EINVAL, `malformed message of ${len} bytes`);
        if (type === NLMSG_DONE) return out;
        if (type === NLMSG_ERROR) {
          const errno = -buf.readInt32LE(off + 16);
          if (errno === 0) return out;
          throw new BpfError('sock_diag: dump', errno);
        }
        if (type === SOCK_DIAG_BY_FAMILY) out.push(Buffer.from(buf.subarray(off + 16, off + len)));
        off += (len + 3) & ~3;
      }
    }
  } finally {
    c.close(fd);
  }
}

/** errno after a failed call (libbpf sets it for NULL returns too). */
export const lastErrno = (): number => koffi.errno();

/** Reads `size` bytes at a pointer that libbpf returned (BTF records). */
export function readAt(ptr: unknown, size: number): Buffer {
  return Buffer.from(koffi.decode(ptr, koffi.array('uint8_t', size)) as number[]);
}

/** Throws BpfError for a negative int result; returns it otherwise. */
export function check(op: string, rc: number, detail?: string): number {
  if (rc < 0) throw new BpfError(op, -rc, detail);
  return rc;
}

/** Throws BpfError (with errno) for a NULL pointer result. */
export function checkPtr<T>(op: string, p: T | null, detail?: string): T {
  if (p === null || p === undefined) throw new BpfError(op, lastErrno() || constants.EINVAL, detail);
  return p;
}
