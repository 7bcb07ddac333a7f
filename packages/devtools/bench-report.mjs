// What `pnpm bench` (bench.mjs) does with the numbers once the scripts have run, kept apart from
// the runner so it can be tested on fixed results (packages/devtools/test/bench-report.test.ts):
// parsing the scripts' output, medians and goals, the markdown table and the generated section of
// docs/benchmarks.md, the rule for when that file is rewritten, and the throughput chart (SVG).
// Plain node, no dependencies. Types: bench-report.d.mts.

/** The markers around the part of docs/benchmarks.md that the runner rewrites. */
export const MARKERS = {
  start: '<!-- bench:results:start -->',
  end: '<!-- bench:results:end -->',
};

/** File name of the chart, next to docs/benchmarks.md (and in bench-results/). */
export const CHART_FILE = 'benchmarks-throughput.svg';

/** Median of a non-empty list (mean of the two middle values for an even count). */
export function median(xs) {
  if (xs.length === 0) throw new RangeError('median of an empty list');
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Whether `value` meets `goal` (`<= 50`, `>= 0.95`, `< 300`, `== 0`, …); undefined when there is
 * no goal or it is not of that form.
 */
export function meets(value, goal) {
  const m = /^(<=|>=|<|>|==)\s*(-?[\d.]+)/.exec(goal ?? '');
  if (!m) return undefined;
  const g = Number(m[2]);
  return { '<=': value <= g, '>=': value >= g, '<': value < g, '>': value > g, '==': value === g }[
    m[1]
  ];
}

/**
 * One number over its runs: the median, and whether it meets `goal`. A number whose goal must
 * hold in each run (`each`, from the script's `BENCH` line: e.g. `pool` utilization ≥ 0.95 with
 * 0 throttled in each of 3 runs) is reported as its worst run instead — the lowest value for a
 * `>=`/`>` goal, the highest for `<=`/`<`, the farthest from the goal for `==` — and meets the
 * goal only when every run does. Returns `{ value, met }` (met undefined without a goal).
 */
export function summarize(values, goal, each = false) {
  const m = /^(<=|>=|<|>|==)\s*(-?[\d.]+)/.exec(goal ?? '');
  if (!each || !m || values.length === 0) {
    const value = median(values);
    return { value, met: meets(value, goal) };
  }
  const g = Number(m[2]);
  const badness = {
    '>=': (v) => -v,
    '>': (v) => -v,
    '<=': (v) => v,
    '<': (v) => v,
    '==': (v) => Math.abs(v - g),
  }[m[1]];
  const value = values.reduce((w, v) => (badness(v) > badness(w) ? v : w));
  return { value, met: values.every((v) => meets(v, goal)) };
}

/** A number for people: integers ≥ 100 with thousands separators, else 3 significant digits. */
export function show(v) {
  return Math.abs(v) >= 100
    ? Math.round(v).toLocaleString('en-US')
    : Number(v.toPrecision(3)).toLocaleString('en-US', { maximumFractionDigits: 3 });
}

/**
 * Splits one script's stdout into its human lines, its numbers (`BENCH {name, value, unit,
 * goal?}` lines) and its time series (`BENCH_SERIES {chart, …, values}` lines, see
 * apps/worker/bench/lib.mjs `benchSeries`). A malformed machine line is dropped; its human line
 * says the same.
 */
export function parseBenchOutput(text) {
  const lines = [];
  const metrics = [];
  const series = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const machine = /^(BENCH|BENCH_SERIES) (.*)$/.exec(line);
    if (!machine) {
      lines.push(line);
      continue;
    }
    try {
      const v = JSON.parse(machine[2]);
      if (machine[1] === 'BENCH') metrics.push(v);
      else if (Array.isArray(v.values)) series.push(v);
    } catch {
      // dropped (see above)
    }
  }
  return { lines, metrics, series };
}

/**
 * Of several runs' series (one array per run, [] when a run printed none), the run to chart: the
 * median run by the sum of its `answered` series, so the chart shows a typical run rather than
 * the best. Returns its index, or -1 when no run has series.
 */
