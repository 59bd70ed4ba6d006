import { exposedPorts } from '../datapath/model.js';
import { isRunning } from '../host/process.js';
import { type DisplayNames, displayNames, shown } from '../model/display-names.js';
import { formatBinding } from '../model/port-spec.js';
import type { ContainerRecord, NetworkRecord, State } from '../model/state.js';

/**
 * Docker-shaped JSON for inspect and listings, so `jq` paths users know keep
 * working. Records are shown by their display names (a Docker container's or
 * network's own name once known, model/display-names.ts); a front end's
 * record also says its record name (`Record`) and the front end's IDs.
 */

type PortMap = Record<string, { HostIp: string; HostPort: string }[] | null>;

function portMap(c: ContainerRecord): PortMap {
  const out: PortMap = {};
  for (const e of exposedPorts(c)) for (let p = e.start; p <= e.end; p++) out[`${p}/${e.proto}`] ??= null;
  for (const p of c.ports) {
    const key = `${p.containerPort}/${p.proto}`;
    out[key] = [...(out[key] ?? []), { HostIp: p.hostIp, HostPort: String(p.hostPort) }];
  }
  return out;
}

function networkMode(c: ContainerRecord, state: State, names: DisplayNames): string {
  if (c.mode === 'container') return `container:${state.containers.find((x) => x.name === c.joined)?.id ?? c.joined}`;
  if (c.mode !== 'bridge') return c.mode;
  const first = c.endpoints[0]?.network;
  return first === undefined || state.networks.find((n) => n.name === first)?.isDefault ? 'bridge' : shown(names.networks, first);
}

/** Who made a front end's record, and its keys there; undefined for bridgeport's own. */
function containerOwner(c: ContainerRecord): Record<string, string> | undefined {
  const owner = c.endpoints.find((e) => e.owner)?.owner;
  if (!owner) return undefined;
  return { FrontEnd: owner.frontEnd, EndpointID: owner.key, NetworkID: owner.network, ContainerID: owner.container?.id ?? '' };
}

export async function inspectContainer(c: ContainerRecord, state: State, names: DisplayNames = displayNames(state)): Promise<unknown> {
  const running = await isRunning(c.pid, c.pidStart);
  const networks: Record<string, unknown> = {};
  for (const ep of c.endpoints) {
    const net = state.networks.find((n) => n.name === ep.network);
    networks[shown(names.networks, ep.network)] = {
      Links: c.links.filter((l) => state.containers.find((x) => x.name === l.name)?.endpoints.some((e) => e.network === ep.network)).map((l) => `${l.name}:${l.alias}`),
      Aliases: null,
      NetworkID: net?.id ?? '',
      EndpointID: `${c.id.slice(0, 32)}${ep.hostIf}`,
      Gateway: ep.gateway,
      IPAddress: ep.ip,
      IPPrefixLen: ep.prefix,
      MacAddress: ep.mac,
      InterfaceName: ep.sandboxIf,
      HostInterfaceName: ep.hostIf,
    };
  }
  const primary = c.endpoints[0];
  const onDefault = primary && state.networks.find((n) => n.name === primary.network)?.isDefault;
  const owner = containerOwner(c);
  return {
    Id: c.id,
    Created: c.created,
    Path: c.cmd[0] ?? '',
    Args: c.cmd.slice(1),
    State: {
      Status: c.pid === undefined ? 'external' : running ? 'running' : 'exited',
      Running: running,
      Pid: running ? c.pid : 0,
    },
    Name: `/${shown(names.containers, c.name)}`,
    ...(owner ? { Record: c.name, Owner: owner } : {}),
    LogPath: c.logPath ?? '',
    HostsPath: c.hostsPath ?? '',
    Config: {
      Hostname: c.hostname,
      Cmd: c.cmd,
      ExposedPorts: Object.fromEntries(exposedPorts(c).flatMap((e) => range(e.start, e.end).map((p) => [`${p}/${e.proto}`, {}]))),
    },
    HostConfig: {
      NetworkMode: networkMode(c, state, names),
      PublishAllPorts: c.publishAll,
      Links: c.links.map((l) => `/${l.name}:/${c.name}/${l.alias}`),
      PortBindings: Object.fromEntries(
        c.ports.map((p) => [`${p.containerPort}/${p.proto}`, [{ HostIp: p.hostIp, HostPort: String(p.hostPort) }]]),
      ),
    },
    NetworkSettings: {
      SandboxID: c.id,
      SandboxKey: c.sandboxKey,
      Ports: portMap(c),
      Gateway: onDefault ? primary.gateway : '',
      IPAddress: onDefault ? primary.ip : '',
      IPPrefixLen: onDefault ? primary.prefix : 0,
      MacAddress: onDefault ? primary.mac : '',
      Networks: networks,
    },
  };
}

