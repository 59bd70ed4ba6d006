import { createServer, type Server } from 'node:http';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Datapath, DatapathModel, DatapathStats, Counter as DpCounter } from '../datapath/datapath.js';
import { type DisplayNames, shown } from '../model/display-names.js';
import { invalid } from '../model/errors.js';

/**
 * bridgeport's Prometheus metrics, on a registry of their own. Datapath
 * counters are read once per scrape (`Datapath.stats()`) and labelled from the
 * model; the names and labels are a contract, documented in the README.
 */
export interface MetricsSource {
  datapath: Datapath;
  reason: string;
  model(): DatapathModel;
  /**
   * The names container and network labels show (a Docker container's and
   * network's own names once known); record names when absent.
   */
  names?(): DisplayNames;
}

const NO_NAMES: DisplayNames = { containers: new Map(), networks: new Map() };

/** The operation label: the command without its arguments ("network create web" → network_create). */
export function operationName(op: string): string {
  const words = op.split(' ');
  const two = ['network', 'firewall', 'start'].includes(words[0]!) && words.length > 1;
  return (two ? words.slice(0, 2) : words.slice(0, 1)).join('_');
}

export class Metrics {
  readonly registry = new Registry();
  private readonly operationDuration: Histogram<'operation'>;
  private readonly operationErrors: Counter<'operation'>;
  private readonly scrapeDuration: Gauge;

  private readonly datapathInfo: Gauge<'datapath' | 'reason'>;
  private readonly endpointPackets: Counter<'network' | 'container' | 'direction'>;
  private readonly endpointBytes: Counter<'network' | 'container' | 'direction'>;
  private readonly masqPackets: Counter<'network' | 'direction'>;
  private readonly masqBytes: Counter<'network' | 'direction'>;
  private readonly drops: Counter<'reason'>;
  private readonly dropBytes: Counter<'reason'>;
  private readonly xdpPackets: Counter<'action'>;
  private readonly conntrack: Gauge<'kind'>;
  private readonly natPorts: Gauge<'network'>;
  private readonly mapEntries: Gauge<'map'>;
  private readonly mapCapacity: Gauge<'map'>;
  private readonly networks: Gauge;
  private readonly endpoints: Gauge;
  private readonly publishedPorts: Gauge;

