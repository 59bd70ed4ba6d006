import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type {
  ConnectRequest,
  CreateNetworkRequest,
  PublishRequest,
  RunRequest,
} from '../api/types.js';
import type { ApplyChange, Datapath, DatapathModel, DpPort } from '../datapath/datapath.js';
import { publishedPorts, toDatapathModel } from '../datapath/model.js';
import { getLink, ipBatch, listIpv4Addresses, listLinks, listRoutes } from '../host/iproute.js';
import { createNetns, deleteNetns, netnsInode } from '../host/netns.js';
import { createEndpoint, createUnattachedEndpoint, deleteLink, ensureBridge, nextSandboxInterface } from '../host/plumbing.js';
import { isRunning, resolveExecutable, startProcess, stopProcess } from '../host/process.js';
import { hostListeners } from '../host/sockets.js';
import { type Addressing, allocateAddress, planAddressing, type SubnetInUse } from '../ipam/ipam.js';
import { broadcast, cidrContains, cidrContainsCidr, cidrsOverlap, formatCidr, formatIpv4, macFromIpv4, parseCidr, parseInterfaceCidr, parseIpv4 } from '../ipam/ipv4.js';
import { displayNames, recordsShownAs } from '../model/display-names.js';
import { BridgeportError, conflict, invalid, notFound } from '../model/errors.js';
import { type FirewallRule, formatRule, parseFirewallRule, sameRule } from '../model/firewall.js';
import { checkInterfaceName, checkName, RESERVED_NETWORKS } from '../model/names.js';
import {
  bindingsOverlap,
  expandPortSpec,
  formatPortSpec,
  type ExposedPort,
  type PortBinding,
  PortIndex,
  type PortSpec,
  parseExposedPort,
  parsePortSpec,
} from '../model/port-spec.js';
import {
  type ContainerRecord,
  type EndpointOwner,
  type EndpointRecord,
  type NetworkOwner,
  type NetworkRecord,
  type OwnerContainer,
  type PublishedPort,
  type State,
  sandboxRecord,
} from '../model/state.js';
import { renderHostsFile } from './hosts-file.js';
import type { JournalRecord, StateStore } from './state-store.js';
import { Transaction } from './transaction.js';

export interface DaemonConfig {
  stateDir: string;
  runDir: string;
  uplinks: string[];
  /** --bip: the default network's gateway address and prefix. */
  bip: string;
  fixedCidr: string | undefined;
  mtu: number;
  icc: boolean;
  /** --ip: default host address for published ports. */
  defaultHostIp: string;
  ephemeral: { low: number; high: number };
}

export const DEFAULT_NETWORK = 'bridge';
export const DEFAULT_BRIDGE = 'bridgeport0';

const newId = (): string => randomBytes(32).toString('hex');
const now = (): string => new Date().toISOString();

