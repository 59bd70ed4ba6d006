import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../../host/exec.js';
import { listLinks, listLinksAndIpv4 } from '../../host/iproute.js';
import { readSysctl, writeSysctl } from '../../host/sysctl.js';
import type { ApplyChange, Counter, Datapath, DatapathModel, DatapathStats, PortsChange } from '../datapath.js';
import {
  ABI_VERSION,
  CT_MASQUERADE,
  CT_PUBLISHED,
  CT_REPLY,
  DIR_IN,
  DIR_OUT,
  DROP_REASONS,
  decodeEpoch,
  decodeMeta,
  decodePortStatsKey,
  decodePublishedKey,
  decodePublishedValue,
  decodeStatsKey,
  encodeEpoch,
  encodeMeta,
  encodePublishedKey,
  encodePublishedValue,
  encodeSettings,
  encodeStatsKey,
  encodeU32,
  PROTO_NAME,
  sumCounters,
  XDP_DROP,
  XDP_PASS,
} from './abi.js';
import { type ConntrackTimeouts, CtTable, DEFAULT_TIMEOUTS, expiredEntries } from './conntrack-gc.js';
import {
  attachTc,
  attachXdp,
  BpfLink,
  BpfMap,
  BpfObject,
  BpfProgram,
  detachTc,
  detachXdp,
  isBpffs,
  isCgroup2,
  MAP_TYPE,
  netnsCookie,
  queryTc,
  queryXdp,
} from './handles.js';
import { layoutHash } from './layout.js';
import { OBJECT_DIR } from './objects.js';
import { checkSupported, type Entries, type HostFacts, POLICY_MAPS, type PortTargets, renderMaps, renderPorts } from './render.js';

/** tc filter identity of bridgeport's programs (clsact, ingress). */
const TC = { handle: 0xb9, priority: 1 } as const;

const PROGRAMS = {
  uplink: { object: 'tc_uplink', program: 'bp_uplink_ingress' },
  uplinkPrefilter: { object: 'tc_uplink', program: 'bp_uplink_ingress_prefilter' },
  endpoint: { object: 'tc_endpoint', program: 'bp_endpoint_ingress' },
  endpointEgress: { object: 'tc_endpoint', program: 'bp_endpoint_egress' },
  prefilter: { object: 'xdp_prefilter', program: 'bp_prefilter' },
  prefilterGeneric: { object: 'xdp_prefilter', program: 'bp_prefilter_generic' },
  connect4: { object: 'sock', program: 'bp_connect4' },
  sendmsg4: { object: 'sock', program: 'bp_sendmsg4' },
  recvmsg4: { object: 'sock', program: 'bp_recvmsg4' },
} as const;
type ProgramName = keyof typeof PROGRAMS;

/** Entries per bpf_map_lookup_batch call when the conntrack table is read. */
const CT_DUMP_CHUNK = 4096;

/** `--xdp-mode`: where the uplinks' deny-list prefilter runs. */
export type XdpMode = 'auto' | 'native' | 'generic' | 'tc';

const CGROUP_HOOKS = [
  ['connect4', 'cgroup_inet4_connect'],
  ['sendmsg4', 'cgroup_udp4_sendmsg'],
  ['recvmsg4', 'cgroup_udp4_recvmsg'],
] as const;

export interface EbpfOptions {
  runDir: string;
  /** Per-instance bpffs folder (default: <run dir>/bpf, a bpffs mounted there if needed). */
  bpfDir?: string;
  /** Masquerade ports, reserved from the host's own sockets. */
  snatPorts: { low: number; high: number };
  timeouts?: ConntrackTimeouts;
  /** Seconds between conntrack GC runs. */
  gcIntervalS?: number;
  /** Where the deny list runs on an uplink (see attachUplinks). */
  xdpMode?: XdpMode;
  log: (msg: string) => void;
}

/** What the instance changed outside bpffs, so --cleanup can put it back. */
interface Undo {
  reservedPorts?: string;
  mountedBpffs?: string;
  mountedCgroup?: string;
  /** Build identity (object + settings) of the programs pinned, per object. */
  builds?: Record<string, string>;
}

/**
 * The eBPF datapath: tc programs on the uplinks and on every endpoint's
 * host-side veth, XDP on the uplinks, cgroup socket hooks for host processes,
 * all driven by pinned maps rendered from the model.
 */
