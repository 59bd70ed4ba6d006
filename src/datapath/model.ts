import type { ExposedPort } from '../model/port-spec.js';
import type { ContainerRecord, NetworkRecord, PublishedPort, State } from '../model/state.js';
import type { DatapathModel, DpEndpoint, DpLinkPermit, DpPort } from './datapath.js';

/**
 * Ports a container exposes to its links: its --expose ports and the
 * container side of everything it publishes, as Docker counts them.
 */
export function exposedPorts(c: ContainerRecord): ExposedPort[] {
  const out: ExposedPort[] = [...c.exposed];
  for (const p of c.ports) out.push({ proto: p.proto, start: p.containerPort, end: p.containerPort });
  const seen = new Set<string>();
  return out.filter((e) => {
    const key = `${e.proto}/${e.start}-${e.end}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** `ports` of `c` as the datapath sees them: forwarded to c's first endpoint, the one its default route uses. */
export function publishedPorts(c: ContainerRecord, ports: PublishedPort[], networks: Map<string, NetworkRecord>): DpPort[] {
  const primary = c.endpoints[0];
  const net = primary && networks.get(primary.network);
  if (!primary || !net) return [];
  return ports.map((p) => ({
    container: c.name,
    network: net.name,
    bridge: net.bridge,
    proto: p.proto,
    hostIp: p.hostIp,
    hostPort: p.hostPort,
    containerIp: primary.ip,
    containerPort: p.containerPort,
  }));
}

export function toDatapathModel(state: State, uplinks: string[]): DatapathModel {
  const networks = new Map(state.networks.map((n) => [n.name, n]));
  const byName = new Map(state.containers.map((c) => [c.name, c]));
  const endpoints: DpEndpoint[] = [];
  const ports: DpPort[] = [];
  const links: DpLinkPermit[] = [];

  for (const c of state.containers) {
    for (const ep of c.endpoints) {
      const net = networks.get(ep.network);
      if (!net) continue;
      endpoints.push({ container: c.name, network: net.name, bridge: net.bridge, ip: ep.ip, mac: ep.mac, hostIf: ep.hostIf });
    }
    for (const p of publishedPorts(c, c.ports, networks)) ports.push(p);
    for (const link of c.links) {
      const child = byName.get(link.name);
      if (!child) continue;
      for (const parentEp of c.endpoints) {
        const childEp = child.endpoints.find((e) => e.network === parentEp.network);
        const net = networks.get(parentEp.network);
        if (!childEp || !net) continue;
        for (const e of exposedPorts(child)) {
          for (let port = e.start; port <= e.end; port++) {
            links.push({
              network: net.name,
              bridge: net.bridge,
              parent: c.name,
              parentIp: parentEp.ip,
              child: child.name,
              childIp: childEp.ip,
              proto: e.proto,
              port,
            });
          }
        }
      }
    }
  }

  return {
    networks: state.networks.map((n) => ({
      name: n.name,
      bridge: n.bridge,
      subnet: n.subnet,
      gateway: n.gateway,
      icc: n.icc,
      masquerade: n.masquerade,
      internal: n.internal,
      routedCidrs: [...(n.routedCidrs ?? [])],
    })),
    endpoints,
    ports,
    links,
    uplinks,
    firewall: (state.firewall ?? []).map((r) => ({ ...r })),
  };
}
