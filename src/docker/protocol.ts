import type { EndpointSpec, NetworkSpec } from '../daemon/daemon.js';
import { invalid } from '../model/errors.js';
import type { ExposedPort, PortSpec, Proto } from '../model/port-spec.js';

/**
 * dockerd's remote network driver protocol (libnetwork's drivers/remote/api),
 * as dockerd 20.10 sends it: the payloads, and their translation into the
 * core's network and endpoint specs. Pure: no I/O, no state.
 */

export interface IpamData {
  AddressSpace?: string;
  Pool?: string;
  /** Always in CIDR form ("10.66.0.1/24"). */
  Gateway?: string;
  AuxAddresses?: Record<string, string> | null;
}

export interface CreateNetworkRequest {
  NetworkID: string;
  Options?: Record<string, unknown> | null;
  IPv4Data?: IpamData[] | null;
  IPv6Data?: IpamData[] | null;
}

/** An entry of com.docker.network.portmap (libnetwork's types.PortBinding). */
export interface PortBindingWire {
  Proto: number;
  IP?: string;
  Port: number;
  HostIP?: string;
  HostPort?: number;
  HostPortEnd?: number;
}

/** An entry of com.docker.network.endpoint.exposedports (types.TransportPort). */
export interface TransportPortWire {
  Proto: number;
  Port: number;
}

export interface CreateEndpointRequest {
  NetworkID: string;
  EndpointID: string;
  Interface?: { Address?: string; AddressIPv6?: string; MacAddress?: string } | null;
  Options?: Record<string, unknown> | null;
}

export interface JoinRequest {
  NetworkID: string;
  EndpointID: string;
  SandboxKey: string;
  Options?: Record<string, unknown> | null;
}

export interface JoinResponse {
  InterfaceName: { SrcName: string; DstPrefix: string };
  Gateway?: string;
  DisableGatewayService: boolean;
}

export const OPTION = {
  generic: 'com.docker.network.generic',
  internal: 'com.docker.network.internal',
  enableIpv6: 'com.docker.network.enable_ipv6',
  portMap: 'com.docker.network.portmap',
  exposedPorts: 'com.docker.network.endpoint.exposedports',
} as const;

const PROTO_BY_NUMBER: Record<number, Proto> = { 6: 'tcp', 17: 'udp', 132: 'sctp' };

/** The name the core knows a Docker network by (dockerd does not send the user's name). */
export const networkName = (networkId: string): string => `docker-${networkId.slice(0, 12)}`;
/** The record a Docker endpoint is kept in. */
export const endpointName = (endpointId: string): string => `docker-${endpointId.slice(0, 12)}`;

function objectOf(value: unknown, what: string): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw invalid(`${what} must be a JSON object`);
  return value as Record<string, unknown>;
}

function idOf(value: unknown, what: string): string {
  if (typeof value !== 'string' || !/^[0-9a-zA-Z]{12,}$/.test(value)) throw invalid(`${what} "${String(value)}" is not a Docker ID`);
  return value;
}

/** "10.66.0.1/24" → "10.66.0.1". */
function addressOf(cidr: string): string {
  const slash = cidr.indexOf('/');
  return slash < 0 ? cidr : cidr.slice(0, slash);
}

export function networkSpec(req: CreateNetworkRequest): NetworkSpec {
  const id = idOf(req.NetworkID, 'network ID');
  const options = objectOf(req.Options, 'Options');
  if (options[OPTION.enableIpv6] === true || (req.IPv6Data ?? []).some((d) => d.Pool)) {
    throw invalid('IPv6 is not supported by the bridgeport driver yet: create the network without --ipv6');
  }
  const pools = (req.IPv4Data ?? []).filter((d) => d.Pool);
  if (pools.length !== 1) throw invalid(`the bridgeport driver takes exactly one IPv4 pool per network, not ${pools.length}`);
  const pool = pools[0]!;
  const generic: Record<string, string> = {};
  for (const [key, value] of Object.entries(objectOf(options[OPTION.generic], OPTION.generic))) {
    if (typeof value === 'object' && value !== null) throw invalid(`option ${key}: a string value is expected`);
    generic[key] = String(value);
  }
  const spec: NetworkSpec = {
    name: networkName(id),
    subnet: pool.Pool,
    ...(pool.Gateway ? { gateway: addressOf(pool.Gateway) } : {}),
    internal: options[OPTION.internal] === true,
    options: generic,
    auxAddresses: Object.values(pool.AuxAddresses ?? {}).map((a) => addressOf(a)),
    owner: { frontEnd: 'docker', key: id },
  };
  // Docker's own bridges are br-<network ID>: so are bridgeport's for Docker's networks.
  if (!('com.docker.network.bridge.name' in generic)) spec.bridgeName = `br-${id.slice(0, 12)}`;
  return spec;
}

