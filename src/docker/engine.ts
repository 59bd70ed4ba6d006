import { request } from 'node:http';
import { socketPath } from '../cli/client.js';

/**
 * A read-only client of the Docker Engine API (dockerd's own socket,
 * `--docker-host`), used after the fact: to name Docker's containers and
 * networks in bridgeport's views, and to tell the reconciler which endpoints
 * dockerd still has. dockerd may be down or slow at any time, so every call
 * has a deadline and a failure is the caller's to tolerate (undefined).
 */
export const DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock';

/** API version 1.41 is dockerd 20.10's; every call used here exists since 1.24. */
const API = '/v1.41';
const TIMEOUT_MS = 2_000;

/** What GET /networks/{id} says of one endpoint in it. */
export interface EngineEndpoint {
  containerId: string;
  /** The container's name, without Docker's leading "/". */
  name: string;
  endpointId: string;
}

export interface EngineNetwork {
  id: string;
  name: string;
  driver: string;
  endpoints: EngineEndpoint[];
}

export class DockerEngine {
  readonly socket: string;

  constructor(readonly host: string = DEFAULT_DOCKER_HOST) {
    this.socket = socketPath(host);
  }

  /** GET `path` as JSON: the body on 2xx, null on 404, an Error otherwise (unreachable, timeout, 5xx). */
  async get(path: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const req = request({ socketPath: this.socket, path: `${API}${path}`, method: 'GET', timeout: TIMEOUT_MS }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const status = res.statusCode ?? 500;
          if (status === 404) return resolve(null);
          const text = Buffer.concat(chunks).toString('utf8');
          if (status >= 300) return reject(new Error(`docker engine ${this.host}: GET ${path}: ${status} ${text.trim()}`));
          try {
            resolve(JSON.parse(text));
          } catch {
            reject(new Error(`docker engine ${this.host}: GET ${path}: answer is not JSON`));
          }
        });
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`docker engine ${this.host}: GET ${path}: no answer in ${TIMEOUT_MS} ms`)));
      req.on('error', reject);
      req.end();
    });
  }

  /** One network with its endpoints; null when dockerd does not know it. */
  async network(id: string): Promise<EngineNetwork | null> {
    const raw = (await this.get(`/networks/${encodeURIComponent(id)}`)) as RawNetwork | null;
    return raw && toNetwork(raw);
  }
}

interface RawNetwork {
  Id: string;
  Name: string;
  Driver: string;
  Containers?: Record<string, { Name?: string; EndpointID?: string }> | null;
}

function toNetwork(raw: RawNetwork): EngineNetwork {
  return {
    id: raw.Id,
    name: raw.Name,
    driver: raw.Driver,
    endpoints: Object.entries(raw.Containers ?? {}).map(([containerId, c]) => ({
      containerId,
      name: (c.Name ?? '').replace(/^\//, ''),
      endpointId: c.EndpointID ?? '',
    })),
  };
}
