import type { CreateNetworkRequest } from '../api/types.js';
import { parseIpv4 } from '../ipam/ipv4.js';
import type { PortSpec, Proto } from '../model/port-spec.js';

/**
 * The CNI protocol as bridgeport's daemon reads and answers it: what the
 * plugin executable (bridgeport-cni.c) relays of a runtime's call, the
 * network configuration, CNI_ARGS and capability arguments, and the results
 * and errors in the caller's spec version (containernetworking/cni SPEC.md,
 * 0.4.0 to 1.1.0; shared/reference/cni.md for what podman and containerd send).
 * Pure translation: no policy lives here.
 */

export const SUPPORTED_VERSIONS = ['0.4.0', '1.0.0', '1.1.0'] as const;
export const PLUGIN_TYPE = 'bridgeport';

/** The spec's error codes used here. */
export const CNI_ERR = {
  INCOMPATIBLE_VERSION: 1,
  UNSUPPORTED_FIELD: 2,
  UNKNOWN_CONTAINER: 3,
  INVALID_ENV: 4,
  IO: 5,
  DECODE: 6,
  INVALID_CONFIG: 7,
  TRY_AGAIN: 11,
  /** bridgeport's own: what the core refused (an address in use, a host port taken). */
  REFUSED: 100,
  /** bridgeport's own: CHECK found the attachment not as it was made. */
  CHECK_FAILED: 101,
} as const;

export class CniError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly details = '',
  ) {
    super(message);
    this.name = 'CniError';
  }
}

/** What the plugin executable sends: the runtime's environment and stdin, and the sandbox it opened. */
export interface CniCall {
  command: string;
  containerId: string;
  /** CNI_NETNS as the runtime gave it. */
  netns: string;
  /** /proc/<plugin pid>/fd/<n>: the sandbox, opened by the plugin in the runtime's mount namespace; "" when not opened. */
  netnsFd: string;
  /** Why the plugin could not open CNI_NETNS; "" when it did or was not asked to. */
  netnsError: string;
  ifname: string;
  args: string;
  path: string;
  /** The network configuration, as the runtime wrote it on stdin. */
  config: string;
}

export function parseCall(body: unknown): CniCall {
  const b = body as Record<string, unknown> | null;
  if (!b || typeof b !== 'object' || Array.isArray(b)) throw new CniError(CNI_ERR.DECODE, 'the plugin sent no call object');
  const str = (k: keyof CniCall): string => {
    const v = b[k];
    if (v === undefined) return '';
    if (typeof v !== 'string') throw new CniError(CNI_ERR.DECODE, `the plugin's call field ${k} is not a string`);
    return v;
  };
  return {
    command: str('command'),
    containerId: str('containerId'),
    netns: str('netns'),
    netnsFd: str('netnsFd'),
    netnsError: str('netnsError'),
    ifname: str('ifname'),
    args: str('args'),
    path: str('path'),
    config: str('config'),
  };
}

/** bridgeport's keys of the network configuration, with the network's options for when ADD creates it. */
export interface NetConf {
  cniVersion: string;
  /** The runtime's network name (the conflist's). */
  name: string;
  /** The bridgeport network the sandboxes attach to; the conflist name when absent. */
  network: string;
  socket?: string;
  /** Used only when ADD creates the network. */
  create: Omit<CreateNetworkRequest, 'name' | 'options'>;
  /** Capability arguments (runtimeConfig), keys as sent. */
  runtimeConfig: Record<string, unknown>;
  prevResult?: unknown;
  /** GC: the attachments the runtime still has (`cni.dev/valid-attachments`). */
  validAttachments?: { containerId: string; ifname: string }[];
}

/** Keys the spec, libcni and the runtimes add to a plugin's configuration, accepted and not used. */
const RUNTIME_KEYS = new Set(['type', 'capabilities', 'args', 'dns', 'cniVersions', 'disableCheck', 'disableGC', 'plugins']);

type Kind = 'string' | 'number' | 'boolean' | 'string[]';
const OWN_KEYS: Record<string, Kind> = {
  network: 'string',
  socket: 'string',
  subnet: 'string',
  gateway: 'string',
  ipRange: 'string',
  mtu: 'number',
  icc: 'boolean',
  masquerade: 'boolean',
  internal: 'boolean',
  hostBindingIp: 'string',
  bridge: 'string',
  routedCidrs: 'string[]',
};

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** The version the caller asked for, as far as it can be read: errors are answered in it. */
export function callerVersion(config: string): string {
  try {
    const v = (JSON.parse(config) as { cniVersion?: unknown })?.cniVersion;
    return typeof v === 'string' && v ? v : '1.1.0';
  } catch {
    return '1.1.0';
  }
}