export class EbpfDatapath implements Datapath {
  readonly name = 'ebpf' as const;
  private readonly bpfDir: string;
  private readonly maps = new Map<string, BpfMap>();
  private readonly programs = new Map<ProgramName, BpfProgram>();
  private readonly mirror = new Map<string, Entries>();
  private gcTimer: NodeJS.Timeout | undefined;
  private uplinks: string[] = [];
  private bridges = new Set<string>();
  /** Host ifindexes of endpoints and networks counted in the stats maps (at the last apply). */
  private statsIds = { endpoints: new Set<number>(), networks: new Set<number>() };
  private ifnames = new Map<number, string>();
  private bridgeOfIp = new Map<string, string>();
  private xdpModes: Record<string, string> = {};
  /** Where each endpoint's published ports go, as of the last apply (for applyPorts). */
  private targets: PortTargets = new Map();
  /** "ifindex/direction" → program id of the tc filters this process attached (saves a netlink query per apply). */
  private readonly tcAttached = new Map<string, number>();
  private gcRuns = 0;
  /** Where ctTable() reads the conntrack table to, kept between walks. */
  private ctBuffers: { keys: Buffer; values: Buffer } | undefined;
  private gcDeleted = 0;
  /** The last walk: entries read, deleted, how long it took (ms) and the daemon's CPU time meanwhile (ms). */
  private gcLast: { entries: number; deleted: number; ms: number; cpuMs: number } | undefined;

  constructor(private readonly opts: EbpfOptions) {
    this.bpfDir = opts.bpfDir ?? join(opts.runDir, 'bpf');
  }

  private get undoFile(): string {
    return join(this.opts.runDir, 'ebpf-undo.json');
  }

  /** Loads the objects (re-adopting pinned maps), attaches the hooks that do not depend on the model. */
  async start(): Promise<void> {
    const undo = await this.readUndo();
    await mkdir(this.bpfDir, { recursive: true, mode: 0o700 });
    if (!isBpffs(this.bpfDir)) {
      await run('mount', ['-t', 'bpf', 'bpf', this.bpfDir]);
      undo.mountedBpffs = this.bpfDir;
      await this.writeUndo(undo);
    }
    const pinDir = join(this.bpfDir, 'maps');
    await mkdir(pinDir, { recursive: true });
    await mkdir(join(this.bpfDir, 'progs'), { recursive: true });
    await mkdir(join(this.bpfDir, 'links'), { recursive: true });

    const hash = layoutHash(join(OBJECT_DIR, 'tc_endpoint.o'));
    const metaPin = join(pinDir, 'bp_meta');
    if (existsSync(metaPin)) {
      const { BpfMap: MapHandle } = await import('./handles.js');
      const meta = MapHandle.fromPin(metaPin);
      try {
        const found = decodeMeta(meta.lookup(encodeU32(0)) ?? Buffer.alloc(8));
        if (found.abiVersion !== 0 && (found.abiVersion !== ABI_VERSION || found.layoutHash !== hash)) {
          throw new Error(
            `start eBPF datapath: the maps pinned in ${pinDir} have another layout (ABI ${found.abiVersion}, layout ${found.layoutHash.toString(16)}; this build: ABI ${ABI_VERSION}, layout ${hash.toString(16)}); run \`bridgeport daemon --cleanup\` with the version that created them, or remove ${pinDir}`,
          );
        }
      } finally {
        meta.close();
      }
    }

    // Masquerade ports are reserved so the host's own sockets never take one.
    const { low, high } = this.opts.snatPorts;
    const before = await readSysctl('net.ipv4.ip_local_reserved_ports');
    const range = `${low}-${high}`;
    if (!before.split(',').includes(range)) {
      if (undo.reservedPorts === undefined) undo.reservedPorts = before;
      await writeSysctl('net.ipv4.ip_local_reserved_ports', before ? `${before},${range}` : range);
      await this.writeUndo(undo);
    }

    const settings = encodeSettings({ netnsCookie: netnsCookie(), snatPortFirst: low, snatPortLast: high, flags: 0 });
    // Programs of an unchanged build (same object, same settings) are re-adopted
    // from their pins, so a restart leaves every attachment exactly as it was.
    const builds: Record<string, string> = {};
    for (const { object } of Object.values(PROGRAMS)) {
      builds[object] ??= createHash('sha256')
        .update(await readFile(join(OBJECT_DIR, `${object}.o`)))
        .update(settings)
        .digest('hex')
        .slice(0, 16);
    }
    const entries = Object.entries(PROGRAMS) as [ProgramName, (typeof PROGRAMS)[ProgramName]][];
    const progPin = (name: string): string => join(this.bpfDir, 'progs', name);
    const adoptable = (object: string): boolean =>
      undo.builds?.[object] === builds[object] && entries.every(([name, p]) => p.object !== object || existsSync(progPin(name)));
    const objects = new Map<string, BpfObject>();
    try {
      for (const [name, { object, program }] of entries) {
        const pin = progPin(name);
        if (!adoptable(object)) {
          let obj = objects.get(object);
          if (!obj) {
            obj = BpfObject.open(join(OBJECT_DIR, `${object}.o`), { pinDir, rodata: settings });
            objects.set(object, obj);
            obj.load();
          }
          // Pinned, so a later daemon (or --cleanup) finds what is attached.
          await rm(pin, { force: true });
          obj.program(program).pin(pin);
        }
        this.programs.set(name, BpfProgram.fromPin(pin));
      }
    } finally {
      for (const obj of objects.values()) obj.close();
    }
    undo.builds = builds;
    await this.writeUndo(undo);
    for (const name of await readdir(pinDir)) this.maps.set(name, BpfMap.fromPin(join(pinDir, name)));
    this.map('bp_meta').update(encodeU32(0), encodeMeta(ABI_VERSION, hash));

    // Socket hooks on the cgroup v2 root: links pinned here outlive the daemon and
    // are updated in place on restart, so host processes never see a gap.
    const cgroup = await this.cgroupRoot(undo);
    for (const [prog, attach] of CGROUP_HOOKS) {
      const pin = join(this.bpfDir, 'links', prog);
      const program = this.programs.get(prog)!;
      if (existsSync(pin)) {
        const link = BpfLink.fromPin(pin);
        try {
          link.update(program);
        } finally {
          link.close();
        }
      } else {
        const link = BpfLink.createCgroup(program, cgroup, attach);
        try {
          link.pin(pin);
        } finally {
          link.close();
        }
      }
    }

    this.mirrorFromMaps();
    const interval = (this.opts.gcIntervalS ?? 10) * 1000;
    this.gcTimer = setInterval(() => this.collectGarbage(), interval);
    this.gcTimer.unref();
  }

