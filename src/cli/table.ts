/** Column-aligned output, as docker's listings print. */
export function printTable(headers: string[], rows: unknown[][]): void {
  const cells = [headers, ...rows.map((r) => r.map((c) => (c === undefined || c === null ? '' : String(c))))];
  const widths = headers.map((_, i) => cells.reduce((w, r) => Math.max(w, (r[i] ?? '').length), 0));
  for (const r of cells) console.log(r.map((c, i) => (i === r.length - 1 ? c : (c ?? '').padEnd(widths[i]! + 3))).join('').trimEnd());
}
