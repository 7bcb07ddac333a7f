import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import {
  addItems,
  appendBatchLog,
  createBatch,
  migrate,
  openDb,
  recordResult,
  sealBatch,
  type DbHandle,
} from '@storycheck/db';
import { createPool, poolKeys, type Pool } from '@storycheck/pool';
import { CHECK_JOB, createRedis, openCheckQueue, type CheckQueue } from '@storycheck/queue';
import {
  createTestDatabase,
  createTestPrefix,
  runNode,
  type TestDatabase,
  type TestPrefix,
} from '@storycheck/testkit';
import { startBoard, type RunningBoard } from '../src/index.js';
import { escapeHtml, formatDuration } from '../src/pages.js';
import { REDIS_URL, basic, boardConfig, silentLogger } from './helpers.js';
import { parsePrometheus, valueOf } from '@storycheck/testkit';

const USER = 'ops';
const PASSWORD = 'pages-test-password';
const AUTH = { authorization: basic(USER, PASSWORD) };
const EVIL = '<script>alert("x")</script>';
const logger = silentLogger();

let tdb: TestDatabase;
let tp: TestPrefix;
let redis: Redis;
let queue: CheckQueue;
let pool: Pool;
let dbh: DbHandle;
let board: RunningBoard;
const batchId = randomUUID();
const emptyBatchId = randomUUID();
const bigBatchId = randomUUID();
const PRODUCER = new URL('../../producer/dist/main.js', import.meta.url).pathname;

beforeAll(async () => {
  tdb = await createTestDatabase(migrate);
  tp = createTestPrefix();
  redis = createRedis(REDIS_URL, { name: 'board-pages-test' });
  queue = openCheckQueue(redis, tp.prefix);
  const config = boardConfig(tp.prefix, {
    BOARD_USER: USER,
    BOARD_PASSWORD: PASSWORD,
    DATABASE_URL: tdb.url,
  });
  pool = createPool({
    redis,
    prefix: tp.prefix,
    defaults: {
      sessionRate: config.sessionRate,
      sessionBurst: config.sessionBurst,
      proxyRate: config.proxyRate,
      proxyBurst: config.proxyBurst,
    },
  });
  await pool.upsertProxy({ id: 'px1', label: 'proxy-frankfurt' });
  await pool.upsertProxy({ id: 'px2', label: 'proxy-paris' });
  await pool.markProxy('px2', 'disabled');
  await pool.upsertSession({ id: 'ses1', label: 'ops-account-1', proxyId: 'px1' });
  await pool.upsertSession({ id: 'ses2', label: 'ops-account-2', proxyId: 'px1' });
  await pool.markSession('ses2', 'invalid', 'login_required');
  await pool.upsertSession({ id: 'ses3', label: EVIL, proxyId: null });

  dbh = openDb(tdb.url, { max: 2 });
  await createBatch(dbh.db, { id: batchId, name: 'morning run' });
  await addItems(
    dbh.db,
    batchId,
    ['ann', 'ben', 'cat', 'dan'].map((username, seq) => ({ seq, username })),
  );
  await sealBatch(dbh.db, batchId, { duplicates: 1, rejected: 0 });
  await recordResult(dbh.db, batchId, 'ann', { status: 'active', attempts: 1, storyCount: 2 });
  await recordResult(dbh.db, batchId, 'ben', { status: 'not_found', attempts: 1 });
  await recordResult(dbh.db, batchId, 'cat', { status: 'failed', attempts: 5, error: 'x' });
  await appendBatchLog(dbh.db, [
    {
      batchId,
      event: 'check',
      username: 'cat',
      attempt: 5,
      outcome: 'failed',
      errorCode: 'x',
      errorMessage: EVIL,
    },
  ]);
  // 120 items, every third failed: three pages of the item list.
  await createBatch(dbh.db, { id: bigBatchId, name: 'big' });
  await addItems(
    dbh.db,
    bigBatchId,
    Array.from({ length: 120 }, (_, seq) => ({
      seq,
      username: `user_${String(seq).padStart(3, '0')}`,
    })),
  );
  await sealBatch(dbh.db, bigBatchId, { duplicates: 0, rejected: 0 });
  for (let i = 0; i < 120; i += 3)
    await recordResult(dbh.db, bigBatchId, `user_${String(i).padStart(3, '0')}`, {
      status: 'failed',
      attempts: 2,
      error: i % 2 ? 'upstream_error' : 'malformed_response',
    });
  await createBatch(dbh.db, { id: emptyBatchId, name: EVIL });
  // Traffic as the workers write it (pool traffic.ts), in the bucket 20 s before the running one.
  const bucketS = Math.floor(Date.now() / 10_000) * 10 - 20;
  const tkey = `${poolKeys(tp.prefix).base}t:${bucketS}`;
  await redis.hset(tkey, 'r:px1', '30', 't:px1', '5', 'r:-', '7');
  await redis.expire(tkey, 600);

  await queue.add(CHECK_JOB, { batchId, username: 'dan' }, { jobId: `${batchId}.dan` });
  await queue.add(
    CHECK_JOB,
    { batchId, username: 'ann' },
    { jobId: `${batchId}.ann`, delay: 3_600_000 },
  );
  board = await startBoard(config, { logger });
});

