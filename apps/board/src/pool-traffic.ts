import { DIRECT, TRAFFIC_BUCKET_MS, type PoolSnapshot, type TrafficBucket } from '@storycheck/pool';
import { CHART_STYLE, lineChart, type Series } from './charts.js';
import { escapeHtml } from './pages.js';

/**
 * The traffic part of the `/pool` page: upstream requests per second against the ceiling the
 * budgets allow, and throttled answers per second, in total and per proxy, over the last
 * minutes (the workers' 10-second buckets, see @storycheck/pool's traffic.ts).
 */

/** Requests per second one member's budget allows (its effective emission interval). */
const perSecond = (intervalMs: number) => (intervalMs > 0 ? 1_000 / intervalMs : 0);

/**
 * The ceilings now, requests/s: per proxy the smaller of its own budget and the sum of its
 * usable sessions' budgets (0 when broken or disabled), `-` for sessions without a proxy, and
 * in total their sum, capped by the global budget. Usable = active or cooling (a cooldown ends).
 */
export function ceilings(
  snap: PoolSnapshot,
  globalPerS?: number,
): { total: number; byProxy: Map<string, number> } {
  const sessionsPerS = new Map<string, number>();
  for (const s of snap.sessions) {
    if (s.status !== 'active' && s.status !== 'cooling') continue;
    const k = s.proxyId ?? DIRECT;
    sessionsPerS.set(k, (sessionsPerS.get(k) ?? 0) + perSecond(s.intervalMs));
  }
  const byProxy = new Map<string, number>();
  for (const p of snap.proxies) {
    const usable = p.status === 'active' || p.status === 'cooling';
    byProxy.set(p.id, usable ? Math.min(perSecond(p.intervalMs), sessionsPerS.get(p.id) ?? 0) : 0);
  }
  if (sessionsPerS.has(DIRECT)) byProxy.set(DIRECT, sessionsPerS.get(DIRECT)!);
  let total = [...byProxy.values()].reduce((a, b) => a + b, 0);
  if (globalPerS !== undefined && globalPerS > 0) total = Math.min(total, globalPerS);
  return { total, byProxy };
}

const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);
const rate = (n: number) => n / (TRAFFIC_BUCKET_MS / 1_000);
const fmt = (v: number) => (v >= 10 ? v.toFixed(1) : v.toFixed(2));

/** Each bucket drawn at its middle. */
const mid = (b: TrafficBucket) => b.at + TRAFFIC_BUCKET_MS / 2;

/** One traffic chart over `buckets` (from..to): requests, throttled answers and a ceiling. */
function trafficChart(
  range: { buckets: readonly TrafficBucket[]; from: number; to: number },
  id: string,
  title: string,
  req: (b: TrafficBucket) => number,
  thr: (b: TrafficBucket) => number,
  ceiling: number,
  width: number,
): string {
  const { buckets, from, to } = range;
  const series: Series[] = [
    {
      name: 'requests/s',
      color: '#0969da',
      points: buckets.map((b) => ({ t: mid(b), v: rate(req(b)) })),
    },
    {
      name: 'throttled/s',
      color: '#cf222e',
      points: buckets.map((b) => ({ t: mid(b), v: rate(thr(b)) })),
    },
    {
      name: `ceiling ${fmt(ceiling)}/s`,
      color: '#6e7781',
      dashed: true,
      points: [
        { t: from, v: ceiling },
        { t: to, v: ceiling },
      ],
    },
  ];
  return lineChart(series, {
    title,
    unit: '/s',
    from,
    to,
    id,
    width,
    height: width > 500 ? 200 : 150,
  });
}

