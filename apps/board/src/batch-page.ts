import type { BatchStatus, FailureGroup, LogError, ThroughputBucket } from '@storycheck/db';
import { FINAL_STATUSES, ITEM_STATUSES, type ResultRecord } from '@storycheck/model';
import { CHART_STYLE, lineChart } from './charts.js';
import { badge, escapeHtml, formatDuration, layout, relTime } from './pages.js';

/**
 * The `/batches/:id` page: progress and counts, checks per second over time, failures grouped
 * by error code with example names and a message, the batch log's latest errors, the items
 * (filtered by status, paged) and links to download the results. Every value from Postgres
 * goes through {@link escapeHtml}: usernames are validated, error messages are not.
 */

/** Item statuses the item list filters by: every one. */
export const ITEM_FILTERS = ITEM_STATUSES;
/** Items per page of the item list. */
export const ITEMS_PER_PAGE = 50;

/** Everything the page shows, read by the server. */
export interface BatchPageData {
  status: BatchStatus;
  throughput: { bucketMs: number; buckets: ThroughputBucket[] };
  failures: FailureGroup[];
  logErrors: { total: number; rows: LogError[] };
  items: { total: number; rows: ResultRecord[] };
  /** The filter applied to the item list, undefined = all. */
  filter: (typeof ITEM_FILTERS)[number] | undefined;
  /** Zero-based page of the item list. */
  page: number;
}

/** A bucket width (ms) that gives at most ~60 points over `spanMs`: 1 s, 2 s, 5 s, … 1 h. */
export function bucketFor(spanMs: number): number {
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600].map((s) => s * 1_000);
  return steps.find((s) => spanMs / s <= 60) ?? 3_600_000;
}

const EXTRA_STYLE = `
.cards { display: flex; gap: 10px; flex-wrap: wrap; margin: 8px 0; }
.card { background: #fff; padding: 8px 14px; box-shadow: 0 1px 2px rgba(0,0,0,.08); min-width: 90px; }
.card b { display: block; font-size: 20px; font-variant-numeric: tabular-nums; }
.card span { font-size: 12px; color: #57606a; }
.filters a { margin-right: 10px; }
.filters a.current { font-weight: 700; text-decoration: none; color: #1f2328; }
td.msg { white-space: normal; max-width: 520px; word-break: break-word; }
.pager { margin: 8px 0; display: flex; gap: 14px; }
.downloads a { margin-right: 12px; }
`;

function card(value: unknown, label: string, cls = ''): string {
  return `<div class="card"><b class="${cls}">${escapeHtml(value)}</b><span>${escapeHtml(label)}</span></div>`;
}

/** The summary cards: progress, counts, rate, elapsed time and ETA. */
function summaryCards(
  b: BatchPageData['status'],
  pct: number,
  rate: number,
  elapsed: number | null,
  finished: number | null,
  eta: number | null,
): string {
  return [
    card(`${pct >= 99.95 || pct === 0 ? pct.toFixed(0) : pct.toFixed(1)}%`, 'done'),
    card(`${b.done} / ${b.total}`, 'checked / accepted'),
    ...FINAL_STATUSES.map((k) => card(b.counts[k], k, `c-${k}`)),
    card(b.duplicates, 'duplicates'),
    card(b.rejected, 'rejected'),
    card(rate ? `${rate.toFixed(1)}/s` : '—', 'average rate'),
    card(elapsed === null ? '—' : formatDuration(elapsed), finished ? 'took' : 'running for'),
    ...(eta === null ? [] : [card(formatDuration(eta), 'ETA')]),
  ].join('');
}

