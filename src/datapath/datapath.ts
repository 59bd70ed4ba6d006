import type { Proto } from '../model/port-spec.js';

/**
 * What every datapath renders: the model reduced to the facts packets are
 * judged by. Derived from the daemon's state by `toDatapathModel`; a datapath
 * never decides policy this does not state.
 */
export interface DpNetwork {
  name: string;
  bridge: string;
  subnet: string;
  gateway: string;
  icc: boolean;
  masquerade: boolean;
  internal: boolean;
  /** CIDRs reached routed both ways (not masqueraded; let in to every container address). */
  routedCidrs?: string[];
}

export interface DpEndpoint {
  container: string;
  network: string;
  bridge: string;
  ip: string;
  mac: string;
  hostIf: string;
}

export interface DpPort {
  container: string;
  network: string;
  bridge: string;
  proto: Proto;
  /** 0.0.0.0 for every host address. */
  hostIp: string;
  hostPort: number;
  containerIp: string;
  containerPort: number;
}

/** With icc=false: `parent` may open connections to `child`'s exposed port. */
export interface DpLinkPermit {
  network: string;
  bridge: string;
  parent: string;
  parentIp: string;
  child: string;
  childIp: string;
  proto: Proto;
  port: number;
}

/** Drop traffic from `cidr` arriving on an uplink (to `proto`/`port` only, when given). */
export interface DpFirewallRule {
  cidr: string;
  proto?: Proto;
  port?: number;
}

export interface DatapathModel {
  networks: DpNetwork[];
  endpoints: DpEndpoint[];
  ports: DpPort[];
  links: DpLinkPermit[];
  uplinks: string[];
  firewall: DpFirewallRule[];
}

export type DatapathName = 'iptables' | 'ebpf';

export interface ApplyChange {
  /** UDP ports published by this change: stale conntrack entries for them are flushed (moby#44742). */
  publishedUdp: DpPort[];
}

/** Packets and bytes; bytes are L3 (the IP packet, as iptables counts), in both datapaths. */
export interface Counter {
  packets: number;
  bytes: number;
}

/** Why a datapath dropped a packet (the `reason` label of bridgeport_drops_total). */
export const DROP_REASONS = [
  'icc_denied',
  'network_isolation',
  'internal_network',
  'direct_access',
  'spoofed_source',
  'deny_list',
  'no_published_port',
  'conntrack_full',
  'nat_ports_exhausted',
  'invalid_packet',
  'tuple_clash',
  'stale_flow',
] as const;
export type DropReason = (typeof DROP_REASONS)[number];

/**
 * Counters at one instant, keyed by the model's own identities so the metrics
 * layer can label them. Counters only grow (they survive daemon restarts and
 * re-syncs); an entity the datapath has no counter for is absent, not zero.
 */
export interface DatapathStats {
  /** Per published port (proto + host IP + host port): `in` toward the container, `out` its replies. */
  ports: { proto: Proto; hostIp: string; hostPort: number; in: Counter; out: Counter }[];
  /** Per endpoint (by host-side interface): `rx` received by the container, `tx` sent by it. */
  endpoints: { hostIf: string; rx: Counter; tx: Counter }[];
  /** Per network (by bridge): `out` masqueraded packets leaving, `in` their replies. */
  masquerade: { bridge: string; out: Counter; in: Counter }[];
  /** Only the reasons this datapath can observe. */
  drops: Partial<Record<DropReason, Counter>>;
  /** XDP verdicts on the uplinks (eBPF only). */
  xdp?: { pass: Counter; drop: Counter };
  /** Tracked flows (both directions of a flow count once) by kind. */
  conntrack: { published: number; masquerade: number; other: number };
  /** Masquerade source ports in use, per network (by bridge). */
  natPortsInUse: { bridge: string; ports: number }[];
  /** BPF maps (eBPF only). */
  maps?: { name: string; entries: number; capacity: number }[];
}

/** Ports published and unpublished by one operation that changed nothing else. */
export interface PortsChange {
  added: DpPort[];
  removed: DpPort[];
}

export interface Datapath {
  readonly name: DatapathName;
  /** Reads every counter (one pass; called per scrape). */
  stats(): Promise<DatapathStats>;
  /** Makes the kernel match the model. Applies whole or not at all. */
  apply(model: DatapathModel, change?: ApplyChange): Promise<void>;
  /**
   * Publishes and unpublishes ports without rendering the rest again, for a
   * datapath whose cost would otherwise grow with every port already published
   * (optional: the daemon calls apply() with the whole model when absent).
   * Only for changes to ports alone, on top of the last apply. Applies whole
   * or not at all.
   */
  applyPorts?(change: PortsChange): Promise<void>;
  /** Removes everything this datapath installed in this namespace. */
  teardown(): Promise<void>;
  /** Facts for `status`. */
  describe(): Promise<Record<string, unknown>>;
  /** Releases the daemon's handles; what is installed keeps working. */
  close?(): void;
}
