#!/usr/bin/env node
// CNI suite: bridgeport's CNI plugin (dist/bridgeport-cni, a static C relay
// to the daemon) against the reference chain a runtime would use without it,
// side by side in one run (bench/lib/cni.mjs builds the beds):
//
//   ebpf       bridgeport-cni, the daemon on --datapath ebpf
//   iptables   bridgeport-cni, the daemon on --datapath iptables
//   reference  bridge (isGateway, ipMasq, hairpinMode) + host-local + portmap
//              from /usr/lib/cni, driven as libcni drives a conflist
//
// Each is its own host netns (with the daemon, for bridgeport) and uplink to
// a client netns; sandboxes are plain netns files. What is measured:
//
//   1. version: wall time of one VERSION call (CNI_NETNS=dummy, stdin
//      {"cniVersion":"1.0.0"}, as podman sends it for every plugin on every
//      command) of bridgeport-cni, of the reference `bridge` plugin (Go) for
//      comparison, and of `node -e 0` (what a plugin written in Node would
//      cost before doing anything), and /bin/true (the floor: fork and exec
//      here). Interleaved, V runs per round.
//   2. add, del: with N attachments present (each a sandbox with one port
//      mapping hostPort → 80/tcp), K tries per round of: a new sandbox, CNI
//      ADD of it with one port mapping (a new host port each try) → 80/tcp,
//      then CNI DEL with prevResult = the ADD's result. The figure is the
//      wall time of the plugin process(es) from fork to exit (the reference:
//      bridge + portmap on ADD, portmap + bridge on DEL, summed), taken by a
//      small C timer that has already joined the host netns. Tries are
//      interleaved between the configurations (the order rotated each
//      round); per round the p50 and p90 of the K tries; the tables give the
//      median over the rounds. Sizes in increasing order; before each the
//      beds are filled up to N (all beds at once; `fill` records those ADDs).
//      For bridgeport, the daemon's own time per operation (its Prometheus
//      histogram, attach_endpoint and delete_endpoint) over each round.
//
// Before measuring, every bed is checked: an ADD publishes a port the client
// reaches with its own address seen by a server in the sandbox, and DEL takes
// it away again.
//
// Results go to bench/results/<UTC time>-cni/: results.json, run.log, summary.md.
//
//   node bench/cni.mjs [--quick] [--rounds R] [--sizes 1,200,1000] [--tries K]
//        [--version-runs V] [--configs ebpf,iptables,reference] [--out DIR]
//   node bench/cni.mjs --report DIR
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CNI_CONFIGS, CNI_DIR, CniBed, LABELS, buildC, containerId, leftoverNamespaces, mountsUnder, newRunId, TIMER_C, timed } from './lib/cni.mjs';
import { machine, sample, stats } from './lib/results.mjs';
import { ints, list } from './lib/standalone.mjs';
import { sleep } from './lib/topology.mjs';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const SUITE = 'cni';
const FULL = { rounds: 3, sizes: [1, 200, 1000], tries: 10, versionRuns: 200 };
const QUICK = { rounds: 3, sizes: [1, 50, 200], tries: 5, versionRuns: 60 };
/** `node -e 0` runs per round: one costs a tenth of a second or more. */
const NODE_RUNS = 10;
const VERSION_TARGET_MS = 10;
/** "Flat": ADD's p50 at the largest N at most this many times its p50 at the smallest. */
const FLAT_FACTOR = 1.25;
/** Between the two calls of a try, and between tries. */
const PAUSE_MS = 20;
const CHECK_PORT = 8080;
const FIRST_TRY_PORT = 20000;
const TOOLS = ['ip', 'unshare', 'nsenter', 'umount', 'curl', 'iptables-save'];

const fmt = (v) => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(3));

function onPath(tool) {
  return (process.env.PATH ?? '').split(':').some((d) => existsSync(path.join(d || '.', tool)));
}

/** The q-quantile (0..1) of values, nearest rank. */
function quantile(values, q) {
  const v = [...values].sort((a, b) => a - b);
  if (!v.length) return undefined;
  return v[Math.min(v.length - 1, Math.max(0, Math.ceil(q * v.length) - 1))];
}

/** Appends each part's time to its list in lists. */
function keep(lists, parts) {
  for (const [k, v] of Object.entries(parts)) {
    lists[k] ??= [];
    lists[k].push(v);
  }
}

