// bench/report.mjs on small synthetic runs: the tables (medians over rounds,
// [min–max], columns in order, ratios of medians, missing values marked), the
// charts (drawn as well-formed SVG, or skipped with a note when their data is
// missing), --publish and --readme through the real command line.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// The bench is plain ESM without type declarations: import it by URL (typed any).
const load = (rel: string): Promise<any> => import(pathToFileURL(path.join(repo, rel)).href);

let report: any;
let results: any;
let tmp: string;

const MACHINE = { kernel: '6.1.0-test', cpuModel: 'Test CPU 9000', cores: 2, memTotalMiB: 4096, node: 'v20.0.0', commit: 'abc1234' };

/** Three rounds of each value list, in the order given (round r gets values[r]). */
function samplesOf(
  sample: any,
  suite: string,
  workload: string,
  metric: string,
  unit: string,
  higher: boolean,
  table: Record<string, Record<number, number[]>>,
) {
  const out: any[] = [];
  for (const [config, byN] of Object.entries(table)) {
    for (const [n, values] of Object.entries(byN)) {
      values.forEach((value, round) => {
        out.push(sample({ suite, workload, config, n: Number(n), round, metric, value, unit, higher }));
      });
    }
  }
  return out;
}

function writeRun(dir: string, samples: any[], extra: Record<string, unknown> = {}) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    path.join(dir, 'results.json'),
    JSON.stringify({
      started: '2026-01-02T03:04:05.000Z',
      finished: '2026-01-02T03:34:05.000Z',
      command: 'node bench/run.mjs',
      quick: false,
      params: { ns: [1, 1000], rounds: 3, suites: ['dataplane', 'controlplane'] },
      machine: MACHINE,
      samples,
      errors: [],
      ...extra,
    }),
  );
}

