#!/usr/bin/env node
// Turns a run's results.json into summary.md and the SVG charts beside it.
//
//   node bench/report.mjs [RESULTS_DIR]            (default bench/results/latest)
//        [--publish DEST]   also copy summary.md and the charts to DEST
//                           (bench/published for the run the README shows),
//                           replacing what an earlier publish left there
//        [--readme]         print a markdown snippet for README.md on stdout:
//                           machine, command to reproduce, the tables, the
//                           charts linked under DEST (default bench/published)
//
// Every figure comes from the samples: medians, minimum and maximum over the
// rounds of one (workload, configuration, N, metric); ratios are of medians.
// The targets (TARGETS) are checked on the same figures and stated in
// summary.md, met or not met with the numbers: never a failure of the run.
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { baselineOnce, planCharts, renderCharts } from './lib/charts.mjs';
import { CONFIGS, stats } from './lib/results.mjs';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SUITE_ORDER = ['dataplane', 'controlplane'];
const SUITE_TITLE = { dataplane: 'Data plane', controlplane: 'Control plane' };
/** Columns of a suite's tables and the ratios shown after them, [numerator, denominator]. */
const LAYOUT = {
  dataplane: {
    configs: CONFIGS,
    ratios: [
      ['ebpf', 'nonat'],
      ['iptables', 'nonat'],
      ['nftables', 'nonat'],
      ['ebpf', 'iptables'],
    ],
  },
  controlplane: { configs: ['ebpf', 'iptables'], ratios: [['ebpf', 'iptables']] },
};
/**
 * Rows under a workload's table (of the metrics named): its medians over
 * another workload's (same suite, same metric), per configuration, at each N
 * both have. masq_crr over routed_crr: masquerade against the same daemon's
 * routed network.
 */
export const RATIO_ROWS = [{ suite: 'dataplane', workload: 'masq_crr', over: 'routed_crr', metrics: ['conn_per_s', 'cpu_s_per_1k_conn'] }];
/**
 * The targets summary.md states, each checked at every N its workload has, on
 * medians over the rounds:
 *   atLeast: config's value ≥ atLeast × vs's (vs: another configuration and/or
 *            workload, the same metric)
 *   noMore:  config's value ≤ vs's
 *   zero:    config's value is 0 in every round (the maximum, not the median)
 */
export const TARGETS = [
  {
    suite: 'dataplane',
    workload: 'tcp_crr',
    metric: 'conn_per_s',
    config: 'ebpf',
    atLeast: 0.95,
    vs: { config: 'nonat' },
    text: 'eBPF ≥ 0.95× no-NAT at every N (after traffic through another host port of the same container port)',
  },
  { suite: 'dataplane', workload: 'crr_two_ports', metric: 'failed', config: 'ebpf', zero: true, text: 'eBPF: no failed request, in any round' },
  { suite: 'dataplane', workload: 'crr_two_ports', metric: 'syn_retrans', config: 'ebpf', noMore: true, vs: { config: 'iptables' }, text: "eBPF: SYN retransmits ≤ the iptables datapath's" },
  { suite: 'dataplane', workload: 'masq_crr', metric: 'conn_per_s', config: 'ebpf', atLeast: 0.95, vs: { workload: 'routed_crr' }, text: "eBPF ≥ 0.95× eBPF's routed network (routed_crr)" },
  { suite: 'dataplane', workload: 'masq_crr', metric: 'conn_per_s', config: 'ebpf', atLeast: 1.0, vs: { config: 'iptables' }, text: "eBPF ≥ 1.0× the iptables datapath's masq_crr" },
];
/** Every chart file report.mjs may write (a skipped chart's old file is removed). */
export const CHART_FILES = planCharts([]).map((c) => c.file);
const NO_VALUE = '—';

export function loadResults(dir) {
  const file = path.join(dir, 'results.json');
  const results = JSON.parse(readFileSync(file, 'utf8'));
  if (!Array.isArray(results.samples)) throw new Error(`${file}: no samples array`);
  return results;
}

/**
 * Groups the samples by (suite, workload, metric), then configuration and N,
 * with stats() over the rounds: [{ suite, workload, metric, unit, higher, cells: Map(config → Map(n → stats)) }],
 * data plane first, then control plane, each in the order the suite recorded its workloads.
 */
