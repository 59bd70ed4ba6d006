import { invalid } from '../model/errors.js';

type Kind = 'string' | 'boolean' | 'number' | 'string[]' | 'record';

/** `name: [kind, required]` for each field a request body may carry. */
export type Shape = Record<string, readonly [Kind, boolean]>;

function matches(kind: Kind, v: unknown): boolean {
  switch (kind) {
    case 'string[]':
      return Array.isArray(v) && v.every((x) => typeof x === 'string');
    case 'record':
      return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string');
    default:
      return typeof v === kind;
  }
}

/** Checks an API request body against a shape; the daemon then trusts its types. */
export function checkBody<T>(body: unknown, what: string, shape: Shape): T {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid(`${what}: request body must be a JSON object`);
  const b = body as Record<string, unknown>;
  for (const key of Object.keys(b)) {
    if (!(key in shape)) throw invalid(`${what}: unknown field "${key}"`);
  }
  for (const [key, [kind, required]] of Object.entries(shape)) {
    const v = b[key];
    if (v === undefined || v === null) {
      if (required) throw invalid(`${what}: field "${key}" is required`);
      delete b[key];
      continue;
    }
    if (!matches(kind, v)) throw invalid(`${what}: field "${key}" must be a ${kind}`);
  }
  return b as T;
}

export const SHAPES = {
  createNetwork: {
    name: ['string', true],
    subnet: ['string', false],
    gateway: ['string', false],
    ipRange: ['string', false],
    mtu: ['number', false],
    icc: ['boolean', false],
    masquerade: ['boolean', false],
    internal: ['boolean', false],
    hostBindingIp: ['string', false],
    bridgeName: ['string', false],
    routedCidrs: ['string[]', false],
    options: ['record', false],
  },
  run: {
    name: ['string', false],
    network: ['string', false],
    ip: ['string', false],
    ports: ['string[]', false],
    publishAll: ['boolean', false],
    expose: ['string[]', false],
    links: ['string[]', false],
    hostname: ['string', false],
    cmd: ['string[]', true],
  },
  connect: { container: ['string', true], ip: ['string', false], netns: ['string', false] },
  disconnect: { container: ['string', true] },
  publish: { ports: ['string[]', true] },
  firewall: { cidr: ['string', true], port: ['string', false] },
} as const satisfies Record<string, Shape>;