  constructor(private readonly source: MetricsSource) {
    const r = [this.registry];
    const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) => new Counter<L>({ name, help, labelNames, registers: r });
    const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) => new Gauge<L>({ name, help, labelNames, registers: r });

    this.datapathInfo = gauge('bridgeport_datapath_info', 'The datapath in use and why it was chosen (always 1).', ['datapath', 'reason']);
    this.endpointPackets = counter('bridgeport_endpoint_packets_total', 'IPv4 packets an endpoint received (rx) or sent (tx).', ['network', 'container', 'direction']);
    this.endpointBytes = counter('bridgeport_endpoint_bytes_total', 'IP bytes (L3) an endpoint received (rx) or sent (tx).', ['network', 'container', 'direction']);
    this.masqPackets = counter('bridgeport_masquerade_packets_total', 'Masqueraded packets of a network: out leaving, in their replies.', ['network', 'direction']);
    this.masqBytes = counter('bridgeport_masquerade_bytes_total', 'IP bytes (L3) of masqueraded flows of a network, by direction.', ['network', 'direction']);
    this.drops = counter('bridgeport_drops_total', 'Packets dropped by the datapath, by reason (only reasons the datapath can observe).', ['reason']);
    this.dropBytes = counter('bridgeport_drop_bytes_total', 'IP bytes (L3) dropped by the datapath, by reason.', ['reason']);
    this.xdpPackets = counter('bridgeport_xdp_packets_total', 'Packets seen by the deny-list prefilter on the uplinks (XDP or the tc program, per --xdp-mode), by verdict (eBPF only).', ['action']);
    this.conntrack = gauge('bridgeport_conntrack_entries', 'Tracked flows of bridgeport traffic, by kind (published, masquerade, other).', ['kind']);
    this.natPorts = gauge('bridgeport_nat_ports_in_use', 'Masquerade source ports in use, per network.', ['network']);
    this.mapEntries = gauge('bridgeport_bpf_map_entries', 'Entries in each BPF map (eBPF only).', ['map']);
    this.mapCapacity = gauge('bridgeport_bpf_map_capacity', 'Capacity (max_entries) of each BPF map (eBPF only).', ['map']);
    this.networks = gauge('bridgeport_networks', 'Networks (user-defined and the default bridge).');
    this.endpoints = gauge('bridgeport_endpoints', 'Endpoints (a container attached to a network).');
    this.publishedPorts = gauge('bridgeport_published_ports', 'Published ports (one per protocol, host address and host port).');
    this.scrapeDuration = gauge('bridgeport_scrape_duration_seconds', 'Time the last scrape spent reading the datapath counters.');
    this.operationDuration = new Histogram({
      name: 'bridgeport_operation_duration_seconds',
      help: 'Duration of API operations (rendering the datapath included).',
      labelNames: ['operation'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: r,
    });
    this.operationErrors = counter('bridgeport_operation_errors_total', 'API operations that failed (and were rolled back).', ['operation']);
    collectDefaultMetrics({ register: this.registry });
  }

  observeOperation(op: string, seconds: number, ok: boolean): void {
    const operation = operationName(op);
    this.operationDuration.observe({ operation }, seconds);
    // Present from the first operation of a kind on, so rate() works from zero.
    this.operationErrors.inc({ operation }, ok ? 0 : 1);
  }

  /** The exposition text, with every datapath counter read now. */
  async render(): Promise<string> {
    const started = process.hrtime.bigint();
    const stats = await this.source.datapath.stats();
    this.scrapeDuration.set(Number(process.hrtime.bigint() - started) / 1e9);
    const model = this.source.model();
    const names = this.source.names?.() ?? NO_NAMES;
    this.fill(stats, model, names);
    return withoutGaugeTotals(await this.registry.metrics()) + portFamilies(model, stats, names);
  }

  private fill(stats: DatapathStats, model: DatapathModel, names: DisplayNames): void {
    for (const m of [
      this.datapathInfo,
      this.endpointPackets,
      this.endpointBytes,
      this.masqPackets,
      this.masqBytes,
      this.drops,
      this.dropBytes,
      this.xdpPackets,
      this.conntrack,
      this.natPorts,
      this.mapEntries,
      this.mapCapacity,
    ]) {
      m.reset();
    }
    this.datapathInfo.set({ datapath: this.source.datapath.name, reason: this.source.reason }, 1);
    const set = (packets: Counter<string>, bytes: Counter<string>, labels: Record<string, string>, c: DpCounter | undefined) => {
      packets.inc(labels, c?.packets ?? 0);
      bytes.inc(labels, c?.bytes ?? 0);
    };

    const endpointStats = new Map(stats.endpoints.map((e) => [e.hostIf, e]));
    for (const e of model.endpoints) {
      const s = endpointStats.get(e.hostIf);
      const labels = { network: shown(names.networks, e.network), container: shown(names.containers, e.container) };
      set(this.endpointPackets, this.endpointBytes, { ...labels, direction: 'rx' }, s?.rx);
      set(this.endpointPackets, this.endpointBytes, { ...labels, direction: 'tx' }, s?.tx);
    }

    const masqStats = new Map(stats.masquerade.map((m) => [m.bridge, m]));
    const natPorts = new Map(stats.natPortsInUse.map((n) => [n.bridge, n.ports]));
    for (const n of model.networks) {
      if (!n.masquerade || n.internal) continue;
      const s = masqStats.get(n.bridge);
      const network = shown(names.networks, n.name);
      set(this.masqPackets, this.masqBytes, { network, direction: 'out' }, s?.out);
      set(this.masqPackets, this.masqBytes, { network, direction: 'in' }, s?.in);
      this.natPorts.set({ network }, natPorts.get(n.bridge) ?? 0);
    }

    for (const [reason, c] of Object.entries(stats.drops)) set(this.drops, this.dropBytes, { reason }, c);
    if (stats.xdp) {
      this.xdpPackets.inc({ action: 'pass' }, stats.xdp.pass.packets);
      this.xdpPackets.inc({ action: 'drop' }, stats.xdp.drop.packets);
    }
    for (const [kind, n] of Object.entries(stats.conntrack)) this.conntrack.set({ kind }, n);
    for (const m of stats.maps ?? []) {
      this.mapEntries.set({ map: m.name }, m.entries);
      this.mapCapacity.set({ map: m.name }, m.capacity);
    }
    this.networks.set(model.networks.length);
    this.endpoints.set(model.endpoints.length);
    this.publishedPorts.set(model.ports.length);
  }
}

