import { mkdir } from 'node:fs/promises';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { listen, Reply, Router } from '../api/server.js';
import { CniService } from '../cni/service.js';
import type { ConnectRequest, CreateNetworkRequest, PublishRequest, RunRequest } from '../api/types.js';
import { checkBody, SHAPES } from '../api/validate.js';
import type { DatapathModel, DatapathStats } from '../datapath/datapath.js';
import { parseTimeouts } from '../datapath/ebpf/conntrack-gc.js';
import type { EbpfOptions, XdpMode } from '../datapath/ebpf/ebpf-datapath.js';
import { IptablesDatapath } from '../datapath/iptables/iptables-datapath.js';
import { type DatapathChoice, removeEbpfLeftovers, selectDatapath } from '../datapath/select.js';
import { defaultRouteInterface, getLink } from '../host/iproute.js';
import { ephemeralPortRange, writeSysctl } from '../host/sysctl.js';
import { parseInterfaceCidr, parseIpv4 } from '../ipam/ipv4.js';
import { DEFAULT_PLUGIN_SOCKET, serveDockerPlugin } from '../docker/driver.js';
import { DockerEngine } from '../docker/engine.js';
import { DockerNames } from '../docker/names.js';
import { DockerReconciler } from '../docker/reconciler.js';
import { Metrics, parseMetricsAddr, serveMetrics } from '../metrics/metrics.js';
import { BridgeportError, invalid, notFound } from '../model/errors.js';
import { type DisplayNames, displayNames, shown } from '../model/display-names.js';
import { Daemon, findContainer, findContainers, findNetwork } from './daemon.js';
import { StateStore } from './state-store.js';
import { containerSummary, inspectContainer, inspectNetwork, networkSummary, PSEUDO_NETWORKS } from './views.js';

export const VERSION = '0.1.0';

export interface DaemonFlags {
  datapath: string;
  stateDir: string;
  runDir: string;
  uplink: string[];
  bip: string;
  fixedCidr?: string;
  mtu: string;
  icc: string;
  ip: string;
  ipForward: string;
  ephemeralPorts?: string;
  metricsAddr: string;
  bpfDir?: string;
  masqueradePorts: string;
  conntrackTimeouts: string;
  conntrackGcInterval: string;
  xdpMode: string;
  /** Where to serve dockerd's remote driver; undefined: the default path, "" none. */
  dockerPlugin?: string;
  /** dockerd's Engine API: asked for the names of Docker's containers and networks, and by the reconciler which endpoints it still has. */
  dockerHost: string;
  /** Seconds between runs of the Docker reconciler ("0": only at start). */
  dockerReconcileInterval?: string;
  /** Seconds a Docker endpoint or network must have existed before the reconciler may remove it. */
  dockerReconcileGrace?: string;
  /** Seconds between passes over CNI attachments (queued DELs, sandboxes gone); "0": only at start. */
  cniGcInterval?: string;
  cleanup?: boolean;
}

const log = (msg: string): void => console.error(`${new Date().toISOString()} ${msg}`);

function parseFlagBool(flag: string, v: string): boolean {
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw invalid(`invalid value "${v}" for ${flag}: use true or false`);
}

function parsePortRange(text: string, flag = '--ephemeral-ports'): { low: number; high: number } {
  const m = /^(\d+)-(\d+)$/.exec(text);
  const low = Number(m?.[1]);
  const high = Number(m?.[2]);
  if (!m || low < 1 || high > 65535 || low > high) throw invalid(`invalid ${flag} "${text}": use LOW-HIGH within 1-65535`);
  return { low, high };
}

