#!/usr/bin/env node
// Runs the benchmark suites and writes one run folder:
//   bench/results/<UTC timestamp>/results.json   every sample, the machine, the errors
//                                  summary.md, *.svg   (bench/report.mjs)
//                                  run.log             the progress lines
//   bench/results/latest -> <UTC timestamp>
//
//   node bench/run.mjs [--quick] [--ns 1,1000,...] [--rounds R] [--only dataplane,controlplane] [--out DIR]
//
// Must run as root (the suites build network namespaces). A suite that throws
// has its error recorded and the run goes on with the next one; the exit code
// is then 1 (130 after SIGINT/SIGTERM). See bench/README.md.
import { appendFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CONFIGS as ALL_CONFIGS, machine, sample } from './lib/results.mjs';
import { writeReport } from './report.mjs';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SUITES = ['dataplane', 'controlplane'];
const FULL = { ns: [1, 1000, 10000, 100000], rounds: 3 };
const QUICK = { ns: [1, 1000], rounds: 3 };
/** After SIGINT/SIGTERM, how long a suite without its own handler gets before the run exits anyway. */
const GRACE_MS = 120_000;

const USAGE = `usage: node bench/run.mjs [options]   (as root)
  --quick            small run: N = ${QUICK.ns.join(',')}, ${QUICK.rounds} rounds, short measurements
  --ns LIST          published-port counts N, comma-separated (default ${FULL.ns.join(',')})
  --controlplane-ns LIST  N for the control-plane suite only (default: --ns)
  --rounds R         interleaved rounds per measurement (default ${FULL.rounds})
  --only SUITES      comma-separated subset of ${SUITES.join(', ')}
  --configs LIST     only these configurations (of ${ALL_CONFIGS.join(', ')}; each suite keeps those it has)
  --out DIR          where run folders go (default bench/results); DIR/latest points at the newest
`;