  /** Stops the GC; programs and maps stay, traffic keeps flowing. */
  close(): void {
    if (this.gcTimer) clearInterval(this.gcTimer);
    for (const p of this.programs.values()) p.close();
    for (const m of this.maps.values()) m.close();
    this.programs.clear();
    this.maps.clear();
  }

  private map(name: string): BpfMap {
    const m = this.maps.get(name);
    if (!m) throw new Error(`eBPF datapath: map ${name} is not loaded`);
    return m;
  }

  private async cgroupRoot(undo: Undo): Promise<string> {
    const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
    for (const line of mountinfo.split('\n')) {
      const [pre, post] = line.split(' - ');
      if (post?.startsWith('cgroup2 ')) {
        const mountPoint = pre?.split(' ')[4];
        if (mountPoint && isCgroup2(mountPoint)) return mountPoint;
      }
    }
    const dir = join(this.opts.runDir, 'cgroup2');
    await mkdir(dir, { recursive: true });
    await run('mount', ['-t', 'cgroup2', 'none', dir]);
    undo.mountedCgroup = dir;
    await this.writeUndo(undo);
    return dir;
  }

  private async readUndo(): Promise<Undo> {
    try {
      return JSON.parse(await readFile(this.undoFile, 'utf8')) as Undo;
    } catch {
      return {};
    }
  }

  private async writeUndo(undo: Undo): Promise<void> {
    await mkdir(this.opts.runDir, { recursive: true });
    await writeFile(this.undoFile, JSON.stringify(undo));
  }

  // --- apply --------------------------------------------------------------------

  private async hostFacts(): Promise<HostFacts> {
    const host = await listLinksAndIpv4();
    const links: HostFacts['links'] = new Map();
    for (const l of host.links) links.set(l.ifname, { ifindex: l.ifindex, mac: l.address, kind: l.linkinfo?.info_kind });
    return { links, addresses: host.addresses.map((a) => ({ ifname: a.ifname, address: a.address })) };
  }

