/**
 * What `pnpm bench` writes, on a fixed set of results: the generated section of
 * docs/benchmarks.md (markers replaced, the hand-written rest kept byte for byte, prettier-clean
 * in the real page), the rule for when the page is rewritten, the parsing of the scripts' output,
 * and the throughput chart (a well-formed SVG with the ceiling drawn at its value).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as prettier from 'prettier';
import {
  CHART_FILE,
  MARKERS,
  chartsFromResults,
  docsDecision,
  markdownTable,
  medianRunIndex,
  parseBenchOutput,
  renderResultsSection,
  renderThroughputSvg,
  replaceResultsSection,
  resultRows,
  summarize,
  type BenchReport,
  type BenchSeries,
  type Chart,
} from '../bench-report.mjs';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const PAGE = join(ROOT, 'docs', 'benchmarks.md');

const poolSeries = (values: number[]): BenchSeries[] => [
  {
    chart: 'pool',
    title: 'pool: 4 sessions on 2 proxies, 2 workers, 2000 names',
    group: 'pool',
    label: 'pool: answered',
    kind: 'answered',
    unit: 'requests/s',
    binSecs: 1,
    ceilings: [{ value: 32, label: 'budgets allow 4 × 8/s' }],
    values,
  },
  {
    chart: 'pool',
    title: 'pool: 4 sessions on 2 proxies, 2 workers, 2000 names',
    group: 'pool',
    label: 'pool: throttled',
    kind: 'throttled',
    unit: 'requests/s',
    binSecs: 1,
    ceilings: [{ value: 32, label: 'budgets allow 4 × 8/s' }],
    values: values.map(() => 0),
  },
];

const report: BenchReport = {
  date: '2026-11-28T10:11:12.345Z',
  command: 'pnpm bench --runs 1',
  quick: false,
  totalSecs: 549.4,
  machine: {
    cpus: 2,
    model: 'Intel(R) Xeon(R) Processor',
    memGb: 24,
    node: 'v22.11.0',
    loadavgStart: [2.5, 2.25, 3],
    loadavg: [1.91, 2.66, 3.76],
  },
  failed: 0,
  benches: [
    {
      id: 'limiter',
      runs: 1,
      secs: 40.2,
      metrics: [
        {
          name: 'limiter loops=1 Redis µs/acquire',
          value: 88.8,
          unit: 'µs',
          goal: '<= 50',
          met: false,
          values: [88.8],
        },
        {
          name: 'limiter loops=1 acquires/s',
          value: 6490.4,
          unit: 'acquires/s',
          met: undefined,
          values: [6490.4],
        },
      ],
    },
    {
      id: 'pool',
      runs: 3,
      secs: 210,
      metrics: [
        {
          name: 'pool throttled answers',
          value: 0,
          unit: 'count',
          goal: '== 0',
          met: true,
          values: [0, 0, 0],
        },
      ],
      series: poolSeries([36.5, 29, 28.7, 30, 31.2, 29.5]),
      seriesRun: 2,
    },
    {
      id: 'budgets',
      runs: 1,
      why: 'long (budget-bound by design): one run',
      secs: 130,
      metrics: [
        {
          name: 'unknown budgets fixed throttled per 1,000 requests',
          value: 102,
          unit: 'per 1,000',
          goal: '== 0',
          met: false,
          values: [102],
        },
      ],
    },
  ],
};

const OLD = 'OLD GENERATED TABLE | x | y |';
const docWith = (middle: string) =>
  `# Benchmarks\n\nIntro by hand.\n\n## Measured\n\n${middle}\n\n## What is not built yet\n\n- a gap\n`;

describe('replaceResultsSection', () => {
  it('replaces only what lies between the markers and keeps the rest byte for byte', () => {
    const doc = docWith(`${MARKERS.start}\n\n${OLD}\n\n${MARKERS.end}`);
    const section = renderResultsSection(report);
    const out = replaceResultsSection(doc, section);
    const [before, after] = doc.split(`${MARKERS.start}\n\n${OLD}\n\n${MARKERS.end}`);
    expect(out.startsWith(before!)).toBe(true);
    expect(out.endsWith(after!)).toBe(true);
    expect(out).toBe(`${before}${section}${after}`);
    expect(out).not.toContain(OLD);
    expect(out.split(MARKERS.start)).toHaveLength(2);
    expect(out.split(MARKERS.end)).toHaveLength(2);
    // Rewriting again gives the same page (no markers piling up).
    expect(replaceResultsSection(out, section)).toBe(out);
  });

  it('refuses a page without exactly one pair of markers in order', () => {
    const section = renderResultsSection(report);
    expect(() => replaceResultsSection(docWith(OLD), section)).toThrow(/exactly one/);
    expect(() =>
      replaceResultsSection(
        docWith(`${MARKERS.start}\n${MARKERS.end}\n${MARKERS.start}\n${MARKERS.end}`),
        section,
      ),
    ).toThrow(/exactly one/);
    expect(() =>
      replaceResultsSection(docWith(`${MARKERS.end}\n${OLD}\n${MARKERS.start}`), section),
    ).toThrow(/comes before/);
  });
});

describe('renderResultsSection', () => {
  const section = renderResultsSection(report);

  it('holds the table, the machine, the date, the command, the runs and the chart link', () => {
    expect(section.startsWith(MARKERS.start)).toBe(true);
    expect(section.endsWith(MARKERS.end)).toBe(true);
    expect(section).toMatch(/^\| bench +\| number +\| value +\| goal +\| met\/missed \|$/m);
    expect(section).toMatch(
      /^\| limiter +\| limiter loops=1 Redis µs\/acquire +\| 88\.8 µs +\| <= 50 +\| missed +\|$/m,
    );
    expect(section).toMatch(
      /^\| limiter +\| limiter loops=1 acquires\/s +\| 6,490 acquires\/s +\| +\| +\|$/m,
    );
    expect(section).toMatch(
      /^\| pool +\| pool throttled answers +\| 0 count +\| == 0 +\| met +\|$/m,
    );
    expect(section).toContain('2026-11-28T10:11:12Z');
    expect(section).toContain('`pnpm bench --runs 1`');
    expect(section).toContain('549 s (9 min 9 s) wall time');
    expect(section).toContain('2 × Intel(R) Xeon(R) Processor, 24 GB RAM, node v22.11.0');
    expect(section).toContain('2.50 2.25 3.00 at the start, 1.91 2.66 3.76 at the end');
    expect(section).toContain('- **pool**: 3 runs, 210 s (3 min 30 s); charted: run 2');
    expect(section).toContain(
      '- **budgets**: 1 run, 130 s (2 min 10 s) — long (budget-bound by design)',
    );
    expect(section).toContain(`](${CHART_FILE})`);
    expect(section).not.toContain('Quick sizes');
  });

  it('says so when the numbers are --quick sizes, and links no chart without series', () => {
    const quick = renderResultsSection({
      ...report,
      quick: true,
      command: 'pnpm bench --quick --write-docs',
      benches: report.benches.filter((b) => b.id !== 'pool'),
    });
    expect(quick).toContain('**Quick sizes**');
    expect(quick).not.toContain(CHART_FILE);
  });

  it('leaves the real docs/benchmarks.md prettier-clean and its hand-written part intact', async () => {
    const page = readFileSync(PAGE, 'utf8');
    const out = replaceResultsSection(page, section);
    const a = page.indexOf(MARKERS.start);
    const b = page.indexOf(MARKERS.end) + MARKERS.end.length;
    expect(out.slice(0, a)).toBe(page.slice(0, a));
    expect(out.slice(a + section.length)).toBe(page.slice(b));
    const options = { ...(await prettier.resolveConfig(PAGE)), filepath: PAGE };
    expect(await prettier.format(out, options)).toBe(out);
    // The check is real: a misaligned table is not prettier-clean.
    const broken = out.replace('| bench   |', '| bench |');
    expect(broken).not.toBe(out);
    expect(await prettier.check(broken, options)).toBe(false);
  });

  it('markdownTable escapes pipes and pads like prettier', async () => {
    const t = markdownTable(
      ['a', 'long header'],
      [
        ['x|y', '1'],
        ['', 'two'],
      ],
    );
    expect(t).toBe(
      [
        '| a    | long header |',
        '| ---- | ----------- |',
        '| x\\|y | 1           |',
        '|      | two         |',
      ].join('\n'),
    );
    expect(await prettier.check(`${t}\n`, { parser: 'markdown' })).toBe(true);
  });
});

describe('summarize', () => {
  it('takes the median, or with `each` the worst run, met only when every run meets the goal', () => {
    expect(summarize([0.9, 0.97, 0.96], '>= 0.95')).toEqual({ value: 0.96, met: true });
    expect(summarize([0.9, 0.97, 0.96], '>= 0.95', true)).toEqual({ value: 0.9, met: false });
    expect(summarize([0.97, 0.96, 0.98], '>= 0.95', true)).toEqual({ value: 0.96, met: true });
    expect(summarize([0, 2, 0], '== 0')).toEqual({ value: 0, met: true });
    expect(summarize([0, 2, 0], '== 0', true)).toEqual({ value: 2, met: false });
    expect(summarize([-1, 0, -3], '<= 0', true)).toEqual({ value: 0, met: true });
    expect(summarize([5, 7], undefined, true)).toEqual({ value: 6, met: undefined });
  });

  it('marks a goal that holds in each run in the table, only over several runs', () => {
    const metric = (values: number[]) => ({
      name: 'pool utilization',
      unit: 'ratio',
      goal: '>= 0.95',
      each: true,
      ...summarize(values, '>= 0.95', true),
      values,
    });
    const rows = resultRows([
      { id: 'pool', runs: 3, secs: 1, metrics: [metric([0.96, 0.97, 0.99])] },
      { id: 'pool', runs: 1, secs: 1, metrics: [metric([0.9])] },
    ]);
    expect(rows.map((r) => [r[2], r[3], r[4]])).toEqual([
      ['0.96 ratio', '>= 0.95, each run', 'met'],
      ['0.9 ratio', '>= 0.95', 'missed'],
    ]);
  });
});

describe('docsDecision', () => {
  it('rewrites the page only on a full default run, or when forced', () => {
    expect(docsDecision({}).write).toBe(true);
    for (const opts of [{ quick: true }, { only: ['pool'] }, { runs: 1 }, { failed: 1 }]) {
      const d = docsDecision(opts);
      expect(d.write).toBe(false);
      expect(d.why).toContain('--write-docs');
    }
    expect(docsDecision({ quick: true, only: ['pool'], writeDocs: true }).write).toBe(true);
  });
});

describe('parseBenchOutput and medianRunIndex', () => {
  it('splits human lines, numbers and series; drops malformed machine lines', () => {
    const s = poolSeries([1, 2])[0]!;
    const out = parseBenchOutput(
      [
        'pool: 200 names in 8.0 s',
        'BENCH {"name":"pool utilization","value":0.9,"unit":"ratio","goal":">= 0.95"}',
        `BENCH_SERIES ${JSON.stringify(s)}`,
        'BENCH {not json',
        'BENCH_SERIES {"chart":"x"}',
        '',
        'BENCHMARK is a human line',
      ].join('\n'),
    );
    expect(out.lines).toEqual(['pool: 200 names in 8.0 s', 'BENCHMARK is a human line']);
    expect(out.metrics).toEqual([
      { name: 'pool utilization', value: 0.9, unit: 'ratio', goal: '>= 0.95' },
    ]);
    expect(out.series).toEqual([s]);
  });

  it('charts the median run by answered requests, skipping runs without series', () => {
    const run = (n: number) => poolSeries([n, n]);
    expect(medianRunIndex([run(30), run(10), run(20)])).toBe(2);
    expect(medianRunIndex([[], run(5), run(9)])).toBe(1);
    expect(medianRunIndex([[], []])).toBe(-1);
  });
});

/**
 * A small XML well-formedness check (no XML parser among the dependencies): one root element,
 * tags nested and closed, attributes quoted, only the five predefined entities.
 */