export function parseConfig(text: string): NetConf {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new CniError(CNI_ERR.DECODE, `network configuration is not valid JSON: ${(err as Error).message}`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new CniError(CNI_ERR.DECODE, 'network configuration is not a JSON object');
  const c = raw as Record<string, unknown>;
  const version = c.cniVersion;
  if (typeof version !== 'string' || !version) throw new CniError(CNI_ERR.INVALID_CONFIG, 'network configuration has no cniVersion');
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(version)) {
    throw new CniError(CNI_ERR.INCOMPATIBLE_VERSION, `incompatible CNI version ${version}: bridgeport supports ${SUPPORTED_VERSIONS.join(', ')}`);
  }
  if (typeof c.name !== 'string' || !NAME_RE.test(c.name)) {
    throw new CniError(CNI_ERR.INVALID_CONFIG, `invalid network name ${JSON.stringify(c.name)}: must match ${NAME_RE.source}`);
  }
  if (c.type !== undefined && c.type !== PLUGIN_TYPE) {
    throw new CniError(CNI_ERR.INVALID_CONFIG, `network configuration type is ${JSON.stringify(c.type)}, not "${PLUGIN_TYPE}"`);
  }
  if (c.ipam !== undefined) {
    throw new CniError(CNI_ERR.INVALID_CONFIG, 'network configuration key "ipam" is not used: bridgeport allocates addresses itself (give "subnet" for a new network, IP= or "ips" for a static address)');
  }
  const unknown = Object.keys(c).filter(
    (k) => !RUNTIME_KEYS.has(k) && !(k in OWN_KEYS) && !['cniVersion', 'name', 'runtimeConfig', 'prevResult', 'ipam'].includes(k) && !k.startsWith('cni.dev/'),
  );
  if (unknown.length) {
    throw new CniError(
      CNI_ERR.INVALID_CONFIG,
      `unknown network configuration key${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"`).join(', ')} (bridgeport's keys: ${Object.keys(OWN_KEYS).join(', ')})`,
    );
  }
  for (const [k, kind] of Object.entries(OWN_KEYS)) {
    const v = c[k];
    const fits = kind === 'string[]' ? Array.isArray(v) && v.every((x) => typeof x === 'string') : typeof v === kind;
    if (v !== undefined && !fits) throw new CniError(CNI_ERR.INVALID_CONFIG, `network configuration key "${k}" must be a ${kind === 'string[]' ? 'list of strings' : kind}`);
  }
  const network = (c.network as string | undefined) ?? c.name;
  if (!NAME_RE.test(network)) throw new CniError(CNI_ERR.INVALID_CONFIG, `invalid network ${JSON.stringify(network)}: must match ${NAME_RE.source}`);
  const rc = c.runtimeConfig ?? {};
  if (typeof rc !== 'object' || rc === null || Array.isArray(rc)) throw new CniError(CNI_ERR.INVALID_CONFIG, 'runtimeConfig must be an object');
  const conf: NetConf = {
    cniVersion: version,
    name: c.name,
    network,
    ...(c.socket !== undefined ? { socket: c.socket as string } : {}),
    create: {
      subnet: c.subnet as string | undefined,
      gateway: c.gateway as string | undefined,
      ipRange: c.ipRange as string | undefined,
      mtu: c.mtu as number | undefined,
      icc: c.icc as boolean | undefined,
      masquerade: c.masquerade as boolean | undefined,
      internal: c.internal as boolean | undefined,
      hostBindingIp: c.hostBindingIp as string | undefined,
      bridgeName: c.bridge as string | undefined,
      routedCidrs: c.routedCidrs as string[] | undefined,
    },
    runtimeConfig: rc as Record<string, unknown>,
    ...(c.prevResult !== undefined ? { prevResult: c.prevResult } : {}),
  };
  // libcni sends both; the misspelled one is what libcni 1.1 wrote first.
  const valid = c['cni.dev/valid-attachments'] ?? c['cni.dev/attachments'];
  if (valid !== undefined) conf.validAttachments = parseAttachments(valid);
  return conf;
}

function parseAttachments(v: unknown): { containerId: string; ifname: string }[] {
  if (!Array.isArray(v)) throw new CniError(CNI_ERR.INVALID_CONFIG, 'cni.dev/valid-attachments must be a list');
  return v.map((a, i) => {
    const o = a as Record<string, unknown> | null;
    if (!o || typeof o.containerID !== 'string' || typeof o.ifname !== 'string') {
      throw new CniError(CNI_ERR.INVALID_CONFIG, `cni.dev/valid-attachments[${i}] must have string containerID and ifname`);
    }
    return { containerId: o.containerID, ifname: o.ifname };
  });
}