const VERSION_PROGS = {
  'bridgeport-cni': (repo) => path.join(repo, 'dist', 'bridgeport-cni'),
  'bridge (reference, Go)': () => path.join(CNI_DIR, 'bridge'),
  'node -e 0': () => process.execPath,
  // The floor: what fork and exec of any program cost here, measured the same way.
  '/bin/true': () => '/bin/true',
};

/** Phase 1: VERSION as podman calls it, interleaved; per round p50 and p90 of each program. */
async function versionPhase({ rounds, versionRuns, timer, log, record, stop }) {
  const env = { CNI_COMMAND: 'VERSION', CNI_NETNS: 'dummy', CNI_CONTAINERID: 'dummy', CNI_IFNAME: 'dummy', CNI_PATH: CNI_DIR };
  const input = '{"cniVersion":"1.0.0"}';
  for (let round = 0; round < rounds && !stop(); round++) {
    const ms = Object.fromEntries(Object.keys(VERSION_PROGS).map((k) => [k, []]));
    for (let i = 0; i < versionRuns && !stop(); i++) {
      for (const [name, prog] of Object.entries(VERSION_PROGS)) {
        if (name === 'node -e 0' && i >= NODE_RUNS) continue;
        const args = name === 'node -e 0' ? ['-e', '0'] : [];
        const r = await timed(timer, '-', prog(REPO), args, { input, env });
        if (r.exitCode !== 0) throw new Error(`VERSION of ${name}: exit ${r.exitCode}: ${r.stdout.trim() || r.stderr.trim()}`);
        if (name !== 'node -e 0' && name !== '/bin/true') {
          const out = JSON.parse(r.stdout);
          if (out.cniVersion !== '1.0.0' || !out.supportedVersions?.includes('1.0.0')) throw new Error(`VERSION of ${name}: ${r.stdout.trim()}`);
        }
        ms[name].push(r.ms);
      }
    }
    for (const [name, values] of Object.entries(ms)) {
      if (!values.length) continue;
      record(sample({ suite: SUITE, workload: 'version', config: name, n: 0, round, metric: 'p50_ms', value: quantile(values, 0.5), unit: 'ms', higher: false, raw: { ms: values.map((v) => +v.toFixed(3)) } }));
      record(sample({ suite: SUITE, workload: 'version', config: name, n: 0, round, metric: 'p90_ms', value: quantile(values, 0.9), unit: 'ms', higher: false }));
    }
    log(`version round ${round + 1}/${rounds}: ${Object.entries(ms).map(([k, v]) => `${k} p50 ${fmt(quantile(v, 0.5))} ms (${v.length} runs)`).join(', ')}`);
  }
}

