import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Daemon } from '../../src/daemon/daemon.js';
import { driverHandlers, serveDockerPlugin } from '../../src/docker/driver.js';
import { conflict } from '../../src/model/errors.js';
import { emptyState, type State } from '../../src/model/state.js';

const NET = 'aa11bb22cc33dd44ee55ff66aa11bb22cc33dd44ee55ff66aa11bb22cc33dd44';
const EP = '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef';

/** A stand-in for the core: records the calls the adapter makes and answers like the daemon would. */
function fakeDaemon(opts: { internal?: boolean; fail?: string } = {}) {
  const calls: [string, ...unknown[]][] = [];
  const state: State = emptyState();
  const network = {
    id: 'x',
    name: `docker-${NET.slice(0, 12)}`,
    bridge: 'br-aa11bb22cc33',
    subnet: '10.66.0.0/24',
    gateway: '10.66.0.1',
    ipRange: '10.66.0.0/24',
    mtu: 1500,
    icc: true,
    masquerade: !opts.internal,
    internal: !!opts.internal,
    hostBindingIp: undefined,
    isDefault: false,
    options: {},
    owner: { frontEnd: 'docker' as const, key: NET },
    created: '',
  };
  const endpoint = { network: network.name, ip: '10.66.0.2', prefix: 24, gateway: '10.66.0.1', mac: '02:42:0a:42:00:02', hostIf: 'veth1234567', sandboxIf: 'vc1234567', owner: { frontEnd: 'docker' as const, key: EP, network: NET } };
  const daemon = {
    get snapshot() {
      return state;
    },
    async createNetwork(spec: unknown) {
      calls.push(['createNetwork', spec]);
      if (opts.fail) throw conflict(opts.fail);
      state.networks.push(network);
      return network;
    },
    async removeNetwork(name: string, frontEnd: string) {
      calls.push(['removeNetwork', name, frontEnd]);
    },
    async addEndpoint(spec: unknown) {
      calls.push(['addEndpoint', spec]);
      return { container: {}, endpoint, network };
    },
    async joinEndpoint(frontEnd: string, key: string, sandbox: string) {
      calls.push(['joinEndpoint', frontEnd, key, sandbox]);
      return { endpoint, network };
    },
    async leaveEndpoint(frontEnd: string, key: string) {
      calls.push(['leaveEndpoint', frontEnd, key]);
    },
    async deleteEndpoint(frontEnd: string, key: string) {
      calls.push(['deleteEndpoint', frontEnd, key]);
    },
  };
  return { daemon: daemon as unknown as Daemon, calls, state, network };
}

const createNetwork = { NetworkID: NET, Options: {}, IPv4Data: [{ Pool: '10.66.0.0/24', Gateway: '10.66.0.1/24' }] };
const createEndpoint = (mac = '') => ({ NetworkID: NET, EndpointID: EP, Interface: { Address: '10.66.0.2/24', MacAddress: mac }, Options: {} });

describe('docker driver handlers', () => {
  it('answers a MAC only when dockerd gave none', async () => {
    const { daemon } = fakeDaemon();
    const h = driverHandlers(daemon);
    await h['/NetworkDriver.CreateNetwork']!(createNetwork);
    expect(await h['/NetworkDriver.CreateEndpoint']!(createEndpoint())).toEqual({ Interface: { MacAddress: '02:42:0a:42:00:02' } });
    expect(await h['/NetworkDriver.CreateEndpoint']!(createEndpoint('02:42:0a:42:00:63'))).toEqual({ Interface: null });
  });

  it('joins with the container end, the gateway, and no gateway service only on internal networks', async () => {
    for (const internal of [false, true]) {
      const { daemon, calls } = fakeDaemon({ internal });
      const answer = await driverHandlers(daemon)['/NetworkDriver.Join']!({ NetworkID: NET, EndpointID: EP, SandboxKey: '/var/run/docker/netns/abc' });
      expect(calls).toContainEqual(['joinEndpoint', 'docker', EP, '/var/run/docker/netns/abc']);
      expect(answer).toEqual(
        internal
          ? { InterfaceName: { SrcName: 'vc1234567', DstPrefix: 'eth' }, DisableGatewayService: true }
          : { InterfaceName: { SrcName: 'vc1234567', DstPrefix: 'eth' }, DisableGatewayService: false, Gateway: '10.66.0.1' },
      );
    }
  });

  it('an endpoint on a network bridgeport does not know is refused; deleting what is gone is no error', async () => {
    const { daemon, calls } = fakeDaemon();
    const h = driverHandlers(daemon);
    await expect(h['/NetworkDriver.CreateEndpoint']!(createEndpoint())).rejects.toThrow(/create endpoint: network aa11bb22.* not found/);
    expect(await h['/NetworkDriver.DeleteNetwork']!({ NetworkID: NET })).toEqual({});
    expect(await h['/NetworkDriver.Leave']!({ NetworkID: NET, EndpointID: EP })).toEqual({});
    expect(calls).toEqual([]);
  });
});

describe('docker plugin socket', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const post = (socketPath: string, url: string, body: string) =>
    new Promise<{ status: number; json: any }>((resolve, reject) => {
      const req = request({ socketPath, path: url, method: 'POST', headers: { host: '' } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
      });
      req.on('error', reject);
      req.end(body);
    });

  it('activates, reports local scope, and answers a refusal as HTTP 200 {"Err"}', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'bp-plugin-'));
    const sock = path.join(dir, 'plugins', 'bridgeport.sock');
    const { daemon } = fakeDaemon({ fail: 'subnet 10.66.0.0/24 overlaps network bridge' });
    const server = await serveDockerPlugin(daemon, sock, () => undefined);
    try {
      expect(await post(sock, '/Plugin.Activate', '')).toEqual({ status: 200, json: { Implements: ['NetworkDriver'] } });
      expect((await post(sock, '/NetworkDriver.GetCapabilities', '')).json).toEqual({ Scope: 'local', ConnectivityScope: 'local' });
      expect(await post(sock, '/NetworkDriver.CreateNetwork', JSON.stringify(createNetwork))).toEqual({
        status: 200,
        json: { Err: 'subnet 10.66.0.0/24 overlaps network bridge' },
      });
      expect(await post(sock, '/NetworkDriver.CreateNetwork', '{not json')).toEqual({ status: 200, json: { Err: 'request body is not valid JSON' } });
      const unknown = await post(sock, '/NetworkDriver.Teleport', '{}');
      expect(unknown.status).toBe(404);
      for (const m of ['DiscoverNew', 'DiscoverDelete', 'AllocateNetwork', 'FreeNetwork']) {
        expect((await post(sock, `/NetworkDriver.${m}`, '{}')).json).toEqual({});
      }
      // Publishing needs the endpoint named.
      expect((await post(sock, '/NetworkDriver.ProgramExternalConnectivity', '{}')).json).toEqual({ Err: 'field EndpointID is required' });
      expect((await post(sock, '/NetworkDriver.EndpointOperInfo', JSON.stringify({ NetworkID: NET, EndpointID: EP }))).json).toEqual({ Value: {} });
    } finally {
      server.close();
    }
  });
});