afterAll(async () => {
  await board?.close();
  await queue?.obliterate({ force: true });
  await queue?.close();
  await redis?.quit();
  await dbh?.close();
  await tp?.clean();
  await tdb?.drop();
});

async function get(path: string, headers: Record<string, string> = AUTH) {
  const res = await fetch(`${board.url}${path}`, { headers });
  return {
    status: res.status,
    type: res.headers.get('content-type') ?? '',
    text: await res.text(),
  };
}

describe('auth on the board pages', () => {
  it.each([
    { path: '/pool', authorization: undefined },
    { path: '/batches', authorization: undefined },
    { path: '/metrics', authorization: undefined },
    { path: '/pool', authorization: basic(USER, 'wrong') },
    { path: '/batches', authorization: basic('someone', PASSWORD) },
    { path: '/metrics', authorization: basic(USER, 'wrong') },
    { path: `/batches/${batchId}`, authorization: undefined },
    { path: `/batches/${batchId}/results.csv`, authorization: basic(USER, 'wrong') },
    { path: `/batches/${batchId}/results.ndjson`, authorization: undefined },
  ])('$path answers 401 without the right credentials', async ({ path, authorization }) => {
    const r = await get(path, authorization ? { authorization } : {});
    expect(r.status).toBe(401);
    expect(r.text).not.toContain('ops-account');
  });
});

describe('/pool', () => {
  let html: string;
  beforeAll(async () => {
    const r = await get('/pool');
    expect(r.status).toBe(200);
    expect(r.type).toMatch(/^text\/html/);
    html = r.text;
  });

  /** The `<tr>` of the sessions table whose first cell is `label` (escaped). */
  const row = (label: string) =>
    html
      .split('<tr>')
      .find((r) => r.startsWith(`\n<td>${label}</td>`))
      ?.split('</tr>')[0];

  it('shows each session with its state, usage, last error code and proxy', () => {
    const invalid = row('ops-account-2');
    expect(invalid).toBeDefined();
    expect(invalid).toContain('<span class="badge s-invalid">invalid</span>');
    expect(invalid).toContain('<code>login_required</code>');
    expect(invalid).toContain('proxy-frankfurt');
    const active = row('ops-account-1');
    expect(active).toContain('<span class="badge s-active">active</span>');
  });

  it('shows proxies with their state', () => {
    expect(row('proxy-paris')).toContain('<span class="badge s-disabled">disabled</span>');
    expect(row('proxy-frankfurt')).toContain('<span class="badge s-active">active</span>');
  });

  it('summarises states and links to the queues and batches pages', () => {
    expect(html).toContain('2 active</span>');
    expect(html).toContain('1 invalid</span>');
    expect(html).toContain('href="./"');
    expect(html).toContain('href="batches"');
  });

  it('HTML-escapes a label such as <script>', () => {
    expect(html).not.toContain(EVIL);
    expect(html).not.toMatch(/<script/i);
    expect(row(escapeHtml(EVIL))).toContain('<span class="muted">direct</span>');
  });

  it('shows a cooldown once a session is throttled', async () => {
    // A real lease on the active session, then a throttle with a 10-minute Retry-After.
    const acquired = await pool.acquire();
    if (!acquired.ok) throw new Error(`no lease: ${acquired.reason}`);
    await pool.reportThrottled(acquired.lease, { retryAfterMs: 600_000 });
    const page = (await get('/pool')).text;
    const cooling = page
      .split('<tr>')
      .find((r) => r.startsWith(`\n<td>${escapeHtml(acquired.lease.sessionLabel)}</td>`));
    expect(cooling).toContain('<span class="badge s-cooling">cooling</span>');
    expect(cooling).toMatch(/<td class="num">(9m \d\ds|10m 00s)<\/td>/);
  });
});

