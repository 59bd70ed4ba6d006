import { BridgeportError } from '../model/errors.js';
import type { Datapath, DatapathName } from './datapath.js';
import { IptablesDatapath } from './iptables/iptables-datapath.js';

export type DatapathChoice = DatapathName | 'auto';

export interface Selection {
  datapath: Datapath;
  /** Why this datapath runs: "requested", or what ruled out eBPF under auto. */
  reason: string;
}

/** The eBPF datapath is not part of this build yet; `auto` says so, `ebpf` refuses. */
const EBPF_MISSING = 'the eBPF datapath is not built into this version of bridgeport yet';

export async function selectDatapath(choice: DatapathChoice, opts: { forwardDrop: boolean }): Promise<Selection> {
  if (choice === 'ebpf') {
    throw new BridgeportError(`start daemon: --datapath ebpf: ${EBPF_MISSING}; use --datapath iptables (or auto)`, 'unavailable');
  }
  try {
    await IptablesDatapath.probe();
  } catch (err) {
    throw new BridgeportError(`start daemon: iptables datapath: iptables-save failed: ${(err as Error).message}`, 'unavailable', { cause: err });
  }
  return {
    datapath: new IptablesDatapath({ forwardDrop: opts.forwardDrop }),
    reason: choice === 'auto' ? `ebpf unavailable: ${EBPF_MISSING}` : 'requested',
  };
}