export function aggregate(samples) {
  const groups = new Map();
  for (const s of samples) {
    const key = `${s.suite}\0${s.workload}\0${s.metric}`;
    let g = groups.get(key);
    if (!g) {
      g = { suite: s.suite, workload: s.workload, metric: s.metric, unit: s.unit, higher: s.higher, values: new Map() };
      groups.set(key, g);
    }
    let byN = g.values.get(s.config);
    if (!byN) {
      byN = new Map();
      g.values.set(s.config, byN);
    }
    if (!byN.has(s.n)) byN.set(s.n, []);
    byN.get(s.n).push(s.value);
  }
  const rank = (suite) => (SUITE_ORDER.includes(suite) ? SUITE_ORDER.indexOf(suite) : SUITE_ORDER.length);
  return [...groups.values()]
    .map((g, i) => ({ g, i }))
    .sort((a, b) => rank(a.g.suite) - rank(b.g.suite) || a.i - b.i)
    .map(({ g }) => {
      const cells = new Map();
      for (const [config, byN] of g.values) cells.set(config, new Map([...byN].map(([n, v]) => [n, stats(v)])));
      return { suite: g.suite, workload: g.workload, metric: g.metric, unit: g.unit, higher: g.higher, cells };
    });
}

/** A number for a table: about three significant digits, no exponent. */
export function fmt(v) {
  const a = Math.abs(v);
  if (a === 0) return '0';
  if (a >= 100) return String(Math.round(v));
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  return String(Number(v.toPrecision(3)));
}

const fmtRatio = (r) => `${r >= 0.1 ? r.toFixed(2) : Number(r.toPrecision(2))}×`;

function layoutFor(group) {
  const known = LAYOUT[group.suite];
  const present = [...group.cells.keys()];
  if (!known) return { configs: [...CONFIGS.filter((c) => present.includes(c)), ...present.filter((c) => !CONFIGS.includes(c))], ratios: [] };
  // A configuration the layout does not name still gets a column, after the known ones.
  return { configs: [...known.configs, ...present.filter((c) => !known.configs.includes(c))], ratios: known.ratios };
}

/** The stats of config at N in group; a no-NAT baseline measured once (baselineOnce) stands for every N. */
function cellAt(group, config, n) {
  if (!group) return undefined;
  const base = config === 'nonat' ? baselineOnce(group) : undefined;
  return base ? base.stats : group.cells.get(config)?.get(n);
}

/** The Ns of a group's rows: every N measured, but a once-measured baseline's own. */
function rowNs(group) {
  const ns = new Set();
  for (const byN of group.cells.values()) for (const n of byN.keys()) ns.add(n);
  const base = baselineOnce(group);
  if (base) ns.delete(base.n);
  return [...ns].sort((a, b) => a - b);
}

const findGroup = (groups, suite, workload, metric) => groups.find((g) => g.suite === suite && g.workload === workload && g.metric === metric);

/**
 * One table as { header, rows, notes } (rows of strings): N, a cell per
 * configuration (median unit [min–max], and (k/R) when fewer rounds than the
 * run's R gave a value), then the ratios of medians; then, when RATIO_ROWS
 * names the workload and `groups` (every aggregated group) holds the other
 * one, a row per N of the ratios of medians workload/other per configuration.
 */
export function table(group, rounds, groups = []) {
  const { configs, ratios } = layoutFor(group);
  const notes = [];
  const base = baselineOnce(group);
  if (base) notes.push(`nonat is measured once, at N = ${base.n}, and shown on every row.`);
  const ns = rowNs(group);
  const valueAt = (config, n) => cellAt(group, config, n);
  const header = ['N', ...configs, ...ratios.map(([a, b]) => `${a}/${b}`)];
  const rows = ns.map((n) => {
      const cells = configs.map((c) => {
        const s = valueAt(c, n);
        if (!s) return NO_VALUE;
        const partial = rounds && s.count < rounds ? ` (${s.count}/${rounds})` : '';
        return `${fmt(s.median)} ${group.unit} [${fmt(s.min)}–${fmt(s.max)}]${partial}`;
      });
      const rs = ratios.map(([a, b]) => {
        const x = valueAt(a, n);
        const y = valueAt(b, n);
        return x && y && y.median !== 0 ? fmtRatio(x.median / y.median) : NO_VALUE;
      });
      return [String(n), ...cells, ...rs];
    });
  for (const rr of RATIO_ROWS.filter((r) => r.suite === group.suite && r.workload === group.workload && r.metrics.includes(group.metric))) {
    const other = findGroup(groups, group.suite, rr.over, group.metric);
    if (!other) continue;
    const both = ns.filter((n) => configs.some((c) => valueAt(c, n) && cellAt(other, c, n)));
    for (const n of both) {
      const cells = configs.map((c) => {
        const x = valueAt(c, n);
        const y = cellAt(other, c, n);
        return x && y && y.median !== 0 ? fmtRatio(x.median / y.median) : NO_VALUE;
      });
      rows.push([`${group.workload}/${rr.over}${both.length > 1 ? `, N = ${n}` : ''}`, ...cells, ...ratios.map(() => '')]);
    }
    if (both.length) notes.push(`${group.workload}/${rr.over}: ${group.workload}'s median over ${rr.over}'s, each configuration against itself.`);
  }
  return { header, rows, notes };
}

