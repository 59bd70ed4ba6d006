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

export interface Datapath {
  readonly name: DatapathName;
  /** Makes the kernel match the model. Applies whole or not at all. */
  apply(model: DatapathModel, change?: ApplyChange): Promise<void>;
  /** Removes everything this datapath installed in this namespace. */
  teardown(): Promise<void>;
  /** Facts for `status`. */
  describe(): Promise<Record<string, unknown>>;
  /** Releases the daemon's handles; what is installed keeps working. */
  close?(): void;
}
