// Shared by every bench suite: the shape of one sample, the machine
// description and whole-machine CPU time from /proc/stat.
//
// A suite module exports
//   run({ quick, ns, rounds, log, record, repo, workDir }): Promise<void>
// and calls record(sample) once per measured value. run.mjs collects the
// samples into bench/results/<timestamp>/results.json; report.mjs turns that
// into summary.md and the charts.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

/** Data-plane configurations, in the order tables and charts show them. */
export const CONFIGS = ['nonat', 'ebpf', 'iptables', 'nftables'];

/**
 * One measured value.
 *   suite:    'dataplane' | 'controlplane'
 *   workload: e.g. 'tcp_stream_1', 'tcp_crr', 'publish_range'
 *   config:   one of CONFIGS (control plane: 'ebpf' | 'iptables')
 *   n:        published ports present (the scale axis)
 *   round:    0-based round of the interleaved schedule
 *   metric:   e.g. 'gbps', 'conn_per_s', 'p99_ms'
 *   unit:     human unit for tables, e.g. 'Gbit/s'
 *   higher:   true when a higher value is better (for ratios and charts)
 *   raw:      optional tool output or details kept for later inspection
 */
export function sample({ suite, workload, config, n, round, metric, value, unit, higher, raw }) {
  for (const [k, v] of Object.entries({ suite, workload, config, metric, unit })) {
    if (typeof v !== 'string' || v === '') throw new Error(`bench sample: ${k} must be a non-empty string, got ${JSON.stringify(v)}`);
  }
  if (!Number.isInteger(n) || n < 0) throw new Error(`bench sample ${workload}/${metric}: n must be a non-negative integer, got ${n}`);
  if (!Number.isInteger(round) || round < 0) throw new Error(`bench sample ${workload}/${metric}: round must be a non-negative integer, got ${round}`);
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new Error(`bench sample ${workload}/${config}/${metric} at n=${n}: value must be a finite number, got ${value}`);
  }
  if (typeof higher !== 'boolean') throw new Error(`bench sample ${workload}/${metric}: say whether higher is better`);
  return { suite, workload, config, n, round, metric, value, unit, higher, ...(raw === undefined ? {} : { raw }) };
}

/** What the numbers came from. */
export function machine(repo) {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? 'unknown';
  const meminfo = readFileSync('/proc/meminfo', 'utf8');
  const memKiB = Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? 0);
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['-C', repo, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {}
  return {
    kernel: os.release(),
    cpuModel: model,
    cores: os.cpus().length,
    memTotalMiB: Math.round(memKiB / 1024),
    node: process.version,
    commit,
  };
}

/** Whole-machine CPU time so far, in seconds: busy (everything but idle and iowait) and total. */
export function cpuTimes() {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already in user)
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
  const hz = 100; // USER_HZ: /proc/stat counts in 1/100 s on Linux
  const busy = user + nice + system + irq + softirq + (steal ?? 0);
  return { busy: busy / hz, total: (busy + idle + iowait) / hz };
}

/** Busy CPU-seconds of the whole machine between two cpuTimes() readings. */
export const cpuSecondsBetween = (a, b) => b.busy - a.busy;

/** Median, min and max of a list of numbers. */
export function stats(values) {
  const v = [...values].sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  const mid = v.length >> 1;
  const median = v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  return { median, min: v[0], max: v[v.length - 1], count: v.length };
}
