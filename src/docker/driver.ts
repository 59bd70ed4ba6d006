import { mkdir } from 'node:fs/promises';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { dirname } from 'node:path';
import { listenUnix, readBody } from '../api/server.js';
import { type Daemon, findOwnedEndpoint, findOwnedNetwork } from '../daemon/daemon.js';
import { BridgeportError } from '../model/errors.js';
import {
  type CreateEndpointRequest,
  type CreateNetworkRequest,
  endpointSpec,
  type ExternalConnectivityRequest,
  externalPorts,
  type JoinRequest,
  type JoinResponse,
  networkSpec,
} from './protocol.js';

/**
 * The libnetwork remote driver named `bridgeport`: every call becomes a core
 * operation of the daemon, and the answer is translated back. No policy lives
 * here; what the core refuses is answered as {"Err": "..."}, which dockerd
 * shows to the user and rolls back on.
 */
export const DEFAULT_PLUGIN_SOCKET = '/run/docker/plugins/bridgeport.sock';

/** What dockerd's plugin client sends and expects (pkg/plugins: VersionMimetype). */
const MIME = 'application/vnd.docker.plugins.v1.2+json';

type Handler = (body: unknown) => Promise<unknown>;

const idOfBody = (body: unknown, field: 'NetworkID' | 'EndpointID'): string => {
  const v = (body as Record<string, unknown> | null)?.[field];
  if (typeof v !== 'string' || v === '') throw new BridgeportError(`field ${field} is required`);
  return v;
};

/**
 * `named`: told (and not waited for) after each call that gives dockerd
 * something new to name, a network or a joined container.
 */
export function driverHandlers(daemon: Daemon, named: () => void = () => undefined): Record<string, Handler> {
  const state = () => daemon.snapshot;
  const nothing = async (): Promise<unknown> => ({});
  return {
    '/Plugin.Activate': async () => ({ Implements: ['NetworkDriver'] }),
    // Local scope: the networks exist on this host only (global needs Swarm's store).
    '/NetworkDriver.GetCapabilities': async () => ({ Scope: 'local', ConnectivityScope: 'local' }),

    '/NetworkDriver.CreateNetwork': async (body) => {
      const spec = wrap('create network', () => networkSpec(body as CreateNetworkRequest));
      await daemon.createNetwork(spec);
      named();
      return {};
    },
    '/NetworkDriver.DeleteNetwork': async (body) => {
      const net = findOwnedNetwork(state(), 'docker', idOfBody(body, 'NetworkID'));
      // Already gone (removed before a restart of dockerd, or never made): nothing to do.
      if (net) await daemon.removeNetwork(net.name, 'docker');
      return {};
    },

    '/NetworkDriver.CreateEndpoint': async (body) => {
      const req = body as CreateEndpointRequest;
      const networkId = wrap('create endpoint', () => idOfBody(body, 'NetworkID'));
      const net = findOwnedNetwork(state(), 'docker', networkId);
      if (!net) throw new BridgeportError(`create endpoint: network ${networkId} not found (was it created while bridgeport's state was elsewhere?)`, 'not-found');
      const spec = wrap('create endpoint', () => endpointSpec(req, net.name));
      const { endpoint } = await daemon.addEndpoint(spec);
      // A MAC dockerd chose itself must not be answered: it refuses a second one.
      return { Interface: req.Interface?.MacAddress ? null : { MacAddress: endpoint.mac } };
    },
    '/NetworkDriver.EndpointOperInfo': async () => ({ Value: {} }),
    '/NetworkDriver.Join': async (body) => {
      const req = body as JoinRequest;
      if (typeof req?.SandboxKey !== 'string' || !req.SandboxKey) throw new BridgeportError('join endpoint: field SandboxKey is required');
      const { endpoint, network } = await daemon.joinEndpoint('docker', idOfBody(body, 'EndpointID'), req.SandboxKey);
      const answer: JoinResponse = {
        InterfaceName: { SrcName: endpoint.sandboxIf, DstPrefix: 'eth' },
        // Without a gateway and without DisableGatewayService dockerd would add
        // its own docker_gwbridge interface; an internal network has neither.
        DisableGatewayService: network.internal,
      };
      if (!network.internal) answer.Gateway = network.gateway;
      named();
      return answer;
    },
    '/NetworkDriver.Leave': async (body) => {
      const key = idOfBody(body, 'EndpointID');
      if (findOwnedEndpoint(state(), 'docker', key)) await daemon.leaveEndpoint('docker', key);
      return {};
    },
    '/NetworkDriver.DeleteEndpoint': async (body) => {
      await daemon.deleteEndpoint('docker', idOfBody(body, 'EndpointID'));
      return {};
    },
    '/NetworkDriver.ProgramExternalConnectivity': async (body) => {
      const key = idOfBody(body, 'EndpointID');
      const ports = wrap('publish ports', () => externalPorts(body as ExternalConnectivityRequest));
      await daemon.programEndpoint('docker', key, ports);
      return {};
    },
    '/NetworkDriver.RevokeExternalConnectivity': async (body) => {
      await daemon.revokeEndpoint('docker', idOfBody(body, 'EndpointID'));
      return {};
    },
    // Swarm and global-scope calls: never sent for a local driver.
    '/NetworkDriver.DiscoverNew': nothing,
    '/NetworkDriver.DiscoverDelete': nothing,
    '/NetworkDriver.AllocateNetwork': nothing,
    '/NetworkDriver.FreeNetwork': nothing,
  };
}

/** Runs a translation step, labelling what it refuses with the operation ("verb noun: cause"). */
function wrap<T>(op: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof BridgeportError) throw new BridgeportError(`${op}: ${err.message}`, err.kind, { cause: err });
    throw err;
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': MIME, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Serves the driver on `socketPath`; errors are HTTP 200 with {"Err": "..."}, as dockerd expects. */
export async function serveDockerPlugin(daemon: Daemon, socketPath: string, log: (msg: string) => void, named?: () => void): Promise<Server> {
  const handlers = driverHandlers(daemon, named);
  await mkdir(dirname(socketPath), { recursive: true, mode: 0o755 });
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? '/', 'http://plugin').pathname;
    const handler = req.method === 'POST' ? handlers[path] : undefined;
    if (!handler) {
      send(res, 404, { Err: `no such method: ${req.method} ${path}` });
      return;
    }
    try {
      send(res, 200, await handler(await readBody(req)));
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      log(`docker plugin: ${path}: ${message}`);
      send(res, 200, { Err: message });
    }
  };
  return listenUnix(socketPath, (req, res) => void handle(req, res));
}