/** One target's verdict: { status: 'met' | 'not met' | 'not measured', detail }: the figures at each N, ✓ or ✗. */
export function checkTarget(t, groups) {
  const g = findGroup(groups, t.suite, t.workload, t.metric);
  const ns = g && g.cells.has(t.config) ? rowNs(g).filter((n) => cellAt(g, t.config, n)) : [];
  if (ns.length === 0) return { status: 'not measured', detail: `no ${t.config} ${t.workload} ${t.metric} sample` };
  const vsGroup = t.vs ? findGroup(groups, t.suite, t.vs.workload ?? t.workload, t.metric) : undefined;
  const vsConfig = t.vs?.config ?? t.config;
  const vsName = [t.vs?.config, t.vs?.workload].filter(Boolean).join(' ');
  const parts = [];
  let compared = 0;
  let failed = 0;
  for (const n of ns) {
    const x = cellAt(g, t.config, n);
    const at = `N = ${n}: `;
    if (t.zero) {
      compared++;
      if (x.max !== 0) failed++;
      parts.push(x.max === 0 ? `${at}0 ${g.unit} in each of ${x.count} round${x.count === 1 ? '' : 's'} ✓` : `${at}${fmt(x.max)} ${g.unit} in the worst round (median ${fmt(x.median)} [${fmt(x.min)}–${fmt(x.max)}]) ✗`);
      continue;
    }
    const y = cellAt(vsGroup, vsConfig, n);
    if (!y) {
      parts.push(`${at}no ${vsName} value to compare with`);
      continue;
    }
    compared++;
    if (t.noMore) {
      const ok = x.median <= y.median;
      if (!ok) failed++;
      parts.push(`${at}${fmt(x.median)} vs ${fmt(y.median)} ${g.unit} (${vsName}) ${ok ? '✓' : '✗'}`);
    } else {
      const ok = y.median > 0 && x.median >= t.atLeast * y.median;
      if (!ok) failed++;
      // Three decimals, so that 0.947× is not shown as a 0.95× that missed 0.95×.
      const r = y.median > 0 ? `${(x.median / y.median).toFixed(3)}×` : NO_VALUE;
      parts.push(`${at}${r} (${fmt(x.median)} / ${fmt(y.median)} ${g.unit}) ${ok ? '✓' : '✗'}`);
    }
  }
  const status = compared === 0 ? 'not measured' : failed ? 'not met' : 'met';
  return { status, detail: parts.join('; ') };
}

/** The targets section (heading level h), or nothing when no target's workload was measured. */
export function targetsMarkdown(groups, h = '##') {
  const relevant = TARGETS.filter((t) => groups.some((g) => g.suite === t.suite && g.workload === t.workload));
  if (relevant.length === 0) return [];
  const out = [`${h} Targets`, '', 'Checked on the medians over the rounds (a zero target: on every round), at every N measured; stated here, never a failure of the run.', ''];
  for (const t of TARGETS) {
    const v = checkTarget(t, groups);
    const status = v.status === 'not measured' ? v.status : `**${v.status}**`;
    out.push(`- ${t.workload} ${t.metric}, ${t.text}: ${status} — ${v.detail}`);
  }
  out.push('');
  return out;
}

const mdRow = (cells) => `| ${cells.join(' | ')} |`;

function mdTable(t) {
  const lines = [mdRow(t.header), mdRow(t.header.map((_, i) => (i === 0 ? '--:' : '---'))), ...t.rows.map(mdRow)];
  for (const n of t.notes) lines.push('', `_${n}_`);
  return lines.join('\n');
}