function wellFormed(xml: string): string | undefined {
  const stack: string[] = [];
  let roots = 0;
  const re = /<[^>]*>|[^<]+/g;
  for (const m of xml.matchAll(re)) {
    const tok = m[0];
    if (!tok.startsWith('<')) {
      if (/&(?!(amp|lt|gt|quot|apos|#\d+);)/.test(tok)) return `bad entity in ${tok}`;
      if (stack.length === 0 && tok.trim()) return `text outside the root: ${tok}`;
      continue;
    }
    const t = /^<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/?)>$/.exec(tok);
    if (!t) return `malformed tag ${tok}`;
    const [, close, name, attrs, selfClose] = t;
    if (/&(?!(amp|lt|gt|quot|apos|#\d+);)/.test(attrs!)) return `bad entity in ${tok}`;
    const names = [...attrs!.matchAll(/([\w:.-]+)=/g)].map((a) => a[1]);
    if (new Set(names).size !== names.length) return `repeated attribute in ${tok}`;
    if (close) {
      if (stack.pop() !== name) return `unbalanced </${name}>`;
    } else if (!selfClose) {
      if (stack.length === 0) roots++;
      stack.push(name!);
    } else if (stack.length === 0) roots++;
  }
  if (stack.length) return `unclosed <${stack.join('> <')}>`;
  return roots === 1 ? undefined : `${roots} root elements`;
}

describe('renderThroughputSvg', () => {
  const charts: Chart[] = chartsFromResults(report.benches);
  const svg = renderThroughputSvg(charts, { subtitle: 'run <1> & "two"' });

  it('the checker used here rejects broken XML', () => {
    expect(wellFormed('<svg><g></svg>')).toMatch(/unbalanced/);
    expect(wellFormed('<svg><text>a & b</text></svg>')).toMatch(/entity/);
    expect(wellFormed('<svg x=1></svg>')).toMatch(/malformed/);
    expect(wellFormed('<svg/><svg/>')).toMatch(/2 root/);
    expect(wellFormed('<svg><g/></svg>')).toBeUndefined();
  });

  it('is one well-formed SVG document with a title, axes labels and a legend', () => {
    expect(wellFormed(svg)).toBeUndefined();
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" /);
    expect(svg).toContain('<title>Upstream throughput against the budget ceiling</title>');
    expect(svg).toContain('run &lt;1&gt; &amp; &quot;two&quot;');
    expect(svg).toContain('pool: 4 sessions on 2 proxies, 2 workers, 2000 names');
    expect(svg).toContain('>requests/s</text>');
    expect(svg).toContain('seconds since the first upstream request');
    expect(svg).toContain('>budgets allow 4 × 8/s (32/s)</text>');
    expect(svg).toContain('>pool: answered</text>');
    expect(svg).toContain('>pool: throttled: none</text>');
    // An all-zero throttled series is in the legend only; the answered one is drawn.
    expect(svg.match(/class="series"/g)).toHaveLength(1);
  });

  it('draws the ceiling, and the series, at their values on the y axis', () => {
    // The y axis: tick labels at x=58, text baseline 4 px below the tick's y.
    const ticks = [
      ...svg.matchAll(/<text x="58" y="([\d.]+)" text-anchor="end">([\d.]+)<\/text>/g),
    ].map((m) => ({ y: Number(m[1]) - 4, v: Number(m[2]) }));
    expect(ticks.length).toBeGreaterThanOrEqual(3);
    const [a, b] = [ticks[0]!, ticks[ticks.length - 1]!];
    const yOf = (v: number) => a.y + ((b.y - a.y) * (v - a.v)) / (b.v - a.v);
    // The axis reaches above both the ceiling and the data.
    expect(b.v).toBeGreaterThan(36.5);

    const ceiling =
      /<line class="ceiling" x1="64" y1="([\d.]+)" x2="732" y2="([\d.]+)" stroke="#d62728"/.exec(
        svg,
      );
    expect(ceiling).not.toBeNull();
    expect(Number(ceiling![1])).toBeCloseTo(yOf(32), 0);
    expect(ceiling![2]).toBe(ceiling![1]);
    expect(svg).toContain('>32/s</text>');

    // The step path: starts at the first bin's value and reaches the last bin's end.
    const d = /<path class="series" d="M([\d.]+) ([\d.]+)([^"]*)"/.exec(svg);
    expect(d).not.toBeNull();
    expect(Number(d![1])).toBe(64);
    expect(Number(d![2])).toBeCloseTo(yOf(36.5), 0);
    const vs = [...d![3]!.matchAll(/V([\d.]+)/g)].map((m) => Number(m[1]));
    expect(vs).toHaveLength(5);
    expect(vs[vs.length - 1]).toBeCloseTo(yOf(29.5), 0);
    expect(d![3]).toMatch(/H732\.0$/);
  });

  it('is deterministic, and says so when a run has no series', () => {
    expect(
      renderThroughputSvg(chartsFromResults(report.benches), { subtitle: 'run <1> & "two"' }),
    ).toBe(svg);
    const empty = renderThroughputSvg([]);
    expect(wellFormed(empty)).toBeUndefined();
    expect(empty).toContain('no throughput series in this run');
  });

  it('draws a second ceiling as a dashed reference line', () => {
    const two = renderThroughputSvg([
      {
        chart: 'budgets',
        title: 'unknown budgets',
        unit: 'requests/s',
        binSecs: 1,
        ceilings: [
          { value: 12, label: 'real budgets 2 × 6/s' },
          { value: 20, label: 'configured 2 × 10/s' },
        ],
        series: [
          {
            label: 'fixed rates: answered',
            group: 'fixed rates',
            kind: 'answered',
            values: [8, 1],
          },
          {
            label: 'fixed rates: throttled',
            group: 'fixed rates',
            kind: 'throttled',
            values: [2, 0],
          },
        ],
      },
    ]);
    expect(wellFormed(two)).toBeUndefined();
    expect(two.match(/class="ceiling"/g)).toHaveLength(2);
    expect(two).toMatch(/class="ceiling"[^>]*stroke="#7f7f7f"[^>]*stroke-dasharray="8 4"/);
    expect(two.match(/class="series"/g)).toHaveLength(2);
    expect(two).toMatch(/class="series"[^>]*stroke-dasharray="5 3"/);
  });
});