/** The throughput chart, or a note when no check has finished. */
function throughputChart(d: BatchPageData): string {
  // Throughput: buckets from the first to the last check, zeros filled in.
  const { bucketMs, buckets } = d.throughput;
  const byAt = new Map(buckets.map((x) => [x.at, x]));
  if (!buckets.length) return '<div class="empty">No check has finished yet.</div>';
  const first = buckets[0]!.at;
  const last = buckets[buckets.length - 1]!.at;
  const pts: { t: number; checks: number; failed: number }[] = [];
  for (let t = first; t <= last; t += bucketMs) {
    const x = byAt.get(t);
    pts.push({ t: t + bucketMs / 2, checks: x?.checks ?? 0, failed: x?.failed ?? 0 });
  }
  const perS = (n: number) => n / (bucketMs / 1_000);
  return lineChart(
    [
      {
        name: 'checks/s',
        color: '#0969da',
        points: pts.map((p) => ({ t: p.t, v: perS(p.checks) })),
      },
      {
        name: 'failed/s',
        color: '#cf222e',
        points: pts.map((p) => ({ t: p.t, v: perS(p.failed) })),
      },
    ],
    {
      title: `Checks finished per second (${formatDuration(bucketMs)} buckets)`,
      unit: '/s',
      from: first,
      to: last + bucketMs,
      id: 'throughput',
      width: 860,
      height: 200,
    },
  );
}

/** Failed items grouped by error code. */
function failuresTable(d: BatchPageData): string {
  return d.failures.length
    ? `<table id="failures">
<thead><tr><th>error code</th><th class="num">items</th><th>examples</th><th>latest message</th></tr></thead>
<tbody>
${d.failures
  .map(
    (f) => `<tr>
<td><code>${f.code === null ? '<span class="muted">none</span>' : escapeHtml(f.code)}</code></td>
<td class="num">${escapeHtml(f.count)}</td>
<td class="msg">${f.usernames.map((u) => escapeHtml(u)).join(', ')}${f.count > f.usernames.length ? ' …' : ''}</td>
<td class="msg">${f.message === null ? '<span class="muted">—</span>' : escapeHtml(f.message)}</td>
</tr>`,
  )
  .join('\n')}
</tbody>
</table>`
    : '<div class="empty">No failed item.</div>';
}

/** The latest batch log rows that carry an error. */
function logErrorsTable(d: BatchPageData, nowMs: number): string {
  const b = d.status;
  return d.logErrors.rows.length
    ? `<table id="log-errors">
<thead><tr><th>at</th><th>username</th><th class="num">attempt</th><th>outcome</th><th>error</th><th>message</th><th>session</th><th>proxy</th></tr></thead>
<tbody>
${d.logErrors.rows
  .map(
    (r) => `<tr>
<td>${relTime(Date.parse(r.at), nowMs)}</td>
<td>${escapeHtml(r.username ?? '')}</td>
<td class="num">${escapeHtml(r.attempt ?? '')}</td>
<td>${escapeHtml(r.outcome ?? '')}</td>
<td><code>${escapeHtml(r.errorCode ?? '')}</code>${r.errorClass ? ` <span class="muted">${escapeHtml(r.errorClass)}</span>` : ''}</td>
<td class="msg">${escapeHtml(r.errorMessage ?? '')}</td>
<td>${escapeHtml(r.sessionLabel ?? '')}</td>
<td>${escapeHtml(r.proxyLabel ?? '')}</td>
</tr>`,
  )
  .join('\n')}
</tbody>
</table>
<p class="muted">Latest ${escapeHtml(d.logErrors.rows.length)} of ${escapeHtml(d.logErrors.total)} log rows with an error (retries, delays, failures). All of them: <code>storycheck batches log ${escapeHtml(b.batchId)} --errors</code></p>`
    : '<div class="empty">No error in the batch log.</div>';
}