export async function runDaemon(flags: DaemonFlags): Promise<void> {
  const choice = flags.datapath as DatapathChoice;
  if (!['auto', 'ebpf', 'iptables'].includes(choice)) throw invalid(`invalid --datapath "${flags.datapath}": use auto, ebpf or iptables`);
  const mtu = Number(flags.mtu);
  if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) throw invalid(`invalid --mtu "${flags.mtu}": must be 68-65535`);
  parseInterfaceCidr(flags.bip, '--bip');
  parseIpv4(flags.ip, '--ip');
  const icc = parseFlagBool('--icc', flags.icc);
  const ipForward = parseFlagBool('--ip-forward', flags.ipForward);
  const reconcileIntervalS = parseSeconds('--docker-reconcile-interval', flags.dockerReconcileInterval ?? '30');
  const reconcileGraceS = parseSeconds('--docker-reconcile-grace', flags.dockerReconcileGrace ?? '60');
  const cniGcIntervalS = parseSeconds('--cni-gc-interval', flags.cniGcInterval ?? '10');
  const ephemeral = flags.ephemeralPorts ? parsePortRange(flags.ephemeralPorts) : await ephemeralPortRange();
  const engine = dockerEngine(flags.dockerHost);

  const uplinks = flags.uplink.length ? flags.uplink : [await defaultRouteInterface()].filter((x): x is string => !!x);
  for (const u of uplinks) if (!(await getLink(u))) throw invalid(`start daemon: --uplink ${u}: no such interface`);

  // Docker sets the FORWARD policy to DROP only when it turned forwarding on itself.
  const ebpf: EbpfOptions = {
    runDir: flags.runDir,
    bpfDir: flags.bpfDir,
    snatPorts: parsePortRange(flags.masqueradePorts, '--masquerade-ports'),
    timeouts: parseFlagTimeouts(flags.conntrackTimeouts),
    gcIntervalS: parsePositive('--conntrack-gc-interval', flags.conntrackGcInterval),
    xdpMode: parseXdpMode(flags.xdpMode),
    log,
  };
  if (flags.cleanup) {
    // Both datapaths: whichever ran last, nothing of this instance stays behind.
    await new IptablesDatapath({ forwardDrop: false }).teardown().catch((err: unknown) => log(`cleanup: iptables: ${String(err)}`));
    log('cleanup: removed the iptables datapath\'s rules');
    if (!(await removeEbpfLeftovers(ebpf))) log('cleanup: no eBPF datapath state found');
    return;
  }

  const metricsAddr = parseMetricsAddr(flags.metricsAddr);
  const forwardDrop = ipForward ? (await writeSysctl('net.ipv4.ip_forward', '1')) === '0' : false;
  const { datapath, reason } = await selectDatapath(choice, { forwardDrop, ebpf });

  await mkdir(flags.stateDir, { recursive: true, mode: 0o700 });
  await mkdir(join(flags.runDir, 'netns'), { recursive: true, mode: 0o700 });
  const store = new StateStore(flags.stateDir);
  const daemon = new Daemon(
    await store.load(),
    store,
    datapath,
    { stateDir: flags.stateDir, runDir: flags.runDir, uplinks, bip: flags.bip, fixedCidr: flags.fixedCidr, mtu, icc, defaultHostIp: flags.ip, ephemeral },
    log,
  );
  await daemon.reconcile();
  const socket = join(flags.runDir, 'bridgeport.sock');
  const cni = new CniService(daemon, join(flags.runDir, 'cni-pending'), log);
  const server = await listen(routes(daemon, cni, { reason, socket }), socket);
  log(`bridgeport ${VERSION} listening on unix://${socket}; datapath ${datapath.name} (${reason}); uplinks ${uplinks.join(', ') || 'none'}`);
  const names = new DockerNames(daemon, engine, log);
  const plugin = await startDockerPlugin(daemon, flags.dockerPlugin, server, () => names.soon());
  // Asks dockerd only while Docker's networks are in the state.
  names.start();
  // Endpoints and networks dockerd is done with although bridgeport never heard (it was down, or dockerd was killed).
  const reconciler = new DockerReconciler(daemon, engine, { intervalS: reconcileIntervalS, graceS: reconcileGraceS }, log);
  reconciler.start();
  cni.start(cniGcIntervalS);
  let metricsServer: Server | undefined;
  if (metricsAddr) {
    const metrics = new Metrics({ datapath, reason, model: () => daemon.model(), names: () => displayNames(daemon.snapshot) });
    daemon.onOperation = (op, seconds, ok) => metrics.observeOperation(op, seconds, ok);
    metricsServer = await serveMetrics(metrics, metricsAddr, log);
    log(`metrics on http://${flags.metricsAddr}/metrics`);
  }
  await waitForSignal([server, ...(plugin ? [plugin] : [])]);
  names.stop();
  reconciler.stop();
  cni.stop();
  metricsServer?.close();
  metricsServer?.closeAllConnections();
  datapath.close?.();
}

function parseFlagTimeouts(text: string) {
  try {
    return parseTimeouts(text);
  } catch (err) {
    throw invalid((err as Error).message);
  }
}

