import type { Counter } from '../datapath.js';
import { CHAINS, FORMER_CHAINS, JUMPS, OWN_CHAINS, type RuleSet, type TableName } from './render.js';

/**
 * Turns a rendered rule set into one `iptables-restore --noflush` script.
 * Declaring a chain in a restore script flushes it, so bridgeport's own chains
 * are rewritten whole and atomically; jumps from built-in chains are added
 * only where missing, and nothing that is not bridgeport's is touched.
 */

export const TABLES: readonly TableName[] = ['raw', 'mangle', 'nat', 'filter'];

export interface SavedTable {
  chains: Set<string>;
  /** "-A CHAIN ..." lines, in order. */
  rules: string[];
  /** "[packets:bytes]" of each line of `rules` when saved with -c. */
  counters: string[];
}

export type Saved = Partial<Record<TableName, SavedTable>>;

/** Parses `iptables-save` output (with or without -c counters). */
export function parseSave(text: string): Saved {
  const out: Saved = {};
  let current: SavedTable | undefined;
  for (const raw of text.split('\n')) {
    const counter = /^(\[\d+:\d+\])\s+/.exec(raw)?.[1] ?? '[0:0]';
    const line = raw.replace(/^\[\d+:\d+\]\s+/, '').trim();
    if (line.startsWith('*')) {
      current = { chains: new Set(), rules: [], counters: [] };
      out[line.slice(1) as TableName] = current;
    } else if (current && line.startsWith(':')) {
      current.chains.add(line.slice(1).split(' ')[0] ?? '');
    } else if (current && line.startsWith('-A ')) {
      current.rules.push(line);
      current.counters.push(counter);
    }
  }
  return out;
}

const has = (t: SavedTable | undefined, chain: string, rule: string): number =>
  t ? t.rules.indexOf(`-A ${chain} ${rule}`) : -1;

export interface RestoreOptions {
  /** Set the FORWARD policy to DROP (Docker does when it enabled ip_forward itself). */
  forwardDrop?: boolean;
}

export function restoreScript(rules: RuleSet, saved: Saved, opts: RestoreOptions = {}): string {
  const kept = keepCounters(rules, saved);
  const out: string[] = [];
  for (const table of TABLES) {
    const t = saved[table];
    out.push(`*${table}`);
    if (table === 'filter' && opts.forwardDrop) out.push(':FORWARD DROP [0:0]');
    for (const chain of OWN_CHAINS[table]) out.push(`:${chain} - [0:0]`);
    if (table === 'filter' && !t?.chains.has(CHAINS.user)) out.push(`:${CHAINS.user} - [0:0]`);
    // Not push(...rules): at N = 100 000 published ports a table has more lines than a call has room for arguments.
    for (const line of kept[table]) out.push(line);
    for (const line of jumpFixes(table, t)) out.push(line);
    for (const line of formerChainsRemoval(table, t)) out.push(line);
    out.push('COMMIT');
  }
  return `${out.join('\n')}\n`;
}

/**
 * Rewriting a chain resets its counters: every rule that is unchanged gets its
 * saved `[packets:bytes]` back (restored with --counters), so counters only grow.
 * Drop rules that go away (a container removed, a network changed) leave their
 * counts to a rule per reason in a chain nothing jumps to, so drops per reason
 * only grow too.
 */