describe('/batches', () => {
  let html: string;
  beforeAll(async () => {
    const r = await get('/batches');
    expect(r.status).toBe(200);
    html = r.text;
  });

  const row = (id: string) =>
    html
      .split('<tr>')
      .find((r) => r.includes(`<code>${id}</code>`))
      ?.split('</tr>')[0];

  it("shows a batch's state, progress and counts per status", () => {
    const r = row(batchId);
    expect(r).toContain('morning run');
    expect(r).toContain('<span class="badge s-running">running</span>');
    expect(r).toContain('<span style="width:75.0%"></span>');
    expect(r).toContain('<span class="pct">75.0%</span>');
    expect(r).toContain('<td class="num">3 / 4</td>');
    expect(r).toContain('<td class="num c-active">1</td>');
    expect(r).toContain('<td class="num c-not_found">1</td>');
    expect(r).toContain('<td class="num c-failed">1</td>');
    expect(r).toContain('<td class="num c-none">0</td>');
  });

  it('HTML-escapes a batch name, and shows an empty batch at 0%', () => {
    const r = row(emptyBatchId);
    expect(r).toContain(escapeHtml(EVIL));
    expect(html).not.toMatch(/<script/i);
    expect(r).toContain('<span class="badge s-queued">queued</span>');
    expect(r).toContain('<span class="pct">0%</span>');
  });

  it('lists the newest first and honours ?limit=', async () => {
    expect(html.indexOf(emptyBatchId)).toBeLessThan(html.indexOf(batchId));
    const one = (await get('/batches?limit=1')).text;
    expect(one).toContain(emptyBatchId);
    expect(one).not.toContain(batchId);
  });

  it('links back to the queues and the pool page', () => {
    expect(html).toContain('href="./"');
    expect(html).toContain('href="pool"');
  });
});

describe('/metrics on the board', () => {
  it('serves queue counts and pool states in Prometheus text format', async () => {
    const r = await get('/metrics');
    expect(r.status).toBe(200);
    expect(r.type).toMatch(/^text\/plain; version=0\.0\.4/);
    const s = parsePrometheus(r.text);
    expect(valueOf(s, 'storycheck_queue_jobs', { queue: 'story-check', state: 'waiting' })).toBe(1);
    expect(valueOf(s, 'storycheck_queue_jobs', { queue: 'story-check', state: 'delayed' })).toBe(1);
    expect(valueOf(s, 'storycheck_pool_sessions', { state: 'invalid' })).toBe(1);
    expect(valueOf(s, 'storycheck_pool_proxies', { state: 'disabled' })).toBe(1);
    expect(valueOf(s, 'storycheck_metrics_source_up', { source: 'pool' })).toBe(1);
    for (const never of ['ops-account', 'proxy-frankfurt', 'dan', batchId, PASSWORD])
      expect(r.text).not.toContain(never);
  });

  it("exports Redis memory and the running batches' progress, without batch ids", async () => {
    const r = await get('/metrics');
    const s = parsePrometheus(r.text);
    expect(valueOf(s, 'storycheck_redis_memory_used_bytes', {})).toBeGreaterThan(0);
    expect(valueOf(s, 'storycheck_redis_maxmemory_bytes', {})).toBeGreaterThanOrEqual(0);
    // batchId and bigBatchId are running (some items done, some pending).
    expect(valueOf(s, 'storycheck_batches_running', {})).toBe(2);
    expect(valueOf(s, 'storycheck_batch_eta_seconds', {})).toBeGreaterThan(0);
    expect(valueOf(s, 'storycheck_metrics_source_up', { source: 'postgres' })).toBe(1);
    expect(valueOf(s, 'storycheck_metrics_source_up', { source: 'redis' })).toBe(1);
    for (const id of [batchId, bigBatchId]) expect(r.text).not.toContain(id);
  });

  it('moves when the pool changes', async () => {
    await pool.markSession('ses1', 'challenge', 'checkpoint_required');
    const s = parsePrometheus((await get('/metrics')).text);
    expect(valueOf(s, 'storycheck_pool_sessions', { state: 'challenge' })).toBe(1);
    await pool.enableSession('ses1');
  });
});

