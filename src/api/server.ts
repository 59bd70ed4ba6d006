import { chmod, unlink } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { BridgeportError, invalid } from '../model/errors.js';
import type { ErrorBody } from './types.js';

/** A handler's answer with a status of its own choosing (the CNI relay's: its plugin exits by the status). */
export class Reply {
  constructor(
    readonly status: number,
    readonly body?: unknown,
  ) {}
}

export type Handler = (req: { params: Record<string, string>; query: URLSearchParams; body: unknown }) => Promise<unknown>;

interface Route {
  method: string;
  pattern: RegExp;
  keys: string[];
  handler: Handler;
}

/** A small router: `/v1/containers/:name/publish` style paths, JSON in and out. */
export class Router {
  private readonly routes: Route[] = [];

  on(method: string, path: string, handler: Handler): this {
    const keys: string[] = [];
    const pattern = new RegExp(
      `^${path.replace(/:([a-z]+)/g, (_, k: string) => {
        keys.push(k);
        return '([^/]+)';
      })}$`,
    );
    this.routes.push({ method, pattern, keys, handler });
    return this;
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://bridgeport');
    try {
      const route = this.routes.find((r) => r.method === req.method && r.pattern.test(url.pathname));
      if (!route) throw new BridgeportError(`no such endpoint: ${req.method} ${url.pathname}`, 'not-found');
      const m = route.pattern.exec(url.pathname)!;
      const params = Object.fromEntries(route.keys.map((k, i) => [k, decodeURIComponent(m[i + 1] ?? '')]));
      const body = await readBody(req);
      const result = await route.handler({ params, query: url.searchParams, body });
      if (result instanceof Reply) send(res, result.status, result.body);
      else send(res, result === undefined ? 204 : 200, result);
    } catch (err) {
      const e = err instanceof BridgeportError ? err : new BridgeportError(String((err as Error)?.message ?? err), 'internal', { cause: err });
      send(res, e.status, { message: e.message, kind: e.kind } satisfies ErrorBody);
    }
  }
}

export async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  if (!chunks.length) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw invalid('request body is not valid JSON');
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** True when something already answers on the socket (another daemon). */
async function socketInUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function listen(router: Router, socketPath: string): Promise<Server> {
  return listenUnix(socketPath, (req, res) => void router.handle(req, res));
}

/** Serves HTTP on a unix socket (mode 0660), refusing one another process still answers on. */
export async function listenUnix(socketPath: string, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Server> {
  if (await socketInUse(socketPath)) {
    throw new BridgeportError(`start daemon: another daemon is listening on ${socketPath}`, 'conflict');
  }
  await unlink(socketPath).catch(() => undefined);
  const server = createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  await chmod(socketPath, 0o660);
  return server;
}
