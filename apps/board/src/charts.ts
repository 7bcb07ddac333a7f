import { escapeHtml } from './pages.js';

/**
 * Inline SVG line charts for the board's pages: no script, no external resource, every label
 * escaped. A chart is a few polylines over a shared time axis with a zero-based value axis.
 */

/** One line of a chart. */
export interface Series {
  name: string;
  /** CSS colour (a constant of ours, never data). */
  color: string;
  /** Points in time order: epoch ms and value. */
  points: ReadonlyArray<{ t: number; v: number }>;
  /** Drawn dashed (e.g. a ceiling). */
  dashed?: boolean;
}

/** Options of {@link lineChart}. */
export interface ChartOptions {
  /** Accessible title, also shown above the plot. */
  title: string;
  /** Unit shown after the value axis labels, e.g. `/s`. */
  unit?: string;
  /** Time range shown, epoch ms. */
  from: number;
  to: number;
  /** Pixel size. Defaults 640 × 180. */
  width?: number;
  height?: number;
  /** id attribute of the svg element. */
  id?: string;
}

/** Rounds up to 1, 2 or 5 × a power of ten: a readable top for the value axis. */
export function niceCeil(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * p + 1e-9) return m * p;
  return 10 * p;
}

function fmtValue(v: number): string {
  if (v === 0) return '0';
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1).replace(/\.0$/, '');
  return v.toFixed(2).replace(/0+$/, '').replace(/\.$/, '');
}

function fmtClock(ms: number, spanMs: number): string {
  const iso = new Date(ms).toISOString();
  return spanMs < 10 * 60_000 ? iso.slice(11, 19) : iso.slice(11, 16);
}

/** A line chart as an `<svg>` element, with axes, grid, legend and a `<title>`. */
export function lineChart(series: readonly Series[], opts: ChartOptions): string {
  const width = opts.width ?? 640;
  const height = opts.height ?? 180;
  const left = 58;
  const right = 12;
  const top = 22;
  const bottom = 22;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const span = Math.max(1, opts.to - opts.from);
  const max = niceCeil(Math.max(0, ...series.flatMap((s) => s.points.map((p) => p.v))));
  const x = (t: number) => left + ((t - opts.from) / span) * plotW;
  const y = (v: number) => top + plotH - (Math.min(v, max) / max) * plotH;
  const grid = [0, 0.25, 0.5, 0.75, 1]
    .map((f) => {
      const v = max * f;
      return `<line x1="${left}" x2="${left + plotW}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" class="grid"/><text x="${left - 4}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${escapeHtml(fmtValue(v))}${escapeHtml(opts.unit ?? '')}</text>`;
    })
    .join('');
  const ticks = [0, 0.25, 0.5, 0.75, 1]
    .map((f) => {
      const t = opts.from + span * f;
      const anchor = f === 0 ? 'start' : f === 1 ? 'end' : 'middle';
      return `<text x="${x(t).toFixed(1)}" y="${height - 6}" text-anchor="${anchor}">${escapeHtml(fmtClock(t, span))}</text>`;
    })
    .join('');
  const lines = series
    .filter((s) => s.points.length > 0)
    .map((s) => {
      const pts = s.points.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ');
      const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
      const dot =
        s.points.length === 1
          ? `<circle cx="${x(s.points[0]!.t).toFixed(1)}" cy="${y(s.points[0]!.v).toFixed(1)}" r="3" fill="${escapeHtml(s.color)}"/>`
          : '';
      return `<polyline points="${pts}" fill="none" stroke="${escapeHtml(s.color)}" stroke-width="2"${dash}><title>${escapeHtml(s.name)}</title></polyline>${dot}`;
    })
    .join('');
  let lx = left;
  const legend = series
    .map((s) => {
      const item = `<line x1="${lx}" x2="${lx + 16}" y1="10" y2="10" stroke="${escapeHtml(s.color)}" stroke-width="2"${s.dashed ? ' stroke-dasharray="4 3"' : ''}/><text x="${lx + 20}" y="14">${escapeHtml(s.name)}</text>`;
      lx += 28 + s.name.length * 6.5;
      return item;
    })
    .join('');
  return `<svg class="chart"${opts.id ? ` id="${escapeHtml(opts.id)}"` : ''} role="img" aria-label="${escapeHtml(opts.title)}" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}"><title>${escapeHtml(opts.title)}</title>${grid}${ticks}<line x1="${left}" x2="${left}" y1="${top}" y2="${top + plotH}" class="axis"/>${lines}${legend}</svg>`;
}

/** CSS for charts, appended to the page style. */
export const CHART_STYLE = `
svg.chart { background: #fff; box-shadow: 0 1px 2px rgba(0,0,0,.08); font-size: 11px; fill: #57606a; display: block; margin: 4px 0 12px; max-width: 100%; height: auto; }
svg.chart .grid { stroke: #eaeef2; }
svg.chart .axis { stroke: #8c959f; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
.charts figure { margin: 0; }
.charts figcaption { font-size: 13px; font-weight: 600; margin: 4px 0; }
`;