function keepCounters(rules: RuleSet, saved: Saved): RuleSet {
  const out = {} as RuleSet;
  const retired = new Map<string, Counter>();
  for (const table of TABLES) {
    const t = saved[table];
    const available = new Map<string, number[]>();
    t?.rules.forEach((r, i) => {
      const list = available.get(ruleKey(r)) ?? [];
      list.push(i);
      available.set(ruleKey(r), list);
    });
    const used = new Set<number>();
    out[table] = rules[table].map((r) => {
      const i = available.get(ruleKey(r))?.shift();
      if (i === undefined || !t) return r;
      used.add(i);
      const c = t.counters[i] ?? '[0:0]';
      return c === '[0:0]' ? r : `${c} ${r}`;
    });
    const own = new Set(OWN_CHAINS[table]);
    t?.rules.forEach((r, i) => {
      const reason = /--comment "?bridgeport:drop:(\w+)"?/.exec(r)?.[1];
      if (!reason || used.has(i) || !own.has(r.split(' ')[1] ?? '')) return;
      const [packets, bytes] = (/^\[(\d+):(\d+)\]$/.exec(t.counters[i] ?? '') ?? []).slice(1).map(Number);
      const sum = retired.get(reason) ?? { packets: 0, bytes: 0 };
      retired.set(reason, { packets: sum.packets + (packets ?? 0), bytes: sum.bytes + (bytes ?? 0) });
    });
  }
  for (const [reason, c] of [...retired].sort(([a], [b]) => a.localeCompare(b))) {
    if (c.packets || c.bytes) {
      out.mangle.push(`[${c.packets}:${c.bytes}] -A ${CHAINS.countRetired} -m comment --comment bridgeport:drop:${reason}`);
    }
  }
  return out;
}

/**
 * What identifies a rule across a save: a counting rule by its unique comment;
 * any other by its text with the comment unquoted (iptables-save quotes comments).
 */
export function ruleKey(rule: string): string {
  const text = rule.replace(/--comment "([^"]*)"/, '--comment $1');
  const count = /--comment (bridgeport:count:\S+)/.exec(text)?.[1];
  return count ? `${text.split(' ')[1]} ${count}` : text;
}

function jumpFixes(table: TableName, t: SavedTable | undefined): string[] {
  const out: string[] = [];
  const jumps = JUMPS.filter((j) => j.table === table);
  for (const chain of new Set(jumps.map((j) => j.chain))) {
    const mine = jumps.filter((j) => j.chain === chain);
    const positions = mine.map((j) => has(t, chain, j.rule));
    const inOrder = positions.every((p, i) => p >= 0 && (i === 0 || p > (positions[i - 1] ?? -1)));
    if (inOrder) continue;
    // Missing or out of order: take ours out and put them back in order.
    mine.forEach((j, i) => {
      if ((positions[i] ?? -1) >= 0) out.push(`-D ${chain} ${j.rule}`);
    });
    const first = mine.filter((j) => j.first);
    for (const j of [...first].reverse()) out.push(`-I ${chain} 1 ${j.rule}`);
    for (const j of mine.filter((j) => !j.first)) out.push(`-A ${chain} ${j.rule}`);
  }
  return out;
}

/** Takes out chains of earlier versions (FORMER_CHAINS) and the jumps to them. */
function formerChainsRemoval(table: TableName, t: SavedTable | undefined): string[] {
  const former = (FORMER_CHAINS[table] ?? []).filter((c) => t?.chains.has(c));
  if (!t || former.length === 0) return [];
  const jumps = t.rules.filter((r) => former.some((c) => r.endsWith(` -j ${c}`)));
  return [...jumps.map((r) => r.replace(/^-A /, '-D ')), ...former.map((c) => `-F ${c}`), ...former.map((c) => `-X ${c}`)];
}

/** Removes every jump and chain of bridgeport's; the operator's BRIDGEPORT-USER chain only if empty. */
export function teardownScript(saved: Saved): string {
  const out: string[] = [];
  for (const table of TABLES) {
    const t = saved[table];
    if (!t) continue;
    const lines: string[] = [];
    for (const j of JUMPS.filter((j) => j.table === table)) {
      for (const rule of t.rules) if (rule === `-A ${j.chain} ${j.rule}`) lines.push(`-D ${j.chain} ${j.rule}`);
    }
    const own = OWN_CHAINS[table].filter((c) => t.chains.has(c));
    for (const c of own) lines.push(`-F ${c}`);
    for (const c of own) lines.push(`-X ${c}`);
    for (const line of formerChainsRemoval(table, t)) lines.push(line);
    if (table === 'filter' && t.chains.has(CHAINS.user) && !t.rules.some((r) => r.startsWith(`-A ${CHAINS.user} `))) {
      lines.push(`-X ${CHAINS.user}`);
    }
    if (lines.length) out.push(`*${table}`, ...lines, 'COMMIT');
  }
  return out.length ? `${out.join('\n')}\n` : '';
}