  async apply(model: DatapathModel, _change?: ApplyChange): Promise<void> {
    checkSupported(model.ports);
    const facts = await this.hostFacts();
    // A removed network's bridge is deleted after this apply: its gateway is no longer ours.
    const bridges = new Set(model.networks.map((n) => n.bridge));
    const removed = new Set([...this.bridges].filter((b) => !bridges.has(b)));
    facts.addresses = facts.addresses.filter((a) => !removed.has(a.ifname));
    this.bridges = bridges;
    const want = renderMaps(model, facts);

    // Programs first: an endpoint's veth is hooked before any map names it.
    this.attachUplinks(model.uplinks, facts);
    const endpoint = this.programs.get('endpoint')!;
    const egress = this.programs.get('endpointEgress')!;
    for (const e of model.endpoints) {
      const link = facts.links.get(e.hostIf);
      if (!link) continue;
      this.ensureTc(link.ifindex, endpoint);
      this.ensureTc(link.ifindex, egress, 'egress');
    }

    // Everything but published ports: plain upserts, then deletions.
    for (const name of POLICY_MAPS) {
      if (name === 'bp_published') continue;
      this.sync(name, want[name]);
    }
    const unpublished = this.syncPublished(want.bp_published);
    this.targets = want.targets;
    // Their flows go at once; the walk reads the whole conntrack table (up to
    // 16 MB), so only an apply that removed a port pays for it.
    if (unpublished) this.flushUnpublished();
    this.pruneStats(model, facts);
  }

  /**
   * Writes only the published-port entries a port operation changes: no
   * interface listing, no rendering or diff of the N entries already there,
   * so adding one port costs the same at any N. Same epoch switch as apply.
   */
  async applyPorts(change: PortsChange): Promise<void> {
    checkSupported(change.added);
    const removed = renderPorts(change.removed, this.targets);
    const want = new Map<string, Buffer | undefined>([...removed.keys()].map((k) => [k, undefined]));
    for (const [k, v] of renderPorts(change.added, this.targets)) want.set(k, v);
    this.writePublished(want);
    if (removed.size) this.flushUnpublished();
  }

  /**
   * The uplinks' programs: tc ingress, and the deny-list prefilter as XDP
   * (native, falling back to generic) or, in `tc` mode, inside the tc program.
   * `auto` picks `tc` for a veth uplink: native XDP on a veth takes TSO away
   * from its peer (every TCP segment then crosses as its own packet, measured
   * at under a quarter of the throughput) and a veth has an skb anyway.
   */
  private attachUplinks(uplinks: string[], facts: HostFacts): void {
    const ours = new Map([
      [this.programs.get('prefilter')!.id, 'native'],
      [this.programs.get('prefilterGeneric')!.id, 'generic'],
    ]);
    for (const name of uplinks) {
      const link = facts.links.get(name);
      if (!link) throw new Error(`attach uplink ${name}: no such interface`);
      const asked = this.opts.xdpMode ?? 'auto';
      const mode = asked === 'auto' && link.kind === 'veth' ? 'tc' : asked;
      this.ensureTc(link.ifindex, this.programs.get(mode === 'tc' ? 'uplinkPrefilter' : 'uplink')!);
      const have = queryXdp(link.ifindex);
      const haveMode = have ? ours.get(have.progId) : undefined;
      if (haveMode !== undefined && (mode === haveMode || mode === 'auto')) {
        this.xdpModes[name] = haveMode;
        continue;
      }
      // Ours in another mode than asked: off first (native and generic cannot both be attached).
      if (haveMode !== undefined) detachXdp(link.ifindex);
      this.xdpModes[name] = mode === 'tc' ? 'tc' : this.attachPrefilter(link.ifindex, mode);
    }
    this.uplinks = uplinks;
  }

  private attachPrefilter(ifindex: number, mode: 'native' | 'generic' | 'auto'): 'native' | 'generic' {
    if (mode !== 'generic') {
      try {
        return attachXdp(ifindex, this.programs.get('prefilter')!, 'native');
      } catch (err) {
        if (mode === 'native') throw err;
      }
    }
    return attachXdp(ifindex, this.programs.get('prefilterGeneric')!, 'generic');
  }

