import { type ContainerRecord, sandboxRecord } from '../../src/model/state.js';

/**
 * A record like the Docker driver's (Daemon.addEndpoint): one endpoint of
 * Docker's, named docker-<endpoint ID's first 12>, its veth named after the key.
 */
export function dockerEndpointRecord(opts: {
  key: string;
  /** bridgeport's name of the network, and Docker's ID of it. */
  network: string;
  networkId: string;
  ip?: string;
  gateway?: string;
  sandboxKey?: string;
  container?: { id: string; name: string };
  id?: string;
  created?: string;
}): ContainerRecord {
  const { key } = opts;
  return sandboxRecord({
    id: opts.id ?? `${key.slice(0, 8)}-record-id`,
    name: `docker-${key.slice(0, 12)}`,
    sandboxKey: opts.sandboxKey ?? '',
    hostname: '',
    endpoints: [
      {
        network: opts.network,
        ip: opts.ip ?? '10.66.0.2',
        prefix: 24,
        gateway: opts.gateway ?? '10.66.0.1',
        mac: '02:42:0a:42:00:02',
        hostIf: `veth${key.slice(0, 7)}`,
        sandboxIf: `vc${key.slice(0, 7)}`,
        owner: { frontEnd: 'docker', key, network: opts.networkId, ...(opts.container ? { container: opts.container } : {}) },
      },
    ],
    created: opts.created ?? '2026-12-01T00:00:00.000Z',
  });
}
