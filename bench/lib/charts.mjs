// The benchmark charts: vega-lite specs built from the aggregated results
// (report.mjs aggregate()), compiled to vega and rendered to SVG headless
// (renderer 'none', no browser, no canvas). A chart whose data is missing is
// returned as { skipped: reason } and never drawn empty.
import * as vega from 'vega';
import { compile } from 'vega-lite';
import { CONFIGS } from './results.mjs';

/** One colour per configuration, the same in every chart. */
const COLORS = { nonat: '#7f7f7f', ebpf: '#1f77b4', iptables: '#ff7f0e', nftables: '#2ca02c' };
const CP_CONFIGS = ['ebpf', 'iptables'];

const colorScale = (configs) => ({
  domain: configs,
  range: configs.map((c) => COLORS[c] ?? '#9467bd'),
});

/**
 * The no-NAT baseline publishes nothing: a suite may measure it once, at an N
 * no other configuration of the group has. Returns that { n, stats }, else undefined.
 */
export function baselineOnce(group) {
  const base = group.cells.get('nonat');
  if (base?.size !== 1) return undefined;
  const [[n, s]] = base;
  const others = [...group.cells].filter(([c]) => c !== 'nonat').flatMap(([, m]) => [...m.keys()]);
  return others.length > 0 && !others.includes(n) ? { n, stats: s } : undefined;
}

/** Rows { config, n, median, min, max } of one aggregated group, configurations in table order (a once-measured baseline at every N). */
function rows(group, configs) {
  const base = baselineOnce(group);
  const otherNs = base ? [...new Set([...group.cells].flatMap(([, m]) => [...m.keys()]))].filter((n) => n !== base.n) : [];
  const out = [];
  for (const config of configs) {
    const byN = base && config === 'nonat' ? new Map(otherNs.map((n) => [n, base.stats])) : group.cells.get(config);
    if (!byN) continue;
    for (const [n, s] of [...byN].sort((a, b) => a[0] - b[0])) out.push({ config, n, median: s.median, min: s.min, max: s.max });
  }
  return out;
}

const findGroup = (groups, suite, workload, pick) =>
  groups.find((g) => g.suite === suite && g.workload === workload && pick(g));

const isTimeUnit = (u) => /^(ns|µs|us|ms|s|sec|seconds?)$/i.test(u.trim());

/** The wall-time metric of a control-plane workload: a known name first, else any time-valued metric that is not CPU time. */
function timeGroup(groups, workload, preferred) {
  const candidates = groups.filter((g) => g.suite === 'controlplane' && g.workload === workload);
  for (const m of preferred) {
    const g = candidates.find((c) => c.metric === m);
    if (g) return g;
  }
  return candidates.find((g) => isTimeUnit(g.unit) && !/cpu/i.test(g.metric));
}

const logTicks = (ns) => ({ values: ns, format: '~s', labelFlush: false });

/** The x encoding of a chart against N: log scale, a tick at each measured N (ns, ascending). */
function nAxis(ns) {
  return {
    field: 'n',
    type: 'quantitative',
    title: 'published ports N (log)',
    scale: { type: 'log', domain: ns.length > 1 ? [ns[0], ns[ns.length - 1]] : [ns[0] / 2, ns[0] * 2] },
    axis: logTicks(ns),
  };
}