/** CNI_ARGS that bridgeport reads; others are refused unless IgnoreUnknown is set (the spec's rule). */
export interface CniArgs {
  ip?: string;
  mac?: string;
  podName?: string;
  podNamespace?: string;
  podUid?: string;
  infraContainerId?: string;
}

const ARG_KEYS: Record<string, keyof CniArgs | null> = {
  IP: 'ip',
  MAC: 'mac',
  K8S_POD_NAME: 'podName',
  K8S_POD_NAMESPACE: 'podNamespace',
  K8S_POD_UID: 'podUid',
  K8S_POD_INFRA_CONTAINER_ID: 'infraContainerId',
  IgnoreUnknown: null,
};

export function parseArgs(text: string): CniArgs {
  const out: CniArgs = {};
  if (!text) return out;
  const pairs = text.split(';').filter((p) => p !== '');
  const entries = pairs.map((p) => {
    const i = p.indexOf('=');
    if (i <= 0) throw new CniError(CNI_ERR.INVALID_ENV, `CNI_ARGS: "${p}" is not KEY=VALUE`);
    return [p.slice(0, i), p.slice(i + 1)] as const;
  });
  const ignoreUnknown = entries.some(([k, v]) => k === 'IgnoreUnknown' && ['1', 'true', 'True'].includes(v));
  const unknown: string[] = [];
  for (const [k, v] of entries) {
    const field = ARG_KEYS[k];
    if (field === undefined) unknown.push(k);
    else if (field) out[field] = v;
  }
  if (unknown.length && !ignoreUnknown) {
    throw new CniError(CNI_ERR.INVALID_ENV, `CNI_ARGS: unknown key${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} (add IgnoreUnknown=1 to let them pass)`);
  }
  return out;
}

/** A capability argument by name, matched case-insensitively (containerd's CRI sends Go field names). */
function field(o: Record<string, unknown>, name: string): unknown {
  const lower = name.toLowerCase();
  for (const [k, v] of Object.entries(o)) if (k.toLowerCase() === lower) return v;
  return undefined;
}

/**
 * runtimeConfig.portMappings as port specs: podman's camelCase and the CRI's
 * PascalCase; podman has resolved -P and expanded ranges already.
 */
export function portMappings(runtimeConfig: Record<string, unknown>): PortSpec[] {
  const list = field(runtimeConfig, 'portMappings');
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw new CniError(CNI_ERR.INVALID_CONFIG, 'runtimeConfig.portMappings must be a list');
  return list.map((m, i) => {
    const where = `runtimeConfig.portMappings[${i}]`;
    if (!m || typeof m !== 'object') throw new CniError(CNI_ERR.INVALID_CONFIG, `${where} must be an object`);
    const o = m as Record<string, unknown>;
    const port = (name: string): number => {
      const v = field(o, name);
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) {
        throw new CniError(CNI_ERR.INVALID_CONFIG, `${where}.${name} must be a port 1-65535 (got ${JSON.stringify(v)})`);
      }
      return v;
    };
    const hostPort = port('hostPort');
    const containerPort = port('containerPort');
    const protoRaw = field(o, 'protocol') ?? 'tcp';
    const proto = typeof protoRaw === 'string' ? protoRaw.toLowerCase() : '';
    if (!['tcp', 'udp', 'sctp'].includes(proto)) throw new CniError(CNI_ERR.INVALID_CONFIG, `${where}.protocol ${JSON.stringify(protoRaw)}: use tcp, udp or sctp`);
    const hostIpRaw = field(o, 'hostIP') ?? '';
    if (typeof hostIpRaw !== 'string') throw new CniError(CNI_ERR.INVALID_CONFIG, `${where}.hostIP must be a string`);
    let hostIp: string | undefined;
    if (hostIpRaw !== '') {
      try {
        parseIpv4(hostIpRaw);
      } catch {
        throw new CniError(CNI_ERR.INVALID_CONFIG, `${where}.hostIP ${JSON.stringify(hostIpRaw)} is not an IPv4 address (IPv6 is not supported yet)`);
      }
      hostIp = hostIpRaw;
    }
    return { hostIp, hostPortStart: hostPort, hostPortEnd: hostPort, containerPortStart: containerPort, containerPortEnd: containerPort, proto: proto as Proto };
  });
}