/** Well-formed XML whose root is an <svg> in the SVG namespace: tags nest and close, attributes are quoted, entities are valid. */
function parseSvg(text: string) {
  const stack: string[] = [];
  let root: { name: string; attrs: string } | undefined;
  let elements = 0;
  let i = 0;
  const tag = /<(\/?)([A-Za-z_][\w:.-]*)((?:\s+[A-Za-z_][\w:.-]*\s*=\s*(?:"[^"<]*"|'[^'<]*'))*)\s*(\/?)>/y;
  const checkText = (s: string) => {
    for (const m of s.matchAll(/&[^;\s]*;?/g)) {
      if (!/^&(?:[A-Za-z]+|#\d+|#x[0-9a-fA-F]+);$/.test(m[0])) throw new Error(`bad entity ${m[0]}`);
    }
  };
  while (i < text.length) {
    const lt = text.indexOf('<', i);
    if (lt < 0) {
      checkText(text.slice(i));
      break;
    }
    checkText(text.slice(i, lt));
    if (text.startsWith('<!--', lt)) {
      const end = text.indexOf('-->', lt);
      if (end < 0) throw new Error('unclosed comment');
      i = end + 3;
      continue;
    }
    if (text.startsWith('<?', lt)) {
      const end = text.indexOf('?>', lt);
      if (end < 0) throw new Error('unclosed processing instruction');
      i = end + 2;
      continue;
    }
    tag.lastIndex = lt;
    const m = tag.exec(text);
    if (!m) throw new Error(`malformed tag at ${lt}: ${text.slice(lt, lt + 60)}`);
    const [whole, closing, name, attrs, selfClosing] = m;
    if (closing) {
      if (attrs || selfClosing) throw new Error(`malformed closing tag ${whole}`);
      const open = stack.pop();
      if (open !== name) throw new Error(`</${name}> closes <${open}>`);
    } else {
      if (!root) root = { name: name!, attrs: attrs! };
      else if (stack.length === 0) throw new Error(`second root element <${name}>`);
      elements++;
      if (!selfClosing) stack.push(name!);
    }
    i = lt + whole.length;
  }
  if (stack.length) throw new Error(`unclosed <${stack.join('> <')}>`);
  if (!root) throw new Error('no element');
  return { root, elements };
}

function expectSvg(file: string) {
  const text = readFileSync(file, 'utf8');
  const { root, elements } = parseSvg(text);
  expect(root.name).toBe('svg');
  expect(root.attrs).toContain('xmlns="http://www.w3.org/2000/svg"');
  expect(Number(/\swidth="(\d+(?:\.\d+)?)"/.exec(root.attrs)?.[1])).toBeGreaterThan(100);
  expect(elements).toBeGreaterThan(20);
  return text;
}

/** The rows of the markdown table under a heading, as arrays of cells. */
function tableAfter(md: string, heading: string) {
  const start = md.indexOf(heading);
  expect(start, `heading ${heading}`).toBeGreaterThanOrEqual(0);
  const lines = md.slice(start).split('\n').slice(1);
  const first = lines.findIndex((l) => l.startsWith('|'));
  const rows: string[][] = [];
  for (const l of lines.slice(first)) {
    if (!l.startsWith('|')) break;
    rows.push(
      l
        .slice(1, -1)
        .split('|')
        .map((c) => c.trim()),
    );
  }
  return { header: rows[0]!, body: rows.slice(2) };
}

beforeAll(async () => {
  report = await load('bench/report.mjs');
  results = await load('bench/lib/results.mjs');
  tmp = mkdtempSync(path.join(os.tmpdir(), 'bench-report-test-'));
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('report of a full synthetic run', () => {
  let dir: string;
  let out: any;

  beforeAll(async () => {
    const { sample } = results;
    dir = path.join(tmp, 'full');
    writeRun(dir, [
      ...samplesOf(sample, 'dataplane', 'tcp_crr', 'conn_per_s', 'conn/s', true, {
        // Listed out of table order on purpose: columns follow nonat, ebpf, iptables, nftables.
        iptables: { 1: [800, 700, 900], 1000: [400, 500] }, // one round of 1000 failed
        nonat: { 1: [1000, 1100, 900], 1000: [1000, 1200, 1100] },
        ebpf: { 1: [950, 900, 1000], 1000: [990, 900, 1000] },
        nftables: { 1: [880, 860, 900] }, // nothing at 1000
      }),
      ...samplesOf(sample, 'dataplane', 'tcp_stream_1', 'gbps', 'Gbit/s', true, {
        nonat: { 1: [10, 11, 12], 1000: [10, 10, 10] },
        ebpf: { 1: [9, 9.5, 10], 1000: [9, 9, 9] },
        iptables: { 1: [8, 8, 8], 1000: [4, 4, 4] },
        nftables: { 1: [8.5, 8.5, 8.5], 1000: [8, 8, 8] },
      }),
      ...samplesOf(sample, 'dataplane', 'tcp_stream_4', 'gbps', 'Gbit/s', true, {
        nonat: { 1: [20, 20, 20], 1000: [20, 20, 20] },
        ebpf: { 1: [19, 19, 19], 1000: [19, 19, 19] },
      }),
      ...samplesOf(sample, 'controlplane', 'publish_range', 'ms', 'ms', false, {
        ebpf: { 1: [4, 5, 6], 1000: [10, 12, 11] },
        iptables: { 1: [20, 21, 22], 1000: [200, 240, 220] },
      }),
      ...samplesOf(sample, 'controlplane', 'port_add', 'p99_ms', 'ms', false, {
        ebpf: { 1: [1, 2, 3], 1000: [2, 2, 2] },
        iptables: { 1: [3, 3, 3], 1000: [30, 40, 35] },
      }),
    ]);
    out = await report.writeReport(dir);
  }, 30_000);

  it('starts with the machine, date, command and rounds', () => {
    const md = readFileSync(path.join(dir, 'summary.md'), 'utf8');
    expect(md).toBe(out.summary);
    const head = md.slice(0, md.indexOf('## Data plane'));
    for (const want of ['6.1.0-test', 'Test CPU 9000, 2 cores', '4096 MiB', 'v20.0.0', 'abc1234', '2026-01-02T03:04:05.000Z', '(30 min)', '`node bench/run.mjs`', '| Rounds | 3 |']) {
      expect(head).toContain(want);
    }
  });

  it('data-plane table: rows N, configurations in order, median [min–max] unit, ratios of medians, missing marked', () => {
    const md = out.summary;
    const t = tableAfter(md, '### tcp_crr — conn_per_s (conn/s, higher is better)');
    expect(t.header).toEqual(['N', 'nonat', 'ebpf', 'iptables', 'nftables', 'ebpf/nonat', 'iptables/nonat', 'nftables/nonat', 'ebpf/iptables']);
    expect(t.body.map((r) => r[0])).toEqual(['1', '1000']);
    const [n1, n1000] = t.body as [string[], string[]];
    expect(n1.slice(1, 5)).toEqual(['1000 conn/s [900–1100]', '950 conn/s [900–1000]', '800 conn/s [700–900]', '880 conn/s [860–900]']);
    expect(n1.slice(5)).toEqual(['0.95×', '0.80×', '0.88×', '1.19×']);
    // Two rounds: the median is their mean, and the cell says 2 of 3 rounds.
    expect(n1000[3]).toBe('450 conn/s [400–500] (2/3)');
    expect(n1000[4]).toBe('—');
    expect(n1000.slice(5)).toEqual(['0.90×', '0.41×', '—', '2.20×']);
  });

  it('control-plane table: ebpf and iptables, ebpf/iptables, lower is better', () => {
    const t = tableAfter(out.summary, '### publish_range (ms, lower is better)');
    expect(t.header).toEqual(['N', 'ebpf', 'iptables', 'ebpf/iptables']);
    expect(t.body).toEqual([
      ['1', '5.00 ms [4.00–6.00]', '21.0 ms [20.0–22.0]', '0.24×'],
      ['1000', '11.0 ms [10.0–12.0]', '220 ms [200–240]', '0.05×'],
    ]);
    expect(out.summary.indexOf('## Data plane')).toBeLessThan(out.summary.indexOf('## Control plane'));
  });

  it('draws the three charts as SVG files and links them', () => {
    expect(out.charts.map((c: any) => [c.file, Boolean(c.svg)])).toEqual([
      ['conn_rate.svg', true],
      ['throughput.svg', true],
      ['controlplane.svg', true],
    ]);
    const conn = expectSvg(path.join(dir, 'conn_rate.svg'));
    for (const config of ['nonat', 'ebpf', 'iptables', 'nftables']) expect(conn).toContain(`>${config}</text>`);
    const tput = expectSvg(path.join(dir, 'throughput.svg'));
    expect(tput).toContain('N = 1');
    expect(tput).toContain('N = 1000');
    const cp = expectSvg(path.join(dir, 'controlplane.svg'));
    expect(cp).toContain('publish_range');
    expect(cp).toContain('port_add');
    for (const f of ['conn_rate.svg', 'throughput.svg', 'controlplane.svg']) expect(out.summary).toContain(`](${f})`);
    expect(out.summary).not.toContain('not drawn');
  });
});

describe('report of a partial run', () => {
  it('skips a chart whose data is missing with a note, and removes its old file', async () => {
    const { sample } = results;
    const dir = path.join(tmp, 'partial');
    writeRun(
      dir,
      samplesOf(sample, 'controlplane', 'publish_range', 'ms', 'ms', false, {
        ebpf: { 1: [4, 5, 6] },
        iptables: { 1: [20, 21, 22] },
      }),
      {
        errors: [
          { suite: 'dataplane', message: 'iperf3 exited with 1\nmore' },
          { suite: 'controlplane', message: `controlplane: 2 failure(s):\n  n=1 round 1/3 scrape iptables: HTTP 500\n  n=1000 round 2/3 restart_ready ebpf: ended (1); log x:\n2026 daemon log line\n  n=1 round 3/3 port_ops ebpf: ${'x'.repeat(500)}` },
        ],
      },
    );
    writeFileSync(path.join(dir, 'conn_rate.svg'), '<svg/>'); // left by an earlier report of this folder
    const out = await report.writeReport(dir);
    expect(out.charts.filter((c: any) => c.svg).map((c: any) => c.file)).toEqual(['controlplane.svg']);
    expect(out.summary).toContain('- conn_rate.svg (TCP connection rate vs published ports) not drawn: no dataplane tcp_crr conn_per_s sample.');
    expect(out.summary).toContain('throughput.svg (TCP throughput per configuration) not drawn');
    expect(out.summary).toContain('## Errors\n\n- dataplane: iperf3 exited with 1\n- controlplane: controlplane: 2 failure(s):\n  - n=1 round 1/3 scrape iptables: HTTP 500\n  - n=1000 round 2/3 restart_ready ebpf: ended (1); log x:\n  - n=1 round 3/3 port_ops ebpf: xxx');
    expect(out.summary).not.toContain('daemon log line');
    expect(out.summary).toMatch(/x{300}…\n/);
    expect(out.summary).not.toContain('## Data plane');
    expect(existsSync(path.join(dir, 'conn_rate.svg'))).toBe(false);
    expectSvg(path.join(dir, 'controlplane.svg'));
  }, 30_000);

  it('shows a no-NAT baseline measured once on every row, in the table and the chart', async () => {
    const { sample } = results;
    const samples = samplesOf(sample, 'dataplane', 'tcp_crr', 'conn_per_s', 'conn/s', true, {
      nonat: { 0: [1000, 1000, 1000] },
      ebpf: { 1: [900, 900, 900], 1000: [800, 800, 800] },
    });
    const t = report.table(report.aggregate(samples)[0], 3);
    expect(t.rows.map((r: string[]) => [r[0], r[1], r[5]])).toEqual([
      ['1', '1000 conn/s [1000–1000]', '0.90×'],
      ['1000', '1000 conn/s [1000–1000]', '0.80×'],
    ]);
    expect(t.notes).toEqual(['nonat is measured once, at N = 0, and shown on every row.']);
    const dir = path.join(tmp, 'baseline');
    writeRun(dir, samples);
    const out = await report.writeReport(dir);
    expect(out.summary).toContain('_nonat is measured once, at N = 0, and shown on every row._');
    expect(expectSvg(path.join(dir, 'conn_rate.svg'))).toContain('>nonat</text>');
  }, 30_000);
});

describe('report: ratio rows and targets', () => {
  /** A data-plane run with every workload a target names, one N or two. */
  function targetSamples(sample: any, { ebpfFailed = [0, 0, 0], ebpfMasq = [9600, 9700, 9800] } = {}) {
    const conn = (workload: string, table: Record<string, Record<number, number[]>>) =>
      samplesOf(sample, 'dataplane', workload, 'conn_per_s', 'connections/s', true, table);
    return [
      ...conn('tcp_crr', {
        nonat: { 1: [1000, 1000, 1000], 1000: [1000, 1000, 1000] },
        ebpf: { 1: [960, 970, 980], 1000: [900, 940, 910] }, // 0.97× at 1, 0.91× at 1000
      }),
      ...conn('crr_two_ports', { ebpf: { 1: [5000, 5000, 5000] }, iptables: { 1: [4000, 4000, 4000] } }),
      ...samplesOf(sample, 'dataplane', 'crr_two_ports', 'failed', 'requests', false, { ebpf: { 1: ebpfFailed }, iptables: { 1: [0, 0, 0] } }),
      ...samplesOf(sample, 'dataplane', 'crr_two_ports', 'syn_retrans', 'SYN retransmits', false, { ebpf: { 1: [3, 4, 5] }, iptables: { 1: [10, 12, 14] } }),
      ...conn('masq_crr', { nonat: { 1: [12000, 12000, 12000] }, ebpf: { 1: ebpfMasq }, iptables: { 1: [9000, 9000, 9000] } }),
      ...conn('routed_crr', { nonat: { 1: [12000, 12000, 12000] }, ebpf: { 1: [10000, 10000, 10000] }, iptables: { 1: [10000, 10000, 10000] } }),
    ];
  }

  it('adds a masq_crr/routed_crr row of ratios of medians, per configuration', () => {
    const groups = report.aggregate(targetSamples(results.sample));
    const masq = groups.find((g: any) => g.workload === 'masq_crr' && g.metric === 'conn_per_s');
    const t = report.table(masq, 3, groups);
    expect(t.rows).toHaveLength(2);
    expect(t.rows[1]).toEqual(['masq_crr/routed_crr', '1.00×', '0.97×', '0.90×', '—', '', '', '', '']);
    expect(t.notes.join(' ')).toContain("masq_crr's median over routed_crr's");
    // Without the other groups (or routed_crr not measured): no ratio row.
    expect(report.table(masq, 3).rows).toHaveLength(1);
  });

  it('states every target met or not met with the numbers, never as an error', async () => {
    const dir = path.join(tmp, 'targets');
    writeRun(dir, targetSamples(results.sample, { ebpfFailed: [0, 12, 0], ebpfMasq: [9000, 9000, 9000] }));
    const out = await report.writeReport(dir);
    const md: string = out.summary;
    expect(md.indexOf('## Targets')).toBeGreaterThan(0);
    expect(md.indexOf('## Targets')).toBeLessThan(md.indexOf('## Data plane'));
    const line = (workload: string, metric: string, text: string) => md.split('\n').find((l) => l.startsWith(`- ${workload} ${metric}, ${text}`));
    expect(line('tcp_crr', 'conn_per_s', 'eBPF ≥ 0.95× no-NAT')).toContain('**not met** — N = 1: 0.970× (970 / 1000 connections/s) ✓; N = 1000: 0.910× (910 / 1000 connections/s) ✗');
    expect(line('crr_two_ports', 'failed', 'eBPF: no failed')).toContain('**not met** — N = 1: 12.0 requests in the worst round (median 0 [0–12.0]) ✗');
    expect(line('crr_two_ports', 'syn_retrans', 'eBPF: SYN')).toContain('**met** — N = 1: 4.00 vs 12.0 SYN retransmits (iptables) ✓');
    expect(line('masq_crr', 'conn_per_s', "eBPF ≥ 0.95× eBPF's routed")).toContain('**not met** — N = 1: 0.900× (9000 / 10000 connections/s) ✗');
    expect(line('masq_crr', 'conn_per_s', 'eBPF ≥ 1.0× the iptables')).toContain('**met** — N = 1: 1.000× (9000 / 9000 connections/s) ✓');
    expect(md).not.toContain('## Errors');
  }, 30_000);

  it('says a target was not measured when its figures are missing, and leaves the section out without its workloads', async () => {
    const { sample } = results;
    const groups = report.aggregate([
      ...samplesOf(sample, 'dataplane', 'crr_two_ports', 'failed', 'requests', false, { ebpf: { 1: [0, 0, 0] } }),
      ...samplesOf(sample, 'dataplane', 'crr_two_ports', 'syn_retrans', 'SYN retransmits', false, { ebpf: { 1: [0, 0, 0] } }),
    ]);
    const lines = report.targetsMarkdown(groups).join('\n');
    expect(lines).toContain('eBPF: no failed request, in any round: **met** — N = 1: 0 requests in each of 3 rounds ✓');
    expect(lines).toContain("SYN retransmits ≤ the iptables datapath's: not measured — N = 1: no iptables value to compare with");
    expect(lines).toContain('tcp_crr conn_per_s, eBPF ≥ 0.95× no-NAT at every N (after traffic through another host port of the same container port): not measured — no ebpf tcp_crr conn_per_s sample');
    const cp = report.aggregate(samplesOf(sample, 'controlplane', 'publish_range', 'ms', 'ms', false, { ebpf: { 1: [4, 5, 6] } }));
    expect(report.targetsMarkdown(cp)).toEqual([]);
  });
});

describe('report.mjs command line', () => {
  it('writes the report, publishes it (replacing the previous one) and prints the README snippet', async () => {
    const { sample } = results;
    const dir = path.join(tmp, 'cli-run');
    writeRun(
      dir,
      samplesOf(sample, 'dataplane', 'tcp_crr', 'conn_per_s', 'conn/s', true, {
        nonat: { 1: [1000, 1000, 1000] },
        ebpf: { 1: [900, 950, 1000] },
      }),
      { command: 'node bench/run.mjs --quick', quick: true },
    );
    const dest = path.join(tmp, 'published');
    mkdirSync(dest);
    writeFileSync(path.join(dest, 'throughput.svg'), '<svg/>'); // an earlier publish
    writeFileSync(path.join(dest, 'keep.txt'), 'not ours');
    const r = await execa('node', [path.join(repo, 'bench/report.mjs'), dir, '--publish', dest, '--readme']);
    expect(readdirSync(dest).sort()).toEqual(['conn_rate.svg', 'keep.txt', 'summary.md']);
    expect(readFileSync(path.join(dest, 'summary.md'), 'utf8')).toBe(readFileSync(path.join(dir, 'summary.md'), 'utf8'));
    expectSvg(path.join(dest, 'conn_rate.svg'));
    const snippet = r.stdout;
    expect(snippet.split('\n')[0]).toContain('Measured on Test CPU 9000, 2 cores, 4096 MiB memory; Linux 6.1.0-test; Node v20.0.0; commit abc1234');
    expect(snippet).toContain('`make bench-quick`');
    expect(snippet).toContain('#### tcp_crr — conn_per_s (conn/s, higher is better)');
    expect(snippet).toContain('| 1 | 1000 conn/s [1000–1000] | 950 conn/s [900–1000] | — | — | 0.95× | — | — | — |');
    expect(snippet).toContain(`![TCP connection rate vs published ports](${dest}/conn_rate.svg)`);
    expect(snippet).not.toContain('throughput.svg');
  }, 30_000);

  it('fails on a folder without results.json', async () => {
    const r = await execa('node', [path.join(repo, 'bench/report.mjs'), path.join(tmp, 'nothing')], { reject: false });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('no results.json');
  }, 30_000);
});
