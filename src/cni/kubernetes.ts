import { readFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { CreateNetworkRequest } from '../api/types.js';
import { run } from '../host/exec.js';
import { formatCidr, parseCidr, parseIpv4 } from '../ipam/ipv4.js';
import { invalid } from '../model/errors.js';

/**
 * A Kubernetes node's side of bridgeport (`bridgeport cni kube-node`, run by
 * the DaemonSet in contrib/kubernetes/ beside the daemon): the node's pod
 * network from its Node object (spec.podCIDRs), the cluster's pod CIDR routed
 * (not masqueraded, let in), and host-gw routes to every other node's pod
 * subnet via that node's InternalIP, kept in step with the Node list. The
 * planning is pure; the API client and the route writer are small.
 */

export interface KubeNode {
  name: string;
  /** IPv4 pod CIDRs (spec.podCIDRs, or the older spec.podCIDR). */
  podCidrs: string[];
  /** The node's IPv4 InternalIP, when it has one. */
  internalIp?: string;
}

export interface Route {
  dst: string;
  via: string;
}

/** The route protocol number bridgeport's host-gw routes carry, so that it only ever changes its own. */
export const ROUTE_PROTO = 247;

const isIpv4Cidr = (c: string): boolean => {
  try {
    parseCidr(c);
    return true;
  } catch {
    return false;
  }
};

/** A NodeList (GET /api/v1/nodes) as the nodes bridgeport routes by; IPv6 CIDRs and addresses are left out. */
export function nodesFromList(list: unknown): KubeNode[] {
  const items = (list as { items?: unknown })?.items;
  if (!Array.isArray(items)) throw invalid('Kubernetes API: the node list has no items');
  return items.map((item) => {
    const n = item as {
      metadata?: { name?: string };
      spec?: { podCIDR?: string; podCIDRs?: string[] };
      status?: { addresses?: { type?: string; address?: string }[] };
    };
    const name = n.metadata?.name;
    if (!name) throw invalid('Kubernetes API: a node without metadata.name');
    const cidrs = n.spec?.podCIDRs ?? (n.spec?.podCIDR ? [n.spec.podCIDR] : []);
    const internal = (n.status?.addresses ?? []).filter((a) => a.type === 'InternalIP' && a.address).map((a) => a.address!);
    const v4 = internal.find((a) => {
      try {
        parseIpv4(a);
        return true;
      } catch {
        return false;
      }
    });
    return { name, podCidrs: cidrs.filter(isIpv4Cidr), ...(v4 ? { internalIp: v4 } : {}) };
  });
}

/** The node's pod network: its pod CIDR, the cluster CIDR routed, every pod reaching every pod. */
export function podNetworkFor(self: KubeNode, o: { network: string; clusterCidr: string; bridge?: string; mtu?: number }): CreateNetworkRequest {
  const subnet = self.podCidrs[0];
  if (!subnet) throw invalid(`node ${self.name} has no IPv4 pod CIDR (spec.podCIDRs): is the controller manager's --allocate-node-cidrs on?`);
  const cluster = formatCidr(parseCidr(o.clusterCidr, '--cluster-cidr'));
  return {
    name: o.network,
    subnet,
    routedCidrs: [cluster],
    icc: true,
    masquerade: true,
    ...(o.bridge ? { bridgeName: o.bridge } : {}),
    ...(o.mtu ? { mtu: o.mtu } : {}),
  };
}

/** host-gw: a route to each other node's pod CIDRs via its InternalIP (nodes without either are skipped). */
export function hostGwRoutes(nodes: KubeNode[], self: string): Route[] {
  return nodes
    .filter((n) => n.name !== self && n.internalIp)
    .flatMap((n) => n.podCidrs.map((dst) => ({ dst, via: n.internalIp! })))
    .sort((a, b) => a.dst.localeCompare(b.dst));
}

/** What to change so that bridgeport's routes (`current`) become `desired`. */
export function routeChanges(current: Route[], desired: Route[]): { replace: Route[]; remove: Route[] } {
  const have = new Map(current.map((r) => [r.dst, r.via]));
  const want = new Set(desired.map((r) => r.dst));
  return {
    replace: desired.filter((r) => have.get(r.dst) !== r.via),
    remove: current.filter((r) => !want.has(r.dst)),
  };
}

/** bridgeport's host-gw routes now (`ip route show proto 247`). */
export async function currentRoutes(): Promise<Route[]> {
  const out = await run('ip', ['-json', '-4', 'route', 'show', 'proto', String(ROUTE_PROTO)]);
  const list = (out.trim() ? JSON.parse(out) : []) as { dst: string; gateway?: string }[];
  return list.filter((r) => r.gateway).map((r) => ({ dst: r.dst.includes('/') ? r.dst : `${r.dst}/32`, via: r.gateway! }));
}

export async function applyRoutes(changes: { replace: Route[]; remove: Route[] }): Promise<void> {
  for (const r of changes.remove) await run('ip', ['route', 'del', r.dst, 'proto', String(ROUTE_PROTO)]);
  for (const r of changes.replace) await run('ip', ['route', 'replace', r.dst, 'via', r.via, 'proto', String(ROUTE_PROTO)]);
}

/**
 * The API server as a pod sees it: KUBERNETES_SERVICE_HOST/PORT, the service
 * account's token and CA. `server` (an http:// or https:// URL) and
 * `tokenFile` override them.
 */
export class KubeApi {
  constructor(
    private readonly server: string,
    private readonly tokenFile: string,
    private readonly caFile: string | undefined,
  ) {}

  static inCluster(o: { server?: string; tokenFile?: string; caFile?: string } = {}): KubeApi {
    const sa = '/var/run/secrets/kubernetes.io/serviceaccount';
    const host = process.env.KUBERNETES_SERVICE_HOST;
    const port = process.env.KUBERNETES_SERVICE_PORT ?? '443';
    const server = o.server ?? (host ? `https://${host.includes(':') ? `[${host}]` : host}:${port}` : undefined);
    if (!server) throw invalid('Kubernetes API: KUBERNETES_SERVICE_HOST is not set (not in a pod?): give --kube-api URL');
    return new KubeApi(server, o.tokenFile ?? `${sa}/token`, o.caFile ?? (server.startsWith('https:') ? `${sa}/ca.crt` : undefined));
  }

  async nodes(): Promise<KubeNode[]> {
    return nodesFromList(await this.get('/api/v1/nodes'));
  }

  private async get(path: string): Promise<unknown> {
    // The token is read for every call: the kubelet rotates projected tokens.
    const token = (await readFile(this.tokenFile, 'utf8')).trim();
    const ca = this.caFile ? await readFile(this.caFile) : undefined;
    const url = new URL(path, this.server);
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = request(url, { method: 'GET', headers: { authorization: `Bearer ${token}`, accept: 'application/json' }, ...(ca ? { ca } : {}), timeout: 10_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200) return reject(new Error(`Kubernetes API: GET ${path}: ${res.statusCode}: ${text.slice(0, 300)}`));
          try {
            resolve(JSON.parse(text));
          } catch {
            reject(new Error(`Kubernetes API: GET ${path}: not JSON`));
          }
        });
      });
      req.on('timeout', () => req.destroy(new Error(`Kubernetes API: GET ${path}: no answer in 10 s`)));
      req.on('error', reject);
      req.end();
    });
  }
}