/** The static address asked for: runtimeConfig.ips (one IPv4, with or without a prefix) or CNI_ARGS IP. */
export function staticIp(runtimeConfig: Record<string, unknown>, args: CniArgs): string | undefined {
  const ips = field(runtimeConfig, 'ips');
  const fromCaps = Array.isArray(ips) ? ips : ips === undefined || ips === null ? [] : undefined;
  if (!fromCaps || fromCaps.some((x) => typeof x !== 'string')) throw new CniError(CNI_ERR.INVALID_CONFIG, 'runtimeConfig.ips must be a list of addresses');
  const wanted = [...(fromCaps as string[]), ...(args.ip ? args.ip.split(',') : [])].map((x) => x.split('/')[0]!.trim()).filter((x) => x);
  const distinct = [...new Set(wanted)];
  if (distinct.length > 1) throw new CniError(CNI_ERR.INVALID_CONFIG, `several static addresses asked (${distinct.join(', ')}): a bridgeport endpoint has one IPv4 address`);
  if (!distinct.length) return undefined;
  try {
    parseIpv4(distinct[0]!);
  } catch {
    throw new CniError(CNI_ERR.INVALID_CONFIG, `static address ${distinct[0]} is not an IPv4 address (IPv6 is not supported yet)`);
  }
  return distinct[0];
}

export function staticMac(runtimeConfig: Record<string, unknown>, args: CniArgs): string | undefined {
  const mac = field(runtimeConfig, 'mac');
  if (mac !== undefined && mac !== null && typeof mac !== 'string') throw new CniError(CNI_ERR.INVALID_CONFIG, 'runtimeConfig.mac must be a string');
  return (mac as string | undefined) || args.mac || undefined;
}

/** libcni's rule for interface names: the kernel's, without /, : or whitespace. */
export function checkIfname(name: string): void {
  if (!name) throw new CniError(CNI_ERR.INVALID_ENV, 'CNI_IFNAME is not set');
  if (name.length > 15 || /[/:\s]/.test(name) || name === '.' || name === '..') {
    throw new CniError(CNI_ERR.INVALID_ENV, `CNI_IFNAME "${name}" is not a valid interface name (at most 15 bytes, no "/", ":" or whitespace)`);
  }
}

export function checkContainerId(id: string): void {
  if (!id) throw new CniError(CNI_ERR.INVALID_ENV, 'CNI_CONTAINERID is not set');
  if (!NAME_RE.test(id)) throw new CniError(CNI_ERR.INVALID_ENV, `CNI_CONTAINERID "${id}" is not valid: must match ${NAME_RE.source}`);
}

export interface Attachment {
  ifname: string;
  mac: string;
  /** CNI_NETNS as the runtime named it. */
  sandbox: string;
  ip: string;
  prefix: number;
  gateway: string;
  defaultRoute: boolean;
  mtu: number;
}

/** ADD's (and CHECK's prevResult's) result, in the caller's version: 0.4.0 still numbers IP versions. */
export function addResult(version: string, a: Attachment): Record<string, unknown> {
  const ip: Record<string, unknown> = { address: `${a.ip}/${a.prefix}`, gateway: a.gateway, interface: 0 };
  if (version === '0.4.0') ip.version = '4';
  return {
    cniVersion: version,
    interfaces: [{ name: a.ifname, mac: a.mac, ...(version === '1.1.0' ? { mtu: a.mtu } : {}), sandbox: a.sandbox }],
    ips: [ip],
    routes: a.defaultRoute ? [{ dst: '0.0.0.0/0', gw: a.gateway }] : [],
  };
}

export function errorResult(version: string, err: CniError): Record<string, unknown> {
  return { cniVersion: version, code: err.code, msg: err.message, ...(err.details ? { details: err.details } : {}) };
}

/**
 * The conflist a runtime reads for a bridgeport network (podman and containerd
 * speak 1.0.0 at most). No `aliases` capability: the names it carries need
 * bridgeport's DNS, which does not exist yet.
 */
export function renderConflist(o: { name: string; network: string; socket?: string }): Record<string, unknown> {
  return {
    cniVersion: '1.0.0',
    cniVersions: ['1.0.0', '1.1.0'],
    name: o.name,
    plugins: [
      {
        type: PLUGIN_TYPE,
        ...(o.network !== o.name ? { network: o.network } : {}),
        ...(o.socket ? { socket: o.socket } : {}),
        capabilities: { portMappings: true, ips: true, mac: true },
      },
    ],
  };
}
