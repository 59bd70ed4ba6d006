import { request } from 'node:http';

export const DEFAULT_SOCKET = '/run/bridgeport/bridgeport.sock';

/** The daemon answered with an error; `message` is its own words. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** The daemon could not be reached at all. */
export class ConnectError extends Error {
  constructor(readonly host: string, cause: unknown) {
    super(
      `Cannot connect to the bridgeport daemon at ${host}: ${(cause as Error).message}.\n` +
        'Is the daemon running? Start it (as root) with `bridgeport daemon`, or point -H / BRIDGEPORT_HOST at its socket.',
      { cause },
    );
    this.name = 'ConnectError';
  }
}

/** `unix:///run/x.sock` (as DOCKER_HOST is written) or a bare path. */
export function socketPath(host: string): string {
  if (host.startsWith('unix://')) return host.slice('unix://'.length);
  if (host.startsWith('/')) return host;
  throw new Error(`unsupported daemon address "${host}": use unix:///path/to/bridgeport.sock`);
}

export class Client {
  constructor(readonly host: string) {}

  async call<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise<T>((resolve, reject) => {
      const req = request(
        {
          socketPath: socketPath(this.host),
          path,
          method,
          headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {},
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const parsed = text ? JSON.parse(text) : undefined;
            if ((res.statusCode ?? 500) >= 400) reject(new ApiError(parsed?.message ?? text, res.statusCode ?? 500));
            else resolve(parsed as T);
          });
        },
      );
      req.on('error', (err) => reject(new ConnectError(this.host, err)));
      if (payload) req.write(payload);
      req.end();
    });
  }
}