  /** Attaches (or replaces) bridgeport's filter unless this process already did. */
  private ensureTc(ifindex: number, prog: BpfProgram, direction: 'ingress' | 'egress' = 'ingress'): void {
    const key = `${ifindex}/${direction}`;
    if (this.tcAttached.get(key) === prog.id) return;
    attachTc(ifindex, direction, prog, { ...TC, replace: true });
    this.tcAttached.set(key, prog.id);
  }

  /** Makes a map hold exactly `want`: changed and new entries in one batch, then removals. */
  private sync(name: string, want: Entries): void {
    const map = this.map(name);
    const have = this.mirror.get(name) ?? new Map<string, Buffer>();
    const keys: Buffer[] = [];
    const values: Buffer[] = [];
    for (const [k, v] of want) {
      const old = have.get(k);
      if (old?.equals(v)) continue;
      keys.push(Buffer.from(k, 'hex'));
      values.push(v);
    }
    if (keys.length) map.updateBatch(keys, values);
    const gone = [...have.keys()].filter((k) => !want.has(k)).map((k) => Buffer.from(k, 'hex'));
    if (gone.length) map.deleteBatch(gone);
    this.mirror.set(name, new Map(want));
  }

  /** Makes bp_published hold exactly `want` (entries without epochs), switching in one epoch; returns how many ports went. */
  private syncPublished(want: Entries): number {
    const have = this.mirror.get('bp_published') ?? new Map<string, Buffer>();
    const change = new Map<string, Buffer | undefined>(want);
    for (const k of have.keys()) if (!want.has(k)) change.set(k, undefined);
    return this.writePublished(change);
  }

  /**
   * Published ports change atomically per operation: new entries (`change`'s
   * values) are written valid from the next epoch, removed ones (undefined)
   * valid until it, and one write of the epoch switches the whole set. Removed
   * entries are deleted afterwards. An entry whose target is unchanged is not
   * rewritten. Returns how many entries were removed.
   */
  private writePublished(change: Map<string, Buffer | undefined>): number {
    const map = this.map('bp_published');
    const epochMap = this.map('bp_epoch');
    const current = decodeEpoch(epochMap.lookup(encodeU32(0)) ?? Buffer.alloc(8));
    const next = current + 1;
    const mirror = this.mirror.get('bp_published') ?? new Map<string, Buffer>();
    const stamp = (v: Buffer, from: number, until: number): Buffer =>
      encodePublishedValue({ ...decodePublishedValue(v), epochFrom: from, epochUntil: until });

    const keys: Buffer[] = [];
    const values: Buffer[] = [];
    const gone: Buffer[] = [];
    const written = new Map<string, Buffer | undefined>();
    for (const [k, v] of change) {
      const old = mirror.get(k);
      if (v) {
        if (old && sameTarget(old, v)) continue;
        const stamped = stamp(v, next, 0);
        keys.push(Buffer.from(k, 'hex'));
        values.push(stamped);
        written.set(k, stamped);
      } else if (old) {
        keys.push(Buffer.from(k, 'hex'));
        values.push(stamp(old, decodePublishedValue(old).epochFrom, next));
        gone.push(Buffer.from(k, 'hex'));
        written.set(k, undefined);
      }
    }
    this.mirror.set('bp_published', mirror);
    if (keys.length === 0) return 0;
    map.updateBatch(keys, values);
    epochMap.update(encodeU32(0), encodeEpoch(next));
    for (const [k, v] of written) {
      if (v) mirror.set(k, v);
      else mirror.delete(k);
    }
    if (gone.length) {
      map.deleteBatch(gone);
      // A port published again counts from zero, as a new series would.
      this.map('bp_port_stats').deleteBatch(gone.flatMap((k) => [DIR_IN, DIR_OUT].map((dir) => Buffer.from([...k.subarray(0, 7), dir]))));
    }
    return gone.length;
  }