describe('bull-board links to the pages', () => {
  it("lists /pool and /batches in bull-board's menu", async () => {
    const r = await get('/');
    expect(r.status).toBe(200);
    expect(r.text).toContain('/pool');
    expect(r.text).toContain('/batches');
  });

  it("puts visible Pool and Batches links in bull-board's page, on every page route", async () => {
    for (const path of ['/', '/queue/story-check']) {
      const r = await get(path);
      expect(r.status).toBe(200);
      const nav = /<nav id="storycheck-nav"[^>]*>(.*?)<\/nav>/.exec(r.text)?.[1];
      expect(nav).toContain('<a href="pool"');
      expect(nav).toContain('<a href="batches"');
    }
    // The API and assets are left as they are.
    const api = await get('/api/queues');
    expect(api.text).not.toContain('storycheck-nav');
  });
});

describe('/pool traffic', () => {
  it('draws requests and throttled answers per proxy against the ceiling', async () => {
    const r = await get('/pool');
    expect(r.status).toBe(200);
    const table = r.text.split('<table id="traffic">')[1]!.split('</table>')[0]!;
    const cells = (label: string) =>
      [
        ...(table.split('<tr').find((x) => x.includes(`<td>${label}</td>`)) ?? '').matchAll(
          /<t[dh][^>]*>([^<]*)<\/t[dh]>/g,
        ),
      ].map((m) => m[1]);
    // label, last-minute rate, ceiling, requests, throttled
    expect(cells('proxy-frankfurt')).toEqual([
      'proxy-frankfurt',
      expect.any(String),
      expect.any(String),
      '30',
      '5',
    ]);
    expect(cells('direct (no proxy)')).toEqual([
      'direct (no proxy)',
      expect.any(String),
      expect.any(String),
      '7',
      '0',
    ]);
    expect(r.text).toContain('<svg class="chart" id="traffic-total"');
    expect(r.text).toContain('<svg class="chart" id="traffic-px1"');
    // No script and nothing fetched from elsewhere.
    expect(r.text).not.toMatch(/<script|https?:\/\//);
  });
});

describe('/batches/:id', () => {
  it('is linked from /batches', async () => {
    const r = await get('/batches');
    expect(r.text).toContain(`<a href="batches/${batchId}">`);
  });

  it('shows progress, counts, failures by code with examples and the log errors, escaped', async () => {
    const r = await get(`/batches/${batchId}`);
    expect(r.status).toBe(200);
    expect(r.text).toContain('<b class="">3 / 4</b>');
    const failures = r.text.split('<table id="failures">')[1]!.split('</table>')[0]!;
    expect(failures).toContain('<code>x</code>');
    expect(failures).toContain('<td class="msg">cat</td>');
    expect(failures).toContain(escapeHtml(EVIL));
    expect(r.text).not.toContain(EVIL);
    const log = r.text.split('<table id="log-errors">')[1]!.split('</table>')[0]!;
    expect(log).toContain(escapeHtml(EVIL));
    expect(r.text).toContain('<svg class="chart" id="throughput"');
    expect(r.text).not.toMatch(/<script|https?:\/\//);
    // Header links lead back, relative to the board's root.
    expect(r.text).toContain('<a href="../">Queues</a>');
    expect(r.text).toContain('<a href="../pool">Pool</a>');
  });

  it('escapes a hostile batch name', async () => {
    const r = await get(`/batches/${emptyBatchId}`);
    expect(r.status).toBe(200);
    expect(r.text).toContain(escapeHtml(EVIL));
    expect(r.text).not.toContain(EVIL);
  });

  it('filters items by status and pages them', async () => {
    const names = (html: string) =>
      [...(html.split('<table id="items">')[1] ?? '').matchAll(/<td>(user_\d+)<\/td>/g)].map(
        (m) => m[1],
      );
    const all = await get(`/batches/${bigBatchId}`);
    expect(names(all.text)).toHaveLength(50);
    expect(names(all.text)[0]).toBe('user_000');
    expect(all.text).toContain('page 1 of 3 · 120 items');
    const p3 = await get(`/batches/${bigBatchId}?page=2`);
    expect(names(p3.text)).toEqual(
      Array.from({ length: 20 }, (_, i) => `user_${String(100 + i).padStart(3, '0')}`),
    );
    const failed = await get(`/batches/${bigBatchId}?status=failed`);
    expect(names(failed.text)).toHaveLength(40);
    expect(names(failed.text).every((n) => Number(n!.slice(5)) % 3 === 0)).toBe(true);
    expect(failed.text).toContain('page 1 of 1 · 40 items');
    const failures = failed.text.split('<table id="failures">')[1]!.split('</table>')[0]!;
    expect(failures).toContain('<code>malformed_response</code>');
    expect(failures).toContain('<code>upstream_error</code>');
    const pending = await get(`/batches/${bigBatchId}?status=pending&page=1`);
    expect(names(pending.text)).toHaveLength(30);
    expect(pending.text).toContain('page 2 of 2 · 80 items');
  });

  it('answers 404 for an unknown batch and for an id that is not a UUID', async () => {
    expect((await get(`/batches/${randomUUID()}`)).status).toBe(404);
    expect((await get('/batches/..%2F..%2Fetc')).status).toBe(404);
    expect((await get(`/batches/${randomUUID()}/results.csv`)).status).toBe(404);
    expect((await get(`/batches/${batchId}/results.xml`)).status).toBe(404);
  });

  it.each(['csv', 'ndjson', 'json'])(
    'downloads results.%s: the same bytes as `storycheck results`',
    async (format) => {
      const r = await get(`/batches/${bigBatchId}/results.${format}`);
      expect(r.status).toBe(200);
      const cli = await runNode(PRODUCER, ['results', bigBatchId, '--format', format], {
        DATABASE_URL: tdb.url,
        REDIS_URL,
        STORYCHECK_PREFIX: tp.prefix,
        LOG_LEVEL: 'warn',
      });
      expect(cli.code).toBe(0);
      expect(r.text).toBe(cli.stdout);
      expect(r.text.length).toBeGreaterThan(1000);
    },
  );

  it('sends downloads as attachments', async () => {
    const res = await fetch(`${board.url}/batches/${batchId}/results.csv`, { headers: AUTH });
    expect(res.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(res.headers.get('content-disposition')).toBe(
      `attachment; filename="batch-${batchId}.csv"`,
    );
    await res.arrayBuffer();
  });

  it('is read-only: a write to it is refused', async () => {
    const res = await fetch(`${board.url}/batches/${batchId}`, { method: 'POST', headers: AUTH });
    expect(res.status).toBe(403);
    await res.arrayBuffer();
  });
});

describe('formatDuration', () => {
  it.each([
    { ms: 0, text: '0ms' },
    { ms: 850, text: '850ms' },
    { ms: 42_000, text: '42s' },
    { ms: 185_000, text: '3m 05s' },
    { ms: 7_800_000, text: '2h 10m' },
    { ms: 273_600_000, text: '3d 4h' },
  ])('$ms ms is "$text"', ({ ms, text }) => {
    expect(formatDuration(ms)).toBe(text);
  });
});
