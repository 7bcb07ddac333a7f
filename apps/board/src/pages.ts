import type { BatchStatus } from '@storycheck/db';
import { FINAL_STATUSES } from '@storycheck/model';
import {
  PROXY_STATUSES,
  SESSION_STATUSES,
  type PoolSnapshot,
  type ProxyStatus,
  type SessionStatus,
} from '@storycheck/pool';

/**
 * Server-rendered operator pages: `/pool` (sessions and proxies) and `/batches` (recent batches
 * with progress). Plain HTML and a little CSS, no script; every value from Redis or Postgres
 * goes through {@link escapeHtml}. The snapshot holds no secret (labels, states, error codes),
 * and nothing else is read.
 */

/** Escapes the five HTML-significant characters; safe in text and in quoted attributes. */
export function escapeHtml(value: unknown): string {
  return String(value ?? '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** A duration for people: `850ms`, `42s`, `3m 05s`, `2h 10m`, `3d 4h`. */
export function formatDuration(ms: number): string {
  if (ms < 1_000) return `${Math.max(0, Math.round(ms))}ms`;
  const s = Math.floor(ms / 1_000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** `<time>` with a relative text ("3m 05s ago", "in 42s") and the ISO instant as its title. */
export function relTime(atMs: number | null, nowMs: number): string {
  if (atMs === null) return '<span class="muted">—</span>';
  const iso = new Date(atMs).toISOString();
  const d = atMs - nowMs;
  const text =
    Math.abs(d) < 1_000 ? 'now' : d < 0 ? `${formatDuration(-d)} ago` : `in ${formatDuration(d)}`;
  return `<time datetime="${escapeHtml(iso)}" title="${escapeHtml(iso)}">${escapeHtml(text)}</time>`;
}

/** A coloured state badge; the class is the state itself (a closed set), escaped regardless. */
export function badge(state: string): string {
  return `<span class="badge s-${escapeHtml(state)}">${escapeHtml(state)}</span>`;
}

/** The pages' shared CSS (extended by {@link layout}'s `extraStyle`). */
export const STYLE = `
:root { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; }
body { margin: 0; background: #f6f8fa; }
header { background: #24292f; color: #fff; padding: 10px 20px; display: flex; gap: 20px; align-items: baseline; }
header strong { font-size: 18px; margin-right: 12px; }
header a { color: #c9d1d9; text-decoration: none; }
header a.current { color: #fff; font-weight: 600; border-bottom: 2px solid #fff; }
main { padding: 16px 20px; }
h2 { font-size: 16px; margin: 22px 0 8px; }
.summary { display: flex; gap: 8px; flex-wrap: wrap; margin: 4px 0 8px; }
table { border-collapse: collapse; background: #fff; width: 100%; font-size: 13px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid #eaeef2; white-space: nowrap; }
th { background: #f0f3f6; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font-size: 12px; }
.muted { color: #8c959f; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; color: #fff; background: #6e7781; }
.s-active, .s-completed { background: #1a7f37; }
.s-cooling { background: #bf8700; }
.s-running { background: #0969da; }
.s-queued, .s-disabled { background: #6e7781; }
.s-invalid, .s-broken { background: #cf222e; }
.s-challenge { background: #bc4c00; }
.s-suspended { background: #82071e; }
.bar { position: relative; width: 160px; height: 14px; background: #eaeef2; border-radius: 7px; overflow: hidden; display: inline-block; vertical-align: middle; }
.bar > span { position: absolute; inset: 0 auto 0 0; background: #2da44e; }
.pct { display: inline-block; width: 48px; text-align: right; margin-left: 6px; font-variant-numeric: tabular-nums; }
.c-active { color: #1a7f37; } .c-failed { color: #cf222e; } .c-private { color: #8250df; }
.c-not_found { color: #bc4c00; } .c-none { color: #57606a; }
.empty { padding: 14px; background: #fff; color: #57606a; }
`;

/** The board's own pages, for the header's "current" mark. */
export type PagePath = '/pool' | '/batches';

/**
 * The page shell: header with links to the queues (bull-board), pool and batches pages.
 * Links are relative to the board's root, reached from this page by `root` (`''` for pages at
 * the top level, `'../'` one level down), so the board also works under a path prefix.
 * `refresh` is the meta refresh period in seconds (0 = none).
 */
export function layout(
  title: string,
  current: PagePath,
  body: string,
  opts: { root?: string; refresh?: number; extraStyle?: string } = {},
): string {
  const root = opts.root ?? '';
  const refresh = opts.refresh ?? 10;
  const link = (href: string, text: string) =>
    `<a href="${root}${href}"${href === current.slice(1) ? ' class="current"' : ''}>${text}</a>`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
${refresh > 0 ? `<meta http-equiv="refresh" content="${refresh}">\n` : ''}<title>${escapeHtml(title)} · storycheck</title>
<style>${STYLE}${opts.extraStyle ?? ''}</style>
</head>
<body>
<header><strong>storycheck</strong>${root ? `<a href="${root}">Queues</a>` : link('./', 'Queues')}${link('pool', 'Pool')}${link('batches', 'Batches')}</header>
<main>
${body}
</main>
</body>
</html>
`;
}

/** "3 active · 1 cooling": badges per state, in a fixed order, states with 0 left out. */
function summary(states: readonly string[], values: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  const parts = states
    .filter((s) => (counts.get(s) ?? 0) > 0)
    .map(
      (s) => `<span class="badge s-${escapeHtml(s)}">${counts.get(s) ?? 0} ${escapeHtml(s)}</span>`,
    );
  return `<div class="summary">${parts.join('') || '<span class="muted">none</span>'}</div>`;
}

/** The summaries' order: the pool's own lists of statuses (the gauges use the same). */
const SESSION_ORDER: readonly SessionStatus[] = SESSION_STATUSES;
const PROXY_ORDER: readonly ProxyStatus[] = PROXY_STATUSES;

/**
 * The `/pool` page: a summary per state, then every session (label, state, cooldown left,
 * usage, last used, last error code, proxy) and every proxy (label, state, usage, recover at,
 * last error). Times are relative to the snapshot's Redis time.
 */
export function renderPoolPage(snap: PoolSnapshot, traffic = ''): string {
  const now = snap.at;
  const proxyLabels = new Map(snap.proxies.map((p) => [p.id, p.label]));
  const sessions = [...snap.sessions].sort((a, b) => a.label.localeCompare(b.label));
  const proxies = [...snap.proxies].sort((a, b) => a.label.localeCompare(b.label));

  const sessionRows = sessions
    .map((s) => {
      const proxy =
        s.proxyId === null
          ? '<span class="muted">direct</span>'
          : escapeHtml(proxyLabels.get(s.proxyId) ?? `${s.proxyId} (missing)`);
      return `<tr>
<td>${escapeHtml(s.label)}</td>
<td>${badge(s.status)}</td>
<td class="num">${s.cooldownLeftMs > 0 ? escapeHtml(formatDuration(s.cooldownLeftMs)) : '<span class="muted">—</span>'}</td>
<td class="num">${escapeHtml(s.usageCount)}</td>
<td>${relTime(s.lastUsedAt, now)}</td>
<td>${s.lastError ? `<code>${escapeHtml(s.lastError)}</code> ${relTime(s.lastErrorAt, now)}` : '<span class="muted">—</span>'}</td>
<td>${proxy}</td>
</tr>`;
    })
    .join('\n');

  const proxyRows = proxies
    .map(
      (p) => `<tr>
<td>${escapeHtml(p.label)}</td>
<td>${badge(p.status)}</td>
<td class="num">${escapeHtml(p.usageCount)}</td>
<td>${p.recoverAt === null ? '<span class="muted">—</span>' : relTime(p.recoverAt, now)}</td>
<td>${p.cooldownLeftMs > 0 ? escapeHtml(formatDuration(p.cooldownLeftMs)) : '<span class="muted">—</span>'}</td>
<td>${p.lastError ? `<code>${escapeHtml(p.lastError)}</code> ${relTime(p.lastErrorAt, now)}` : '<span class="muted">—</span>'}</td>
</tr>`,
    )
    .join('\n');

  const body = `${traffic}
<h2>Sessions (${sessions.length})</h2>
${summary(
  SESSION_ORDER,
  sessions.map((s) => s.status),
)}
${
  sessions.length
    ? `<table id="sessions">
<thead><tr><th>label</th><th>state</th><th class="num">cooldown left</th><th class="num">usage</th><th>last used</th><th>last error</th><th>proxy</th></tr></thead>
<tbody>
${sessionRows}
</tbody>
</table>`
    : '<div class="empty">No sessions. Import some with <code>storycheck sessions import</code>.</div>'
}
<h2>Proxies (${proxies.length})</h2>
${summary(
  PROXY_ORDER,
  proxies.map((p) => p.status),
)}
${
  proxies.length
    ? `<table id="proxies">
<thead><tr><th>label</th><th>state</th><th class="num">usage</th><th>recover at</th><th>cooldown left</th><th>last error</th></tr></thead>
<tbody>
${proxyRows}
</tbody>
</table>`
    : '<div class="empty">No proxies.</div>'
}
<p class="muted">Redis time ${escapeHtml(new Date(now).toISOString())} · refreshes every 10 s</p>`;
  return layout('Pool', '/pool', body);
}

/**
 * The `/batches` page: the most recent batches, newest first, each with its state, a progress
 * bar (done/total), the counts per final status and when it was created.
 */
export function renderBatchesPage(batches: readonly BatchStatus[], nowMs: number): string {
  const rows = batches
    .map((b) => {
      const pct = b.total > 0 ? Math.min(100, (b.done / b.total) * 100) : b.sealed ? 100 : 0;
      const pctText = `${pct >= 99.95 || pct === 0 ? pct.toFixed(0) : pct.toFixed(1)}%`;
      const counts = FINAL_STATUSES.map(
        (k) => `<td class="num c-${k}">${escapeHtml(b.counts[k])}</td>`,
      ).join('');
      return `<tr>
<td><a href="batches/${encodeURIComponent(b.batchId)}"><code>${escapeHtml(b.batchId)}</code></a></td>
<td>${b.name === null ? '<span class="muted">—</span>' : escapeHtml(b.name)}</td>
<td>${badge(b.state)}${b.sealed ? '' : ' <span class="badge s-unsealed" title="the enqueue has not finished (still running, or interrupted: resume with storycheck enqueue --batch-id)">unsealed</span>'}</td>
<td><span class="bar" role="progressbar" aria-valuenow="${pct.toFixed(1)}" aria-valuemin="0" aria-valuemax="100"><span style="width:${pct.toFixed(1)}%"></span></span><span class="pct">${pctText}</span></td>
<td class="num">${escapeHtml(b.done)} / ${escapeHtml(b.total)}</td>
${counts}
<td>${relTime(Date.parse(b.createdAt), nowMs)}</td>
</tr>`;
    })
    .join('\n');
  const body = `
<h2>Recent batches (${batches.length})</h2>
${
  batches.length
    ? `<table id="batches">
<thead><tr><th>id</th><th>name</th><th>state</th><th>progress</th><th class="num">done / total</th>${FINAL_STATUSES.map((k) => `<th class="num">${k}</th>`).join('')}<th>created</th></tr></thead>
<tbody>
${rows}
</tbody>
</table>`
    : '<div class="empty">No batches yet. Enqueue one with <code>storycheck enqueue</code>.</div>'
}
<p class="muted">${escapeHtml(new Date(nowMs).toISOString())} · refreshes every 10 s</p>`;
  return layout('Batches', '/batches', body);
}

/** A small error page (e.g. Redis or Postgres unavailable) in the same shell. */
export function renderErrorPage(current: PagePath, message: string, root = ''): string {
  return layout('Unavailable', current, `<div class="empty">${escapeHtml(message)}</div>`, {
    root,
  });
}