export function medianRunIndex(seriesPerRun) {
  const scored = seriesPerRun
    .map((ss, i) => ({
      i,
      n: ss.length,
      total: ss
        .filter((s) => (s.kind ?? 'answered') === 'answered')
        .reduce((a, s) => a + s.values.reduce((x, y) => x + y, 0), 0),
    }))
    .filter((r) => r.n > 0)
    .sort((a, b) => a.total - b.total || a.i - b.i);
  if (scored.length === 0) return -1;
  return scored[Math.floor((scored.length - 1) / 2)].i;
}

/**
 * The charts in a report: every bench's chosen series grouped by their `chart` key, in bench
 * order. Each chart: `{ chart, title, unit, binSecs, ceilings, series: [{label, group, kind,
 * values}] }` (title, unit, bin and ceilings from the chart's first series).
 */
export function chartsFromResults(benches) {
  const charts = new Map();
  for (const b of benches) {
    for (const s of b.series ?? []) {
      if (!charts.has(s.chart)) {
        charts.set(s.chart, {
          chart: s.chart,
          title: s.title ?? s.chart,
          unit: s.unit ?? 'requests/s',
          binSecs: s.binSecs ?? 1,
          ceilings: s.ceilings ?? [],
          series: [],
        });
      }
      charts.get(s.chart).series.push({
        label: s.label ?? s.chart,
        group: s.group ?? s.label ?? s.chart,
        kind: s.kind ?? 'answered',
        values: s.values,
      });
    }
  }
  return [...charts.values()];
}

/**
 * Whether this run rewrites docs/benchmarks.md and its chart. Only a full default run does
 * (`pnpm bench` with no --quick, --only or --runs, and no failed run): quick sizes mean nothing,
 * and a subset or a different run count would replace the page's numbers with ones that are not
 * comparable. `--write-docs` forces it (the section then says how it was run). Returns
 * `{ write, why }`.
 */
export function docsDecision({ quick = false, only, runs, writeDocs = false, failed = 0 }) {
  if (writeDocs) return { write: true, why: '--write-docs' };
  const reasons = [];
  if (quick) reasons.push('--quick sizes are not measurements');
  if (only) reasons.push('--only runs a subset');
  if (runs !== undefined) reasons.push('--runs is not the default run count');
  if (failed > 0) reasons.push(`${failed} run(s) failed`);
  return reasons.length
    ? { write: false, why: `${reasons.join('; ')} (pass --write-docs to write anyway)` }
    : { write: true, why: 'full default run' };
}

/** Display width of a cell as prettier measures it (no wide characters in our tables). */
const width = (s) => [...s].length;

/**
 * A markdown table formatted the way prettier prints it (cells padded to the column width,
 * `|` escaped), so `prettier --check` passes on the file it lands in.
 */
export function markdownTable(header, rows) {
  const esc = (c) => String(c).replace(/\|/g, '\\|').replace(/\s+/g, ' ').trim();
  const body = rows.map((r) => r.map(esc));
  const head = header.map(esc);
  const w = head.map((h, i) => Math.max(3, width(h), ...body.map((r) => width(r[i] ?? ''))));
  const line = (cells) =>
    `| ${cells.map((c, i) => (c ?? '') + ' '.repeat(w[i] - width(c ?? ''))).join(' | ')} |`;
  return [line(head), `| ${w.map((n) => '-'.repeat(n)).join(' | ')} |`, ...body.map(line)].join(
    '\n',
  );
}

/**
 * One row per number: bench, number, value with unit, goal, met/missed (blank without a goal).
 * A goal that must hold in each run (`each`, see {@link summarize}) over several runs reads
 * `>= 0.95, each run`, its value being the worst run's.
 */
export function resultRows(benches) {
  return benches.flatMap((b) =>
    b.metrics.map((m) => [
      b.id,
      m.name,
      `${show(m.value)} ${m.unit}`,
      m.goal && m.each && (m.values?.length ?? 1) > 1 ? `${m.goal}, each run` : (m.goal ?? ''),
      m.met === undefined ? '' : m.met ? 'met' : 'missed',
    ]),
  );
}

