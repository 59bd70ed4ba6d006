// What a suite module (dataplane.mjs, controlplane.mjs) needs to run on its
// own, outside run.mjs: option lists, a scratch directory, log lines, samples
// as JSON lines, and the exit code.
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** "a, b,c" → ['a', 'b', 'c']. */
export const list = (s) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);

/** A comma-separated list of positive integers; name is the option, for the error. */
export function ints(s, name) {
  const v = list(s).map(Number);
  if (v.length === 0 || v.some((x) => !Number.isInteger(x) || x < 1)) throw new Error(`${name}: positive integers, got ${s}`);
  return v;
}

/**
 * Runs suite.run(opts) in a fresh scratch directory: progress on stderr,
 * samples as JSON lines to outFile (stdout when undefined). Returns the exit
 * code: 0, 1 after an error, 130 when interrupted. The directory is removed
 * unless something is still mounted under it.
 */
export async function runStandalone(name, run, opts, outFile) {
  const workDir = mkdtempSync(path.join(os.tmpdir(), `bridgeport-bench-${name}-`));
  const log = (m) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${name}: ${m}\n`);
  const record = (s) => {
    const line = `${JSON.stringify(s)}\n`;
    if (outFile) appendFileSync(outFile, line);
    else process.stdout.write(line);
  };
  let code = 0;
  try {
    await run({ ...opts, log, record, repo: REPO, workDir, exitOnSecondSignal: true });
  } catch (e) {
    log(e?.message ?? String(e));
    code = /interrupted/.test(e?.message ?? '') ? 130 : 1;
  }
  const mounted = readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${workDir}/`);
  if (mounted) log(`mounts left under ${workDir}: kept`);
  else rmSync(workDir, { recursive: true, force: true });
  return code;
}

/** Calls main() and exits with its code when moduleUrl is the script node was started with. */
export function mainIfRun(moduleUrl, name, main) {
  if (!process.argv[1] || moduleUrl !== pathToFileURL(path.resolve(process.argv[1])).href) return;
  main().then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`${name}: ${e?.stack ?? e}\n`);
      process.exit(1);
    },
  );
}