function duration(aIso, bIso) {
  if (!aIso || !bIso) return undefined;
  const s = Math.round((Date.parse(bIso) - Date.parse(aIso)) / 1000);
  return s >= 120 ? `${Math.round(s / 60)} min` : `${s} s`;
}

/** The machine in one line. */
export function machineLine(m) {
  if (!m) return 'machine unknown';
  return `${m.cpuModel}, ${m.cores} cores, ${m.memTotalMiB} MiB memory; Linux ${m.kernel}; Node ${m.node}; commit ${m.commit}`;
}

/** How to run the same again: the make target when the command is one of theirs. */
export function reproduceCommand(command) {
  const c = (command ?? '').trim();
  if (/^node bench\/run\.mjs$/.test(c)) return 'make bench';
  if (/^node bench\/run\.mjs --quick$/.test(c)) return 'make bench-quick';
  return c ? `make build && scripts/install-bench-deps.sh && ${c}` : 'make bench';
}

/** The tables of every workload, grouped by suite; heading level given by `h` ('##' or '###'). */
export function tablesMarkdown(groups, rounds, h = '##') {
  const out = [];
  let suite;
  for (const g of groups) {
    if (g.suite !== suite) {
      suite = g.suite;
      out.push(`${h} ${SUITE_TITLE[suite] ?? suite}`, '');
    }
    const better = g.higher ? 'higher is better' : 'lower is better';
    const what = g.metric === g.unit ? '' : ` — ${g.metric}`;
    out.push(`${h}# ${g.workload}${what} (${g.unit}, ${better})`, '', mdTable(table(g, rounds, groups)), '');
  }
  return out;
}

const LEGEND =
  'Configurations: **nonat** routes to the server without any translation (the baseline); **ebpf** and **iptables** are ' +
  'bridgeport with `--datapath ebpf` / `--datapath iptables`; **nftables** is a hand-written nftables DNAT map. ' +
  `Cells: median over the rounds, [min–max], (k/R) when only k of the R rounds gave a value; ${NO_VALUE} = no value ` +
  '(not measured, or the measurement failed: see Errors and run.log). Ratios are of medians.';

const clip = (text, max) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

/** summary.md as a string. charts: what renderCharts() returned. */
export function summaryMarkdown(results, charts) {
  const groups = aggregate(results.samples);
  const rounds = results.params?.rounds;
  const lines = [];
  lines.push(`# bridgeport benchmark, ${results.started ?? 'date unknown'}${results.quick ? ' (quick)' : ''}`, '');
  const m = results.machine ?? {};
  const info = [
    ['Kernel', m.kernel],
    ['CPU', m.cpuModel && `${m.cpuModel}, ${m.cores} cores`],
    ['Memory', m.memTotalMiB && `${m.memTotalMiB} MiB`],
    ['Node', m.node],
    ['Commit', m.commit],
    ['Date', `${results.started ?? '?'} → ${results.finished ?? 'not finished'}${duration(results.started, results.finished) ? ` (${duration(results.started, results.finished)})` : ''}`],
    ['Command', results.command && `\`${results.command}\` (as root)`],
    ['Rounds', rounds],
    ['N (published ports)', nsText(results.params)],
    [
      'Suites',
      (results.suiteRuns ?? []).map((s) => `${s.suite} (${s.ok ? 'ok' : 'failed'}, ${s.samples} samples, ${duration(s.started, s.finished)})`).join('; ') ||
        results.params?.suites?.join(', '),
    ],
  ];
  lines.push('| | |', '|---|---|', ...info.filter(([, v]) => v !== undefined && v !== '').map(([k, v]) => mdRow([k, String(v)])), '');
  if (results.interrupted) lines.push(`**Interrupted by ${results.interrupted}: the figures below are partial.**`, '');
  if (results.errors?.length) {
    lines.push('## Errors', '');
    for (const e of results.errors) {
      const [head, ...rest] = String(e.message).split('\n');
      lines.push(`- ${e.suite}: ${head}`);
      // A suite's failures, one indented line each ("  n=… config: why"); the daemon log lines after them stay in results.json.
      for (const f of rest.filter((l) => /^\s+n=\d/.test(l))) lines.push(`  - ${clip(f.trim(), 400)}`);
    }
    lines.push('');
  }
  lines.push(LEGEND, '');
  if (groups.length === 0) lines.push('No sample was recorded.', '');
  lines.push(...targetsMarkdown(groups, '##'));
  lines.push(...tablesMarkdown(groups, rounds, '##'));
  lines.push('## Charts', '');
  for (const c of charts) lines.push(c.skipped ? `- ${c.file} (${c.title}) not drawn: ${c.skipped}.` : `![${c.title}](${c.file})`, '');
  return `${lines.join('\n').trimEnd()}\n`;
}