function parseCli(argv) {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean' },
      ns: { type: 'string' },
      'controlplane-ns': { type: 'string' },
      rounds: { type: 'string' },
      only: { type: 'string' },
      configs: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`);
  const quick = values.quick ?? false;
  const defaults = quick ? QUICK : FULL;
  let ns = defaults.ns;
  if (values.ns !== undefined) {
    ns = values.ns.split(',').map((x) => Number(x.trim()));
    if (ns.length === 0 || ns.some((n) => !Number.isInteger(n) || n < 1)) throw new UsageError(`--ns: positive integers, comma-separated, got ${values.ns}`);
    ns = [...new Set(ns)].sort((a, b) => a - b);
  }
  let cpNs = ns;
  if (values['controlplane-ns'] !== undefined) {
    cpNs = values['controlplane-ns'].split(',').map((x) => Number(x.trim()));
    if (cpNs.length === 0 || cpNs.some((n) => !Number.isInteger(n) || n < 1)) throw new UsageError(`--controlplane-ns: positive integers, comma-separated, got ${values['controlplane-ns']}`);
    cpNs = [...new Set(cpNs)].sort((a, b) => a - b);
  }
  let rounds = defaults.rounds;
  if (values.rounds !== undefined) {
    rounds = Number(values.rounds);
    if (!Number.isInteger(rounds) || rounds < 1) throw new UsageError(`--rounds: a positive integer, got ${values.rounds}`);
  }
  const suites = values.only === undefined ? SUITES : choose('--only', values.only, SUITES);
  const configs = values.configs === undefined ? undefined : choose('--configs', values.configs, ALL_CONFIGS);
  const out = path.resolve(values.out ?? path.join(REPO, 'bench/results'));
  return { help: values.help ?? false, quick, ns, cpNs, rounds, suites, configs, out };
}

class UsageError extends Error {}

/** The members of `allowed` a comma-separated option names, in `allowed`'s order. */
function choose(flag, text, allowed) {
  const asked = text.split(',').map((s) => s.trim());
  if (asked.length === 0 || asked.some((a) => !allowed.includes(a))) throw new UsageError(`${flag}: choose among ${allowed.join(', ')}, got ${text}`);
  return allowed.filter((a) => asked.includes(a));
}

/** bench/results/2025-01-02T03-04-05Z, or -2, -3 … if a run started in the same second. */
function makeRunDir(out, when) {
  mkdirSync(out, { recursive: true });
  const stamp = when.toISOString().replace(/\.\d+Z$/, 'Z').replaceAll(':', '-');
  for (let i = 1; ; i++) {
    const dir = path.join(out, i === 1 ? stamp : `${stamp}-${i}`);
    try {
      mkdirSync(dir);
      return dir;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
    }
  }
}

/** Points out/latest at dir, replacing the previous link in one rename. */
function pointLatest(out, dir) {
  const latest = path.join(out, 'latest');
  if (existsSync(latest) && !lstatSync(latest).isSymbolicLink()) throw new Error(`${latest} exists and is not a symlink: left as it is`);
  const tmp = path.join(out, `.latest-${process.pid}`);
  rmSync(tmp, { force: true });
  symlinkSync(path.basename(dir), tmp);
  renameSync(tmp, latest);
}

/** Mount points at or under dir (a suite that left one behind: its scratch folder is then kept). */
function mountsUnder(dir) {
  const prefix = `${dir}/`;
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m) => m && (m === dir || m.startsWith(prefix)));
}

const clock = () => new Date().toISOString().slice(11, 19);

async function main() {
  let opts;
  try {
    opts = parseCli(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`run: ${e.message}\n${USAGE}`);
    return 2;
  }
  if (opts.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('run: must run as root (the suites create network namespaces and run the daemon): sudo make bench\n');
    return 2;
  }
  if (!existsSync(path.join(REPO, 'dist/cli/main.js'))) {
    process.stderr.write('run: dist/ is missing: run `make build` first (make bench does)\n');
    return 2;
  }

  const started = new Date();
  const dir = makeRunDir(opts.out, started);
  const logFile = path.join(dir, 'run.log');
  const log = (who, msg) => {
    const line = `[${clock()}] ${who}: ${msg}\n`;
    process.stderr.write(line);
    appendFileSync(logFile, line);
  };
  const results = {
    started: started.toISOString(),
    finished: null,
    command: ['node', path.relative(process.cwd(), process.argv[1]) || process.argv[1], ...process.argv.slice(2)].join(' '),
    quick: opts.quick,
    params: { ns: opts.ns, controlplaneNs: opts.cpNs, rounds: opts.rounds, suites: opts.suites, ...(opts.configs ? { configs: opts.configs } : {}) },
    machine: machine(REPO),
    suiteRuns: [],
    samples: [],
    errors: [],
  };
  const save = () => writeFileSync(path.join(dir, 'results.json'), `${JSON.stringify(results, null, 1)}\n`);
  let finalized = false;
  let current = 'run';
  // Whatever ends the process from here on (a suite's own signal handler
  // calling process.exit included), results.json holds what was measured.
  process.on('exit', () => {
    if (finalized) return;
    results.interrupted ??= 'exit';
    save();
  });
  let interrupted = null;
  const onSignal = (sig) => {
    if (interrupted) {
      log('run', `${sig} again: exiting now, cleanup may be incomplete`);
      results.interrupted = sig;
      process.exit(130);
    }
    interrupted = sig;
    results.interrupted = sig;
    log('run', `${sig}: no further suite will start; waiting for ${current} to clean up (${sig} again to exit at once)`);
    // A suite with its own handler ends the process itself; one without gets a grace period.
    if (process.listenerCount(sig) === 1) {
      setTimeout(() => {
        log('run', `${current} still running ${GRACE_MS / 1000} s after ${sig}: exiting`);
        process.exit(130);
      }, GRACE_MS).unref();
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('unhandledRejection', (e) => {
    results.errors.push({ suite: current, message: `unhandled rejection: ${e?.message ?? e}`, stack: e?.stack });
    log(current, `unhandled rejection: ${e?.stack ?? e}`);
  });

  log('run', `${dir}: suites ${opts.suites.join(', ')}; N = ${opts.ns.join(', ')}${opts.cpNs.join() === opts.ns.join() ? '' : ` (control plane ${opts.cpNs.join(', ')})`}; ${opts.rounds} rounds${opts.quick ? '; quick' : ''}`);
  save();
  for (const name of opts.suites) {
    if (interrupted) break;
    current = name;
    const workDir = mkdtempSync(path.join(os.tmpdir(), `bridgeport-bench-${name}-`));
    const run = { suite: name, started: new Date().toISOString(), finished: null, ok: false, samples: 0 };
    results.suiteRuns.push(run);
    const before = results.samples.length;
    const record = (s) => {
      try {
        results.samples.push(sample(s));
      } catch (e) {
        results.errors.push({ suite: name, message: `invalid sample: ${e.message}` });
        log(name, `invalid sample dropped: ${e.message}`);
      }
    };
    log('run', `${name}: starting (scratch ${workDir})`);
    try {
      const mod = await import(new URL(`./${name}.mjs`, import.meta.url).href);
      if (typeof mod.run !== 'function') throw new Error(`bench/${name}.mjs exports no run()`);
      const configs = opts.configs && (mod.CONFIGS ?? ALL_CONFIGS).filter((c) => opts.configs.includes(c));
      if (configs?.length === 0) log('run', `${name}: none of --configs ${opts.configs.join(',')} is one of its configurations; skipped`);
      else await mod.run({ quick: opts.quick, ns: name === 'controlplane' ? opts.cpNs : opts.ns, rounds: opts.rounds, log: (m) => log(name, m), record, repo: REPO, workDir, configs });
      run.ok = true;
    } catch (e) {
      results.errors.push({ suite: name, message: e?.message ?? String(e), stack: e?.stack });
      log(name, `FAILED: ${e?.stack ?? e}`);
    }
    run.finished = new Date().toISOString();
    run.samples = results.samples.length - before;
    log('run', `${name}: ${run.ok ? 'done' : 'failed'}, ${run.samples} samples`);
    const left = mountsUnder(workDir);
    if (left.length) {
      results.errors.push({ suite: name, message: `left mounts under its scratch folder ${workDir}: ${left.join(' ')}` });
      log(name, `left mounts behind, scratch folder kept: ${left.join(' ')}`);
    } else {
      rmSync(workDir, { recursive: true, force: true });
    }
    save();
  }
  current = 'run';
  results.finished = new Date().toISOString();
  save();
  finalized = true;

  let code = interrupted ? 130 : results.errors.length ? 1 : 0;
  try {
    const { summary } = await writeReport(dir);
    process.stdout.write(summary);
  } catch (e) {
    log('run', `report failed: ${e?.stack ?? e}`);
    code ||= 1;
  }
  try {
    pointLatest(opts.out, dir);
  } catch (e) {
    log('run', `latest: ${e.message}`);
  }
  log('run', `${path.join(dir, 'summary.md')}${results.errors.length ? `; ${results.errors.length} error(s)` : ''}`);
  return code;
}

// Exit explicitly: a handle a suite forgot (a timer, a child) must not keep the run alive.
main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`run: ${e?.stack ?? e}\n`);
    process.exit(1);
  },
);
