import { readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { type Daemon, findOwnedEndpoint } from '../daemon/daemon.js';
import { getLink, listLinksAndIpv4 } from '../host/iproute.js';
import { BridgeportError } from '../model/errors.js';
import type { ContainerRecord, NetworkRecord } from '../model/state.js';
import {
  addResult,
  CNI_ERR,
  type CniCall,
  CniError,
  callerVersion,
  checkContainerId,
  checkIfname,
  errorResult,
  type NetConf,
  parseArgs,
  parseCall,
  parseConfig,
  portMappings,
  staticIp,
  staticMac,
  SUPPORTED_VERSIONS,
} from './protocol.js';

/**
 * The daemon side of the CNI plugin: each verb the plugin executable relays
 * (POST /v1/cni) becomes core operations on the same state as every other
 * front end's, and the answer goes back in the caller's spec version. An
 * attachment is a container record of its own whose endpoint carries the
 * owner key CONTAINERID/IFNAME and the runtime's network name.
 *
 * Besides the verbs: DELs the plugin queued while the daemon was down are
 * done at start and then periodically, and attachments whose veth is gone
 * (the runtime destroyed the sandbox without a DEL; no runtime here calls
 * GC) are forgotten.
 */
export interface CniAnswer {
  /** 200 with a result, 204 with none, 400 with a CNI error object. */
  status: number;
  body?: unknown;
}

export class CniService {
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;

  constructor(
    private readonly daemon: Daemon,
    /** Where the plugin queues DELs while the daemon is down: cni-pending beside the API socket. */
    readonly queueDir: string,
    private readonly log: (msg: string) => void,
  ) {}

  async handle(body: unknown): Promise<CniAnswer> {
    let version = '1.1.0';
    try {
      const call = parseCall(body);
      version = callerVersion(call.config);
      const result = await this.dispatch(call);
      return result === undefined ? { status: 204 } : { status: 200, body: result };
    } catch (err) {
      const e = toCniError(err);
      return { status: 400, body: errorResult(version, e) };
    }
  }

  private async dispatch(call: CniCall): Promise<unknown> {
    switch (call.command) {
      case 'VERSION':
        return { cniVersion: callerVersion(call.config), supportedVersions: [...SUPPORTED_VERSIONS] };
      case 'ADD':
        return this.add(call, parseConfig(call.config));
      case 'DEL':
        return this.del(call, parseConfig(call.config));
      case 'CHECK':
        return this.check(call, parseConfig(call.config));
      case 'STATUS':
        parseConfig(call.config);
        return undefined;
      case 'GC':
        return this.gc(parseConfig(call.config));
      default:
        throw new CniError(CNI_ERR.INVALID_ENV, `unknown CNI_COMMAND "${call.command}": use ADD, DEL, CHECK, VERSION, STATUS or GC`);
    }
  }

  private async add(call: CniCall, conf: NetConf): Promise<unknown> {
    checkContainerId(call.containerId);
    checkIfname(call.ifname);
    if (!call.netns) throw new CniError(CNI_ERR.INVALID_ENV, 'ADD: CNI_NETNS is not set');
    if (!call.netnsFd) throw new CniError(CNI_ERR.UNKNOWN_CONTAINER, `ADD: cannot open CNI_NETNS ${call.netns}: ${call.netnsError || 'not opened by the plugin'}`);
    const args = parseArgs(call.args);
    const ports = portMappings(conf.runtimeConfig);
    const ip = staticIp(conf.runtimeConfig, args);
    const mac = staticMac(conf.runtimeConfig, args);
    const net = await this.network(conf);
    const key = attachmentKey(call);
    // The same attachment again: refused while it lives; one whose sandbox went
    // away without a DEL (not yet swept) is forgotten first, so the runtime's
    // next start of the container is not refused for it.
    if (findOwnedEndpoint(this.daemon.snapshot, 'cni', key)) await this.forgetGone();
    const state = this.daemon.snapshot;
    // The sandbox's first attachment routes its default traffic (podman attaches eth0 first).
    const first = !state.containers.some((c) => c.endpoints.some((e) => e.owner?.frontEnd === 'cni' && e.owner.container?.id === call.containerId));
    const { endpoint } = await this.daemon.attachEndpoint({
      network: net.name,
      name: `cni-${call.containerId}-${call.ifname}`,
      owner: { frontEnd: 'cni', key, network: conf.name, container: { id: call.containerId, name: args.podName || call.containerId.slice(0, 12) } },
      sandbox: call.netnsFd,
      sandboxKey: call.netns,
      sandboxIf: call.ifname,
      ...(ip ? { ip } : {}),
      ...(mac ? { mac } : {}),
      defaultRoute: first && !net.internal,
      ports,
    });
    return addResult(conf.cniVersion, {
      ifname: call.ifname,
      mac: endpoint.mac,
      sandbox: call.netns,
      ip: endpoint.ip,
      prefix: endpoint.prefix,
      gateway: endpoint.gateway,
      defaultRoute: first && !net.internal,
      mtu: net.mtu,
    });
  }

  /** The network the configuration names, created with its options when absent (parallel ADDs may race to make it). */
  private async network(conf: NetConf): Promise<NetworkRecord> {
    const existing = this.daemon.snapshot.networks.find((n) => n.name === conf.network);
    if (existing) return existing;
    try {
      return await this.daemon.createNetwork({ name: conf.network, ...conf.create });
    } catch (err) {
      const made = this.daemon.snapshot.networks.find((n) => n.name === conf.network);
      if (made) return made;
      throw err;
    }
  }

  /** Idempotent: no attachment (never made, already removed, or the daemon forgot it) is success. */
  private async del(call: CniCall, conf: NetConf): Promise<undefined> {
    checkContainerId(call.containerId);
    checkIfname(call.ifname);
    const c = this.attachment(call, conf);
    if (c) await this.daemon.deleteEndpoint('cni', attachmentKey(call));
    return undefined;
  }

  /** Is the attachment as ADD made it: the record, its veth on the bridge, the sandbox's interface and address? */
  private async check(call: CniCall, conf: NetConf): Promise<undefined> {
    checkContainerId(call.containerId);
    checkIfname(call.ifname);
    const c = this.attachment(call, conf);
    if (!c) throw new CniError(CNI_ERR.UNKNOWN_CONTAINER, `CHECK: no attachment of container ${call.containerId} as ${call.ifname} on network ${conf.name}`);
    const ep = c.endpoints[0]!;
    const net = this.daemon.snapshot.networks.find((n) => n.name === ep.network);
    const fail = (what: string) => new CniError(CNI_ERR.CHECK_FAILED, `CHECK ${call.containerId.slice(0, 12)} ${call.ifname}: ${what}`);
    if (!net) throw fail(`network ${ep.network} is gone`);
    const host = await getLink(ep.hostIf);
    if (!host) throw fail(`host interface ${ep.hostIf} is gone`);
    if (host.master !== net.bridge) throw fail(`host interface ${ep.hostIf} is not on bridge ${net.bridge}`);
    if (!call.netnsFd) throw fail(`cannot open CNI_NETNS ${call.netns}: ${call.netnsError || 'not given'}`);
    const inside = await listLinksAndIpv4(call.netnsFd);
    const link = inside.links.find((l) => l.ifname === call.ifname);
    if (!link) throw fail(`interface ${call.ifname} is missing in the sandbox`);
    if (link.address !== ep.mac) throw fail(`interface ${call.ifname} has MAC ${link.address}, not ${ep.mac}`);
    if (!inside.addresses.some((a) => a.ifname === call.ifname && a.address === ep.ip && a.prefix === ep.prefix)) {
      throw fail(`interface ${call.ifname} lacks address ${ep.ip}/${ep.prefix}`);
    }
    const prev = conf.prevResult as { ips?: { address?: string }[] } | undefined;
    if (prev?.ips && !prev.ips.some((x) => x.address === `${ep.ip}/${ep.prefix}`)) {
      throw fail(`prevResult does not list ${ep.ip}/${ep.prefix}`);
    }
    return undefined;
  }

  /** Removes this network's attachments the runtime no longer has (never concurrent with its ADD and DEL, says the spec). */
  private async gc(conf: NetConf): Promise<undefined> {
    if (!conf.validAttachments) throw new CniError(CNI_ERR.INVALID_CONFIG, 'GC: cni.dev/valid-attachments is missing');
    const valid = new Set(conf.validAttachments.map((a) => `${a.containerId}/${a.ifname}`));
    const stale = this.daemon.snapshot.containers
      .flatMap((c) => c.endpoints)
      .filter((e) => e.owner?.frontEnd === 'cni' && e.owner.network === conf.name && !valid.has(e.owner.key));
    for (const e of stale) {
      this.log(`cni: GC of network ${conf.name}: attachment ${e.owner!.key} removed`);
      await this.daemon.deleteEndpoint('cni', e.owner!.key);
    }
    return undefined;
  }

  private attachment(call: CniCall, conf: NetConf): ContainerRecord | undefined {
    const c = findOwnedEndpoint(this.daemon.snapshot, 'cni', attachmentKey(call));
    return c?.endpoints[0]?.owner?.network === conf.name ? c : undefined;
  }

  /** DELs the plugin queued while the daemon was down, oldest first; each is tried once, like a runtime's. */
  async drainQueue(): Promise<void> {
    let files: string[];
    try {
      files = (await readdir(this.queueDir)).filter((f) => /^del-.*\.json$/.test(f)).sort();
    } catch {
      return;
    }
    for (const f of files) {
      const path = join(this.queueDir, f);
      try {
        const body = JSON.parse(await readFile(path, 'utf8')) as unknown;
        const answer = await this.handle(body);
        const call = body as { containerId?: string; ifname?: string };
        if (answer.status >= 300) this.log(`cni: queued DEL ${f} failed: ${JSON.stringify(answer.body)}`);
        else this.log(`cni: queued DEL of ${String(call.containerId).slice(0, 12)} ${call.ifname} done`);
      } catch (err) {
        this.log(`cni: queued DEL ${f}: ${String(err)}`);
      }
      await unlink(path).catch(() => undefined);
    }
  }

  /** Attachments whose veth is gone (the sandbox destroyed without a DEL), forgotten and said so. */
  private async forgetGone(): Promise<void> {
    for (const name of await this.daemon.forgetGoneEndpoints('cni')) {
      this.log(`cni: attachment ${name}: its veth is gone (sandbox destroyed without DEL); forgotten`);
    }
  }

  /** One pass: queued DELs, then attachments whose sandbox went away. */
  async sweep(): Promise<void> {
    this.sweeping ??= (async () => {
      try {
        await this.drainQueue();
        await this.forgetGone();
      } catch (err) {
        this.log(`cni: sweep: ${String(err)}`);
      } finally {
        this.sweeping = undefined;
      }
    })();
    return this.sweeping;
  }

  start(intervalS: number): void {
    void this.sweep();
    if (intervalS > 0) this.timer = setInterval(() => void this.sweep(), intervalS * 1000);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}

const attachmentKey = (call: CniCall): string => `${call.containerId}/${call.ifname}`;

/** What the core refused, as a CNI error: the message stays the core's ("verb noun: cause"). */
function toCniError(err: unknown): CniError {
  if (err instanceof CniError) return err;
  if (err instanceof BridgeportError) return new CniError(err.kind === 'unavailable' ? CNI_ERR.TRY_AGAIN : CNI_ERR.REFUSED, err.message);
  return new CniError(CNI_ERR.IO, err instanceof Error ? err.message : String(err));
}
