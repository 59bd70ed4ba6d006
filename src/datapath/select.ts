import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BridgeportError } from '../model/errors.js';
import type { Datapath, DatapathName } from './datapath.js';
import type { EbpfOptions } from './ebpf/ebpf-datapath.js';
import { OBJECT_DIR } from './ebpf/objects.js';
import { IptablesDatapath } from './iptables/iptables-datapath.js';

export type DatapathChoice = DatapathName | 'auto';

export interface Selection {
  datapath: Datapath;
  /** Why this datapath runs: "requested", or what ruled out eBPF under auto. */
  reason: string;
}

export interface SelectOptions {
  forwardDrop: boolean;
  ebpf: EbpfOptions;
}

/** Helpers the programs call, by program type: each is probed before eBPF is chosen. */
const HELPERS = {
  sched_cls: [
    'map_lookup_elem',
    'map_update_elem',
    'map_delete_elem',
    'ktime_get_ns',
    'skb_store_bytes',
    'l3_csum_replace',
    'l4_csum_replace',
    'redirect',
    'redirect_peer',
    'redirect_neigh',
    'fib_lookup',
    'get_prandom_u32',
    'skb_load_bytes',
    'loop',
  ],
  cgroup_sock_addr: ['get_netns_cookie', 'get_socket_cookie', 'map_lookup_elem', 'map_update_elem'],
} as const;

/**
 * Why eBPF cannot run here, or undefined when every probe passed: the objects,
 * the bpf() syscall, BTF, bpffs and cgroup v2 support, each helper used.
 */
export async function probeEbpf(): Promise<string | undefined> {
  for (const obj of ['tc_uplink', 'tc_endpoint', 'xdp_prefilter', 'sock']) {
    if (!existsSync(join(OBJECT_DIR, `${obj}.o`))) return `BPF object ${obj}.o is missing from ${OBJECT_DIR} (run make build)`;
  }
  let handles: typeof import('./ebpf/handles.js');
  try {
    handles = await import('./ebpf/handles.js');
  } catch (err) {
    return `libbpf could not be loaded: ${(err as Error).message}`;
  }
  const filesystems = readFileSync('/proc/filesystems', 'utf8');
  if (!/\tbpf\n/.test(filesystems)) return 'the kernel has no bpffs';
  if (!/\tcgroup2\n/.test(filesystems)) return 'the kernel has no cgroup v2';
  if (!existsSync('/sys/kernel/btf/vmlinux')) return 'the kernel has no BTF (/sys/kernel/btf/vmlinux)';
  const { PROG_TYPE, HELPER } = handles;
  for (const [type, helpers] of Object.entries(HELPERS) as [keyof typeof HELPERS, readonly string[]][]) {
    const progType = type === 'sched_cls' ? PROG_TYPE.SCHED_CLS : PROG_TYPE.CGROUP_SOCK_ADDR;
    try {
      if (!handles.probeProgType(progType)) return `the kernel cannot load ${type} programs`;
      for (const h of helpers) {
        const id = (HELPER as Record<string, number>)[h];
        if (id === undefined) return `no helper id known for bpf_${h}`;
        if (!handles.probeHelper(progType, id)) return `helper bpf_${h} is not available to ${type} programs`;
      }
    } catch (err) {
      return `bpf() is not permitted: ${(err as Error).message}`;
    }
  }
  return undefined;
}

/**
 * Picks and starts the datapath. Whatever runs, the other one's leftovers are
 * removed, so switching a host between datapaths leaves nothing behind.
 */
export async function selectDatapath(choice: DatapathChoice, opts: SelectOptions): Promise<Selection> {
  if (choice === 'iptables') return { datapath: await startIptables(opts), reason: 'requested' };

  const why = await probeEbpf();
  if (why === undefined) {
    // Loaded only here: libbpf (through koffi) is not needed to run iptables.
    const { EbpfDatapath, teardownEbpf } = await import('./ebpf/ebpf-datapath.js');
    const ebpf = new EbpfDatapath(opts.ebpf);
    try {
      await ebpf.start();
      await new IptablesDatapath({ forwardDrop: opts.forwardDrop }).teardown().catch(() => undefined);
      return { datapath: ebpf, reason: choice === 'auto' ? 'auto: every eBPF probe passed' : 'requested' };
    } catch (err) {
      ebpf.close();
      await teardownEbpf({ runDir: opts.ebpf.runDir, bpfDir: opts.ebpf.bpfDir, log: opts.ebpf.log }).catch(() => undefined);
      if (choice === 'ebpf') throw new BridgeportError(`start daemon: --datapath ebpf: ${(err as Error).message}`, 'unavailable', { cause: err });
      return { datapath: await startIptables(opts), reason: `ebpf unavailable: ${(err as Error).message}` };
    }
  }
  if (choice === 'ebpf') throw new BridgeportError(`start daemon: --datapath ebpf: ${why}; use --datapath iptables (or auto)`, 'unavailable');
  opts.ebpf.log(`datapath auto: eBPF unavailable (${why}); falling back to iptables`);
  return { datapath: await startIptables(opts), reason: `ebpf unavailable: ${why}` };
}

async function startIptables(opts: SelectOptions): Promise<IptablesDatapath> {
  try {
    await IptablesDatapath.probe();
  } catch (err) {
    throw new BridgeportError(`start daemon: iptables datapath: iptables-save failed: ${(err as Error).message}`, 'unavailable', { cause: err });
  }
  await removeEbpfLeftovers(opts.ebpf);
  return new IptablesDatapath({ forwardDrop: opts.forwardDrop });
}

/** An eBPF instance's programs, pins and links, if a previous run left any. */
export async function removeEbpfLeftovers(opts: EbpfOptions): Promise<boolean> {
  const bpfDir = opts.bpfDir ?? join(opts.runDir, 'bpf');
  if (!existsSync(join(bpfDir, 'progs')) && !existsSync(join(opts.runDir, 'ebpf-undo.json'))) return false;
  const { teardownEbpf } = await import('./ebpf/ebpf-datapath.js');
  return teardownEbpf({ runDir: opts.runDir, bpfDir: opts.bpfDir, log: opts.log });
}