/** The N of a run, and the control plane's when they differ. */
function nsText(params) {
  const ns = params?.ns?.join(', ');
  const cp = params?.controlplaneNs?.join(', ');
  return cp && cp !== ns && params?.suites?.includes('controlplane') ? `${ns} (control plane: ${cp})` : ns;
}

/** A markdown snippet for README.md: machine, command to reproduce, the tables, the charts under imageBase. */
export function readmeSnippet(results, charts, imageBase = 'bench/published') {
  const groups = aggregate(results.samples);
  const rounds = results.params?.rounds;
  const lines = [
    `Measured on ${machineLine(results.machine)}, ${results.started ?? ''}; N = ${nsText(results.params) ?? '?'}, ` +
      `${rounds ?? '?'} interleaved rounds. Reproduce (as root): \`${reproduceCommand(results.command)}\`; ` +
      'the run lands in `bench/results/latest/` (summary.md, results.json, charts).',
    '',
    LEGEND,
    '',
  ];
  if (results.errors?.length) lines.push(`Errors in this run: ${results.errors.map((e) => `${e.suite}: ${String(e.message).split('\n')[0]}`).join('; ')}.`, '');
  lines.push(...targetsMarkdown(groups, '###'));
  lines.push(...tablesMarkdown(groups, rounds, '###'));
  for (const c of charts) if (!c.skipped) lines.push(`![${c.title}](${imageBase.replace(/\/$/, '')}/${c.file})`, '');
  return `${lines.join('\n').trimEnd()}\n`;
}

/** Writes summary.md and the charts into dir (a run of bench/run.mjs); returns { results, charts, summary }. */
export async function writeReport(dir) {
  const results = loadResults(dir);
  const charts = await renderCharts(aggregate(results.samples));
  for (const c of charts) {
    const file = path.join(dir, c.file);
    if (c.svg) writeFileSync(file, c.svg);
    else rmSync(file, { force: true });
  }
  const summary = summaryMarkdown(results, charts);
  writeFileSync(path.join(dir, 'summary.md'), summary);
  return { results, charts, summary };
}

/** Copies summary.md and the drawn charts of dir to dest, after removing what an earlier publish put there. */
export function publish(dir, dest, charts) {
  mkdirSync(dest, { recursive: true });
  for (const f of readdirSync(dest)) {
    if (f === 'summary.md' || CHART_FILES.includes(f)) rmSync(path.join(dest, f));
  }
  copyFileSync(path.join(dir, 'summary.md'), path.join(dest, 'summary.md'));
  for (const c of charts) if (!c.skipped) copyFileSync(path.join(dir, c.file), path.join(dest, c.file));
}

async function main(argv) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { publish: { type: 'string' }, readme: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    process.stdout.write('usage: node bench/report.mjs [RESULTS_DIR] [--publish DEST] [--readme]\n');
    return 0;
  }
  if (positionals.length > 1) throw new Error(`one RESULTS_DIR at most, got ${positionals.join(' ')}`);
  const dir = path.resolve(positionals[0] ?? path.join(REPO, 'bench/results/latest'));
  if (!existsSync(path.join(dir, 'results.json'))) throw new Error(`${dir}: no results.json (run bench/run.mjs first)`);
  const { charts } = await writeReport(dir);
  process.stderr.write(`report: wrote ${path.join(dir, 'summary.md')} and ${charts.filter((c) => c.svg).length} chart(s)\n`);
  let imageBase = 'bench/published';
  if (values.publish) {
    const dest = path.resolve(values.publish);
    publish(dir, dest, charts);
    process.stderr.write(`report: published to ${dest}\n`);
    const rel = path.relative(REPO, dest);
    imageBase = rel && !rel.startsWith('..') ? rel.split(path.sep).join('/') : dest;
  }
  if (values.readme) process.stdout.write(readmeSnippet(loadResults(dir), charts, imageBase));
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.stderr.write(`report: ${e.message}\n`);
      process.exitCode = 1;
    },
  );
}
