import { dockerEndpointRecord } from '../helpers/records.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Daemon, findContainer, findContainers, findNetwork } from '../../src/daemon/daemon.js';
import { statsView } from '../../src/daemon/main.js';
import { StateStore } from '../../src/daemon/state-store.js';
import { containerSummary, inspectContainer, inspectNetwork, networkSummary } from '../../src/daemon/views.js';
import type { Datapath, DatapathStats } from '../../src/datapath/datapath.js';
import { toDatapathModel } from '../../src/datapath/model.js';
import type { DockerEngine, EngineNetwork } from '../../src/docker/engine.js';
import { allNamed, DockerNames, ownerNames } from '../../src/docker/names.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { displayNames } from '../../src/model/display-names.js';
import type { ContainerRecord, NetworkRecord, State } from '../../src/model/state.js';

const NET_A = 'aa'.repeat(32);
const NET_B = 'bb'.repeat(32);
const EP_1 = '11'.repeat(32);
const EP_2 = '22'.repeat(32);
const EP_3 = '33'.repeat(32);
const CT_WEB = 'c0'.repeat(32);

const network = (name: string, subnet: string, owner?: NetworkRecord['owner']): NetworkRecord => ({
  id: `${name}-id-0123456789`,
  name,
  bridge: `br-${name}`.slice(0, 15),
  subnet,
  gateway: subnet.replace(/0\/24$/, '1'),
  ipRange: subnet,
  mtu: 1500,
  icc: true,
  masquerade: true,
  internal: false,
  hostBindingIp: undefined,
  isDefault: false,
  options: {},
  ...(owner ? { owner } : {}),
  created: '2026-12-01T00:00:00.000Z',
});

/** A record like the driver's, on `net`. */
const dockerEndpoint = (key: string, net: NetworkRecord, ip: string, container?: { id: string; name: string }): ContainerRecord =>
  dockerEndpointRecord({ key, network: net.name, networkId: net.owner?.key ?? '', ip, gateway: net.gateway, sandboxKey: `/var/run/docker/netns/${key.slice(0, 6)}`, container });

/** Two Docker networks (a named "web", b not yet), container web on both, one unnamed endpoint, and bridgeport's own "api". */
function fixture(): State {
  const a = network(`docker-${NET_A.slice(0, 12)}`, '10.66.1.0/24', { frontEnd: 'docker', key: NET_A, name: 'web' });
  const b = network(`docker-${NET_B.slice(0, 12)}`, '10.66.2.0/24', { frontEnd: 'docker', key: NET_B });
  const own = network('own', '10.77.0.0/24');
  const web1 = dockerEndpoint(EP_1, a, '10.66.1.2', { id: CT_WEB, name: 'web' });
  web1.ports = [{ proto: 'tcp', hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80, spec: '8080:80' }];
  const web2 = dockerEndpoint(EP_2, b, '10.66.2.2', { id: CT_WEB, name: 'web' });
  const unnamed = dockerEndpoint(EP_3, a, '10.66.1.3');
  const api: ContainerRecord = { ...dockerEndpoint('a'.repeat(64), own, '10.77.0.2'), name: 'api', id: 'api-record-id-0000' };
  api.endpoints = [{ ...api.endpoints[0]!, owner: undefined }];
  return { version: 1, networks: [a, b, own], containers: [web1, web2, unnamed, api] };
}

