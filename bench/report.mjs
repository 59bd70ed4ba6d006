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

/**
 * One table as { header, rows, notes } (rows of strings): N, a cell per
 * configuration (median unit [min–max], and (k/R) when fewer rounds than the
 * run's R gave a value), then the ratios of medians.
 */
export function table(group, rounds) {
  const { configs, ratios } = layoutFor(group);
  const notes = [];
  const ns = new Set();
  for (const byN of group.cells.values()) for (const n of byN.keys()) ns.add(n);
  const broadcast = new Map();
  const base = baselineOnce(group);
  if (base) {
    broadcast.set('nonat', base.stats);
    ns.delete(base.n);
    notes.push(`nonat is measured once, at N = ${base.n}, and shown on every row.`);
  }
  const valueAt = (config, n) => broadcast.get(config) ?? group.cells.get(config)?.get(n);
  const header = ['N', ...configs, ...ratios.map(([a, b]) => `${a}/${b}`)];
  const rows = [...ns]
    .sort((a, b) => a - b)
    .map((n) => {
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
  return { header, rows, notes };
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
    out.push(`${h}# ${g.workload}${what} (${g.unit}, ${better})`, '', mdTable(table(g, rounds)), '');
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