/** One table row per proxy: last minute's rate, ceiling, requests and throttled answers. */
function trafficRows(
  order: string[],
  buckets: readonly TrafficBucket[],
  lastMinute: readonly TrafficBucket[],
  labels: Map<string, string>,
  byProxy: Map<string, number>,
): string {
  return order
    .map((k) => {
      const recent = lastMinute.reduce((a, b) => a + (b.requests[k] ?? 0), 0);
      const thrown = buckets.reduce((a, b) => a + (b.throttled[k] ?? 0), 0);
      const sent = buckets.reduce((a, b) => a + (b.requests[k] ?? 0), 0);
      return `<tr class="traffic-row">
<td>${escapeHtml(labels.get(k) ?? `${k} (removed)`)}</td>
<td class="num">${escapeHtml(fmt(recent / (lastMinute.length * (TRAFFIC_BUCKET_MS / 1_000) || 1)))}</td>
<td class="num">${escapeHtml(fmt(byProxy.get(k) ?? 0))}</td>
<td class="num">${escapeHtml(sent)}</td>
<td class="num${thrown ? ' c-failed' : ''}">${escapeHtml(thrown)}</td>
</tr>`;
    })
    .join('\n');
}

/**
 * The traffic section: a chart of the whole pool, one per proxy (and one for direct sessions
 * when there are any), and a table with the last minute's rate, the ceiling and the throttled
 * answers over the window.
 */
export function renderTraffic(
  buckets: readonly TrafficBucket[],
  snap: PoolSnapshot,
  opts: { minutes: number; globalPerS?: number | undefined },
): string {
  const { total, byProxy } = ceilings(snap, opts.globalPerS);
  const labels = new Map(snap.proxies.map((p) => [p.id, p.label]));
  labels.set(DIRECT, 'direct (no proxy)');
  const keys = new Set<string>(byProxy.keys());
  for (const b of buckets)
    for (const k of [...Object.keys(b.requests), ...Object.keys(b.throttled)]) keys.add(k);
  const order = [...keys].sort((a, b) => (labels.get(a) ?? a).localeCompare(labels.get(b) ?? b));
  const from = buckets.length ? buckets[0]!.at : snap.at - opts.minutes * 60_000;
  const to = buckets.length ? buckets[buckets.length - 1]!.at + TRAFFIC_BUCKET_MS : snap.at;
  const range = { buckets, from, to };

  const lastMinute = buckets.slice(-Math.round(60_000 / TRAFFIC_BUCKET_MS));
  const rows = trafficRows(order, buckets, lastMinute, labels, byProxy);
  const totalSent = buckets.reduce((a, b) => a + sum(b.requests), 0);
  const totalThrottled = buckets.reduce((a, b) => a + sum(b.throttled), 0);
  const totalRecent = lastMinute.reduce((a, b) => a + sum(b.requests), 0);

  const perProxy = order
    .map(
      (k) =>
        `<figure><figcaption>${escapeHtml(labels.get(k) ?? k)}</figcaption>${trafficChart(
          range,
          `traffic-${k === DIRECT ? 'direct' : k}`,
          `Requests and throttled answers per second through ${labels.get(k) ?? k}`,
          (b) => b.requests[k] ?? 0,
          (b) => b.throttled[k] ?? 0,
          byProxy.get(k) ?? 0,
          420,
        )}</figure>`,
    )
    .join('');

  return `<style>${CHART_STYLE}</style>
<h2>Upstream traffic (last ${escapeHtml(opts.minutes)} min)</h2>
${trafficChart(
  range,
  'traffic-total',
  'Upstream requests and throttled answers per second, whole pool',
  (b) => sum(b.requests),
  (b) => sum(b.throttled),
  total,
  860,
)}
<table id="traffic">
<thead><tr><th>proxy</th><th class="num">requests/s (last min)</th><th class="num">ceiling/s</th><th class="num">requests (${escapeHtml(opts.minutes)} min)</th><th class="num">throttled (${escapeHtml(opts.minutes)} min)</th></tr></thead>
<tbody>
${rows}
<tr><th>total</th><th class="num">${escapeHtml(fmt(totalRecent / (lastMinute.length * (TRAFFIC_BUCKET_MS / 1_000) || 1)))}</th><th class="num">${escapeHtml(fmt(total))}</th><th class="num">${escapeHtml(totalSent)}</th><th class="num">${escapeHtml(totalThrottled)}</th></tr>
</tbody>
</table>
${perProxy ? `<div class="charts">${perProxy}</div>` : ''}
<p class="muted">Ceiling: what the budgets of the usable (active or cooling) sessions allow, capped by each proxy's budget${opts.globalPerS ? ' and the global budget' : ''}. 10-second buckets written by the workers.</p>`;
}