describe('display names', () => {
  it("shows Docker's names once known, record names otherwise", () => {
    const names = displayNames(fixture());
    expect(names.containers).toEqual(new Map([[`docker-${EP_1.slice(0, 12)}`, 'web'], [`docker-${EP_2.slice(0, 12)}`, 'web']]));
    expect(names.networks).toEqual(new Map([[`docker-${NET_A.slice(0, 12)}`, 'web']]));
  });

  it("a Docker name that is another record's name, or a reserved network name, is not used", () => {
    const state = fixture();
    state.containers[3]!.name = 'web';
    state.networks[2]!.name = 'web';
    const names = displayNames(state);
    expect(names.containers.size).toBe(0);
    expect(names.networks.size).toBe(0);
    state.networks[0]!.owner!.name = 'host';
    expect(displayNames(state).networks.size).toBe(0);
  });

  it('finds records by Docker name; several endpoint records of one container are named in the error', () => {
    const state = fixture();
    expect(findNetwork(state, 'web').owner?.key).toBe(NET_A);
    expect(findNetwork(state, `docker-${NET_A.slice(0, 12)}`).owner?.key).toBe(NET_A);
    expect(findContainers(state, 'web').map((c) => c.name)).toEqual([`docker-${EP_1.slice(0, 12)}`, `docker-${EP_2.slice(0, 12)}`]);
    expect(() => findContainer(state, 'web')).toThrow(
      `container web has several endpoint records, docker-${EP_1.slice(0, 12)} (network docker-${NET_A.slice(0, 12)}), docker-${EP_2.slice(0, 12)} (network docker-${NET_B.slice(0, 12)}): name one of them`,
    );
    expect(findContainer(state, `docker-${EP_2.slice(0, 12)}`).endpoints[0]!.owner?.key).toBe(EP_2);
    // The record name of a bridgeport container comes first.
    state.containers[3]!.name = 'web';
    expect(findContainer(state, 'web').id).toBe('api-record-id-0000');
    expect(() => findContainer(state, 'nothing')).toThrow('no such container: nothing');
    expect(() => findNetwork(state, 'nothing')).toThrow('network nothing not found');
  });

  it('ps, inspect and network views show the Docker names and keep the record name', async () => {
    const state = fixture();
    const names = displayNames(state);
    const rows = await Promise.all(state.containers.map((c) => containerSummary(c, state, names)));
    expect(rows.map((r) => [r.Names, r.Record, r.Networks])).toEqual([
      ['web', `docker-${EP_1.slice(0, 12)}`, 'web'],
      ['web', `docker-${EP_2.slice(0, 12)}`, `docker-${NET_B.slice(0, 12)}`],
      [`docker-${EP_3.slice(0, 12)}`, `docker-${EP_3.slice(0, 12)}`, 'web'],
      ['api', undefined, 'own'],
    ]);
    const doc = (await inspectContainer(state.containers[0]!, state, names)) as any;
    expect(doc.Name).toBe('/web');
    expect(doc.Record).toBe(`docker-${EP_1.slice(0, 12)}`);
    expect(doc.Owner).toEqual({ FrontEnd: 'docker', EndpointID: EP_1, NetworkID: NET_A, ContainerID: CT_WEB });
    expect(Object.keys(doc.NetworkSettings.Networks)).toEqual(['web']);
    expect(doc.NetworkSettings.Ports).toEqual({ '80/tcp': [{ HostIp: '0.0.0.0', HostPort: '8080' }] });
    expect(networkSummary(state.networks[0]!, names)).toMatchObject({ Name: 'web', Record: `docker-${NET_A.slice(0, 12)}` });
    expect(networkSummary(state.networks[2]!, names)).not.toHaveProperty('Record');
    const net = inspectNetwork(state.networks[0]!, state, names) as any;
    expect(net.Name).toBe('web');
    expect(net.Owner).toEqual({ FrontEnd: 'docker', NetworkID: NET_A });
    expect(Object.values(net.Containers).map((c: any) => c.Name)).toEqual(['web', `docker-${EP_3.slice(0, 12)}`]);
  });

  it('stats and metrics label Docker records by their names; label sets stay the same', async () => {
    const state = fixture();
    const model = toDatapathModel(state, ['eth0']);
    const stats: DatapathStats = { ports: [], endpoints: [], masquerade: [], drops: {}, conntrack: { published: 0, masquerade: 0, other: 0 }, natPortsInUse: [] };
    const datapath = { name: 'iptables', stats: async () => stats } as unknown as Datapath;
    const text = await new Metrics({ datapath, reason: 'test', model: () => model, names: () => displayNames(state) }).render();
    expect(text).toContain('bridgeport_endpoint_packets_total{network="web",container="web",direction="rx"} 0');
    expect(text).toContain(`bridgeport_endpoint_packets_total{network="docker-${NET_B.slice(0, 12)}",container="web",direction="rx"} 0`);
    expect(text).toContain(`bridgeport_endpoint_packets_total{network="web",container="docker-${EP_3.slice(0, 12)}",direction="rx"} 0`);
    expect(text).toContain('bridgeport_endpoint_packets_total{network="own",container="api",direction="rx"} 0');
    expect(text).toContain('bridgeport_masquerade_packets_total{network="web",direction="out"} 0');
    expect(text).toContain(
      'bridgeport_published_port_packets_total{network="web",container="web",proto="tcp",host_ip="0.0.0.0",host_port="8080",container_port="80",direction="in"} 0',
    );
    const view = statsView(model, stats, [`docker-${EP_1.slice(0, 12)}`], displayNames(state));
    expect(view.Endpoints.map((e) => [e.Container, e.Network])).toEqual([['web', 'web']]);
    expect(view.Ports.map((p) => p.Container)).toEqual(['web']);
  });
});

