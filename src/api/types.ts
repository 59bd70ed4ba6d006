/** Request bodies of the daemon's HTTP+JSON API (the CLI is its only client so far). */

export interface CreateNetworkRequest {
  name: string;
  subnet?: string;
  gateway?: string;
  ipRange?: string;
  mtu?: number;
  icc?: boolean;
  masquerade?: boolean;
  internal?: boolean;
  hostBindingIp?: string;
  bridgeName?: string;
  /** CIDRs reached routed both ways: not masqueraded to, let in directly (at most 4). */
  routedCidrs?: string[];
  /** Docker's -o options: com.docker.network.bridge.* and com.docker.network.driver.mtu. */
  options?: Record<string, string>;
}

export interface RunRequest {
  name?: string;
  /** bridge (default), a network name, host, none or container:NAME. */
  network?: string;
  ip?: string;
  ports?: string[];
  publishAll?: boolean;
  expose?: string[];
  links?: string[];
  hostname?: string;
  cmd: string[];
}

export interface ConnectRequest {
  ip?: string;
  /** Attach a sandbox bridgeport did not make: /proc/PID/ns/net or /var/run/netns/NAME. */
  netns?: string;
}

export interface PublishRequest {
  ports: string[];
}

export interface ErrorBody {
  message: string;
  kind: string;
}
