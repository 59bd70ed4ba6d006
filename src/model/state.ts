import type { FirewallRule } from './firewall.js';
import type { ExposedPort, PortBinding } from './port-spec.js';

/**
 * The daemon's desired state, persisted as one JSON document in the state
 * dir. Everything the datapaths render is derived from it.
 */
export const STATE_VERSION = 1;

export interface NetworkRecord {
  id: string;
  name: string;
  /** Linux bridge interface name (15 bytes at most). */
  bridge: string;
  subnet: string;
  gateway: string;
  ipRange: string;
  mtu: number;
  icc: boolean;
  masquerade: boolean;
  internal: boolean;
  /** Host address published ports of this network bind to when a SPEC names none. */
  hostBindingIp: string | undefined;
  /** The default network ("bridge"), made from the daemon's --bip/--fixed-cidr/--mtu/--icc. */
  isDefault: boolean;
  options: Record<string, string>;
  /**
   * CIDRs the network exchanges traffic with routed, both ways (a cluster's
   * pod CIDR): no masquerade toward them, and from them (in on an uplink)
   * every container address and port is reachable. Absent when none.
   */
  routedCidrs?: string[];
  /** Addresses the network's IPAM keeps out of use (Docker's --aux-address); absent when none. */
  auxAddresses?: string[];
  /** The front end that made the network and its key; absent for bridgeport's own API. */
  owner?: NetworkOwner;
  created: string;
}

/**
 * Which front end made a record, and the key it names it by. Kept in the
 * state so that a restarted daemon answers the front end's later calls
 * (dockerd never replays CreateNetwork or Join) and a reconciler can find
 * what the owner forgot.
 */
export interface NetworkOwner {
  frontEnd: 'docker';
  /** Docker's network ID. */
  key: string;
  /**
   * The front end's name of the network, looked up after the fact (dockerd
   * does not send it); absent until known. For views and metrics only.
   */
  name?: string;
}

export interface EndpointOwner {
  frontEnd: 'docker' | 'cni';
  /** Docker's endpoint ID; for CNI, the attachment: CONTAINERID/IFNAME. */
  key: string;
  /** Docker's network ID; for CNI, the network name of the runtime's conflist. */
  network: string;
  /**
   * The container the front end attached the endpoint to: for Docker looked
   * up after the fact (dockerd sends neither) and absent until known; for CNI
   * the runtime's container ID and pod name, sent with ADD. For views and
   * metrics only.
   */
  container?: OwnerContainer;
}

export interface OwnerContainer {
  /** Docker's container ID. */
  id: string;
  /** Docker's container name, without its leading "/". */
  name: string;
}

export interface EndpointRecord {
  network: string;
  ip: string;
  prefix: number;
  gateway: string;
  mac: string;
  /** Host side of the veth pair, enslaved to the network's bridge. */
  hostIf: string;
  /**
   * Name inside the sandbox: eth0, eth1, … in connection order. For an
   * endpoint whose sandbox was not known when it was made (Docker's), the
   * name of the container end in the daemon's namespace, which the front end
   * moves into the sandbox itself.
   */
  sandboxIf: string;
  /** The front end that made the endpoint and its key; absent for bridgeport's own API. */
  owner?: EndpointOwner;
}

export type NetworkMode = 'bridge' | 'host' | 'none' | 'container';

/** A published port: one host port forwarded to one container port. */
export interface PublishedPort extends PortBinding {
  /** The SPEC it came from, as the user wrote it (for `port` and unpublish). */
  spec: string;
}

export interface LinkRecord {
  /** The container linked to (Docker's "child"). */
  name: string;
  alias: string;
}

export interface ContainerRecord {
  id: string;
  name: string;
  mode: NetworkMode;
  /** The network namespace: one the daemon made, a joined container's, or a path given by another runtime. */
  sandboxKey: string;
  /** True when the daemon created sandboxKey and removes it on rm. */
  ownsSandbox: boolean;
  /** For --net container:NAME. */
  joined: string | undefined;
  hostname: string;
  cmd: string[];
  /** The started process and its /proc start time (guards against PID reuse); none for sandboxes joined by path. */
  pid: number | undefined;
  pidStart: string | undefined;
  logPath: string | undefined;
  hostsPath: string | undefined;
  endpoints: EndpointRecord[];
  ports: PublishedPort[];
  exposed: ExposedPort[];
  publishAll: boolean;
  links: LinkRecord[];
  created: string;
}

/**
 * The record of a sandbox another runtime made (dockerd's endpoint, `--netns`):
 * no process of bridgeport's, nothing published or linked yet.
 */
export function sandboxRecord(r: {
  id: string;
  name: string;
  sandboxKey: string;
  hostname: string;
  endpoints: EndpointRecord[];
  exposed?: ExposedPort[];
  created: string;
}): ContainerRecord {
  return {
    id: r.id,
    name: r.name,
    mode: 'bridge',
    sandboxKey: r.sandboxKey,
    ownsSandbox: false,
    joined: undefined,
    hostname: r.hostname,
    cmd: [],
    pid: undefined,
    pidStart: undefined,
    logPath: undefined,
    hostsPath: undefined,
    endpoints: r.endpoints,
    ports: [],
    exposed: r.exposed ?? [],
    publishAll: false,
    links: [],
    created: r.created,
  };
}

export interface State {
  version: number;
  networks: NetworkRecord[];
  containers: ContainerRecord[];
  /** The operator's deny list; absent in state files written before it existed. */
  firewall?: FirewallRule[];
}

export const emptyState = (): State => ({ version: STATE_VERSION, networks: [], containers: [] });
