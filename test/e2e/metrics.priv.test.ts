import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { expect, it } from 'vitest';
import { DATAPATHS, describePriv } from '../helpers/privileged.js';
import { inContainer, ok, probe, runEcho, useDaemon } from '../helpers/scenario.js';
import { nsenterArgv, REPO_ROOT, type Topology } from '../helpers/topology.js';
import { probeMany } from '../helpers/traffic.js';

const METRICS_PORT = 9477;
const STREAM = fileURLToPath(new URL('../fixtures/stream.mjs', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One scrape of the daemon's /metrics, from inside the host namespace. */
async function scrape(topo: Topology): Promise<string> {
  const r = await topo.inHost('curl', ['-sS', '--fail', `http://127.0.0.1:${METRICS_PORT}/metrics`]);
  if (r.exitCode !== 0) throw new Error(`scrape: ${r.stderr}`);
  return `${r.stdout}\n`; // execa strips the final newline
}

/** The value of one series (labels as given, in any order), or undefined. */
function value(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^([^{ ]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

describePriv.each(DATAPATHS)('Prometheus metrics (%s)', (datapath) => {
  const env = useDaemon(datapath, ['--metrics-addr', `127.0.0.1:${METRICS_PORT}`]);

  it('counts exactly the packets and bytes sent through a published port, per endpoint and per port', async () => {
    const { topo, d } = env();
    await runEcho(d, 'web', { flags: ['-p', '5330:53/udp'] });
    const port = { network: 'bridge', container: 'web', proto: 'udp', host_ip: '0.0.0.0', host_port: '5330', container_port: '53' };
    const before = await scrape(topo);
    for (const direction of ['in', 'out']) {
      expect(value(before, 'bridgeport_published_port_packets_total', { ...port, direction })).toBe(0);
    }

    const N = 25;
    const results = await probeMany(topo.inClient, 'udp', topo.hostIp, 5330, N, { sourcePort: 40530 });
    expect(results.every((r) => r.ok)).toBe(true);
    // Each datagram: 20 (IP) + 8 (UDP) + "ping"; each reply: the echo line with its newline.
    const inBytes = N * (20 + 8 + 4);
    const outBytes = results.reduce((n, r) => n + 20 + 8 + Buffer.byteLength(`${r.reply}\n`), 0);

    const after = await scrape(topo);
    const delta = (name: string, labels: Record<string, string>) => (value(after, name, labels) ?? Number.NaN) - (value(before, name, labels) ?? 0);
    expect(delta('bridgeport_published_port_packets_total', { ...port, direction: 'in' })).toBe(N);
    expect(delta('bridgeport_published_port_bytes_total', { ...port, direction: 'in' })).toBe(inBytes);
    expect(delta('bridgeport_published_port_packets_total', { ...port, direction: 'out' })).toBe(N);
    expect(delta('bridgeport_published_port_bytes_total', { ...port, direction: 'out' })).toBe(outBytes);
    expect(delta('bridgeport_endpoint_packets_total', { network: 'bridge', container: 'web', direction: 'rx' })).toBe(N);
    expect(delta('bridgeport_endpoint_bytes_total', { network: 'bridge', container: 'web', direction: 'rx' })).toBe(inBytes);
    expect(delta('bridgeport_endpoint_packets_total', { network: 'bridge', container: 'web', direction: 'tx' })).toBe(N);
    expect(delta('bridgeport_endpoint_bytes_total', { network: 'bridge', container: 'web', direction: 'tx' })).toBe(outBytes);
    expect(value(after, 'bridgeport_datapath_info', { datapath })).toBe(1);
    expect(value(after, 'bridgeport_published_ports')).toBe(1);
    expect(value(after, 'bridgeport_conntrack_entries', { kind: 'published' })).toBe(1);

    // Masquerade: N datagrams from the container to a closed port of the client (each answered by an ICMP error, not counted).
    const masq = { network: 'bridge' };
    await topo.inClient('sysctl', ['-qw', 'net.ipv4.icmp_ratelimit=0']);
    const m0 = await scrape(topo);
    const out = await probeMany(inContainer(d, 'web'), 'udp', topo.clientIp, 9, 10, { sourcePort: 40531, timeoutMs: 1000 });
    expect(out.every((r) => r.error === 'refused')).toBe(true);
    const m1 = await scrape(topo);
    const md = (name: string, direction: string) => (value(m1, name, { ...masq, direction }) ?? Number.NaN) - (value(m0, name, { ...masq, direction }) ?? 0);
    expect(md('bridgeport_masquerade_packets_total', 'out')).toBe(10);
    expect(md('bridgeport_masquerade_bytes_total', 'out')).toBe(10 * 32);
    // The client's port-unreachable errors are the flows' related replies: 20 + 8 + the 32-byte datagram quoted.
    expect(md('bridgeport_masquerade_packets_total', 'in')).toBe(10);
    expect(md('bridgeport_masquerade_bytes_total', 'in')).toBe(10 * 60);
    expect(value(m1, 'bridgeport_nat_ports_in_use', masq)).toBeGreaterThanOrEqual(1);

    // Counters survive a restart (eBPF: pinned maps; iptables: the re-sync keeps rule counters).
    await d.kill9();
    await d.restart({ args: ['--metrics-addr', `127.0.0.1:${METRICS_PORT}`] });
    const again = await scrape(topo);
    expect(value(again, 'bridgeport_published_port_packets_total', { ...port, direction: 'in' })).toBe(
      value(after, 'bridgeport_published_port_packets_total', { ...port, direction: 'in' }),
    );
    expect(value(again, 'bridgeport_masquerade_packets_total', { ...masq, direction: 'out' })).toBe(value(m1, 'bridgeport_masquerade_packets_total', { ...masq, direction: 'out' }));
  });

  it('counts exactly the TCP segments and bytes of a connection through a published port', async () => {
    const { topo, d } = env();
    await ok(d, ['run', '-d', '--name', 'tcp', '-p', '8135:80', '--', 'node', STREAM, 'serve', '80']);
    for (let i = 0; i < 100 && !(await readFile((await d.cliJson<any[]>(['inspect', 'tcp']))[0].LogPath, 'utf8').catch(() => '')).includes('listening'); i++) await sleep(25);
    // The client's own IPv4 MIB: it has no other traffic, so its segment and octet counts are the flow's.
    const mib = async () => {
      const snmp = (await topo.inClient('cat', ['/proc/net/snmp'])).stdout;
      const netstat = (await topo.inClient('cat', ['/proc/net/netstat'])).stdout;
      const field = (text: string, table: string, name: string) => {
        const [head, values] = text.split('\n').filter((l) => l.startsWith(`${table}:`));
        return Number(values!.split(' ')[head!.split(' ').indexOf(name)]);
      };
      return {
        outSegs: field(snmp, 'Tcp', 'OutSegs'),
        inSegs: field(snmp, 'Tcp', 'InSegs'),
        outOctets: field(netstat, 'IpExt', 'OutOctets'),
        inOctets: field(netstat, 'IpExt', 'InOctets'),
      };
    };
    const port = { network: 'bridge', container: 'tcp', proto: 'tcp', host_ip: '0.0.0.0', host_port: '8135', container_port: '80' };
    const before = await scrape(topo);
    const m0 = await mib();
    const r = await execa(...split(nsenterArgv(topo.clientNsPath, process.execPath, [STREAM, 'segments', topo.hostIp, '8135', '30', '100'])), { reject: false });
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, sent: 3000 });
    await sleep(300); // the last ACKs
    const m1 = await mib();
    const after = await scrape(topo);
    const delta = (name: string, direction: string) =>
      (value(after, name, { ...port, direction }) ?? Number.NaN) - (value(before, name, { ...port, direction }) ?? 0);
    expect(m1.outSegs - m0.outSegs).toBeGreaterThanOrEqual(32); // handshake, 30 writes, FIN
    expect({
      inPackets: delta('bridgeport_published_port_packets_total', 'in'),
      inBytes: delta('bridgeport_published_port_bytes_total', 'in'),
      outPackets: delta('bridgeport_published_port_packets_total', 'out'),
      outBytes: delta('bridgeport_published_port_bytes_total', 'out'),
    }).toEqual({
      inPackets: m1.outSegs - m0.outSegs,
      inBytes: m1.outOctets - m0.outOctets,
      outPackets: m1.inSegs - m0.inSegs,
      outBytes: m1.inOctets - m0.inOctets,
    });
  });

  it('bridgeport stats shows the counters and rates per endpoint and published port, like docker stats', async () => {
    const { topo, d } = env();
    await runEcho(d, 'web', { flags: ['-p', '5334:53/udp'] });
    await runEcho(d, 'idle');
    const N = 12;
    expect((await probeMany(topo.inClient, 'udp', topo.hostIp, 5334, N, { sourcePort: 40534 })).every((r) => r.ok)).toBe(true);
    const view = (await d.cliJson(['stats', '--no-stream', '--json', '--interval', '0.5', 'web'])) as any;
    expect(view.Endpoints).toHaveLength(1);
    expect(view.Endpoints[0]).toMatchObject({ Container: 'web', Network: 'bridge', Rx: { packets: N }, Tx: { packets: N }, RxRate: { packets: 0 } });
    expect(view.Ports).toEqual([
      expect.objectContaining({ Container: 'web', Port: '53/udp', Host: '0.0.0.0:5334', In: { packets: N, bytes: N * 32 }, InRate: { packets: 0, bytes: 0 } }),
    ]);
    // While traffic flows the rate is positive.
    await ok(d, ['run', '-d', '--name', 'bulk', '-p', '8134:80', '--', 'node', STREAM, 'serve', '80']);
    for (let i = 0; i < 100 && !(await readFile((await d.cliJson<any[]>(['inspect', 'bulk']))[0].LogPath, 'utf8').catch(() => '')).includes('listening'); i++) await sleep(25);
    const busy = execa(...split(nsenterArgv(topo.clientNsPath, process.execPath, [STREAM, 'send', topo.hostIp, '8134', '4'])), { reject: false });
    await sleep(1000);
    const live = (await d.cliJson(['stats', '--no-stream', '--json', '--interval', '1', 'bulk'])) as any;
    await busy;
    expect(live.Ports[0].InRate.packets).toBeGreaterThan(0);
    expect(live.Endpoints[0].RxRate.bytes).toBeGreaterThan(10_000);
    const table = await ok(d, ['stats', '--no-stream', '--interval', '0.2']);
    expect(table).toMatch(/^CONTAINER\s+NETWORK\s+RX PKT\/S/m);
    expect(table).toMatch(/^idle\s+bridge/m);
    expect(await d.cli(['stats', '--no-stream', 'nosuch']).then((r) => r.stderr)).toContain('no such container: nosuch');
  });

  it('counts exactly the packets dropped for each reason the datapath observes', async () => {
    const { topo, d } = env();
    await ok(d, ['network', 'create', 'quiet', '--icc=false']);
    await ok(d, ['network', 'create', 'other']);
    await ok(d, ['network', 'create', 'inside', '--internal']);
    const a = await runEcho(d, 'a', { network: 'quiet' });
    await runEcho(d, 'b', { network: 'quiet' });
    const c = await runEcho(d, 'c', { network: 'other' });
    await runEcho(d, 'i', { network: 'inside' });
    await runEcho(d, 'web', { flags: ['-p', '5331:53/udp'] });
    // The client routes container subnets to the host, to try direct access.
    await topo.inClient('ip', ['route', 'add', '172.16.0.0/12', 'via', topo.hostIp]);
    await ok(d, ['firewall', 'deny', `${topo.clientIp}/32`, '--port', '5331/udp']);

    const M = 4;
    const drops = (text: string, reason: string) => value(text, 'bridgeport_drops_total', { reason });
    const before = await scrape(topo);
    const attempts: [string, () => Promise<unknown>][] = [
      ['icc_denied', () => probeMany(inContainer(d, 'b'), 'udp', a.NetworkSettings.Networks.quiet.IPAddress, 53, M, { timeoutMs: 300 })],
      ['network_isolation', () => probeMany(inContainer(d, 'b'), 'udp', c.NetworkSettings.Networks.other.IPAddress, 53, M, { timeoutMs: 300 })],
      ['internal_network', () => probeMany(inContainer(d, 'i'), 'udp', topo.clientIp, 9, M, { timeoutMs: 300 })],
      ['direct_access', () => probeMany(topo.inClient, 'udp', c.NetworkSettings.Networks.other.IPAddress, 53, M, { timeoutMs: 300 })],
      ['deny_list', () => probeMany(topo.inClient, 'udp', topo.hostIp, 5331, M, { timeoutMs: 300 })],
    ];
    const observed = Object.keys(
      Object.fromEntries([...before.matchAll(/^bridgeport_drops_total\{reason="(\w+)"\}/gm)].map((m) => [m[1], true])),
    );
    for (const [reason, send] of attempts) {
      const results = (await send()) as { ok: boolean }[];
      expect(results.some((r) => r.ok), reason).toBe(false);
      const now = await scrape(topo);
      expect({ reason, dropped: (drops(now, reason) ?? Number.NaN) - (drops(before, reason) ?? 0) }).toEqual({ reason, dropped: M });
      expect(observed).toContain(reason);
    }
    // A re-sync (daemon restart) keeps them.
    const last = await scrape(topo);
    await d.stop();
    await d.restart({ args: ['--metrics-addr', `127.0.0.1:${METRICS_PORT}`] });
    const resynced = await scrape(topo);
    for (const [reason] of attempts) expect({ reason, n: drops(resynced, reason) }).toEqual({ reason, n: drops(last, reason) });
    // Removing what the dropping rules were about does not take their drops away.
    for (const name of ['a', 'b', 'c', 'i']) await ok(d, ['rm', '-f', name]);
    for (const net of ['quiet', 'other', 'inside']) await ok(d, ['network', 'rm', net]);
    await ok(d, ['firewall', 'allow', `${topo.clientIp}/32`, '--port', '5331/udp']);
    const removed = await scrape(topo);
    for (const [reason] of attempts) expect({ reason, n: drops(removed, reason) }).toEqual({ reason, n: drops(last, reason) });
    // Reasons a datapath cannot see are absent rather than a made-up zero.
    if (datapath === 'iptables') expect(observed).not.toContain('spoofed_source');
    else expect(observed).toEqual(expect.arrayContaining(['spoofed_source', 'conntrack_full', 'nat_ports_exhausted']));
    expect(observed).not.toContain('no_published_port');
  });

  it('passes promtool check metrics, and a real Prometheus scrapes and finds the series', async () => {
    const { topo, d } = env();
    await runEcho(d, 'web', { flags: ['-p', '5332:53/udp'] });
    const results = await probeMany(topo.inClient, 'udp', topo.hostIp, 5332, 7, { sourcePort: 40532 });
    expect(results.every((r) => r.ok)).toBe(true);

    const text = await scrape(topo);
    const check = await execa('promtool', ['check', 'metrics'], { input: text, reject: false });
    expect(check.exitCode, `${check.stdout}${check.stderr}`).toBe(0);
    expect(`${check.stdout}${check.stderr}`.trim()).toBe('');

    const dir = join(topo.workDir, 'prometheus');
    await mkdir(join(dir, 'data'), { recursive: true });
    await writeFile(
      join(dir, 'prometheus.yml'),
      `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: bridgeport\n    static_configs:\n      - targets: ['127.0.0.1:${METRICS_PORT}']\n`,
    );
    const prom = execa(
      ...split(
        nsenterArgv(topo.hostNsPath, 'prometheus', [
          `--config.file=${join(dir, 'prometheus.yml')}`,
          `--storage.tsdb.path=${join(dir, 'data')}`,
          '--web.listen-address=127.0.0.1:9090',
        ]),
      ),
      { reject: false, all: true },
    );
    try {
      const query = 'bridgeport_published_port_packets_total{host_port="5332",direction="in"}';
      let found: number | undefined;
      for (let i = 0; i < 60 && found === undefined; i++) {
        await sleep(500);
        const r = await topo.inHost('curl', ['-sS', '--get', 'http://127.0.0.1:9090/api/v1/query', '--data-urlencode', `query=${query}`]);
        if (r.exitCode !== 0) continue;
        const body = JSON.parse(r.stdout);
        const series = body.data?.result?.[0];
        if (series) {
          expect(series.metric).toMatchObject({ job: 'bridgeport', network: 'bridge', container: 'web', proto: 'udp', container_port: '53' });
          found = Number(series.value[1]);
        }
      }
      expect(found).toBe(7);
      const up = await topo.inHost('curl', ['-sS', '--get', 'http://127.0.0.1:9090/api/v1/query', '--data-urlencode', 'query=up{job="bridgeport"}']);
      expect(JSON.parse(up.stdout).data.result[0].value[1]).toBe('1');
    } finally {
      prom.kill('SIGTERM');
      await prom;
    }
  });
});

/** Metric families the dashboard's queries use (histogram series resolve to their family). */
function dashboardMetrics(dashboard: any): string[] {
  const exprs: string[] = [];
  const walk = (panels: any[]) => {
    for (const p of panels ?? []) {
      for (const t of p.targets ?? []) exprs.push(t.expr);
      walk(p.panels);
    }
  };
  walk(dashboard.panels);
  for (const v of dashboard.templating?.list ?? []) if (typeof v.query === 'object') exprs.push(v.query.query);
  const names = exprs.flatMap((e) => [...e.matchAll(/\b(bridgeport_[a-z0-9_]+)/g)].map((m) => m[1]!.replace(/_bucket$/, '')));
  return [...new Set(names)].sort();
}

describePriv.each(DATAPATHS)('Grafana dashboard (%s)', (datapath) => {
  const env = useDaemon(datapath, ['--metrics-addr', `127.0.0.1:${METRICS_PORT}`]);

  it('parses, and every metric it queries is in a real scrape (eBPF-only ones excepted on iptables)', async () => {
    const { topo, d } = env();
    const dashboard = JSON.parse(await readFile(join(REPO_ROOT, 'contrib', 'grafana', 'bridgeport.json'), 'utf8'));
    expect(dashboard.title).toBe('bridgeport');
    expect(dashboard.panels.length).toBeGreaterThanOrEqual(8);
    // Operations and traffic, so every family has a series.
    await runEcho(d, 'web', { flags: ['-p', '5333:53/udp'] });
    expect((await probe(topo.inClient, 'udp', topo.hostIp, 5333)).ok).toBe(true);
    const text = await scrape(topo);
    const families = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
    const present = new Set([...text.matchAll(/^([a-z_0-9]+)[{ ]/gm)].map((m) => m[1]!.replace(/_(bucket|sum|count)$/, '')));
    const ebpfOnly = ['bridgeport_bpf_map_entries', 'bridgeport_bpf_map_capacity', 'bridgeport_xdp_packets_total'];
    const wanted = dashboardMetrics(dashboard).filter((m) => datapath === 'ebpf' || !ebpfOnly.includes(m));
    expect(wanted.length).toBeGreaterThanOrEqual(12);
    for (const m of wanted) {
      expect({ metric: m, family: families.has(m), series: present.has(m) }).toEqual({ metric: m, family: true, series: true });
    }
  });
});

function split(argv: string[]): [string, string[]] {
  return [argv[0]!, argv.slice(1)];
}