/**
 * prom-client's default Node metrics include gauges named `nodejs_active_*_total`
 * (sums of the labelled `nodejs_active_*` gauges beside them), which
 * `promtool check metrics` rejects: only counters end in _total. They are left out.
 */
export function withoutGaugeTotals(text: string): string {
  const gauges = new Set([...text.matchAll(/^# TYPE (\w+_total) gauge$/gm)].map((m) => m[1]!));
  if (gauges.size === 0) return text;
  const nameOf = (line: string): string | undefined => (/^(?:# (?:HELP|TYPE) )?(\w+)/.exec(line) ?? [])[1];
  return text
    .split('\n')
    .filter((line) => !gauges.has(nameOf(line) ?? ''))
    .join('\n');
}

const escapeLabel = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

/**
 * The per-port families, written directly: with thousands of published ports
 * they are most of the scrape, and plain string building is several times
 * cheaper than a labelled metric per series. Every published port has its
 * series from the moment it is published (zero until traffic). Only Docker's
 * records are in `names`: a map look-up per port, nothing more.
 */
export function portFamilies(model: DatapathModel, stats: DatapathStats, names: DisplayNames = NO_NAMES): string {
  const byKey = new Map(stats.ports.map((p) => [`${p.proto}/${p.hostIp}/${p.hostPort}`, p]));
  const packets: string[] = [
    '# HELP bridgeport_published_port_packets_total Packets through a published port: in toward the container, out its replies.',
    '# TYPE bridgeport_published_port_packets_total counter',
  ];
  const bytes: string[] = [
    '# HELP bridgeport_published_port_bytes_total IP bytes (L3) through a published port, by direction.',
    '# TYPE bridgeport_published_port_bytes_total counter',
  ];
  const seen = new Set<string>();
  for (const p of model.ports) {
    const key = `${p.proto}/${p.hostIp}/${p.hostPort}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const s = byKey.get(key);
    const base = `network="${escapeLabel(shown(names.networks, p.network))}",container="${escapeLabel(shown(names.containers, p.container))}",proto="${p.proto}",host_ip="${p.hostIp}",host_port="${p.hostPort}",container_port="${p.containerPort}"`;
    packets.push(`bridgeport_published_port_packets_total{${base},direction="in"} ${s?.in.packets ?? 0}`);
    packets.push(`bridgeport_published_port_packets_total{${base},direction="out"} ${s?.out.packets ?? 0}`);
    bytes.push(`bridgeport_published_port_bytes_total{${base},direction="in"} ${s?.in.bytes ?? 0}`);
    bytes.push(`bridgeport_published_port_bytes_total{${base},direction="out"} ${s?.out.bytes ?? 0}`);
  }
  return `${packets.join('\n')}\n${bytes.join('\n')}\n`;
}

/** Parses `--metrics-addr HOST:PORT` ("" disables the endpoint). */
export function parseMetricsAddr(text: string): { host: string; port: number } | undefined {
  if (text === '') return undefined;
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text);
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw invalid(`invalid --metrics-addr "${text}": use HOST:PORT (e.g. 127.0.0.1:9477), or "" to disable`);
  }
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

/** Serves GET /metrics; anything else is 404. Resolves once listening. */
export async function serveMetrics(metrics: Metrics, addr: { host: string; port: number }, log: (msg: string) => void): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: metrics are at /metrics\n');
      return;
    }
    metrics.render().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      (err: unknown) => {
        log(`metrics: scrape failed: ${String(err)}`);
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`scrape failed: ${String(err)}\n`);
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(invalid(`serve metrics on ${addr.host}:${addr.port}: ${err.message}`)));
    server.listen(addr.port, addr.host, () => resolve());
  });
  return server;
}
