// Types of bench-report.mjs (plain node, so the runner needs no build), for the tests.

/** One number a benchmark script printed (`BENCH {json}`). */
export interface BenchMetric {
  name: string;
  value: number;
  unit: string;
  goal?: string;
  /** The goal must hold in each run: the runner reports the worst run (see summarize). */
  each?: boolean;
}

/** One time series a benchmark script printed (`BENCH_SERIES {json}`). */
export interface BenchSeries {
  /** Panel of the chart this series belongs to. */
  chart: string;
  title?: string;
  /** Series of one group share a colour (e.g. one mode's answered and throttled lines). */
  group?: string;
  label?: string;
  kind?: 'answered' | 'throttled';
  unit?: string;
  /** Bin length, seconds. */
  binSecs?: number;
  /** Horizontal lines, requests/s; the first is what the budgets allow. */
  ceilings?: Ceiling[];
  /** One rate per bin, requests/s. */
  values: number[];
}

export interface Ceiling {
  value: number;
  label: string;
}

/** One number over its runs, as the runner reports it. */
export interface ResultMetric extends BenchMetric {
  met: boolean | undefined;
  values: number[];
}

/** One benchmark script's results, as the runner reports it. */
export interface BenchResult {
  id: string;
  runs: number;
  why?: string;
  secs: number;
  lines?: string[];
  errors?: string[];
  metrics: ResultMetric[];
  series?: BenchSeries[];
  seriesRun?: number;
}

/** bench-results/latest.json. */
export interface BenchReport {
  date: string;
  command: string;
  quick: boolean;
  totalSecs: number;
  machine: {
    cpus: number;
    model: string;
    memGb: number;
    node: string;
    loadavgStart?: number[];
    loadavg: number[];
  };
  failed: number;
  benches: BenchResult[];
}

export interface Chart {
  chart: string;
  title: string;
  unit: string;
  binSecs: number;
  ceilings: Ceiling[];
  series: { label: string; group: string; kind: 'answered' | 'throttled'; values: number[] }[];
}

export const MARKERS: { start: string; end: string };
export const CHART_FILE: string;
export function median(xs: number[]): number;
export function meets(value: number, goal: string | undefined): boolean | undefined;
export function summarize(
  values: number[],
  goal: string | undefined,
  each?: boolean,
): { value: number; met: boolean | undefined };
export function show(v: number): string;
export function parseBenchOutput(text: string): {
  lines: string[];
  metrics: BenchMetric[];
  series: BenchSeries[];
};
export function medianRunIndex(seriesPerRun: BenchSeries[][]): number;
export function chartsFromResults(benches: BenchResult[]): Chart[];
export function docsDecision(opts: {
  quick?: boolean;
  only?: string[];
  runs?: number;
  writeDocs?: boolean;
  failed?: number;
}): { write: boolean; why: string };
export function markdownTable(header: string[], rows: string[][]): string;
export function resultRows(benches: BenchResult[]): string[][];
export function renderResultsSection(
  report: BenchReport,
  opts?: { chartFile?: string | undefined },
): string;
export function replaceResultsSection(doc: string, section: string): string;
export function renderThroughputSvg(
  charts: Chart[],
  opts?: { title?: string; subtitle?: string },
): string;