  /** Forgets the counters of endpoints and networks that are gone; remembers names for stats(). */
  private pruneStats(model: DatapathModel, facts: HostFacts): void {
    const ifnames = new Map<number, string>();
    for (const [name, l] of facts.links) ifnames.set(l.ifindex, name);
    const endpoints = new Set(model.endpoints.map((e) => facts.links.get(e.hostIf)?.ifindex).filter((i) => i !== undefined));
    const networks = new Set(model.networks.map((n) => facts.links.get(n.bridge)?.ifindex).filter((i) => i !== undefined));
    const drop = (name: string, keep: Set<number>, before: Set<number>) => {
      const gone = [...before].filter((id) => !keep.has(id));
      if (gone.length) this.map(name).deleteBatch(gone.flatMap((id) => [encodeStatsKey(id, DIR_IN), encodeStatsKey(id, DIR_OUT)]));
    };
    drop('bp_endpoint_stats', endpoints, this.statsIds.endpoints);
    drop('bp_masq_stats', networks, this.statsIds.networks);
    this.statsIds = { endpoints, networks };
    this.ifnames = ifnames;
    this.bridgeOfIp = new Map(model.endpoints.map((e) => [e.ip, e.bridge]));
  }

  /** Reads what the pinned maps hold, so the first apply after a restart is a diff. */
  private mirrorFromMaps(): void {
    for (const name of POLICY_MAPS) {
      const map = this.map(name);
      const entries = new Map<string, Buffer>();
      for (const [k, v] of map.entries()) entries.set(k.toString('hex'), v);
      this.mirror.set(name, entries);
    }
  }

  // --- conntrack ------------------------------------------------------------------

  /**
   * The conntrack table, read into buffers kept for the next walk (16 MB at
   * the default 262 144 entries): fresh ones every GC period would cost page
   * faults on every page each time.
   */
  private ctTable(): CtTable {
    const map = this.map('bp_ct');
    const room = map.maxEntries + CT_DUMP_CHUNK;
    this.ctBuffers ??= { keys: Buffer.alloc(room * map.keySize), values: Buffer.alloc(room * map.valueSize) };
    const count = map.dumpInto(this.ctBuffers.keys, this.ctBuffers.values, CT_DUMP_CHUNK);
    return new CtTable(this.ctBuffers.keys, this.ctBuffers.values, count);
  }

  /** Deletes the table's entries `indices`. */
  private deleteCt(table: CtTable, indices: number[]): void {
    if (indices.length) this.map('bp_ct').deleteBatch(indices.map((i) => table.key(i)));
  }

  /** Whether a flow's original destination is a published port (the keys bp_published holds, as mirrored). */
  private isPublished = (origin: { hostIp: string; hostPort: number; proto: number }): boolean => {
    const proto = PROTO_NAME[origin.proto];
    if (!proto || proto === 'icmp') return false;
    const published = this.mirror.get('bp_published');
    return [origin.hostIp, '0.0.0.0'].some((hostIp) => published?.has(encodePublishedKey({ proto, hostIp, hostPort: origin.hostPort }).toString('hex')));
  };

  /** Drops flows of ports that are no longer published, at once rather than at the next GC. */
  private flushUnpublished(): void {
    const table = this.ctTable();
    const never = { tcp: 1e12, tcpSyn: 1e12, tcpClosing: 1e12, tcpTimeWait: 1e12, udp: 1e12, icmp: 1e12, other: 1e12 };
    this.deleteCt(table, expiredEntries(table, 0n, never, this.isPublished));
  }

  /** Expires idle flows; runs on a timer. */
  collectGarbage(): number {
    try {
      const now = process.hrtime.bigint();
      const cpu = process.cpuUsage();
      const table = this.ctTable();
      const expired = expiredEntries(table, now, this.opts.timeouts ?? DEFAULT_TIMEOUTS, this.isPublished);
      this.deleteCt(table, expired);
      const used = process.cpuUsage(cpu);
      this.gcRuns++;
      this.gcDeleted += expired.length;
      this.gcLast = { entries: table.count, deleted: expired.length, ms: Number(process.hrtime.bigint() - now) / 1e6, cpuMs: (used.user + used.system) / 1e3 };
      return expired.length;
    } catch (err) {
      this.opts.log(`conntrack gc: ${String(err)}`);
      return 0;
    }
  }

  // --- status and teardown --------------------------------------------------------------