/** The items: filters, one page of rows, the pager. */
function itemsSection(d: BatchPageData, nowMs: number, id: string): string {
  const q = (filter: string | undefined, page: number) => {
    const p = new URLSearchParams();
    if (filter) p.set('status', filter);
    if (page > 0) p.set('page', String(page));
    const s = p.toString();
    return `${id}${s ? `?${s}` : ''}#items`;
  };
  const filters = [undefined, ...ITEM_FILTERS]
    .map(
      (f) =>
        `<a href="${escapeHtml(q(f, 0))}"${f === d.filter ? ' class="current"' : ''}>${escapeHtml(f ?? 'all')}</a>`,
    )
    .join('');
  const pages = Math.max(1, Math.ceil(d.items.total / ITEMS_PER_PAGE));
  const itemRows = d.items.rows
    .map(
      (r) => `<tr>
<td>${escapeHtml(r.username)}</td>
<td class="c-${escapeHtml(r.status)}">${escapeHtml(r.status)}</td>
<td class="num">${escapeHtml(r.storyCount ?? '')}</td>
<td>${r.latestStoryAt ? relTime(Date.parse(r.latestStoryAt), nowMs) : ''}</td>
<td>${r.checkedAt ? relTime(Date.parse(r.checkedAt), nowMs) : ''}</td>
<td class="num">${escapeHtml(r.attempts)}</td>
<td>${r.cached ? 'yes' : ''}</td>
<td><code>${escapeHtml(r.error ?? '')}</code></td>
</tr>`,
    )
    .join('\n');
  return `<div class="filters">Show: ${filters}</div>
${
  d.items.rows.length
    ? `<table id="items">
<thead><tr><th>username</th><th>status</th><th class="num">stories</th><th>latest story</th><th>checked</th><th class="num">attempts</th><th>cached</th><th>error</th></tr></thead>
<tbody>
${itemRows}
</tbody>
</table>`
    : '<div class="empty">No item with this status.</div>'
}
<div class="pager">${d.page > 0 ? `<a href="${escapeHtml(q(d.filter, d.page - 1))}" rel="prev">← previous</a>` : ''}<span>page ${escapeHtml(Math.min(d.page + 1, pages))} of ${escapeHtml(pages)} · ${escapeHtml(d.items.total)} items</span>${d.page + 1 < pages ? `<a href="${escapeHtml(q(d.filter, d.page + 1))}" rel="next">next →</a>` : ''}</div>`;
}

/** Renders the page for one batch; `nowMs` anchors the relative times. */
export function renderBatchPage(d: BatchPageData, nowMs: number): string {
  const b = d.status;
  const id = encodeURIComponent(b.batchId);
  const pct = b.total > 0 ? Math.min(100, (b.done / b.total) * 100) : b.sealed ? 100 : 0;
  const started = b.startedAt ? Date.parse(b.startedAt) : null;
  const finished = b.finishedAt ? Date.parse(b.finishedAt) : null;
  const elapsed = started === null ? null : (finished ?? nowMs) - started;
  const rate = elapsed && elapsed > 0 ? (b.done / elapsed) * 1_000 : 0;
  const eta = b.state === 'running' && rate > 0 ? ((b.total - b.done) / rate) * 1_000 : null;

  const cards = summaryCards(b, pct, rate, elapsed, finished, eta);
  const chart = throughputChart(d);
  const failures = failuresTable(d);
  const logErrors = logErrorsTable(d, nowMs);
  const items = itemsSection(d, nowMs, id);

  const body = `
<p><a href="../batches">← all batches</a></p>
<h2>Batch <code>${escapeHtml(b.batchId)}</code>${b.name === null ? '' : ` · ${escapeHtml(b.name)}`} ${badge(b.state)}</h2>
<div><span class="bar" role="progressbar" aria-valuenow="${pct.toFixed(1)}" aria-valuemin="0" aria-valuemax="100"><span style="width:${pct.toFixed(1)}%"></span></span></div>
<div class="cards" id="counts">${cards}</div>
<p class="muted">created ${relTime(Date.parse(b.createdAt), nowMs)}${started ? ` · started ${relTime(started, nowMs)}` : ''}${finished ? ` · finished ${relTime(finished, nowMs)}` : ''}</p>
<p class="downloads">Results (the same records as <code>storycheck results</code>): <a href="${id}/results.csv" download>CSV</a><a href="${id}/results.ndjson" download>NDJSON</a><a href="${id}/results.json" download>JSON</a></p>
<h2>Throughput</h2>
${chart}
<h2>Failures by error code</h2>
${failures}
<h2>Batch log errors</h2>
${logErrors}
<h2 id="items">Items</h2>
${items}
<p class="muted">${escapeHtml(new Date(nowMs).toISOString())}${b.state === 'completed' ? '' : ' · refreshes every 10 s'}</p>`;
  return layout(`Batch ${b.name ?? b.batchId}`, '/batches', body, {
    root: '../',
    refresh: b.state === 'completed' ? 0 : 10,
    extraStyle: `${EXTRA_STYLE}${CHART_STYLE}`,
  });
}