const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, i) => a + i);

/**
 * One row of `ps`. A Docker container on two bridgeport networks has a record
 * per endpoint: both rows show its name, each with its own network.
 */
export async function containerSummary(c: ContainerRecord, state: State, names: DisplayNames = displayNames(state)): Promise<Record<string, unknown>> {
  const running = await isRunning(c.pid, c.pidStart);
  return {
    ID: c.id.slice(0, 12),
    Names: shown(names.containers, c.name),
    ...(containerOwner(c) ? { Record: c.name } : {}),
    Command: c.cmd.join(' '),
    CreatedAt: c.created,
    State: c.pid === undefined ? 'external' : running ? 'running' : 'exited',
    Ports: c.ports.map(formatBinding).join(', '),
    Networks: c.mode === 'bridge' ? c.endpoints.map((e) => shown(names.networks, e.network)).join(',') : networkMode(c, state, names),
    IPAddress: c.endpoints.map((e) => e.ip).join(','),
  };
}

export function inspectNetwork(n: NetworkRecord, state: State, names: DisplayNames = displayNames(state)): unknown {
  const containers: Record<string, unknown> = {};
  for (const c of state.containers) {
    const ep = c.endpoints.find((e) => e.network === n.name);
    if (!ep) continue;
    containers[c.id] = {
      Name: shown(names.containers, c.name),
      EndpointID: `${c.id.slice(0, 32)}${ep.hostIf}`,
      MacAddress: ep.mac,
      IPv4Address: `${ep.ip}/${ep.prefix}`,
      IPv6Address: '',
    };
  }
  return {
    Name: shown(names.networks, n.name),
    ...(n.owner ? { Record: n.name, Owner: { FrontEnd: n.owner.frontEnd, NetworkID: n.owner.key } } : {}),
    Id: n.id,
    Created: n.created,
    Scope: 'local',
    Driver: 'bridge',
    EnableIPv6: false,
    IPAM: {
      Driver: 'default',
      Options: {},
      Config: [{ Subnet: n.subnet, ...(n.ipRange !== n.subnet ? { IPRange: n.ipRange } : {}), Gateway: n.gateway }],
    },
    Internal: n.internal,
    ...(n.routedCidrs ? { RoutedCIDRs: n.routedCidrs } : {}),
    Attachable: false,
    Ingress: false,
    Containers: containers,
    Options: {
      ...n.options,
      'com.docker.network.bridge.name': n.bridge,
      'com.docker.network.bridge.enable_icc': String(n.icc),
      'com.docker.network.bridge.enable_ip_masquerade': String(n.masquerade),
      'com.docker.network.driver.mtu': String(n.mtu),
      ...(n.hostBindingIp ? { 'com.docker.network.bridge.host_binding_ipv4': n.hostBindingIp } : {}),
      ...(n.isDefault ? { 'com.docker.network.bridge.default_bridge': 'true' } : {}),
    },
    Labels: {},
  };
}

export function networkSummary(n: NetworkRecord, names: DisplayNames): Record<string, unknown> {
  return {
    ID: n.id.slice(0, 12),
    Name: shown(names.networks, n.name),
    ...(n.owner ? { Record: n.name } : {}),
    Driver: 'bridge',
    Scope: 'local',
    Subnet: n.subnet,
    Gateway: n.gateway,
    Bridge: n.bridge,
    Internal: n.internal,
    ICC: n.icc,
  };
}

/** `host` and `none` are networks in Docker's listing too, with drivers of their own. */
export const PSEUDO_NETWORKS = [
  { ID: 'host', Name: 'host', Driver: 'host', Scope: 'local', Subnet: '', Gateway: '', Bridge: '', Internal: false, ICC: true },
  { ID: 'none', Name: 'none', Driver: 'null', Scope: 'local', Subnet: '', Gateway: '', Bridge: '', Internal: false, ICC: true },
];
