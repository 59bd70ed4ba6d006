import { getLink, ipBatch, listLinks } from './iproute.js';

/** Bridges and veth pairs: the host networking both datapaths share. */

export interface BridgeSpec {
  name: string;
  gateway: string;
  prefix: number;
  mtu: number;
}

/** Creates the bridge with its gateway address, or brings an existing one in line. */
export async function ensureBridge(b: BridgeSpec): Promise<{ created: boolean }> {
  const existing = await getLink(b.name);
  if (!existing) {
    await ipBatch([
      `link add name ${b.name} mtu ${b.mtu} type bridge`,
      `addr add ${b.gateway}/${b.prefix} dev ${b.name}`,
      `link set dev ${b.name} up`,
    ]);
    return { created: true };
  }
  if (existing.linkinfo?.info_kind !== 'bridge') {
    throw new Error(`interface ${b.name} exists and is not a bridge`);
  }
  await ipBatch([`addr replace ${b.gateway}/${b.prefix} dev ${b.name}`, `link set dev ${b.name} mtu ${b.mtu} up`]);
  return { created: false };
}

export async function deleteLink(name: string, netns?: string): Promise<void> {
  if (await getLink(name, netns)) await ipBatch([`link del dev ${name}`], netns);
}

export interface EndpointSpec {
  bridge: string;
  hostIf: string;
  sandbox: string;
  sandboxIf: string;
  mac: string;
  ip: string;
  prefix: number;
  gateway: string;
  mtu: number;
  /** Route the sandbox's default traffic through this endpoint's gateway. */
  defaultRoute: boolean;
}

/** Creates a veth pair: host side on the bridge (hairpin on), the peer configured inside the sandbox. */
export async function createEndpoint(e: EndpointSpec): Promise<void> {
  await ipBatch([`link add name ${e.hostIf} mtu ${e.mtu} type veth peer name ${e.sandboxIf} netns ${e.sandbox}`]);
  try {
    await ipBatch(
      [
        `link set dev ${e.sandboxIf} address ${e.mac} mtu ${e.mtu}`,
        `addr add ${e.ip}/${e.prefix} dev ${e.sandboxIf}`,
        `link set dev ${e.sandboxIf} up`,
        ...(e.defaultRoute ? [`route replace default via ${e.gateway} dev ${e.sandboxIf}`] : []),
      ],
      e.sandbox,
    );
    // Hairpin lets a container reach its own published port through the bridge.
    await ipBatch([
      `link set dev ${e.hostIf} master ${e.bridge}`,
      `link set dev ${e.hostIf} type bridge_slave hairpin on`,
      `link set dev ${e.hostIf} up`,
    ]);
  } catch (err) {
    await deleteLink(e.hostIf).catch(() => undefined);
    throw err;
  }
}

/** The next free ethN inside a sandbox. */
export async function nextSandboxInterface(sandbox: string, reserved: readonly string[] = []): Promise<string> {
  const names = new Set([...(await listLinks(sandbox)).map((l) => l.ifname), ...reserved]);
  for (let i = 0; ; i++) if (!names.has(`eth${i}`)) return `eth${i}`;
}

export interface UnattachedEndpointSpec {
  bridge: string;
  hostIf: string;
  /** The container end, left in the daemon's namespace for another runtime to move into its sandbox. */
  peerIf: string;
  mac: string;
  mtu: number;
}

/**
 * A veth pair for a sandbox that does not exist yet (dockerd's CreateEndpoint):
 * the host side on the bridge (hairpin on, up), the container end beside it,
 * down, with its MAC and MTU already set: dockerd moves it, renames it and
 * sets addresses and routes, but never the MTU.
 */
export async function createUnattachedEndpoint(e: UnattachedEndpointSpec): Promise<void> {
  // One ip process (each costs tens of milliseconds on a docker run's path).
  try {
    await ipBatch([
      `link add name ${e.hostIf} mtu ${e.mtu} type veth peer name ${e.peerIf} mtu ${e.mtu} address ${e.mac}`,
      `link set dev ${e.hostIf} master ${e.bridge}`,
      `link set dev ${e.hostIf} type bridge_slave hairpin on`,
      `link set dev ${e.hostIf} up`,
    ]);
  } catch (err) {
    // ip names the failing line: past the first, the pair is ours to remove; the first failing made nothing.
    if (!/Command failed -:1\b/.test(String(err))) await deleteLink(e.hostIf).catch(() => undefined);
    throw err;
  }
}