export async function runSuite({ rounds, sizes, tries, versionRuns, configs, log, record, workDir }) {
  if (process.getuid?.() !== 0) throw new Error('cni bench: must run as root');
  const missing = TOOLS.filter((t) => !onPath(t));
  if (missing.length) throw new Error(`cni bench: missing tools: ${missing.join(' ')}`);
  const plugin = path.join(REPO, 'dist', 'bridgeport-cni');
  if (!existsSync(plugin)) throw new Error(`cni bench: ${plugin} is missing: run make build`);
  for (const p of ['bridge', 'host-local', 'portmap']) {
    if (!existsSync(path.join(CNI_DIR, p))) throw new Error(`cni bench: ${CNI_DIR}/${p} is missing (containernetworking-plugins)`);
  }
  const stale = leftoverNamespaces();
  if (stale.length) log(`note: network namespaces of an earlier run are still there (left alone): ${stale.join(' ')}`);
  const bin = path.join(workDir, 'bin');
  const timer = buildC(bin, 'cni-timer', TIMER_C);
  const httpd = buildC(bin, 'httpd', '', { file: path.join(REPO, 'bench', 'fixtures', 'httpd.c') });
  const failures = [];
  const fail = (what, e) => {
    failures.push(`${what}: ${e?.message ?? e}`);
    log(`FAILED ${what}: ${e?.message ?? e}`);
  };
  let interrupted;
  const onSignal = (sig) => {
    if (interrupted) {
      log(`${sig} again: exiting now, cleanup may be incomplete`);
      process.exit(130);
    }
    interrupted = sig;
    log(`${sig}: stopping after the current step, cleaning up`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const stop = () => interrupted !== undefined;
  log(`${rounds} rounds; sizes ${sizes.join(', ')}; ${tries} tries per round; VERSION ${versionRuns} runs per round; configurations ${configs.join(', ')}`);

  const runId = newRunId();
  const beds = configs.map((config) => new CniBed({ config, runId, workDir, repo: REPO, timer, log }));
  try {
    try {
      await versionPhase({ rounds, versionRuns, timer, log, record, stop });
    } catch (e) {
      fail('version', e);
    }
    let ready = [];
    for (const bed of beds) {
      if (stop()) break;
      const t0 = Date.now();
      try {
        await bed.setUp();
        for (const f of await bed.verify(httpd, CHECK_PORT)) log(`${bed.config}: ✓ ${f}`);
        log(`${bed.config}: ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
        ready.push(bed);
      } catch (e) {
        fail(`${bed.config}: setup or check`, e);
      }
    }
    let port = FIRST_TRY_PORT;
    for (const n of sizes) {
      if (stop() || !ready.length) break;
      // Fill every bed to n, all at once (not measured against each other).
      const t0 = Date.now();
      const filled = await Promise.all(
        ready.map(async (bed) => {
          const before = bed.attached.length;
          try {
            const ms = await bed.fillTo(n, stop, { progress: (k) => log(`fill ${bed.config}: ${k}/${n}`) });
            if (ms.length) {
              const mean = ms.reduce((a, b) => a + b, 0) / ms.length;
              record(sample({ suite: SUITE, workload: 'fill', config: bed.config, n, round: 0, metric: 'mean_ms', value: mean, unit: 'ms', higher: false, raw: { from: before, adds: ms.length, p50: quantile(ms, 0.5), p90: quantile(ms, 0.9), max: Math.max(...ms) } }));
              log(`fill ${bed.config}: ${before} → ${bed.attached.length} attachments, ADD mean ${fmt(mean)} ms, p50 ${fmt(quantile(ms, 0.5))} ms, max ${fmt(Math.max(...ms))} ms`);
            }
            return bed;
          } catch (e) {
            fail(`fill ${bed.config} to ${n} (at ${bed.attached.length})`, e);
            return undefined;
          }
        }),
      );
      ready = filled.filter(Boolean);
      if (stop()) break;
      log(`N = ${n}: filled in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      for (let round = 0; round < rounds && !stop(); round++) {
        const order = ready.map((_, i) => ready[(i + round) % ready.length]);
        const got = new Map(order.map((b) => [b, { add: [], del: [], parts: { add: {}, del: {} }, failed: 0 }]));
        // Other load on the machine shows in every figure: kept beside them.
        const load = os.loadavg()[0];
        const before = new Map();
        for (const bed of order) before.set(bed, await bed.operationTotals().catch(() => undefined));
        for (let t = 0; t < tries && !stop(); t++) {
          for (const bed of order) {
            if (stop()) break;
            const g = got.get(bed);
            const p = port++;
            const sb = await bed.sandbox(`t-${p}`).catch((e) => {
              fail(`N=${n} round ${round + 1} ${bed.config}: sandbox`, e);
            });
            if (!sb) continue;
            const id = containerId();
            let added;
            try {
              added = await bed.add(id, sb, p);
              g.add.push(added.ms);
              keep(g.parts.add, added.parts);
              await sleep(PAUSE_MS);
              const del = await bed.del(id, sb, p, added.result);
              added = undefined;
              g.del.push(del.ms);
              keep(g.parts.del, del.parts);
            } catch (e) {
              g.failed++;
              fail(`N=${n} round ${round + 1} try ${t + 1} ${bed.config}`, e);
              if (added) await bed.del(id, sb, p, added.result).catch(() => undefined);
            } finally {
              await bed.removeSandbox(sb);
            }
            await sleep(PAUSE_MS);
          }
        }
        for (const bed of order) {
          const g = got.get(bed);
          const after = await bed.operationTotals().catch(() => undefined);
          const b = before.get(bed);
          const line = [];
          for (const verb of ['add', 'del']) {
            const values = g[verb];
            if (!values.length) continue;
            const rec = (metric, value, raw) => record(sample({ suite: SUITE, workload: verb, config: bed.config, n, round, metric, value, unit: 'ms', higher: false, raw }));
            rec('p50_ms', quantile(values, 0.5), { ms: values.map((v) => +v.toFixed(3)), failed: g.failed, loadavg1: load });
            rec('p90_ms', quantile(values, 0.9));
            if (!bed.bridgeport) for (const [part, v] of Object.entries(g.parts[verb])) rec(`${part}_p50_ms`, quantile(v, 0.5), { ms: v.map((x) => +x.toFixed(3)) });
            const key = verb === 'add' ? 'add' : 'del';
            if (b && after && after[key].n > b[key].n) {
              const mean = ((after[key].s - b[key].s) / (after[key].n - b[key].n)) * 1000;
              rec('daemon_mean_ms', mean, { ops: after[key].n - b[key].n });
              line.push(`${verb} p50 ${fmt(quantile(values, 0.5))} ms (daemon ${fmt(mean)} ms)`);
            } else line.push(`${verb} p50 ${fmt(quantile(values, 0.5))} ms`);
          }
          log(`N = ${n} round ${round + 1}/${rounds} ${bed.config}: ${line.join(', ')}${g.failed ? `, ${g.failed} failed` : ''} (load average ${load.toFixed(2)} at the round's start)`);
        }
      }
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    for (const bed of beds) {
      const t0 = Date.now();
      try {
        await bed.tearDown();
        log(`${bed.config}: removed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      } catch (e) {
        fail(`${bed.config}: teardown`, e);
      }
    }
  }
  if (interrupted) throw new Error(`cni bench: interrupted (${interrupted}); cleaned up`);
  if (failures.length) throw new Error(`cni bench: ${failures.length} failure(s):\n  ${failures.join('\n  ')}`);
}

// ---------------------------------------------------------------- summary

function cell(s) {
  if (!s) return '—';
  return `${fmt(s.median)} ms [${fmt(s.min)}–${fmt(s.max)}]${s.count < s.rounds ? ` (${s.count}/${s.rounds})` : ''}`;
}

function groupSamples(results) {
  const groups = new Map();
  for (const s of results.samples) {
    const k = `${s.workload}|${s.metric}|${s.config}|${s.n}`;
    if (!groups.has(k)) groups.set(k, { workload: s.workload, metric: s.metric, config: s.config, n: s.n, values: [] });
    groups.get(k).values.push(s.value);
  }
  return new Map([...groups].map(([k, g]) => [k, { ...g, ...stats(g.values), rounds: results.rounds }]));
}

function targets(byKey, results) {
  const med = (w, m, c, n) => byKey.get(`${w}|${m}|${c}|${n}`)?.median;
  const sizes = results.sizes;
  const lines = [];
  for (const c of results.configs.filter((x) => x !== 'reference')) {
    const parts = [];
    let ok = true;
    for (const n of sizes) {
      const a = med('add', 'p50_ms', c, n);
      const r = med('add', 'p50_ms', 'reference', n);
      if (a === undefined || r === undefined) {
        parts.push(`N=${n}: not measured`);
        ok = false;
        continue;
      }
      const met = a <= r;
      ok &&= met;
      parts.push(`N=${n}: ${(a / r).toFixed(2)}× (${fmt(a)} / ${fmt(r)} ms) ${met ? '✓' : '✗'}`);
    }
    lines.push(`- ADD p50 ≤ the reference chain's at every N, ${c}: ${ok ? '**met**' : '**not met**'} — ${parts.join('; ')}`);
    const lo = med('add', 'p50_ms', c, sizes[0]);
    const hi = med('add', 'p50_ms', c, sizes[sizes.length - 1]);
    if (lo === undefined || hi === undefined || sizes.length < 2) lines.push(`- ADD flat in N, ${c}: not measured`);
    else {
      const f = hi / lo;
      lines.push(`- ADD flat in N (p50 at N=${sizes[sizes.length - 1]} ≤ ${FLAT_FACTOR}× p50 at N=${sizes[0]}), ${c}: ${f <= FLAT_FACTOR ? '**met**' : '**not met**'} — ${f.toFixed(2)}× (${fmt(hi)} / ${fmt(lo)} ms)`);
    }
  }
  const v = med('version', 'p50_ms', 'bridgeport-cni', 0);
  lines.push(`- VERSION p50 of bridgeport-cni ≤ ${VERSION_TARGET_MS} ms: ${v === undefined ? 'not measured' : `${v <= VERSION_TARGET_MS ? '**met**' : '**not met**'} — ${fmt(v)} ms`}`);
  return lines;
}

/** A table: rows N, a column per configuration, then each bridgeport configuration over the reference. */
function sizeTable(byKey, results, workload, metric, title) {
  const rows = [...new Set([...byKey.values()].filter((g) => g.workload === workload && g.metric === metric).map((g) => g.n))].sort((a, b) => a - b);
  if (!rows.length) return [];
  const configs = results.configs;
  const ratioCols = configs.includes('reference') ? configs.filter((c) => c !== 'reference').map((c) => `${c}/reference`) : [];
  const out = [`### ${title}`, '', `| N | ${[...configs, ...ratioCols].join(' | ')} |`, `| --: | ${[...configs, ...ratioCols].map(() => '---').join(' | ')} |`];
  for (const n of rows) {
    const cells = configs.map((c) => cell(byKey.get(`${workload}|${metric}|${c}|${n}`)));
    const ref = byKey.get(`${workload}|${metric}|reference|${n}`)?.median;
    const ratios = ratioCols.map((rc) => {
      const v = byKey.get(`${workload}|${metric}|${rc.split('/')[0]}|${n}`)?.median;
      return v === undefined || ref === undefined || ref === 0 ? '—' : `${(v / ref).toFixed(2)}×`;
    });
    out.push(`| ${n} | ${[...cells, ...ratios].join(' | ')} |`);
  }
  out.push('');
  return out;
}

/** Where the time goes: bridgeport's daemon-side time per operation, the reference's per plugin. */
function partsTable(byKey, results, workload) {
  const rows = [...new Set([...byKey.values()].filter((g) => g.workload === workload).map((g) => g.n))].sort((a, b) => a - b);
  const cols = [];
  for (const c of results.configs) {
    if (c === 'reference') {
      const parts = workload === 'add' ? ['bridge', 'portmap'] : ['portmap', 'bridge'];
      for (const p of parts) cols.push({ head: `reference: ${p} p50`, key: (n) => `${workload}|${p}_p50_ms|reference|${n}` });
    } else {
      cols.push({ head: `${c}: plugin mean`, mean: true, config: c });
      cols.push({ head: `${c}: daemon \`${workload === 'add' ? 'attach' : 'delete'}\` mean`, key: (n) => `${workload}|daemon_mean_ms|${c}|${n}` });
    }
  }
  if (!rows.length || !cols.length) return [];
  const out = [`| N | ${cols.map((c) => c.head).join(' | ')} |`, `| --: | ${cols.map(() => '---').join(' | ')} |`];
  for (const n of rows) {
    const cells = cols.map((c) => {
      if (c.mean) {
        const ms = results.samples.filter((s) => s.workload === workload && s.metric === 'p50_ms' && s.config === c.config && s.n === n).flatMap((s) => s.raw?.ms ?? []);
        return ms.length ? `${fmt(ms.reduce((a, b) => a + b, 0) / ms.length)} ms` : '—';
      }
      return cell(byKey.get(c.key(n)));
    });
    out.push(`| ${n} | ${cells.join(' | ')} |`);
  }
  out.push('');
  return out;
}

export function summarize(results) {
  const byKey = groupSamples(results);
  const m = results.machine;
  const out = [];
  out.push(`# bridgeport's CNI plugin vs the reference chain (bridge + host-local + portmap), ${results.started}${results.quick ? ' (quick)' : ''}`, '');
  out.push('| | |', '|---|---|');
  out.push(`| Kernel | ${m.kernel} |`, `| CPU | ${m.cpuModel}, ${m.cores} cores |`, `| Memory | ${m.memTotalMiB} MiB |`, `| Node | ${m.node} |`, `| Reference plugins | ${results.referencePlugins} |`);
  out.push(`| Commit | ${m.commit} |`, `| Date | ${results.started} → ${results.ended} (${Math.round((Date.parse(results.ended) - Date.parse(results.started)) / 60000)} min) |`);
  out.push(`| Command | \`${results.command}\` (as root) |`, `| Rounds | ${results.rounds}; ${results.tries} ADD+DEL tries per round, configuration and N; VERSION: ${results.versionRuns} runs per round (node: ${NODE_RUNS}) |`, '');
  out.push(`Configurations: ${results.configs.map((c) => `**${c}** = ${LABELS[c]}`).join('; ')}. Each in its own host netns; N = attachments present (sandboxes with one published port each). A figure is the wall time of the plugin process(es) a runtime would run for the call, fork to exit (reference: both plugins of the chain, summed). Cells: the median over the rounds of each round's p50 (or p90) over its tries, [min–max] over the rounds; — = no value. Ratios are of medians.`, '');
  if (results.errors?.length) out.push('## Errors', '', ...results.errors.map((e) => `- ${e.replace(/\n/g, ' ')}`), '');
  out.push('## Targets', '', ...targets(byKey, results), '');
  out.push('## Figures', '');
  out.push(...sizeTable(byKey, results, 'add', 'p50_ms', 'CNI ADD — p50 (ms, lower is better)'));
  out.push(...sizeTable(byKey, results, 'add', 'p90_ms', 'CNI ADD — p90 (ms, lower is better)'));
  out.push(...sizeTable(byKey, results, 'del', 'p50_ms', 'CNI DEL — p50 (ms, lower is better)'));
  out.push(...sizeTable(byKey, results, 'del', 'p90_ms', 'CNI DEL — p90 (ms, lower is better)'));
  for (const w of ['add', 'del']) {
    const t = partsTable(byKey, results, w);
    if (!t.length) continue;
    out.push(`### Where ${w.toUpperCase()}'s time goes`, '');
    out.push(
      w === 'add'
        ? "bridgeport: the plugin's wall time (mean of the tries) beside the daemon's own time for the operation (its `bridgeport_operation_duration_seconds` histogram, operations `attach` and `delete`: sum over count across the round's tries, datapath update and state journal included); the rest is the relay, the HTTP exchange and the daemon's queue. Reference: each plugin's p50 (bridge includes the host-local process it runs)."
        : 'As for ADD.',
      '',
    );
    out.push(...t);
  }
  const vRows = Object.keys(VERSION_PROGS).filter((p) => byKey.has(`version|p50_ms|${p}|0`));
  if (vRows.length) {
    out.push('### VERSION (ms, lower is better)', '', 'One process per call, stdin `{"cniVersion":"1.0.0"}`, `CNI_NETNS=dummy`, as podman calls every plugin of every conflist on every command.', '');
    out.push('| program | p50 | p90 |', '|---|---|---|');
    for (const p of vRows) out.push(`| ${p} | ${cell(byKey.get(`version|p50_ms|${p}|0`))} | ${cell(byKey.get(`version|p90_ms|${p}|0`))} |`);
    out.push('');
  }
  const fillRows = [...byKey.values()].filter((g) => g.workload === 'fill');
  if (fillRows.length) {
    out.push('### Filling (ms per ADD, mean; not interleaved: all beds filled at once)', '', `| N reached | ${results.configs.join(' | ')} |`, `| --: | ${results.configs.map(() => '---').join(' | ')} |`);
    for (const n of [...new Set(fillRows.map((g) => g.n))].sort((a, b) => a - b)) {
      out.push(`| ${n} | ${results.configs.map((c) => {
        const g = byKey.get(`fill|mean_ms|${c}|${n}`);
        return g ? `${fmt(g.median)} ms` : '—';
      }).join(' | ')} |`);
    }
    out.push('');
  }
  return `${out.join('\n')}\n`;
}

// ---------------------------------------------------------------- command line

const USAGE = `usage: node bench/cni.mjs [options]   (as root, after make build)
  --quick            small run: N = ${QUICK.sizes.join(', ')}, ${QUICK.tries} tries, VERSION ${QUICK.versionRuns} runs, ${QUICK.rounds} rounds
  --rounds R         interleaved rounds (default ${FULL.rounds})
  --sizes LIST       attachments present while measuring (default ${FULL.sizes.join(',')})
  --tries K          ADD+DEL tries per round, configuration and N (default ${FULL.tries})
  --version-runs V   VERSION runs per round (default ${FULL.versionRuns})
  --configs LIST     of ${CNI_CONFIGS.join(',')} (default all)
  --out DIR          where the run folder goes (default bench/results)
  --report DIR       only write DIR/summary.md again from DIR/results.json
`;

function positiveInt(v, name) {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name}: a positive integer, got ${v}`);
  return n;
}

async function main() {
  let opts;
  try {
    const { values, positionals } = parseArgs({
      args: process.argv.slice(2),
      options: {
        quick: { type: 'boolean' },
        rounds: { type: 'string' },
        sizes: { type: 'string' },
        tries: { type: 'string' },
        'version-runs': { type: 'string' },
        configs: { type: 'string' },
        out: { type: 'string' },
        report: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (values.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    if (positionals.length) throw new Error(`unexpected argument ${positionals[0]}`);
    if (values.report) {
      const dir = path.resolve(values.report);
      const results = JSON.parse(readFileSync(path.join(dir, 'results.json'), 'utf8'));
      writeFileSync(path.join(dir, 'summary.md'), summarize(results));
      process.stdout.write(`${path.join(dir, 'summary.md')}\n`);
      return 0;
    }
    const d = values.quick ? QUICK : FULL;
    const configs = values.configs ? list(values.configs) : CNI_CONFIGS;
    for (const c of configs) if (!CNI_CONFIGS.includes(c)) throw new Error(`--configs: unknown configuration ${c} (known: ${CNI_CONFIGS.join(', ')})`);
    opts = {
      quick: values.quick ?? false,
      rounds: values.rounds ? positiveInt(values.rounds, '--rounds') : d.rounds,
      sizes: values.sizes ? [...new Set(ints(values.sizes, '--sizes'))].sort((a, b) => a - b) : d.sizes,
      tries: values.tries ? positiveInt(values.tries, '--tries') : d.tries,
      versionRuns: values['version-runs'] ? positiveInt(values['version-runs'], '--version-runs') : d.versionRuns,
      configs: CNI_CONFIGS.filter((c) => configs.includes(c)),
      out: path.resolve(values.out ?? path.join(REPO, 'bench/results')),
    };
    if (opts.sizes.some((n) => n > 9000)) throw new Error('--sizes: at most 9000 (host ports 10000+i)');
  } catch (e) {
    process.stderr.write(`cni bench: ${e.message}\n${USAGE}`);
    return 2;
  }
  const started = new Date().toISOString();
  const host = machine(REPO);
  const dir = path.join(opts.out, `${started.replace(/[:.]/g, '-')}-cni`);
  mkdirSync(dir, { recursive: true });
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'bpcni-'));
  const log = (m) => {
    const line = `[${new Date().toISOString().slice(11, 19)}] cni: ${m}`;
    process.stderr.write(`${line}\n`);
    appendFileSync(path.join(dir, 'run.log'), `${line}\n`);
  };
  const samples = [];
  const errors = [];
  let code = 0;
  try {
    await runSuite({ ...opts, log, record: (s) => samples.push(s), workDir });
  } catch (e) {
    errors.push(e?.message ?? String(e));
    log(e?.message ?? String(e));
    code = /interrupted/.test(e?.message ?? '') ? 130 : 1;
  }
  let referencePlugins = 'unknown';
  try {
    referencePlugins = execFileSync('dpkg-query', ['-W', 'containernetworking-plugins'], { encoding: 'utf8' }).trim().replace(/\t/, ' ');
  } catch {}
  const results = {
    suite: SUITE,
    started,
    ended: new Date().toISOString(),
    command: `node bench/cni.mjs ${process.argv.slice(2).join(' ')}`.trim(),
    quick: opts.quick,
    rounds: opts.rounds,
    sizes: opts.sizes,
    tries: opts.tries,
    versionRuns: opts.versionRuns,
    configs: opts.configs,
    machine: host,
    referencePlugins,
    errors,
    samples,
  };
  writeFileSync(path.join(dir, 'results.json'), `${JSON.stringify(results, null, 1)}\n`);
  writeFileSync(path.join(dir, 'summary.md'), summarize(results));
  const latest = path.join(opts.out, 'latest-cni');
  try {
    if (existsSync(latest) || lstatSync(latest, { throwIfNoEntry: false })) rmSync(latest);
    symlinkSync(path.basename(dir), latest);
  } catch {}
  if (mountsUnder(workDir).length === 0) rmSync(workDir, { recursive: true, force: true });
  else log(`mounts left under ${workDir}: kept`);
  log(`results in ${dir}`);
  return code;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then(
    (c) => process.exit(c),
    (e) => {
      process.stderr.write(`cni bench: ${e?.stack ?? e}\n`);
      process.exit(1);
    },
  );
}