describe("dockerd's answers", () => {
  const answer = (id: string, name: string, endpoints: EngineNetwork['endpoints']): EngineNetwork => ({ id, name, driver: 'bridgeport', endpoints });

  it('only what differs from the state; endpoints without a container, unknown keys and bad names are left out', () => {
    const state = fixture();
    const names = ownerNames(state, [
      answer(NET_A, 'web', [
        { containerId: CT_WEB, name: 'web', endpointId: EP_1 },
        { containerId: 'd1'.repeat(32), name: 'worker', endpointId: EP_3 },
        { containerId: `ep-${'44'.repeat(32)}`, name: 'gw', endpointId: '44'.repeat(32) },
        { containerId: 'e1'.repeat(32), name: 'stranger', endpointId: '55'.repeat(32) },
      ]),
      answer(NET_B, 'back', [{ containerId: CT_WEB, name: 'web renamed?', endpointId: EP_2 }]),
      answer('cc'.repeat(32), 'unknown', []),
    ]);
    expect(names.networks).toEqual(new Map([[NET_B, 'back']]));
    expect(names.endpoints).toEqual(new Map([[EP_3, { id: 'd1'.repeat(32), name: 'worker' }]]));
    // docker rename: the new name replaces the old.
    expect(ownerNames(state, [answer(NET_A, 'web', [{ containerId: CT_WEB, name: 'www', endpointId: EP_1 }])]).endpoints).toEqual(
      new Map([[EP_1, { id: CT_WEB, name: 'www' }]]),
    );
  });

  it('all is named when every Docker network and every joined Docker endpoint is', () => {
    const state = fixture();
    expect(allNamed(state)).toBe(false);
    state.networks[1]!.owner!.name = 'back';
    expect(allNamed(state)).toBe(false);
    // Not joined yet (CreateEndpoint without Join): dockerd has no container for it to name.
    state.containers[2]!.sandboxKey = '';
    expect(allNamed(state)).toBe(true);
  });
});