function parsePositive(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw invalid(`invalid ${flag} "${text}": must be a positive number of seconds`);
  return n;
}

function parseSeconds(flag: string, text: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n < 0) throw invalid(`invalid ${flag} "${text}": must be a number of seconds, 0 or more`);
  return n;
}

/** `--docker-host unix:///path` (as DOCKER_HOST is written) or a bare path: dockerd's API is asked on a unix socket only. */
function dockerEngine(host: string): DockerEngine {
  if (!/^(unix:\/\/)?\/./.test(host)) throw invalid(`invalid --docker-host "${host}": use unix:///path/to/docker.sock`);
  return new DockerEngine(host);
}

const XDP_MODES: readonly XdpMode[] = ['auto', 'native', 'generic', 'tc'];

function parseXdpMode(text: string): XdpMode {
  const mode = XDP_MODES.find((m) => m === text);
  if (mode) return mode;
  throw invalid(`invalid --xdp-mode "${text}": use ${XDP_MODES.join(', ')}`);
}

/**
 * The Docker driver beside the API. Another daemon serving the default path
 * (several instances on one host) leaves this one without the driver, said in
 * the log; a path given explicitly must be served or the start fails.
 */
async function startDockerPlugin(daemon: Daemon, path: string | undefined, api: Server, named: () => void): Promise<Server | undefined> {
  if (path === '') return undefined;
  try {
    const server = await serveDockerPlugin(daemon, path ?? DEFAULT_PLUGIN_SOCKET, log, named);
    log(`docker network driver "bridgeport" on unix://${path ?? DEFAULT_PLUGIN_SOCKET}`);
    return server;
  } catch (err) {
    if (path === undefined && err instanceof BridgeportError && err.kind === 'conflict') {
      log(`docker network driver not served: ${err.message} (give --docker-plugin PATH, or "" to say none)`);
      return undefined;
    }
    api.close();
    throw new BridgeportError(`start daemon: --docker-plugin ${path ?? DEFAULT_PLUGIN_SOCKET}: ${err instanceof Error ? err.message : String(err)}`, 'internal', { cause: err });
  }
}