function protoOf(n: unknown, what: string): Proto {
  const proto = typeof n === 'number' ? PROTO_BY_NUMBER[n] : undefined;
  if (!proto) throw invalid(`${what}: unsupported protocol number ${String(n)} (tcp 6, udp 17, sctp 132)`);
  return proto;
}

function portOf(n: unknown, what: string, zero = false): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < (zero ? 0 : 1) || n > 65535) throw invalid(`${what} ${String(n)} is out of range`);
  return n;
}

/**
 * com.docker.network.portmap as port specs: HostPort 0 picks from the
 * ephemeral range, HostPort < HostPortEnd any free port of that range, an
 * empty HostIP the network's default host address.
 */
export function portSpecs(value: unknown): PortSpec[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw invalid(`${OPTION.portMap} must be a list`);
  return value.map((raw: PortBindingWire) => {
    const what = `port mapping ${JSON.stringify(raw)}`;
    const proto = protoOf(raw?.Proto, what);
    const containerPort = portOf(raw.Port, `${what}: container port`);
    const start = portOf(raw.HostPort ?? 0, `${what}: host port`, true);
    const end = start === 0 ? 0 : Math.max(start, portOf(raw.HostPortEnd ?? 0, `${what}: host port end`, true));
    const hostIp = raw.HostIP ? raw.HostIP : undefined;
    return { hostIp, hostPortStart: start, hostPortEnd: end, containerPortStart: containerPort, containerPortEnd: containerPort, proto };
  });
}

export function exposedPorts(value: unknown): ExposedPort[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw invalid(`${OPTION.exposedPorts} must be a list`);
  return value.map((raw: TransportPortWire) => {
    const what = `exposed port ${JSON.stringify(raw)}`;
    const port = portOf(raw?.Port, what);
    return { proto: protoOf(raw.Proto, what), start: port, end: port };
  });
}

export function endpointSpec(req: CreateEndpointRequest, network: string): EndpointSpec {
  const endpointId = idOf(req.EndpointID, 'endpoint ID');
  const networkId = idOf(req.NetworkID, 'network ID');
  const iface = objectOf(req.Interface, 'Interface') as NonNullable<CreateEndpointRequest['Interface']>;
  if (iface.AddressIPv6) throw invalid('IPv6 is not supported by the bridgeport driver yet');
  if (!iface.Address) throw invalid('no IPv4 address given: the bridgeport driver takes its addresses from Docker\'s IPAM');
  const options = objectOf(req.Options, 'Options');
  // Checked here, so that a bad map fails before anything is made; published
  // by ProgramExternalConnectivity, which dockerd sends for one endpoint of
  // the container only (externalPorts).
  portSpecs(options[OPTION.portMap]);
  return {
    network,
    name: endpointName(endpointId),
    owner: { frontEnd: 'docker', key: endpointId, network: networkId },
    ip: addressOf(iface.Address),
    ...(iface.MacAddress ? { mac: iface.MacAddress } : {}),
    exposed: exposedPorts(options[OPTION.exposedPorts]),
  };
}

export interface ExternalConnectivityRequest {
  NetworkID: string;
  EndpointID: string;
  Options?: Record<string, unknown> | null;
}

/**
 * The ports of ProgramExternalConnectivity: dockerd sends it for the
 * container's gateway endpoint only (the one its default route goes
 * through), never for an internal network nor for a network added by
 * `network connect`, and the same port map rides on every CreateEndpoint of
 * the container. Docker's bridge driver publishes here too: a container
 * with -p connected to a second network publishes its ports once.
 */
export function externalPorts(req: ExternalConnectivityRequest): PortSpec[] {
  return portSpecs(objectOf(req?.Options, 'Options')[OPTION.portMap]);
}