/** The charts to draw: { file, title, spec } or { file, title, skipped }. */
export function planCharts(groups) {
  const charts = [];

  // Connection rate vs N, one line per configuration, log x.
  {
    const file = 'conn_rate.svg';
    const title = 'TCP connection rate vs published ports';
    const g = findGroup(groups, 'dataplane', 'tcp_crr', (x) => x.metric === 'conn_per_s');
    const values = g ? rows(g, CONFIGS).filter((r) => r.n > 0) : [];
    if (values.length === 0) {
      charts.push({ file, title, skipped: 'no dataplane tcp_crr conn_per_s sample' });
    } else {
      const ns = [...new Set(values.map((r) => r.n))].sort((a, b) => a - b);
      const configs = CONFIGS.filter((c) => values.some((r) => r.config === c));
      charts.push({
        file,
        title,
        spec: {
          title: { text: title, subtitle: 'median of the rounds, bar: min–max' },
          width: 460,
          height: 280,
          data: { values },
          encoding: {
            x: nAxis(ns),
            color: { field: 'config', type: 'nominal', title: 'configuration', sort: configs, scale: colorScale(configs) },
          },
          layer: [
            { mark: { type: 'rule', strokeWidth: 2 }, encoding: { y: { field: 'min', type: 'quantitative' }, y2: { field: 'max' } } },
            {
              mark: { type: 'line', point: true },
              encoding: { y: { field: 'median', type: 'quantitative', title: `connections/s (${g.unit})` } },
            },
          ],
        },
      });
    }
  }

  // Bulk throughput per configuration: 1 and 4 streams, grouped bars, at the smallest N and the largest.
  {
    const file = 'throughput.svg';
    const title = 'TCP throughput per configuration';
    const streams = [
      ['tcp_stream_1', '1 stream'],
      ['tcp_stream_4', '4 streams'],
    ];
    const found = streams
      .map(([w, label]) => [findGroup(groups, 'dataplane', w, (x) => x.metric === 'gbps' || x.unit === 'Gbit/s'), label])
      .filter(([g]) => g);
    const all = found.flatMap(([g, label]) => rows(g, CONFIGS).map((r) => ({ ...r, stream: label, unit: g.unit })));
    if (all.length === 0) {
      charts.push({ file, title, skipped: 'no dataplane tcp_stream_1 / tcp_stream_4 throughput sample' });
    } else {
      const ns = [...new Set(all.map((r) => r.n))].sort((a, b) => a - b);
      const at = ns.includes(1) ? 1 : ns[0];
      const panels = [...new Set([at, ns[ns.length - 1]])];
      const values = all.filter((r) => panels.includes(r.n)).map((r) => ({ ...r, panel: `N = ${r.n}` }));
      const configs = CONFIGS.filter((c) => values.some((r) => r.config === c));
      charts.push({
        file,
        title,
        spec: {
          title: { text: title, subtitle: 'median of the rounds, bar: min–max' },
          data: { values },
          facet: { column: { field: 'panel', type: 'ordinal', title: null, sort: panels.map((n) => `N = ${n}`) } },
          spec: {
            width: 220,
            height: 260,
            encoding: {
              x: { field: 'stream', type: 'nominal', title: null, axis: { labelAngle: 0 } },
              xOffset: { field: 'config', type: 'nominal', sort: configs },
              color: { field: 'config', type: 'nominal', title: 'configuration', sort: configs, scale: colorScale(configs) },
            },
            layer: [
              { mark: 'bar', encoding: { y: { field: 'median', type: 'quantitative', title: `throughput (${all[0].unit})` } } },
              { mark: { type: 'rule', color: 'black' }, encoding: { y: { field: 'min', type: 'quantitative' }, y2: { field: 'max' } } },
            ],
          },
        },
      });
    }
  }

  // Control-plane time vs N, ebpf vs iptables, log x and log y, one panel per workload.
  {
    const file = 'controlplane.svg';
    const title = 'Control-plane time vs published ports';
    const panels = [
      ['publish_range', 'publish a range of N ports', timeGroup(groups, 'publish_range', ['ms', 'time_ms', 'wall_ms', 'duration_ms', 's', 'seconds', 'wall_s', 'time_s'])],
      ['port_add', 'add one port next to N (p99)', findGroup(groups, 'controlplane', 'port_add', (x) => /p99/.test(x.metric))],
    ]
      .filter(([, , g]) => g)
      .map(([w, label, g]) => ({ w, label, g, values: rows(g, CP_CONFIGS).filter((r) => r.n > 0 && r.min > 0) }))
      .filter((p) => p.values.length > 0);
    if (panels.length === 0) {
      charts.push({ file, title, skipped: 'no controlplane publish_range or port_add p99 sample' });
    } else {
      const layerFor = (p) => {
        const ns = [...new Set(p.values.map((r) => r.n))].sort((a, b) => a - b);
        const configs = CP_CONFIGS.filter((c) => p.values.some((r) => r.config === c));
        return {
          title: `${p.w}: ${p.label}`,
          width: 300,
          height: 260,
          data: { values: p.values },
          encoding: {
            x: nAxis(ns),
            color: { field: 'config', type: 'nominal', title: 'datapath', sort: configs, scale: colorScale(CP_CONFIGS) },
          },
          layer: [
            {
              mark: { type: 'rule', strokeWidth: 2 },
              encoding: { y: { field: 'min', type: 'quantitative', scale: { type: 'log' } }, y2: { field: 'max' } },
            },
            {
              mark: { type: 'line', point: true },
              encoding: { y: { field: 'median', type: 'quantitative', title: `${p.g.metric === p.g.unit ? 'time' : p.g.metric} (${p.g.unit}, log)`, scale: { type: 'log' } } },
            },
          ],
        };
      };
      charts.push({
        file,
        title,
        spec: {
          title: { text: title, subtitle: 'median of the rounds, bar: min–max' },
          hconcat: panels.map(layerFor),
          resolve: { scale: { y: 'independent' } },
        },
      });
    }
  }
  return charts;
}

/** A vega-lite spec as an SVG string, without a browser. */
export async function renderSvg(vlSpec) {
  const spec = compile({ $schema: 'https://vega.github.io/schema/vega-lite/v6.json', background: 'white', ...vlSpec }).spec;
  const view = new vega.View(vega.parse(spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** planCharts() with each drawable chart rendered: { file, title, svg } or { file, title, skipped }. */
export async function renderCharts(groups) {
  const out = [];
  for (const c of planCharts(groups)) {
    out.push(c.skipped ? c : { file: c.file, title: c.title, svg: await renderSvg(c.spec) });
  }
  return out;
}