describe('naming Docker records', () => {
  const withDaemon = async (fn: (d: Daemon, saved: State[], applied: unknown[], dir: string) => Promise<void>) => {
    const dir = await mkdtemp(join(tmpdir(), 'bp-names-'));
    try {
      const store = new StateStore(dir);
      const saved: State[] = [];
      const save = store.save.bind(store);
      store.save = async (s: State) => {
        saved.push(s);
        await save(s);
      };
      const applied: unknown[] = [];
      const datapath = { name: 'iptables', apply: async (m: unknown) => applied.push(m) } as unknown as Datapath;
      const config = { stateDir: dir, runDir: dir, uplinks: [], bip: '172.17.0.1/16', fixedCidr: undefined, mtu: 1500, icc: true, defaultHostIp: '0.0.0.0', ephemeral: { low: 40000, high: 40099 } };
      await fn(new Daemon(fixture(), store, datapath, config, () => undefined), saved, applied, dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };

  it('saves the names without rendering the datapath; nothing new saves nothing; a reload keeps them', async () => {
    await withDaemon(async (d, saved, applied, dir) => {
      const before = d.snapshot;
      const ports = before.containers[0]!.ports;
      await d.nameOwned('docker', { networks: new Map([[NET_B, 'back']]), endpoints: new Map([[EP_3, { id: 'd1'.repeat(32), name: 'worker' }]]) });
      expect(applied).toEqual([]);
      expect(saved.length).toBe(1);
      expect(d.snapshot.networks[1]!.owner?.name).toBe('back');
      expect(d.snapshot.containers[2]!.endpoints[0]!.owner?.container).toEqual({ id: 'd1'.repeat(32), name: 'worker' });
      // Records not named anew are the same objects; the old snapshot is unchanged.
      expect(d.snapshot.containers[0]).toBe(before.containers[0]);
      expect(d.snapshot.containers[0]!.ports).toBe(ports);
      expect(before.networks[1]!.owner?.name).toBeUndefined();
      await d.nameOwned('docker', { networks: new Map([[NET_B, 'back'], ['ff'.repeat(32), 'gone']]), endpoints: new Map() });
      expect(saved.length).toBe(1);
      const reloaded = await new StateStore(dir).load();
      expect(displayNames(reloaded).containers.get(`docker-${EP_3.slice(0, 12)}`)).toBe('worker');
      expect(displayNames(reloaded).networks.get(`docker-${NET_B.slice(0, 12)}`)).toBe('back');
    });
  });

  it('a state file without names loads, and shows record names', async () => {
    await withDaemon(async (_d, _saved, _applied, dir) => {
      const state = fixture();
      delete state.networks[0]!.owner!.name;
      for (const c of state.containers) for (const e of c.endpoints) if (e.owner) delete e.owner.container;
      const store = new StateStore(dir);
      await store.save(state);
      const names = displayNames(await store.load());
      expect(names.containers.size + names.networks.size).toBe(0);
    });
  });

  it('dockerd unreachable: known names stay, logged once until it answers again', async () => {
    await withDaemon(async (d) => {
      let up = false;
      const engine = {
        host: 'unix:///nonexistent.sock',
        network: async (id: string) => {
          if (!up) throw new Error('connect ENOENT /nonexistent.sock');
          return id === NET_B ? answer(NET_B, 'back', [{ containerId: CT_WEB, name: 'web', endpointId: EP_2 }]) : answer(id, 'web', [{ containerId: 'd1'.repeat(32), name: 'worker', endpointId: EP_3 }]);
        },
      } as unknown as DockerEngine;
      const logs: string[] = [];
      const names = new DockerNames(d, engine, (m) => logs.push(m));
      expect(await names.refresh()).toBe(false);
      expect(await names.refresh()).toBe(false);
      expect(logs).toEqual([
        'docker names: cannot ask dockerd at unix:///nonexistent.sock (connect ENOENT /nonexistent.sock); records keep the names known, the others show their endpoint ID (logged once until dockerd answers)',
      ]);
      expect(displayNames(d.snapshot).containers.get(`docker-${EP_1.slice(0, 12)}`)).toBe('web');
      up = true;
      expect(await names.refresh()).toBe(true);
      expect(logs[1]).toBe('docker names: dockerd at unix:///nonexistent.sock answers again');
      expect(displayNames(d.snapshot).containers.get(`docker-${EP_3.slice(0, 12)}`)).toBe('worker');
      expect(displayNames(d.snapshot).networks.get(`docker-${NET_B.slice(0, 12)}`)).toBe('back');
    });
  });

  const answer = (id: string, name: string, endpoints: EngineNetwork['endpoints']): EngineNetwork => ({ id, name, driver: 'bridgeport', endpoints });
});