  async describe(): Promise<Record<string, unknown>> {
    const drops: Record<string, number> = {};
    const dropMap = this.map('bp_drops');
    DROP_REASONS.forEach((reason, i) => {
      const perCpu = dropMap.lookupPerCpu(encodeU32(i));
      drops[reason] = perCpu ? Number(sumCounters(perCpu).packets) : 0;
    });
    const count = (name: string): number => [...this.map(name).keys()].length;
    return {
      bpfDir: this.bpfDir,
      uplinks: this.uplinks,
      xdp: this.xdpModes,
      publishedPorts: [...(this.mirror.get('bp_published')?.keys() ?? [])].filter(
        (k) => decodePublishedKey(Buffer.from(k, 'hex')).hostPort > 0,
      ).length,
      conntrackEntries: count('bp_ct'),
      conntrackGc: { runs: this.gcRuns, deleted: this.gcDeleted, last: this.gcLast },
      drops,
      snatPorts: `${this.opts.snatPorts.low}-${this.opts.snatPorts.high}`,
    };
  }

  async stats(): Promise<DatapathStats> {
    const total = (v: Buffer): Counter => {
      let packets = 0;
      let bytes = 0;
      const slot = 16; // bp_counter, 8-byte aligned per CPU
      for (let off = 0; off + slot <= v.length; off += slot) {
        packets += Number(v.readBigUInt64LE(off));
        bytes += Number(v.readBigUInt64LE(off + 8));
      }
      return { packets, bytes };
    };
    const zero = (): Counter => ({ packets: 0, bytes: 0 });

    const ports = new Map<string, DatapathStats['ports'][number]>();
    for (const [k, v] of this.map('bp_port_stats').dump()) {
      const key = decodePortStatsKey(k);
      const id = `${key.proto}/${key.hostIp}/${key.hostPort}`;
      const row = ports.get(id) ?? { proto: key.proto, hostIp: key.hostIp, hostPort: key.hostPort, in: zero(), out: zero() };
      ports.set(id, row);
      row[key.dir === DIR_IN ? 'in' : 'out'] = total(v);
    }
    const byId = (name: string) => {
      const out = new Map<number, { in: Counter; out: Counter }>();
      for (const [k, v] of this.map(name).dump()) {
        const key = decodeStatsKey(k);
        const row = out.get(key.id) ?? { in: zero(), out: zero() };
        row[key.dir === DIR_IN ? 'in' : 'out'] = total(v);
        out.set(key.id, row);
      }
      return out;
    };
    const endpoints: DatapathStats['endpoints'] = [];
    for (const [id, c] of byId('bp_endpoint_stats')) {
      const hostIf = this.ifnames.get(id);
      if (hostIf) endpoints.push({ hostIf, rx: c.in, tx: c.out });
    }
    const masquerade: DatapathStats['masquerade'] = [];
    for (const [id, c] of byId('bp_masq_stats')) {
      const bridge = this.ifnames.get(id);
      if (bridge) masquerade.push({ bridge, out: c.out, in: c.in });
    }
    const drops: DatapathStats['drops'] = {};
    const dropMap = this.map('bp_drops');
    DROP_REASONS.forEach((reason, i) => {
      // No program drops for this reason: a host port nobody published belongs to the host's own stack.
      if (reason === 'no_published_port') return;
      const v = dropMap.lookup(encodeU32(i));
      drops[reason] = v ? total(v) : zero();
    });
    const xdpMap = this.map('bp_xdp_stats');
    const xdpOf = (i: number) => {
      const v = xdpMap.lookup(encodeU32(i));
      return v ? total(v) : zero();
    };

    const conntrack = { published: 0, masquerade: 0, other: 0 };
    const natPorts = new Map<string, number>();
    const ct = this.ctTable();
    for (let i = 0; i < ct.count; i++) {
      const flags = ct.flags(i);
      // A flow counts once, by its reply direction: the one entry a translated
      // tuple has, whose holder is always its current flow (an original entry
      // may be stale, its reply tuple taken over by a new flow).
      if (!(flags & CT_REPLY)) continue;
      if (flags & CT_PUBLISHED) conntrack.published++;
      else if (flags & CT_MASQUERADE) {
        conntrack.masquerade++;
        const bridge = this.bridgeOfIp.get(ct.newDaddr(i));
        if (bridge) natPorts.set(bridge, (natPorts.get(bridge) ?? 0) + 1);
      } else conntrack.other++;
    }

    const maps: NonNullable<DatapathStats['maps']> = [];
    for (const [name, m] of [...this.maps].sort(([a], [b]) => a.localeCompare(b))) {
      let entries: number;
      if (m.type === MAP_TYPE.ARRAY || m.type === MAP_TYPE.PERCPU_ARRAY) entries = m.maxEntries;
      else if (name === 'bp_ct') entries = ct.count;
      else if (this.mirror.has(name)) entries = this.mirror.get(name)!.size;
      else entries = countKeys(m);
      maps.push({ name, entries, capacity: m.maxEntries });
    }

    return {
      ports: [...ports.values()],
      endpoints,
      masquerade,
      drops,
      xdp: { pass: xdpOf(XDP_PASS), drop: xdpOf(XDP_DROP) },
      conntrack,
      natPortsInUse: [...natPorts].map(([bridge, ports]) => ({ bridge, ports })),
      maps,
    };
  }