const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

const duration = (secs) => {
  const s = Math.round(secs);
  return s < 120 ? `${s} s` : `${s} s (${Math.floor(s / 60)} min ${s % 60} s)`;
};

/**
 * The generated section of docs/benchmarks.md, markers included: how and where it was measured
 * (date, exact command, machine, load average, wall time), the table, the runs per script and the
 * chart. `report` is what bench.mjs writes to bench-results/latest.json; `chartFile` is the SVG's
 * path relative to the page, or undefined for no chart.
 */
export function renderResultsSection(report, { chartFile = CHART_FILE } = {}) {
  const m = report.machine;
  const load = (xs) => (xs ? xs.map((x) => x.toFixed(2)).join(' ') : 'unknown');
  const date = report.date.replace(/\.\d+Z$/, 'Z');
  const out = [
    MARKERS.start,
    '<!-- Written by `pnpm bench` (packages/devtools/bench.mjs); edits between the bench:results markers are overwritten by the next full run. -->',
    '',
    `Measured ${date} by \`${report.command}\`, ${duration(report.totalSecs)} wall time, on ` +
      `${m.cpus} × ${m.model}, ${m.memGb} GB RAM, node ${m.node}; load average (1, 5, 15 min) ` +
      `${load(m.loadavgStart)} at the start, ${load(m.loadavg)} at the end.`,
  ];
  if (report.quick)
    out.push(
      '',
      '**Quick sizes** (`--quick`): these numbers only show that the benchmarks run; they are not measurements.',
    );
  out.push(
    '',
    markdownTable(['bench', 'number', 'value', 'goal', 'met/missed'], resultRows(report.benches)),
    '',
    'Runs per script (each number is the median over its runs; a goal marked "each run" shows the worst run and is met only when every run meets it):',
    '',
    ...report.benches.map(
      (b) =>
        `- **${b.id}**: ${plural(b.runs, 'run')}, ${duration(b.secs)}` +
        `${b.seriesRun && b.runs > 1 ? `; charted: run ${b.seriesRun}` : ''}` +
        `${b.why ? ` — ${b.why}` : ''}` +
        `${b.errors?.length ? `; ${b.errors.length} FAILED` : ''}`,
    ),
  );
  const charts = chartsFromResults(report.benches);
  if (chartFile && charts.length) {
    out.push(
      '',
      `![Upstream requests per second against the budget ceiling](${chartFile})`,
      '',
      `The chart (\`${chartFile}\`): upstream requests per second of the median run, ` +
        'counted by the simulator in 1-second bins from the first request (the last, partial ' +
        'second left out), against the ceiling the budgets allow (sessions × rate; the burst ' +
        'adds a few requests in the first second).',
    );
  }
  out.push('', MARKERS.end);
  return out.join('\n');
}

/**
 * `doc` with the text between (and including) the markers replaced by `section`. Throws when the
 * markers are missing, repeated or out of order: the runner never guesses where to write.
 */
export function replaceResultsSection(doc, section) {
  const count = (s) => doc.split(s).length - 1;
  if (count(MARKERS.start) !== 1 || count(MARKERS.end) !== 1) {
    throw new Error(
      `expected exactly one ${MARKERS.start} and one ${MARKERS.end} in docs/benchmarks.md`,
    );
  }
  const a = doc.indexOf(MARKERS.start);
  const b = doc.indexOf(MARKERS.end);
  if (b < a) throw new Error(`${MARKERS.end} comes before ${MARKERS.start}`);
  return doc.slice(0, a) + section + doc.slice(b + MARKERS.end.length);
}

// ---- the chart -------------------------------------------------------------------------------

const esc = (s) =>
  String(s)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