async function waitForSignal(servers: Server[]): Promise<void> {
  await new Promise<void>((resolve) => {
    const stop = (sig: string): void => {
      log(`${sig}: shutting down; containers and rules stay in place`);
      let open = servers.length;
      for (const server of servers) {
        server.close(() => {
          if (--open === 0) resolve();
        });
        server.closeAllConnections();
      }
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

function routes(daemon: Daemon, cni: CniService, info: { reason: string; socket: string }): Router {
  const state = () => daemon.snapshot;
  const r = new Router();
  r.on('GET', '/v1/status', async () => ({
    Version: VERSION,
    Pid: process.pid,
    Datapath: daemon.datapath.name,
    DatapathReason: info.reason,
    DatapathInfo: await daemon.datapath.describe(),
    Uplinks: daemon.config.uplinks,
    StateDir: daemon.config.stateDir,
    RunDir: daemon.config.runDir,
    Socket: info.socket,
    EphemeralPorts: `${daemon.config.ephemeral.low}-${daemon.config.ephemeral.high}`,
    Networks: state().networks.length,
    Containers: state().containers.length,
    PublishedPorts: state().containers.reduce((n, c) => n + c.ports.length, 0),
  }));
  r.on('GET', '/v1/networks', async () => {
    const names = displayNames(state());
    return [...state().networks.map((n) => networkSummary(n, names)), ...PSEUDO_NETWORKS];
  });
  r.on('POST', '/v1/networks', async ({ body }) =>
    inspectNetwork(await daemon.createNetwork(checkBody<CreateNetworkRequest>(body, 'network create', SHAPES.createNetwork)), state()),
  );
  r.on('GET', '/v1/networks/:name', async ({ params }) => inspectNetwork(findNetwork(state(), params.name!), state()));
  r.on('DELETE', '/v1/networks/:name', async ({ params }) => daemon.removeNetwork(params.name!));
  r.on('POST', '/v1/networks/:name/connect', async ({ params, body }) => {
    const b = checkBody<ConnectRequest & { container: string }>(body, 'connect', SHAPES.connect);
    return inspectContainer(await daemon.connect(params.name!, b.container, b), state());
  });
  r.on('POST', '/v1/networks/:name/disconnect', async ({ params, body }) =>
    daemon.disconnect(params.name!, checkBody<{ container: string }>(body, 'disconnect', SHAPES.disconnect).container),
  );
  r.on('GET', '/v1/containers', async () => {
    const names = displayNames(state());
    return Promise.all(state().containers.map((c) => containerSummary(c, state(), names)));
  });
  r.on('POST', '/v1/containers', async ({ body }) =>
    inspectContainer(await daemon.run(checkBody<RunRequest>(body, 'run', SHAPES.run)), state()),
  );
  r.on('GET', '/v1/containers/:name', async ({ params }) => inspectContainer(findContainer(state(), params.name!), state()));
  r.on('DELETE', '/v1/containers/:name', async ({ params, query }) => daemon.remove(params.name!, query.get('force') === 'true'));
  r.on('POST', '/v1/containers/:name/stop', async ({ params }) => daemon.stop(params.name!));
  r.on('POST', '/v1/containers/:name/publish', async ({ params, body }) => daemon.publish(params.name!, checkBody<PublishRequest>(body, 'publish', SHAPES.publish)));
  r.on('POST', '/v1/containers/:name/unpublish', async ({ params, body }) => daemon.unpublish(params.name!, checkBody<PublishRequest>(body, 'unpublish', SHAPES.publish)));
  r.on('GET', '/v1/firewall', async () => state().firewall ?? []);
  r.on('POST', '/v1/firewall/deny', async ({ body }) => daemon.firewallDeny(checkBody<{ cidr: string; port?: string }>(body, 'firewall deny', SHAPES.firewall)));
  r.on('POST', '/v1/firewall/allow', async ({ body }) => daemon.firewallAllow(checkBody<{ cidr: string; port?: string }>(body, 'firewall allow', SHAPES.firewall)));
  r.on('GET', '/v1/stats', async ({ query }) => {
    const name = query.get('container') ?? undefined;
    const records = name === undefined ? undefined : findContainers(state(), name).map((c) => c.name);
    if (records && !records.length) throw notFound(`no such container: ${name}`);
    return statsView(daemon.model(), await daemon.datapath.stats(), records, displayNames(state()));
  });
  // The CNI plugin's relay: the status tells the plugin how to exit, the body is what it prints.
  r.on('POST', '/v1/cni', async ({ body }) => {
    const answer = await cni.handle(body);
    return new Reply(answer.status, answer.body);
  });
  // A Docker container's ports, whichever of its endpoint records holds them.
  r.on('GET', '/v1/containers/:name/ports', async ({ params }) => {
    const records = findContainers(state(), params.name!);
    if (!records.length) throw notFound(`no such container: ${params.name}`);
    return records.flatMap((c) => c.ports);
  });
  return r;
}

/**
 * Counters per container endpoint and per published port, labelled from the
 * model by display names (what `bridgeport stats` reads); `containers`: only
 * these records.
 */
export function statsView(model: DatapathModel, stats: DatapathStats, containers?: string[], names: DisplayNames = { containers: new Map(), networks: new Map() }) {
  const wanted = containers && new Set(containers);
  if (wanted && !model.endpoints.some((e) => wanted.has(e.container)) && !model.ports.some((p) => wanted.has(p.container))) {
    throw notFound(`no such container: ${containers!.join(', ')}`);
  }
  const zero = { packets: 0, bytes: 0 };
  const endpoints = new Map(stats.endpoints.map((e) => [e.hostIf, e]));
  const ports = new Map(stats.ports.map((p) => [`${p.proto}/${p.hostIp}/${p.hostPort}`, p]));
  const mine = <T extends { container: string }>(list: T[]) => list.filter((x) => !wanted || wanted.has(x.container));
  return {
    Time: Date.now(),
    Endpoints: mine(model.endpoints).map((e) => ({
      Container: shown(names.containers, e.container),
      Network: shown(names.networks, e.network),
      Rx: endpoints.get(e.hostIf)?.rx ?? zero,
      Tx: endpoints.get(e.hostIf)?.tx ?? zero,
    })),
    Ports: mine(model.ports).map((p) => {
      const s = ports.get(`${p.proto}/${p.hostIp}/${p.hostPort}`);
      return {
        Container: shown(names.containers, p.container),
        Port: `${p.containerPort}/${p.proto}`,
        Host: `${p.hostIp}:${p.hostPort}`,
        In: s?.in ?? zero,
        Out: s?.out ?? zero,
      };
    }),
  };
}

export { BridgeportError };