  async teardown(): Promise<void> {
    await teardownEbpf({ runDir: this.opts.runDir, bpfDir: this.bpfDir, log: this.opts.log });
  }
}

function countKeys(m: BpfMap): number {
  let n = 0;
  for (const _ of m.keys()) n++;
  return n;
}

/** Same container port and address: an epoch-stamped entry that needs no rewrite. */
function sameTarget(a: Buffer, b: Buffer): boolean {
  const x = decodePublishedValue(a);
  const y = decodePublishedValue(b);
  return x.containerIp === y.containerIp && x.containerPort === y.containerPort && x.ifindex === y.ifindex && x.networkId === y.networkId && x.flags === y.flags;
}

/**
 * Removes everything an instance installed: tc filters and XDP programs of
 * its pinned programs, cgroup links, pins, the bpffs and cgroup mounts it made
 * and the reserved ports. Keeps going after an error and reports all of them.
 */
export async function teardownEbpf(opts: { runDir: string; bpfDir?: string; log: (msg: string) => void }): Promise<boolean> {
  const bpfDir = opts.bpfDir ?? join(opts.runDir, 'bpf');
  const undoFile = join(opts.runDir, 'ebpf-undo.json');
  const undo: Undo = existsSync(undoFile) ? JSON.parse(await readFile(undoFile, 'utf8')) : {};
  if (!existsSync(join(bpfDir, 'progs')) && !existsSync(undoFile)) return false;
  const errors: string[] = [];
  const step = async (what: string, fn: () => Promise<void> | void): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      errors.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };

  const progIds = new Map<number, string>();
  for (const name of await readdir(join(bpfDir, 'progs')).catch(() => [] as string[])) {
    await step(`read program ${name}`, () => {
      const p = BpfProgram.fromPin(join(bpfDir, 'progs', name));
      progIds.set(p.id, name);
      p.close();
    });
  }
  await step('detach programs from interfaces', async () => {
    for (const link of await listLinks()) {
      for (const direction of ['ingress', 'egress'] as const) {
        const tcId = queryTc(link.ifindex, direction, TC);
        if (tcId !== undefined && progIds.has(tcId)) detachTc(link.ifindex, direction, TC);
      }
      const xdp = queryXdp(link.ifindex);
      if (xdp && progIds.has(xdp.progId)) detachXdp(link.ifindex);
    }
  });
  for (const name of await readdir(join(bpfDir, 'links')).catch(() => [] as string[])) {
    await step(`remove cgroup link ${name}`, () => BpfLink.unpin(join(bpfDir, 'links', name)));
  }
  await step('remove pins', () => rm(bpfDir, { recursive: true, force: true }).catch(async () => {
    for (const sub of ['progs', 'maps', 'links']) await rm(join(bpfDir, sub), { recursive: true, force: true });
  }));
  if (undo.mountedBpffs) {
    await step('unmount bpffs', () => run('umount', [undo.mountedBpffs!]).then(() => rm(undo.mountedBpffs!, { recursive: true, force: true })));
  }
  if (undo.mountedCgroup) await step('unmount cgroup2', () => run('umount', [undo.mountedCgroup!]).then(() => undefined));
  if (undo.reservedPorts !== undefined) {
    await step('restore ip_local_reserved_ports', () => writeSysctl('net.ipv4.ip_local_reserved_ports', undo.reservedPorts!).then(() => undefined));
  }
  await step('remove undo record', () => rm(undoFile, { force: true }));
  if (errors.length) throw new Error(`clean up eBPF datapath: ${errors.join('; ')}`);
  opts.log(`cleanup: removed the eBPF datapath's programs, maps and links (${bpfDir})`);
  return true;
}