/** Re-labels an error from a lower layer with the operation it failed ("verb noun: cause"). */
function within(op: string, err: unknown): Error {
  if (err instanceof BridgeportError) {
    const message = err.message.startsWith(op) ? err.message : `${op}: ${err.message}`;
    return new BridgeportError(message, err.kind, { cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new BridgeportError(`${op}: ${message}`, 'internal', { cause: err });
}

/**
 * The daemon owns the desired state. Every operation validates fully first,
 * then changes the host (recording undo steps), renders the datapath and
 * persists; a failure anywhere rolls all of it back.
 */
export class Daemon {
  private queue: Promise<unknown> = Promise.resolve();
  /** Every published port of the committed state by host port (built on first use; port operations keep it current). */
  private portIndexOf: PortIndex<PublishedPort> | undefined;
  /** Which container each indexed port is of. */
  private readonly portOwner = new WeakMap<PublishedPort, string>();

  constructor(
    private state: State,
    private readonly store: StateStore,
    readonly datapath: Datapath,
    readonly config: DaemonConfig,
    private readonly log: (msg: string) => void = (m) => console.error(m),
  ) {}

  /** Called after every operation with its duration (metrics). */
  onOperation?: (op: string, seconds: number, ok: boolean) => void;

  get snapshot(): State {
    return this.state;
  }

  model(state: State = this.state): DatapathModel {
    return toDatapathModel(state, this.config.uplinks);
  }

  /** Brings the host in line with the stored state (start-up): default network, bridges, endpoints, rules. */
  async reconcile(): Promise<void> {
    // Binds the socket listing now (sock_diag through libc, tens of ms the first
    // time) so that the first publish does not pay for it.
    await hostListeners();
    await this.transact('start daemon', async (draft, tx) => {
      this.ensureDefaultNetwork(draft);
      for (const n of draft.networks) {
        const { created } = await ensureBridge(bridgeSpec(n));
        if (created) tx.onRollback(() => deleteLink(n.bridge));
      }
      for (const c of [...draft.containers]) {
        if (c.mode !== 'bridge') continue;
        if (frontEndOf(c)) {
          // A front end's endpoint lives in its veth alone (the sandbox is the
          // front end's): one whose veth is gone can carry nothing and is forgotten.
          let alive = 0;
          for (const ep of c.endpoints) if (await getLink(ep.hostIf)) alive++;
          if (alive === 0) {
            this.log(`${frontEndOf(c)} endpoint ${c.name}: its veth ${c.endpoints.map((e) => e.hostIf).join(', ')} is gone; forgotten`);
            draft.containers = draft.containers.filter((x) => x !== c);
          }
          continue;
        }
        if ((await netnsInode(c.sandboxKey)) === undefined) {
          this.log(`container ${c.name}: sandbox ${c.sandboxKey} is gone; its endpoints are dropped`);
          c.endpoints = [];
          continue;
        }
        for (const [i, ep] of c.endpoints.entries()) {
          if (await getLink(ep.hostIf)) continue;
          this.log(`container ${c.name}: re-creating endpoint on ${ep.network}`);
          const net = draft.networks.find((n) => n.name === ep.network)!;
          await deleteLink(ep.sandboxIf, c.sandboxKey).catch(() => undefined);
          await createEndpoint(endpointSpec(net, c, ep, i === 0));
          tx.onRollback(() => deleteLink(ep.hostIf));
        }
      }
    });
  }

  private ensureDefaultNetwork(draft: State): void {
    const { address, cidr } = parseInterfaceCidr(this.config.bip, '--bip');
    if (address === cidr.network || address === broadcast(cidr) || cidr.prefix > 30) {
      throw invalid(`start daemon: --bip ${this.config.bip}: the gateway must be a host address of a /30 or larger subnet`);
    }
    let ipRange = cidr;
    if (this.config.fixedCidr) {
      ipRange = parseCidr(this.config.fixedCidr, '--fixed-cidr');
      if (!cidrContainsCidr(cidr, ipRange)) {
        throw invalid(`start daemon: --fixed-cidr ${formatCidr(ipRange)} is outside --bip subnet ${formatCidr(cidr)}`);
      }
    }
    const wanted: NetworkRecord = {
      id: draft.networks.find((n) => n.isDefault)?.id ?? newId(),
      name: DEFAULT_NETWORK,
      bridge: DEFAULT_BRIDGE,
      subnet: formatCidr(cidr),
      gateway: formatIpv4(address),
      ipRange: formatCidr(ipRange),
      mtu: this.config.mtu,
      icc: this.config.icc,
      masquerade: true,
      internal: false,
      hostBindingIp: undefined,
      isDefault: true,
      options: {},
      created: draft.networks.find((n) => n.isDefault)?.created ?? now(),
    };
    const current = draft.networks.find((n) => n.isDefault);
    if (current) {
      const changed = (['subnet', 'gateway', 'ipRange'] as const).filter((k) => current[k] !== wanted[k]);
      const attached = draft.containers.filter((c) => c.endpoints.some((e) => e.network === current.name));
      if (changed.length && attached.length) {
        throw conflict(
          `start daemon: default network ${changed.map((k) => `${k} ${current[k]} -> ${wanted[k]}`).join(', ')} while containers ${attached.map((c) => c.name).join(', ')} are attached`,
        );
      }
      Object.assign(current, wanted);
    } else {
      const overlap = draft.networks.find((n) => cidrsOverlap(parseCidr(n.subnet), cidr));
      if (overlap) throw conflict(`start daemon: --bip ${this.config.bip} overlaps network ${overlap.name} (${overlap.subnet})`);
      draft.networks.unshift(wanted);
    }
  }

  // --- networks -------------------------------------------------------------

  async createNetwork(req: NetworkSpec): Promise<NetworkRecord> {
    const op = `network create ${req.name}`;
    return this.transact(op, async (draft, tx) => {
      const opts = { ...req };
      const options: Record<string, string> = {};
      const unknown = Object.keys(req.options ?? {}).filter((k) => !NETWORK_OPTIONS.includes(k));
      if (unknown.length) {
        throw invalid(`unsupported network option${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"`).join(', ')} (supported: ${NETWORK_OPTIONS.join(', ')})`);
      }
      for (const [key, value] of Object.entries(req.options ?? {})) {
        options[key] = value;
        switch (key) {
          case 'com.docker.network.bridge.name':
            opts.bridgeName ??= value;
            break;
          case 'com.docker.network.bridge.enable_icc':
            opts.icc ??= parseBool(key, value);
            break;
          case 'com.docker.network.bridge.enable_ip_masquerade':
            opts.masquerade ??= parseBool(key, value);
            break;
          case 'com.docker.network.bridge.host_binding_ipv4':
            opts.hostBindingIp ??= value;
            break;
          case 'com.docker.network.driver.mtu':
            if (!/^[0-9]+$/.test(value)) throw invalid(`invalid value "${value}" for ${key}: must be a number 68-65535`);
            opts.mtu ??= Number(value);
            break;
        }
      }
      checkName('network', req.name);
      if ((RESERVED_NETWORKS as readonly string[]).includes(req.name) || draft.networks.some((n) => n.name === req.name)) {
        throw conflict(`network with name ${req.name} already exists`);
      }
      if (req.owner && draft.networks.some((n) => n.owner?.frontEnd === req.owner!.frontEnd && n.owner.key === req.owner!.key)) {
        throw conflict(`${req.owner.frontEnd} network ${req.owner.key} already exists`);
      }
      const id = newId();
      const bridge = opts.bridgeName ?? `br-${id.slice(0, 12)}`;
      checkInterfaceName(bridge, 'bridge name');
      const owner = draft.networks.find((n) => n.bridge === bridge);
      if (owner) throw conflict(`bridge name ${bridge} is already used by network ${owner.name}`);
      if (await getLink(bridge)) throw conflict(`bridge name ${bridge}: an interface of that name already exists`);
      const mtu = opts.mtu ?? this.config.mtu;
      if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) throw invalid(`invalid mtu ${opts.mtu}: must be 68-65535`);
      if (opts.hostBindingIp !== undefined) parseIpv4(opts.hostBindingIp, 'host binding IP');
      if (opts.internal && opts.masquerade) throw invalid('an internal network has no egress: --masquerade does not apply');
      const routedCidrs = (req.routedCidrs ?? []).map((text) => formatCidr(parseCidr(text, 'routed CIDR')));
      if (routedCidrs.length && opts.internal) throw invalid('an internal network has no traffic in or out: --routed-cidr does not apply');
      if (routedCidrs.length > ROUTED_CIDRS_MAX) throw invalid(`${routedCidrs.length} routed CIDRs: at most ${ROUTED_CIDRS_MAX}`);

      const inUse: SubnetInUse[] = draft.networks.map((n) => ({ name: n.name, cidr: parseCidr(n.subnet) }));
      if (!opts.subnet) inUse.push(...(await this.hostSubnets(draft)));
      const a = planAddressing({ subnet: opts.subnet, gateway: opts.gateway, ipRange: opts.ipRange, inUse });
      const auxAddresses = (req.auxAddresses ?? []).map((text) => {
        const ip = parseIpv4(text, 'aux address');
        if (!cidrContains(a.subnet, ip) || ip === a.subnet.network || ip === broadcast(a.subnet)) {
          throw invalid(`aux address ${text} is not a host address of subnet ${formatCidr(a.subnet)}`);
        }
        return formatIpv4(ip);
      });

      const net: NetworkRecord = {
        id,
        name: req.name,
        bridge,
        subnet: formatCidr(a.subnet),
        gateway: formatIpv4(a.gateway),
        ipRange: formatCidr(a.ipRange),
        mtu,
        icc: opts.icc ?? true,
        masquerade: opts.internal ? false : (opts.masquerade ?? true),
        internal: opts.internal ?? false,
        hostBindingIp: opts.hostBindingIp,
        isDefault: false,
        options,
        ...(auxAddresses.length ? { auxAddresses } : {}),
        ...(routedCidrs.length ? { routedCidrs } : {}),
        ...(req.owner ? { owner: { ...req.owner } } : {}),
        created: now(),
      };
      draft.networks.push(net);
      await ensureBridge(bridgeSpec(net));
      tx.onRollback(() => deleteLink(bridge));
      return net;
    });
  }

  /** Subnets of the host's own routes, which automatic subnet choice must avoid (bridgeport's bridges aside). */
  private async hostSubnets(draft: State): Promise<SubnetInUse[]> {
    const ours = new Set(draft.networks.map((n) => n.bridge));
    const out: SubnetInUse[] = [];
    for (const r of await listRoutes()) {
      if (r.dst === 'default' || (r.dev && ours.has(r.dev))) continue;
      try {
        out.push({ name: `host route via ${r.dev}`, cidr: parseCidr(r.dst.includes('/') ? r.dst : `${r.dst}/32`) });
      } catch {
        // not a plain IPv4 prefix (e.g. broadcast or multicast entries)
      }
    }
    for (const a of await listIpv4Addresses()) {
      if (ours.has(a.ifname) || a.ifname === 'lo') continue;
      const { cidr } = parseInterfaceCidr(`${a.address}/${a.prefix}`);
      out.push({ name: `host interface ${a.ifname}`, cidr });
    }
    return out;
  }

  /** `frontEnd`: the front end asking; a network another front end made is not its to remove. */
  async removeNetwork(name: string, frontEnd?: FrontEnd): Promise<void> {
    await this.transact(`network rm ${name}`, async (draft, tx) => {
      const net = findNetwork(draft, name);
      if (net.isDefault) throw conflict(`${name} is a pre-defined network and cannot be removed`);
      checkOwner(`network ${net.name}`, net.owner?.frontEnd, frontEnd);
      const users = draft.containers.filter((c) => c.endpoints.some((e) => e.network === net.name));
      if (users.length) {
        throw conflict(`network ${name} has active endpoints (${users.map((c) => c.name).join(', ')})`);
      }
      draft.networks = draft.networks.filter((n) => n !== net);
      tx.afterCommit(() => deleteLink(net.bridge));
    });
  }

  // --- containers -----------------------------------------------------------

  async run(req: RunRequest): Promise<ContainerRecord> {
    const name = req.name ?? `bp_${randomBytes(4).toString('hex')}`;
    return this.transact(`run ${name}`, async (draft, tx) => {
      checkName('container', name);
      if (draft.containers.some((c) => c.name === name)) {
        throw conflict(`container name ${name} is already in use`);
      }
      if (!req.cmd.length) throw invalid('no command given: bridgeport run ... -- CMD [ARG...]');
      if (!(await resolveExecutable(req.cmd[0]!))) throw invalid(`executable file not found in $PATH: ${req.cmd[0]}`);
      const hostname = req.hostname ?? '';
      if (hostname && !/^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,62})$/.test(hostname)) throw invalid(`invalid hostname "${hostname}"`);

      const netArg = req.network ?? DEFAULT_NETWORK;
      const id = newId();
      const exposed = (req.expose ?? []).map(parseExposedPort);
      const specs = (req.ports ?? []).map(parsePortSpec);
      const c: ContainerRecord = {
        id,
        name,
        mode: 'bridge',
        sandboxKey: join(this.config.runDir, 'netns', id.slice(0, 12)),
        ownsSandbox: true,
        joined: undefined,
        hostname: hostname || id.slice(0, 12),
        cmd: req.cmd,
        pid: undefined,
        pidStart: undefined,
        logPath: join(this.config.stateDir, 'containers', id, 'output.log'),
        hostsPath: join(this.config.stateDir, 'containers', id, 'hosts'),
        endpoints: [],
        ports: [],
        exposed,
        publishAll: req.publishAll ?? false,
        links: [],
        created: now(),
      };
      let net: NetworkRecord | undefined;
      if (netArg === 'host' || netArg === 'none' || netArg.startsWith('container:')) {
        if (specs.length || c.publishAll) {
          throw invalid(`conflicting options: port publishing and the ${netArg.split(':')[0]} network mode`);
        }
        if (req.ip) throw invalid(`conflicting options: --ip and the ${netArg.split(':')[0]} network mode`);
        if (req.links?.length) throw invalid(`conflicting options: --link and the ${netArg.split(':')[0]} network mode`);
      }
      if (netArg === 'host') {
        c.mode = 'host';
        c.ownsSandbox = false;
        c.sandboxKey = `/proc/${process.pid}/ns/net`;
      } else if (netArg === 'none') {
        c.mode = 'none';
      } else if (netArg.startsWith('container:')) {
        const target = findContainer(draft, netArg.slice('container:'.length));
        c.mode = 'container';
        c.ownsSandbox = false;
        c.joined = target.name;
        c.sandboxKey = target.sandboxKey;
      } else {
        net = findNetwork(draft, netArg);
        checkOwner(`network ${net.name}`, net.owner?.frontEnd, undefined);
        if (req.ip && net.isDefault) throw invalid('user specified IP address is supported on user defined networks only');
        if (net.internal && (specs.length || c.publishAll)) {
          throw invalid(`network ${net.name} is internal: ports cannot be published`);
        }
        const ep = this.allocateEndpoint(draft, net, req.ip, 'eth0');
        c.endpoints.push(ep);
        for (const l of req.links ?? []) c.links.push(this.checkLink(draft, c, l));
        c.ports = await this.expandPorts(net, c, specs);
      }
      draft.containers.push(c);

      await mkdir(join(this.config.stateDir, 'containers', id), { recursive: true });
      tx.onRollback(() => rm(join(this.config.stateDir, 'containers', id), { recursive: true, force: true }));
      if (c.ownsSandbox) {
        await createNetns(c.sandboxKey);
        tx.onRollback(() => deleteNetns(c.sandboxKey));
      }
      if (net) {
        const ep = c.endpoints[0]!;
        await createEndpoint(endpointSpec(net, c, ep, true));
        tx.onRollback(() => deleteLink(ep.hostIf));
      }
      await writeFile(c.hostsPath!, renderHostsFile(c, draft));
      const started = await startProcess({
        sandbox: c.mode === 'host' ? undefined : c.sandboxKey,
        hostsPath: c.hostsPath!,
        hostname: c.mode === 'host' ? '' : c.hostname,
        cmd: c.cmd,
        logPath: c.logPath!,
      });
      c.pid = started.pid;
      c.pidStart = started.start;
      tx.onRollback(() => stopProcess(started.pid, started.start));
      return c;
    });
  }

  private checkLink(draft: State, c: ContainerRecord, spec: string): { name: string; alias: string } {
    const [name, alias = name, extra] = spec.split(':');
    if (!name || extra !== undefined || !alias) throw invalid(`invalid --link "${spec}": use NAME or NAME:ALIAS`);
    const child = draft.containers.find((x) => x.name === name);
    if (!child) throw notFound(`could not get container for link ${name}: no such container`);
    if (!child.endpoints.some((e) => c.endpoints.some((own) => own.network === e.network))) {
      throw invalid(`cannot link to ${name}: it is not on network ${c.endpoints.map((e) => e.network).join(', ')}`);
    }
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(alias)) throw invalid(`invalid --link alias "${alias}"`);
    return { name, alias };
  }

  private allocateEndpoint(draft: State, net: NetworkRecord, ip: string | undefined, sandboxIf: string): EndpointRecord {
    const a: Addressing = {
      subnet: parseCidr(net.subnet),
      gateway: parseIpv4(net.gateway),
      ipRange: parseCidr(net.ipRange),
    };
    const taken = new Set<number>();
    for (const other of draft.containers) {
      for (const e of other.endpoints) if (e.network === net.name) taken.add(parseIpv4(e.ip));
    }
    const addr = allocateAddress(a, taken, ip);
    const usedIfs = new Set(draft.containers.flatMap((x) => x.endpoints.map((e) => e.hostIf)));
    let hostIf: string;
    do hostIf = `veth${randomBytes(4).toString('hex').slice(0, 7)}`;
    while (usedIfs.has(hostIf));
    return {
      network: net.name,
      ip: formatIpv4(addr),
      prefix: a.subnet.prefix,
      gateway: net.gateway,
      mac: macFromIpv4(addr),
      hostIf,
      sandboxIf,
    };
  }

  /**
   * Turns SPECs (and -P) into concrete bindings, checked against every port
   * already published. `reservedByFrontEnd`: the front end holds the host ports itself (podman's
   * conmon binds them before it calls the CNI plugin), so a listener on them
   * is expected rather than a conflict.
   */
  private async expandPorts(net: NetworkRecord, c: ContainerRecord, specs: PortSpec[], o: { reservedByFrontEnd?: boolean } = {}): Promise<PublishedPort[]> {
    const chosen: PublishedPort[] = [];
    // Every port published anywhere (this container's own included; the draft
    // has not changed ports yet), and what is chosen here as it is.
    const taken = new PortIndex<PortBinding>([], this.portIndex);
    const choose = (p: PublishedPort): void => {
      chosen.push(p);
      taken.add(p);
    };
    const listeners = o.reservedByFrontEnd ? [] : await hostListeners();
    const listenerOn = (b: PortBinding): PortBinding | undefined => listeners.find((l) => bindingsOverlap(l, b));
    const isTaken = (proto: PortBinding['proto'], hostIp: string, hostPort: number): boolean =>
      taken.overlaps(proto, hostIp, hostPort) || !!listenerOn({ proto, hostIp, hostPort, containerPort: 0 });
    const defaultHostIp = net.hostBindingIp ?? this.config.defaultHostIp;
    const ctx = { defaultHostIp, ephemeral: this.config.ephemeral, isTaken };
    for (const spec of specs) {
      // A fixed host port a host process already uses: say so rather than "already published".
      if (spec.hostPortStart !== 0 && spec.hostPortStart === spec.hostPortEnd) {
        const wanted = { proto: spec.proto, hostIp: spec.hostIp ?? defaultHostIp, hostPort: spec.hostPortStart, containerPort: 0 };
        const l = listenerOn(wanted);
        if (l) {
          throw conflict(
            `publish ${formatPortSpec(spec)}: host port ${wanted.hostPort}/${wanted.proto} is in use by a process on the host (${l.hostIp}:${l.hostPort})`,
          );
        }
      }
      for (const b of expandPortSpec(spec, ctx)) choose({ ...b, spec: formatPortSpec(spec) });
    }
    if (c.publishAll) {
      const mapped = new Set([...chosen, ...c.ports].map((p) => `${p.proto}/${p.containerPort}`));
      for (const e of c.exposed) {
        for (let port = e.start; port <= e.end; port++) {
          if (mapped.has(`${e.proto}/${port}`)) continue;
          const spec: PortSpec = {
            hostIp: undefined,
            hostPortStart: 0,
            hostPortEnd: 0,
            containerPortStart: port,
            containerPortEnd: port,
            proto: e.proto,
          };
          for (const b of expandPortSpec(spec, ctx)) choose({ ...b, spec: `${port}/${e.proto}` });
          mapped.add(`${e.proto}/${port}`);
        }
      }
    }
    return chosen;
  }

  async remove(name: string, force: boolean): Promise<void> {
    await this.transact(`rm ${name}`, async (draft, tx) => {
      const c = findContainer(draft, name);
      // rm -f is the operator's way out for an endpoint its front end forgot
      // (dockerd removed its container while bridgeport was down).
      if (!force) checkOwner(`container ${c.name}`, frontEndOf(c), undefined);
      const joiners = draft.containers.filter((x) => x.joined === c.name);
      if (joiners.length) {
        throw conflict(`container ${name} is in use by the network namespace of ${joiners.map((x) => x.name).join(', ')}`);
      }
      if (!force && (await isRunning(c.pid, c.pidStart))) {
        throw conflict(`you cannot remove a running container ${name}: stop it first or use rm -f`);
      }
      draft.containers = draft.containers.filter((x) => x !== c);
      tx.afterCommit(() => stopProcess(c.pid, c.pidStart));
      for (const ep of c.endpoints) tx.afterCommit(() => deleteLink(ep.hostIf));
      if (c.ownsSandbox) tx.afterCommit(() => deleteNetns(c.sandboxKey));
      tx.afterCommit(() => rm(join(this.config.stateDir, 'containers', c.id), { recursive: true, force: true }));
    });
  }

  async stop(name: string): Promise<void> {
    await this.transact(`stop ${name}`, async (draft) => {
      const c = findContainer(draft, name);
      checkOwner(`container ${c.name}`, frontEndOf(c), undefined);
      await stopProcess(c.pid, c.pidStart);
    });
  }

  async connect(network: string, name: string, req: ConnectRequest): Promise<ContainerRecord> {
    return this.transact(`connect ${network} ${name}`, async (draft, tx) => {
      const net = findNetwork(draft, network);
      checkOwner(`network ${net.name}`, net.owner?.frontEnd, undefined);
      let c = draft.containers.find((x) => x.name === name);
      if (!c) {
        if (!req.netns) throw notFound(`no such container: ${name} (give --netns PATH to attach another runtime's sandbox)`);
        checkName('container', name);
        if ((await netnsInode(req.netns)) === undefined) {
          throw invalid(`--netns ${req.netns} is not a network namespace (expected /proc/PID/ns/net or /var/run/netns/NAME)`);
        }
        const id = newId();
        c = sandboxRecord({ id, name, sandboxKey: req.netns, hostname: id.slice(0, 12), endpoints: [], created: now() });
        draft.containers.push(c);
      } else if (req.netns) {
        throw conflict(`container ${name} already exists: --netns is only for sandboxes bridgeport does not know yet`);
      }
      checkOwner(`container ${c.name}`, frontEndOf(c), undefined);
      if (c.mode !== 'bridge') throw invalid(`container ${name} uses the ${c.mode} network mode and cannot be connected to a network`);
      if (c.endpoints.some((e) => e.network === net.name)) {
        throw conflict(`endpoint with name ${name} already exists in network ${net.name}`);
      }
      if (req.ip && net.isDefault) throw invalid('user specified IP address is supported on user defined networks only');
      const sandboxIf = await nextSandboxInterface(c.sandboxKey);
      const ep = this.allocateEndpoint(draft, net, req.ip, sandboxIf);
      c.endpoints.push(ep);
      await createEndpoint(endpointSpec(net, c, ep, c.endpoints.length === 1));
      tx.onRollback(() => deleteLink(ep.hostIf));
      if (c.hostsPath) await writeFile(c.hostsPath, renderHostsFile(c, draft));
      return c;
    });
  }

  async disconnect(network: string, name: string): Promise<void> {
    await this.transact(`disconnect ${network} ${name}`, async (draft, tx) => {
      const net = findNetwork(draft, network);
      const c = findContainer(draft, name);
      checkOwner(`container ${c.name}`, frontEndOf(c), undefined);
      const index = c.endpoints.findIndex((e) => e.network === net.name);
      if (index < 0) throw notFound(`container ${name} is not connected to network ${network}`);
      const [ep] = c.endpoints.splice(index, 1);
      tx.afterCommit(() => deleteLink(ep!.hostIf));
      const next = c.endpoints[0];
      if (index === 0 && next) {
        // The default route left with the first endpoint: send it through the next one.
        tx.afterCommit(() => createDefaultRoute(c.sandboxKey, next.gateway, next.sandboxIf));
      }
      if (!c.ownsSandbox && c.mode === 'bridge' && c.endpoints.length === 0 && c.pid === undefined) {
        // A sandbox another runtime made is forgotten with its last endpoint.
        draft.containers = draft.containers.filter((x) => x !== c);
      }
      if (c.hostsPath) tx.afterCommit(() => writeFile(c.hostsPath!, renderHostsFile(c, draft)));
    });
  }

  async publish(name: string, req: PublishRequest): Promise<PublishedPort[]> {
    return this.transactPorts(`publish ${name}`, name, async (state, c) => {
      checkOwner(`container ${c.name}`, frontEndOf(c), undefined);
      const specs = req.ports.map(parsePortSpec);
      const ep = c.endpoints[0];
      if (c.mode !== 'bridge' || !ep) throw invalid(`container ${name} is not on a bridge network: nothing to publish to`);
      const net = findNetwork(state, ep.network);
      if (net.internal) throw invalid(`network ${net.name} is internal: ports cannot be published`);
      const added = await this.expandPorts(net, c, specs);
      return { result: added, added, removed: [] };
    });
  }

  async firewallDeny(req: { cidr: string; port?: string }): Promise<FirewallRule> {
    const rule = parseFirewallRule(req.cidr, req.port);
    return this.transact(`firewall deny ${formatRule(rule)}`, async (draft) => {
      draft.firewall ??= [];
      const rules = draft.firewall;
      if (rules.some((r) => sameRule(r, rule))) throw conflict(`${formatRule(rule)} is already denied`);
      rules.push(rule);
      return rule;
    });
  }

  async firewallAllow(req: { cidr: string; port?: string }): Promise<FirewallRule> {
    const rule = parseFirewallRule(req.cidr, req.port);
    return this.transact(`firewall allow ${formatRule(rule)}`, async (draft) => {
      const rules = draft.firewall ?? [];
      if (!rules.some((r) => sameRule(r, rule))) throw notFound(`${formatRule(rule)} is not denied`);
      draft.firewall = rules.filter((r) => !sameRule(r, rule));
      return rule;
    });
  }

  async unpublish(name: string, req: PublishRequest): Promise<PublishedPort[]> {
    return this.transactPorts(`unpublish ${name}`, name, async (_state, c) => {
      checkOwner(`container ${c.name}`, frontEndOf(c), undefined);
      const removed = new Set<PublishedPort>();
      for (const text of req.ports) {
        const spec = parsePortSpec(text);
        const matches = this.portsMatching(c, spec).filter((p) => !removed.has(p));
        if (!matches.length) throw notFound(`${text} is not published`);
        for (const m of matches) removed.add(m);
      }
      return { result: [...removed], added: [], removed: [...removed] };
    });
  }

  /** c's published ports that `spec` names: looked up by host port when it names few, else by a scan. */
  private portsMatching(c: ContainerRecord, spec: PortSpec): PublishedPort[] {
    const hostPorts = spec.hostPortStart === 0 ? Infinity : spec.hostPortEnd - spec.hostPortStart + 1;
    if (hostPorts > 64) return c.ports.filter((p) => matchesSpec(p, spec));
    const out: PublishedPort[] = [];
    const index = this.portIndex;
    for (let port = spec.hostPortStart; port <= spec.hostPortEnd; port++) {
      for (const p of index.on(spec.proto, port)) if (this.portOwner.get(p) === c.name && matchesSpec(p, spec)) out.push(p);
    }
    return out;
  }

  // --- endpoints of other front ends ---------------------------------------------

  /**
   * An endpoint whose sandbox is not known yet (dockerd's CreateEndpoint): the
   * address and MAC come from the front end's IPAM, the veth pair is made in
   * the daemon's namespace with the container end left beside the bridge for
   * the front end to move, and its published ports are checked and rendered
   * like every other's. Recorded as a container of its own, named `name`,
   * carrying the front end's key.
   */
  async addEndpoint(spec: EndpointSpec): Promise<{ container: ContainerRecord; endpoint: EndpointRecord; network: NetworkRecord }> {
    return this.transact(`create endpoint ${spec.owner.key.slice(0, 12)}`, async (draft, tx) => {
      const net = findNetwork(draft, spec.network);
      checkOwner(`network ${net.name}`, net.owner?.frontEnd, spec.owner.frontEnd);
      checkName('container', spec.name);
      if (draft.containers.some((c) => c.name === spec.name)) throw conflict(`container name ${spec.name} is already in use`);
      if (findOwnedEndpoint(draft, spec.owner.frontEnd, spec.owner.key)) throw conflict(`endpoint ${spec.owner.key} already exists`);
      if ((net.auxAddresses ?? []).includes(spec.ip)) throw conflict(`address ${spec.ip} is an aux address of network ${net.name}`);
      const mac = spec.mac === undefined ? undefined : parseMac(spec.mac);
      const ep = this.allocateEndpoint(draft, net, spec.ip, '');
      ep.sandboxIf = `vc${ep.hostIf.slice('veth'.length)}`;
      if (mac) ep.mac = mac;
      ep.owner = { ...spec.owner };
      // The sandbox is known at Join.
      const c = sandboxRecord({ id: newId(), name: spec.name, sandboxKey: '', hostname: '', endpoints: [ep], exposed: spec.exposed.map((e) => ({ ...e })), created: now() });
      draft.containers.push(c);
      await createUnattachedEndpoint({ bridge: net.bridge, hostIf: ep.hostIf, peerIf: ep.sandboxIf, mac: ep.mac, mtu: net.mtu });
      tx.onRollback(() => deleteLink(ep.hostIf));
      return { container: c, endpoint: ep, network: net };
    });
  }

  /**
   * An endpoint in a sandbox the front end names (a CNI ADD), on a network of
   * bridgeport's own: the veth pair is made with its container end inside
   * `sandbox` (a path the daemon can open for the duration of the call),
   * addressed by bridgeport's IPAM or at `ip`, its ports published, all in
   * one transaction. Recorded as a container of its own, named `name`,
   * carrying the front end's key.
   */
  async attachEndpoint(spec: AttachSpec): Promise<{ container: ContainerRecord; endpoint: EndpointRecord; network: NetworkRecord }> {
    return this.transact(`attach endpoint ${spec.name}`, async (draft, tx) => {
      const net = findNetwork(draft, spec.network);
      checkOwner(`network ${net.name}`, net.owner?.frontEnd, undefined);
      checkName('container', spec.name);
      const held = findOwnedEndpoint(draft, spec.owner.frontEnd, spec.owner.key);
      if (held) throw conflict(`${spec.owner.frontEnd} attachment ${spec.owner.key} already exists (record ${held.name}, sandbox ${held.sandboxKey})`);
      if (draft.containers.some((c) => c.name === spec.name)) throw conflict(`container name ${spec.name} is already in use`);
      if (spec.ip && net.isDefault) throw invalid('user specified IP address is supported on user defined networks only');
      if (net.internal && spec.ports.length) throw invalid(`network ${net.name} is internal: ports cannot be published`);
      const mac = spec.mac === undefined ? undefined : parseMac(spec.mac);
      const ep = this.allocateEndpoint(draft, net, spec.ip, spec.sandboxIf);
      if (mac) ep.mac = mac;
      ep.owner = { ...spec.owner };
      const c = sandboxRecord({ id: newId(), name: spec.name, sandboxKey: spec.sandboxKey, hostname: '', endpoints: [ep], created: now() });
      c.ports = await this.expandPorts(net, c, spec.ports, { reservedByFrontEnd: true });
      draft.containers.push(c);
      await createEndpoint({ ...endpointSpec(net, c, ep, spec.defaultRoute), sandbox: spec.sandbox });
      tx.onRollback(() => deleteLink(ep.hostIf));
      return { container: c, endpoint: ep, network: net };
    });
  }

  /**
   * Forgets a front end's endpoints whose veth pairs are gone (their sandbox
   * was destroyed without a word to bridgeport: a CNI runtime that lost a DEL).
   * Checked and changed as one operation, so that an attachment made again
   * under the same key in the meantime is never taken for the old one.
   */
  async forgetGoneEndpoints(frontEnd: FrontEnd): Promise<string[]> {
    return this.serialize(`forget gone ${frontEnd} endpoints`, async () => {
      const owned = this.state.containers.filter((c) => frontEndOf(c) === frontEnd);
      if (!owned.length) return [];
      const links = new Set((await listLinks()).map((l) => l.ifname));
      const gone = new Set(owned.filter((c) => c.endpoints.every((e) => !links.has(e.hostIf))).map((c) => c.name));
      if (!gone.size) return [];
      await this.commitWhole(`forget gone ${frontEnd} endpoints`, async (draft) => {
        draft.containers = draft.containers.filter((c) => !gone.has(c.name));
      }, true);
      return [...gone];
    });
  }

  /** The front end put the endpoint's container end into `sandboxKey` (dockerd's Join): recorded for restarts and the reconciler. */
  async joinEndpoint(frontEnd: FrontEnd, key: string, sandboxKey: string): Promise<{ endpoint: EndpointRecord; network: NetworkRecord }> {
    return this.transact(`join endpoint ${key.slice(0, 12)}`, async (draft) => {
      const c = findOwnedEndpoint(draft, frontEnd, key);
      if (!c) throw notFound(`endpoint ${key} not found`);
      c.sandboxKey = sandboxKey;
      const endpoint = c.endpoints[0]!;
      return { endpoint, network: findNetwork(draft, endpoint.network) };
    }, { datapath: false });
  }

  /** The front end took the container end out of its sandbox again (dockerd's Leave). */
  async leaveEndpoint(frontEnd: FrontEnd, key: string): Promise<void> {
    await this.transact(`leave endpoint ${key.slice(0, 12)}`, async (draft) => {
      const c = findOwnedEndpoint(draft, frontEnd, key);
      if (!c) throw notFound(`endpoint ${key} not found`);
      c.sandboxKey = '';
    }, { datapath: false });
  }

  /**
   * Publishes an endpoint's ports (dockerd's ProgramExternalConnectivity, sent
   * for the container's gateway endpoint only). An endpoint that has its
   * ports already keeps them: the call is a repeat. An internal network
   * publishes nothing.
   */
  async programEndpoint(frontEnd: FrontEnd, key: string, ports: PortSpec[]): Promise<PublishedPort[]> {
    const c = findOwnedEndpoint(this.state, frontEnd, key);
    if (!c) throw notFound(`endpoint ${key} not found`);
    return this.transactPorts(`program endpoint ${key.slice(0, 12)}`, c.name, async (state, c) => {
      const net = findNetwork(state, c.endpoints[0]!.network);
      if (c.ports.length || net.internal || !ports.length) return { result: c.ports, added: [], removed: [] };
      const added = await this.expandPorts(net, c, ports);
      return { result: added, added, removed: [] };
    });
  }

  /** Unpublishes an endpoint's ports (dockerd's RevokeExternalConnectivity); none, or no such endpoint: nothing to do. */
  async revokeEndpoint(frontEnd: FrontEnd, key: string): Promise<void> {
    const c = findOwnedEndpoint(this.state, frontEnd, key);
    if (!c?.ports.length) return;
    await this.transactPorts(`revoke endpoint ${key.slice(0, 12)}`, c.name, async (_state, c) => ({ result: undefined, added: [], removed: [...c.ports] }));
  }

  /** Removes an endpoint, its veth pair and its published ports; one already gone is no error (the front end may ask again). */
  async deleteEndpoint(frontEnd: FrontEnd, key: string): Promise<void> {
    await this.transact(`delete endpoint ${key.slice(0, 12)}`, async (draft, tx) => {
      const c = findOwnedEndpoint(draft, frontEnd, key);
      if (!c) return;
      draft.containers = draft.containers.filter((x) => x !== c);
      // Deleting the host side takes the container end with it, wherever it is.
      for (const ep of c.endpoints) tx.afterCommit(() => deleteLink(ep.hostIf));
    });
  }

  /**
   * Records the names a front end gives its records (Docker's container and
   * network names, looked up after the fact). They are only shown: nothing
   * the datapath renders changes, so the state is saved without a render, and
   * only the records named anew are copied. Keys no record has any more are
   * skipped.
   */
  async nameOwned(frontEnd: FrontEnd, names: OwnerNames): Promise<void> {
    await this.serialize(`name ${frontEnd} records`, async () => {
      const state = this.state;
      let changed = false;
      const networks = state.networks.map((n) => {
        const name = n.owner?.frontEnd === frontEnd ? names.networks.get(n.owner.key) : undefined;
        if (!n.owner || name === undefined || n.owner.name === name) return n;
        changed = true;
        return { ...n, owner: { ...n.owner, name } };
      });
      const containers = state.containers.map((c) => {
        let renamed = false;
        const endpoints = c.endpoints.map((e) => {
          const container = e.owner?.frontEnd === frontEnd ? names.endpoints.get(e.owner.key) : undefined;
          if (!e.owner || !container || (e.owner.container?.id === container.id && e.owner.container.name === container.name)) return e;
          renamed = true;
          return { ...e, owner: { ...e.owner, container: { ...container } } };
        });
        if (!renamed) return c;
        changed = true;
        return { ...c, endpoints };
      });
      if (!changed) return;
      const next: State = { ...state, networks, containers };
      await this.store.save(next);
      this.state = next;
    });
  }

  // --- plumbing ---------------------------------------------------------------

  private get portIndex(): PortIndex<PublishedPort> {
    if (!this.portIndexOf) {
      this.portIndexOf = new PortIndex();
      for (const c of this.state.containers) this.indexPorts(c.name, c.ports);
    }
    return this.portIndexOf;
  }

  private indexPorts(owner: string, ports: PublishedPort[]): void {
    for (const p of ports) {
      this.portIndexOf?.add(p);
      this.portOwner.set(p, owner);
    }
  }

  /**
   * Runs operations one at a time, in the order they came, and reports each
   * one's duration; errors are re-labelled with the operation.
   */
  private serialize<T>(op: string, task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(async () => {
      const started = process.hrtime.bigint();
      const observe = (ok: boolean) => this.onOperation?.(op, Number(process.hrtime.bigint() - started) / 1e9, ok);
      try {
        const result = await task();
        observe(true);
        return result;
      } catch (err) {
        observe(false);
        throw within(op, err);
      }
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Runs one operation against a draft of the state, serialized with every
   * other operation. The datapath renders the draft and the draft is saved
   * only if every step succeeded; otherwise undo steps run and the datapath is
   * rendered from the unchanged state again. `datapath: false` says the
   * operation changes nothing the datapath model holds (it records where a
   * front end put a sandbox): no render then.
   */
  private transact<T>(op: string, fn: (draft: State, tx: Transaction) => Promise<T>, o: { datapath?: boolean } = {}): Promise<T> {
    return this.serialize(op, () => this.commitWhole(op, fn, o.datapath ?? true));
  }

  private async commitWhole<T>(op: string, fn: (draft: State, tx: Transaction) => Promise<T>, render: boolean): Promise<T> {
    const before = this.state;
    const draft = structuredClone(before);
    const tx = new Transaction();
    try {
      const result = await fn(draft, tx);
      if (render) {
        const oldModel = this.model(before);
        const newModel = this.model(draft);
        await this.datapath.apply(newModel, { publishedUdp: newUdpPorts(oldModel, newModel) } satisfies ApplyChange);
      }
      await this.store.save(draft);
      this.state = draft;
      // The draft's records are copies: the index is made anew from them, now
      // (this operation already costs O(N)) rather than in the next port operation.
      this.portIndexOf = undefined;
      void this.portIndex;
      for (const err of await tx.commit()) this.log(`${op}: clean-up: ${String(err)}`);
      return result;
    } catch (err) {
      for (const undoErr of await tx.rollback()) this.log(`${op}: rollback: ${String(undoErr)}`);
      await this.rerender(op, before);
      throw err;
    }
  }

  /**
   * A change to one container's published ports, at a cost that does not grow
   * with the ports already published where the datapath allows. `fn` only
   * reads the state and says what changes; the datapath renders the change
   * (only the ports that changed, with a datapath's applyPorts), the store
   * appends one journal record, and only then are the container's ports
   * changed in place: no copy of the state or of its N ports. Without
   * applyPorts, or when a link makes the container's ports part of another
   * container's rules (a linked child's published ports are its exposed
   * ports), the datapath renders the whole model.
   */
  private transactPorts<T>(op: string, name: string, fn: (state: State, c: ContainerRecord) => Promise<PortChange<T>>): Promise<T> {
    return this.serialize(op, async () => {
      const state = this.state;
      const c = findContainer(state, name);
      let rendered = false;
      try {
        const { result, added, removed } = await fn(state, c);
        if (!added.length && !removed.length) return result;
        const after = (): State => withPorts(state, c, added, removed);
        const networks = new Map(state.networks.map((n) => [n.name, n]));
        const linkedTo = state.containers.some((x) => x.links.some((l) => l.name === c.name));
        rendered = true;
        if (this.datapath.applyPorts && !linkedTo) {
          await this.datapath.applyPorts({ added: publishedPorts(c, added, networks), removed: publishedPorts(c, removed, networks) });
        } else {
          const publishedUdp = publishedPorts(c, added.filter((p) => p.proto === 'udp'), networks);
          await this.datapath.apply(this.model(after()), { publishedUdp } satisfies ApplyChange);
        }
        const record: JournalRecord = added.length
          ? { publish: { container: c.name, ports: added } }
          : { unpublish: { container: c.name, ports: removed.map(({ proto, hostIp, hostPort, containerPort }) => ({ proto, hostIp, hostPort, containerPort })) } };
        await this.store.append(record, after);
        // Committed: the change itself, in place and all at once (nothing runs between these lines).
        c.ports = changedPorts(c.ports, added, removed);
        for (const p of removed) this.portIndexOf?.remove(p);
        this.indexPorts(c.name, added);
        return result;
      } catch (err) {
        if (rendered) await this.rerender(op, state);
        throw err;
      }
    });
  }

  /** After a failed operation: the datapath rendered from the state it had before. */
  private async rerender(op: string, state: State): Promise<void> {
    try {
      await this.datapath.apply(this.model(state));
    } catch (applyErr) {
      this.log(`${op}: rollback: re-render datapath: ${String(applyErr)}`);
    }
  }
}

/** `state` with c's ports changed, c's record and port list copied: the state itself is unchanged. */
function withPorts(state: State, c: ContainerRecord, added: PublishedPort[], removed: PublishedPort[]): State {
  const copy = { ...c, ports: changedPorts(c.ports.slice(), added, removed) };
  return { ...state, containers: state.containers.map((x) => (x === c ? copy : x)) };
}

/**
 * `ports` without `removed`, with `added` at the end; `ports` itself may be
 * changed. A few removals are spliced out: a filter calls back for every one
 * of 100 000 ports, milliseconds per operation.
 */
function changedPorts(ports: PublishedPort[], added: PublishedPort[], removed: PublishedPort[]): PublishedPort[] {
  let out = ports;
  if (removed.length > 64) {
    const gone = new Set(removed);
    out = out.filter((p) => !gone.has(p));
  } else {
    for (const p of removed) {
      const i = out.indexOf(p);
      if (i >= 0) out.splice(i, 1);
    }
  }
  for (const p of added) out.push(p); // not push(...added): a range can be more ports than a call takes arguments
  return out;
}

/** What a port operation changed, and what it answers. */
interface PortChange<T> {
  result: T;
  added: PublishedPort[];
  removed: PublishedPort[];
}

function newUdpPorts(before: DatapathModel, after: DatapathModel): DpPort[] {
  const key = (p: DpPort): string => `${p.hostIp}:${p.hostPort}->${p.containerIp}:${p.containerPort}`;
  const old = new Set(before.ports.filter((p) => p.proto === 'udp').map(key));
  return after.ports.filter((p) => p.proto === 'udp' && !old.has(key(p)));
}

function matchesSpec(p: PublishedPort, spec: PortSpec): boolean {
  if (p.proto !== spec.proto) return false;
  if (p.containerPort < spec.containerPortStart || p.containerPort > spec.containerPortEnd) return false;
  if (spec.hostIp !== undefined && spec.hostIp !== p.hostIp) return false;
  if (spec.hostPortStart !== 0 && (p.hostPort < spec.hostPortStart || p.hostPort > spec.hostPortEnd)) return false;
  return true;
}

/** The front ends besides bridgeport's own API (whose records have no owner). */
export type FrontEnd = EndpointOwner['frontEnd'];

/** A network and what the core must know of it, as any front end asks for it. */
export interface NetworkSpec extends CreateNetworkRequest {
  /** Addresses the front end's IPAM keeps out of use. */
  auxAddresses?: string[];
  owner?: NetworkOwner;
}

/** Names a front end gives its records, by its own keys (see Daemon.nameOwned). */
export interface OwnerNames {
  /** Network key → the front end's name of the network. */
  networks: Map<string, string>;
  /** Endpoint key → the container the front end attached it to. */
  endpoints: Map<string, OwnerContainer>;
}

/** An endpoint a front end made, addressed by the front end's IPAM, before its sandbox exists. */
export interface EndpointSpec {
  /** Network name or ID. */
  network: string;
  /** Name of the record that holds it. */
  name: string;
  owner: EndpointOwner;
  ip: string;
  /** Derived from the address when absent. */
  mac?: string;
  exposed: ExposedPort[];
}

/** An endpoint in a sandbox a front end made and names (a CNI ADD). */
export interface AttachSpec {
  /** Network name or ID. */
  network: string;
  /** Name of the record that holds it. */
  name: string;
  owner: EndpointOwner;
  /** Where the daemon opens the sandbox during the call (e.g. /proc/PID/fd/N of the front end's process). */
  sandbox: string;
  /** The front end's name of the sandbox, recorded and shown. */
  sandboxKey: string;
  /** The interface name inside the sandbox. */
  sandboxIf: string;
  ip?: string;
  mac?: string;
  /** Route the sandbox's default traffic through this endpoint's gateway. */
  defaultRoute: boolean;
  ports: PortSpec[];
}

/** Routed CIDRs a network may have (the eBPF datapath's map entry holds that many). */
export const ROUTED_CIDRS_MAX = 4;

/** Docker's -o options a network takes. */
const NETWORK_OPTIONS = [
  'com.docker.network.bridge.name',
  'com.docker.network.bridge.enable_icc',
  'com.docker.network.bridge.enable_ip_masquerade',
  'com.docker.network.bridge.host_binding_ipv4',
  'com.docker.network.driver.mtu',
];

/** The front end whose endpoint a container record holds; undefined for bridgeport's own. */
export function frontEndOf(c: ContainerRecord): FrontEnd | undefined {
  return c.endpoints.find((e) => e.owner)?.owner?.frontEnd;
}

/** Records another front end made are changed only through it, so that its view and bridgeport's never part. */
function checkOwner(what: string, owner: FrontEnd | undefined, asker: FrontEnd | undefined): void {
  if (owner === asker) return;
  if (owner) throw conflict(`${what} is managed by ${owner}: change it through ${owner}`);
  throw conflict(`${what} is not managed by ${asker}`);
}

export function findOwnedEndpoint(state: State, frontEnd: FrontEnd, key: string): ContainerRecord | undefined {
  return state.containers.find((c) => c.endpoints.some((e) => e.owner?.frontEnd === frontEnd && e.owner.key === key));
}

export function findOwnedNetwork(state: State, frontEnd: FrontEnd, key: string): NetworkRecord | undefined {
  return state.networks.find((n) => n.owner?.frontEnd === frontEnd && n.owner.key === key);
}

/** A unicast MAC address, in the lower-case form ip prints. */
function parseMac(text: string): string {
  const mac = text.toLowerCase();
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(mac)) throw invalid(`invalid MAC address "${text}"`);
  if (Number.parseInt(mac.slice(0, 2), 16) & 1) throw invalid(`invalid MAC address "${text}": a multicast address`);
  if (mac === '00:00:00:00:00:00') throw invalid(`invalid MAC address "${text}"`);
  return mac;
}

function parseBool(key: string, value: string): boolean {
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw invalid(`invalid value "${value}" for ${key}: use true or false`);
}

/** A network by record name or ID, else by the name its front end gives it (a Docker network's name). */
export function findNetwork(state: State, name: string): NetworkRecord {
  const n = state.networks.find((x) => x.name === name || x.id === name || (name.length >= 12 && x.id.startsWith(name)));
  if (n) return n;
  const named = recordsShownAs(displayNames(state).networks, name);
  if (named.length > 1) throw conflict(`network name ${name} is shared by records ${named.join(', ')}: name one of them`);
  if (!named.length) throw notFound(`network ${name} not found`);
  return state.networks.find((x) => x.name === named[0])!;
}

/**
 * The records `name` names: the one of that record name or ID, else every
 * record its front end names so (a Docker container on two bridgeport
 * networks has a record per endpoint); none when nothing is called so.
 */
export function findContainers(state: State, name: string): ContainerRecord[] {
  const c = state.containers.find((x) => x.name === name || x.id === name || (name.length >= 12 && x.id.startsWith(name)));
  if (c) return [c];
  const named = new Set(recordsShownAs(displayNames(state).containers, name));
  return state.containers.filter((x) => named.has(x.name));
}

export function findContainer(state: State, name: string): ContainerRecord {
  const found = findContainers(state, name);
  if (found.length > 1) {
    const records = found.map((c) => `${c.name} (network ${c.endpoints.map((e) => e.network).join(', ')})`);
    throw conflict(`container ${name} has several endpoint records, ${records.join(', ')}: name one of them`);
  }
  if (!found.length) throw notFound(`no such container: ${name}`);
  return found[0]!;
}

const bridgeSpec = (n: NetworkRecord) => ({
  name: n.bridge,
  gateway: n.gateway,
  prefix: parseCidr(n.subnet).prefix,
  mtu: n.mtu,
});

const endpointSpec = (n: NetworkRecord, c: ContainerRecord, ep: EndpointRecord, defaultRoute: boolean) => ({
  bridge: n.bridge,
  hostIf: ep.hostIf,
  sandbox: c.sandboxKey,
  sandboxIf: ep.sandboxIf,
  mac: ep.mac,
  ip: ep.ip,
  prefix: ep.prefix,
  gateway: ep.gateway,
  mtu: n.mtu,
  defaultRoute,
});

async function createDefaultRoute(sandbox: string, gateway: string, dev: string): Promise<void> {
  await ipBatch([`route replace default via ${gateway} dev ${dev}`], sandbox);
}