const f = (n) => n.toFixed(1);
const COLORS = ['#1f77b4', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#17becf'];
const CEILING = '#d62728';
const REFERENCE = '#7f7f7f';

/** A round tick step (1, 2 or 5 × 10^k) giving about `target` ticks over `span`. */
function niceStep(span, target) {
  const raw = span / target;
  const p = 10 ** Math.floor(Math.log10(raw));
  const m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}
const tick = (v) => String(Number(v.toFixed(6)));

const W = 760;
const PANEL_H = 300;
const L = 64;
const R = 28;
const BOTTOM = 46;
const TOP = 58;

/** Legend rows (approximate text widths: 6.6 px per character at 12 px). */
function legendItems(items, x0, y0, maxX) {
  const out = [];
  let x = x0;
  let y = y0;
  for (const it of items) {
    const w = 30 + 6.6 * it.text.length + 18;
    if (x + w > maxX && x > x0) {
      x = x0;
      y += 18;
    }
    out.push(
      `<line x1="${f(x)}" y1="${f(y - 4)}" x2="${f(x + 24)}" y2="${f(y - 4)}" stroke="${it.color}" stroke-width="${it.strokeWidth ?? 2}"${it.dash ? ` stroke-dasharray="${it.dash}"` : ''}/>`,
      `<text x="${f(x + 30)}" y="${f(y)}">${esc(it.text)}</text>`,
    );
    x += w;
  }
  return { svg: out, bottom: y };
}

function panel(chart, top) {
  const out = [];
  const x0 = L;
  const x1 = W - R;
  out.push(
    `<text x="${x0}" y="${f(top + 18)}" font-size="14" font-weight="bold">${esc(chart.title)}</text>`,
  );
  const groups = [...new Set(chart.series.map((s) => s.group))];
  const colorOf = (s) => COLORS[groups.indexOf(s.group) % COLORS.length];
  const legend = [
    ...chart.series.map((s) => {
      const none = s.kind === 'throttled' && s.values.every((v) => v === 0);
      return {
        text: none ? `${s.label}: none` : s.label,
        color: colorOf(s),
        dash: s.kind === 'throttled' ? '5 3' : undefined,
      };
    }),
    ...chart.ceilings.map((c, i) => ({
      text: `${c.label} (${tick(c.value)}/s)`,
      color: i === 0 ? CEILING : REFERENCE,
      dash: i === 0 ? undefined : '8 4',
      strokeWidth: i === 0 ? 2.5 : 1.5,
    })),
  ];
  const leg = legendItems(legend, x0, top + 38, x1);
  out.push(...leg.svg);
  const yTop = leg.bottom + 14;
  const yBot = top + PANEL_H - BOTTOM;
  const bins = Math.max(0, ...chart.series.map((s) => s.values.length));
  const xMax = Math.max(1, bins) * chart.binSecs;
  const dataMax = Math.max(0, ...chart.series.flatMap((s) => s.values));
  const topValue = Math.max(dataMax, ...chart.ceilings.map((c) => c.value), 1) * 1.1;
  const yStep = niceStep(topValue, 5);
  const yMax = Math.ceil(topValue / yStep) * yStep;
  const X = (t) => x0 + ((x1 - x0) * t) / xMax;
  const Y = (v) => yBot - ((yBot - yTop) * v) / yMax;

  // grid, ticks and axes
  for (let v = 0; v <= yMax + yStep / 1e6; v += yStep) {
    out.push(
      `<line x1="${x0}" y1="${f(Y(v))}" x2="${x1}" y2="${f(Y(v))}" stroke="#e5e5e5"/>`,
      `<text x="${x0 - 6}" y="${f(Y(v) + 4)}" text-anchor="end">${tick(v)}</text>`,
    );
  }
  const xStep = niceStep(xMax, 8);
  for (let t = 0; t <= xMax + xStep / 1e6; t += xStep) {
    out.push(
      `<line x1="${f(X(t))}" y1="${f(yBot)}" x2="${f(X(t))}" y2="${f(yBot + 4)}" stroke="#333"/>`,
      `<text x="${f(X(t))}" y="${f(yBot + 17)}" text-anchor="middle">${tick(t)}</text>`,
    );
  }
  out.push(
    `<line x1="${x0}" y1="${f(yBot)}" x2="${x1}" y2="${f(yBot)}" stroke="#333"/>`,
    `<line x1="${x0}" y1="${f(yTop)}" x2="${x0}" y2="${f(yBot)}" stroke="#333"/>`,
    `<text x="${f((x0 + x1) / 2)}" y="${f(yBot + 36)}" text-anchor="middle">seconds since the first upstream request (${tick(chart.binSecs)}-second bins)</text>`,
    `<text transform="translate(16 ${f((yTop + yBot) / 2)}) rotate(-90)" text-anchor="middle">${esc(chart.unit)}</text>`,
  );
  if (bins === 0) {
    out.push(
      `<text x="${f((x0 + x1) / 2)}" y="${f((yTop + yBot) / 2)}" text-anchor="middle">no data</text>`,
    );
  }

  // ceilings, then the series as steps (each bin's rate held over the bin)
  chart.ceilings.forEach((c, i) => {
    out.push(
      `<line class="ceiling" x1="${x0}" y1="${f(Y(c.value))}" x2="${x1}" y2="${f(Y(c.value))}" stroke="${i === 0 ? CEILING : REFERENCE}" stroke-width="${i === 0 ? 2.5 : 1.5}"${i === 0 ? '' : ' stroke-dasharray="8 4"'}/>`,
      `<text x="${x1 - 4}" y="${f(Y(c.value) - 5)}" text-anchor="end" fill="${i === 0 ? CEILING : REFERENCE}">${tick(c.value)}/s</text>`,
    );
  });
  for (const s of chart.series) {
    if (s.values.length === 0) continue;
    if (s.kind === 'throttled' && s.values.every((v) => v === 0)) continue;
    // A run of equal bins is one horizontal segment (keeps long flat series small).
    let d = `M${f(X(0))} ${f(Y(s.values[0]))}`;
    s.values.forEach((v, i) => {
      if (i > 0 && v !== s.values[i - 1]) d += ` V${f(Y(v))}`;
      if (i === s.values.length - 1 || s.values[i + 1] !== v)
        d += ` H${f(X((i + 1) * chart.binSecs))}`;
    });
    out.push(
      `<path class="series" d="${d}" fill="none" stroke="${colorOf(s)}" stroke-width="2"${s.kind === 'throttled' ? ' stroke-dasharray="5 3"' : ''}/>`,
    );
  }
  return out;
}

/**
 * The throughput chart as a standalone SVG document: one panel per chart (see
 * chartsFromResults), upstream requests per second over time as steps, each ceiling as a
 * horizontal line (the first solid red: what the budgets allow; others dashed grey: references
 * such as the configured rate), axes, legend, title. Deterministic: the same input gives the same
 * bytes. `subtitle` says which run it is (date and command).
 */
export function renderThroughputSvg(charts, { title, subtitle = '' } = {}) {
  const heading = title ?? 'Upstream throughput against the budget ceiling';
  const height = TOP + Math.max(1, charts.length) * PANEL_H;
  const body = [
    `<rect width="${W}" height="${height}" fill="#ffffff"/>`,
    `<text x="${L}" y="24" font-size="16" font-weight="bold">${esc(heading)}</text>`,
  ];
  if (subtitle) body.push(`<text x="${L}" y="44" fill="#555">${esc(subtitle)}</text>`);
  if (charts.length === 0) {
    body.push(
      `<text x="${W / 2}" y="${TOP + PANEL_H / 2}" text-anchor="middle">no throughput series in this run</text>`,
    );
  }
  charts.forEach((c, i) => body.push(...panel(c, TOP + i * PANEL_H)));
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" viewBox="0 0 ${W} ${height}" font-family="sans-serif" font-size="12">`,
    `<title>${esc(heading)}</title>`,
    ...body.map((l) => `  ${l}`),
    '</svg>',
    '',
  ].join('\n');
}
