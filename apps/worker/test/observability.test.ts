import { randomUUID } from 'node:crypto';
import { Queue, Worker } from 'bullmq';
import pg from 'pg';
import type { Redis } from 'ioredis';
import { loadConfig } from '@storycheck/config';
import { createPool, type Pool } from '@storycheck/pool';
import {
  CHECK_JOB,
  createRedis,
  openCheckQueue,
  queuePrefix,
  type CheckQueue,
} from '@storycheck/queue';
import {
  TEST_PG_SERVER,
  TEST_REDIS_URL,
  createTestPrefix,
  sleep,
  waitFor,
  type TestPrefix,
} from '@storycheck/testkit';
import { startHealthServer, type HealthServer } from '../src/health.js';
import { WorkerMetrics, statusClassOf } from '../src/metrics.js';
import { startWatchdog, type Watchdog } from '../src/watchdog.js';
import { parsePrometheus, valueOf } from '@storycheck/testkit';
import { startPrivateRedis, type PrivateRedis } from '@storycheck/testkit';

const config = loadConfig({});
const poolDefaults = {
  sessionRate: config.sessionRate,
  sessionBurst: config.sessionBurst,
  proxyRate: config.proxyRate,
  proxyBurst: config.proxyBurst,
};

let tp: TestPrefix;
let redis: Redis;
let queue: CheckQueue;
let pool: Pool;
let pgPool: pg.Pool;
let privateRedis: PrivateRedis;
const batchId = randomUUID();

/** Waiting jobs of a queue, as the worker's watchdog will measure them. */
const waitingOf = (q: Pick<Queue, 'getJobCounts'>) => async (): Promise<number> => {
  const c = await q.getJobCounts('waiting', 'prioritized');
  return (c.waiting ?? 0) + (c.prioritized ?? 0);
};

beforeAll(async () => {
  tp = createTestPrefix();
  redis = createRedis(TEST_REDIS_URL, { name: 'observability-test' });
  queue = openCheckQueue(redis, tp.prefix);
  await queue.waitUntilReady();
  pool = createPool({ redis, prefix: tp.prefix, defaults: poolDefaults });
  pgPool = new pg.Pool({ connectionString: `${TEST_PG_SERVER}/postgres`, max: 2 });
  privateRedis = await startPrivateRedis();
});

afterAll(async () => {
  await queue?.obliterate({ force: true }).catch(() => undefined);
  await queue?.close();
  await redis?.quit();
  await pgPool?.end();
  await privateRedis?.stop();
  await tp?.clean();
});

describe('WorkerMetrics', () => {
  let metrics: WorkerMetrics;

  beforeAll(async () => {
    await queue.add(CHECK_JOB, { batchId, username: 'alice' }, { jobId: `${batchId}.alice` });
    await queue.add(CHECK_JOB, { batchId, username: 'bob' }, { jobId: `${batchId}.bob` });
    await queue.add(
      CHECK_JOB,
      { batchId, username: 'carol' },
      { jobId: `${batchId}.carol`, delay: 3_600_000 },
    );
    await pool.upsertProxy({ id: 'p1', label: 'proxy-one' });
    await pool.upsertProxy({ id: 'p2', label: 'proxy-two' });
    await pool.markProxy('p2', 'disabled');
    await pool.upsertSession({ id: 's1', label: 'alpha', proxyId: 'p1' });
    await pool.upsertSession({ id: 's2', label: 'beta', proxyId: 'p1' });
    await pool.markSession('s2', 'invalid', 'login_required');
    metrics = new WorkerMetrics({ queue, poolSnapshot: () => pool.snapshot() });
  });

  it('renders Prometheus text: HELP and TYPE for every family, every sample well-formed', async () => {
    const text = await metrics.render();
    const samples = parsePrometheus(text);
    expect(samples.length).toBeGreaterThan(20);
    for (const family of [
      'storycheck_checks_finished_total',
      'storycheck_check_duration_seconds',
      'storycheck_upstream_requests_total',
      'storycheck_upstream_throttled_total',
      'storycheck_cache_lookups_total',
      'storycheck_limiter_wait_seconds',
      'storycheck_pool_no_usable_session',
      'storycheck_queue_jobs',
      'storycheck_pool_sessions',
      'storycheck_pool_proxies',
      'process_cpu_user_seconds_total',
    ]) {
      expect(text).toContain(`# HELP ${family} `);
      expect(text).toMatch(new RegExp(`^# TYPE ${family} `, 'm'));
    }
    expect(metrics.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
  });

  it('reads queue counts and pool states at scrape time', async () => {
    const s = parsePrometheus(await metrics.render());
    const q = (state: string) =>
      valueOf(s, 'storycheck_queue_jobs', { queue: 'story-check', state });
    expect(q('waiting')).toBe(2);
    expect(q('delayed')).toBe(1);
    expect(q('active')).toBe(0);
    expect(q('failed')).toBe(0);
    expect(valueOf(s, 'storycheck_pool_sessions', { state: 'active' })).toBe(1);
    expect(valueOf(s, 'storycheck_pool_sessions', { state: 'invalid' })).toBe(1);
    expect(valueOf(s, 'storycheck_pool_sessions', { state: 'challenge' })).toBe(0);
    expect(valueOf(s, 'storycheck_pool_proxies', { state: 'active' })).toBe(1);
    expect(valueOf(s, 'storycheck_pool_proxies', { state: 'disabled' })).toBe(1);
    expect(valueOf(s, 'storycheck_metrics_source_up', { source: 'queue' })).toBe(1);
    expect(valueOf(s, 'storycheck_metrics_source_up', { source: 'pool' })).toBe(1);

    await queue.add(CHECK_JOB, { batchId, username: 'dave' }, { jobId: `${batchId}.dave` });
    const after = parsePrometheus(await metrics.render());
    expect(valueOf(after, 'storycheck_queue_jobs', { state: 'waiting' })).toBe(3);
  });

  it('moves counters and histograms when the worker reports', async () => {
    const before = parsePrometheus(await metrics.render());
    metrics.checkFinished('active', 1_500, false);
    metrics.checkFinished('active', 20, true);
    metrics.checkFinished('not_found', 900, false);
    metrics.upstreamRequest('profile', '2xx');
    metrics.upstreamRequest('stories', statusClassOf(429));
    metrics.upstreamRequest('stories', statusClassOf(undefined));
    metrics.throttled('stories');
    metrics.cacheLookup('userIds', true);
    metrics.cacheLookup('userIds', false);
    metrics.cacheLookup('results', false);
    metrics.limiterWait(250);
    metrics.limiterWait(120_000);
    metrics.noUsableSession(true);
    const s = parsePrometheus(await metrics.render());
    const delta = (name: string, labels: Record<string, string>) =>
      (valueOf(s, name, labels) ?? 0) - (valueOf(before, name, labels) ?? 0);

    expect(delta('storycheck_checks_finished_total', { status: 'active', cached: 'false' })).toBe(
      1,
    );
    expect(delta('storycheck_checks_finished_total', { status: 'active', cached: 'true' })).toBe(1);
    expect(
      delta('storycheck_checks_finished_total', { status: 'not_found', cached: 'false' }),
    ).toBe(1);
    expect(delta('storycheck_check_duration_seconds_count', { cached: 'false' })).toBe(2);
    expect(delta('storycheck_check_duration_seconds_sum', { cached: 'false' })).toBeCloseTo(2.4);
    expect(delta('storycheck_check_duration_seconds_bucket', { cached: 'false', le: '1' })).toBe(1);
    expect(delta('storycheck_check_duration_seconds_bucket', { cached: 'true', le: '0.025' })).toBe(
      1,
    );
    expect(
      delta('storycheck_upstream_requests_total', { endpoint: 'profile', status_class: '2xx' }),
    ).toBe(1);
    expect(
      delta('storycheck_upstream_requests_total', { endpoint: 'stories', status_class: '4xx' }),
    ).toBe(1);
    expect(
      delta('storycheck_upstream_requests_total', { endpoint: 'stories', status_class: 'network' }),
    ).toBe(1);
    expect(delta('storycheck_upstream_throttled_total', { endpoint: 'stories' })).toBe(1);
    expect(delta('storycheck_cache_lookups_total', { cache: 'userIds', result: 'hit' })).toBe(1);
    expect(delta('storycheck_cache_lookups_total', { cache: 'userIds', result: 'miss' })).toBe(1);
    expect(delta('storycheck_cache_lookups_total', { cache: 'results', result: 'miss' })).toBe(1);
    expect(delta('storycheck_limiter_wait_seconds_count', {})).toBe(2);
    expect(delta('storycheck_limiter_wait_seconds_bucket', { le: '0.5' })).toBe(1);
    expect(delta('storycheck_limiter_wait_seconds_bucket', { le: '120' })).toBe(2);
    expect(valueOf(s, 'storycheck_pool_no_usable_session')).toBe(1);
    metrics.noUsableSession(false);
    expect(
      valueOf(parsePrometheus(await metrics.render()), 'storycheck_pool_no_usable_session'),
    ).toBe(0);
  });

  it('labels never carry usernames, batch ids or session/proxy labels', async () => {
    const text = await metrics.render();
    for (const secretish of ['alice', 'bob', batchId, 'alpha', 'beta', 'proxy-one', tp.prefix])
      expect(text).not.toContain(secretish);
  });

  it('keeps several instances apart (own registry each, no global state)', async () => {
    const other = new WorkerMetrics({ processMetrics: false });
    other.checkFinished('failed', 10, false);
    const s = parsePrometheus(await other.render());
    expect(valueOf(s, 'storycheck_checks_finished_total', { status: 'failed' })).toBe(1);
    expect(
      valueOf(s, 'storycheck_checks_finished_total', { status: 'active', cached: 'false' }),
    ).toBeUndefined();
    expect(s.some((x) => x.name === 'storycheck_queue_jobs')).toBe(false);
  });

  it('still answers, within about 1 s, when Redis does not: source_up 0, gauges left out', async () => {
    const down = createRedis(privateRedis.url, { role: 'worker', name: 'metrics-down' });
    const q = new Queue('story-check', { connection: down, prefix: queuePrefix(tp.prefix) });
    q.on('error', () => undefined);
    await q.waitUntilReady();
    const m = new WorkerMetrics({ queue: q, processMetrics: false, collectTimeoutMs: 500 });
    try {
      await privateRedis.kill();
      const started = Date.now();
      const s = parsePrometheus(await m.render());
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(valueOf(s, 'storycheck_metrics_source_up', { source: 'queue' })).toBe(0);
      expect(s.some((x) => x.name === 'storycheck_queue_jobs')).toBe(false);
    } finally {
      await privateRedis.start();
      // Let the client reconnect first: closing it mid-reconnect leaves ioredis timers behind.
      await waitFor(() => down.status === 'ready', 'the client to reconnect', 10_000);
      await q.close().catch(() => undefined);
      down.disconnect();
    }
  });

  it.each([
    { code: 200, cls: '2xx' },
    { code: 302, cls: '3xx' },
    { code: 404, cls: '4xx' },
    { code: 503, cls: '5xx' },
    { code: undefined, cls: 'network' },
  ])('statusClassOf($code) is $cls', ({ code, cls }) => {
    expect(statusClassOf(code)).toBe(cls);
  });
});

describe('health server', () => {
  let server: HealthServer | undefined;
  let probeRedis: Redis;

  beforeAll(() => {
    // A worker-role connection, like the worker's own: it queues commands while Redis is away
    // and never rejects them, so /readyz must bound the PING itself.
    probeRedis = createRedis(privateRedis.url, { role: 'worker', name: 'health-probe' });
  });

  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  afterAll(() => {
    probeRedis.disconnect();
  });

  const start = (extra: { eventLoopStuckMs?: number; stuckWindowMs?: number } = {}) =>
    startHealthServer({
      port: 0,
      metrics: new WorkerMetrics({ processMetrics: false }),
      checks: {
        redis: async () => {
          await probeRedis.ping();
        },
        postgres: async () => {
          await pgPool.query('SELECT 1');
        },
      },
      ...extra,
    });

  it('/readyz is 503 while a private Redis is stopped and 200 after it is restarted', async () => {
    server = await start();
    const ready = async () => {
      const res = await fetch(`${server!.url}/readyz`);
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    expect(await ready()).toEqual({
      status: 200,
      body: { ok: true, checks: { redis: 'ok', postgres: 'ok' } },
    });

    await privateRedis.kill();
    const started = Date.now();
    const down = await ready();
    expect(Date.now() - started).toBeLessThan(2_500);
    expect(down.status).toBe(503);
    expect(down.body).toMatchObject({ ok: false, error: 'redis unavailable' });
    expect((down.body.checks as Record<string, string>).postgres).toBe('ok');
    expect(['down', 'timeout']).toContain((down.body.checks as Record<string, string>).redis);

    await privateRedis.start();
    await waitFor(async () => (await ready()).status === 200, 'readyz 200 after restart', 10_000);
  });

  it('/readyz names Postgres when it does not answer', async () => {
    const badPg = new pg.Pool({
      connectionString: `${TEST_PG_SERVER}/sc_no_such_database_${process.pid}`,
      max: 1,
    });
    badPg.on('error', () => undefined);
    server = await startHealthServer({
      port: 0,
      metrics: new WorkerMetrics({ processMetrics: false }),
      checks: {
        redis: async () => {
          await redis.ping();
        },
        postgres: async () => {
          await badPg.query('SELECT 1');
        },
      },
    });
    try {
      const res = await fetch(`${server.url}/readyz`);
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({
        ok: false,
        error: 'postgres unavailable',
        checks: { redis: 'ok', postgres: 'down' },
      });
    } finally {
      await badPg.end();
    }
  });

  it('/healthz is 200, then 503 after the event loop was blocked beyond the threshold', async () => {
    server = await start({ eventLoopStuckMs: 300, stuckWindowMs: 1_500 });
    const health = async () => {
      const res = await fetch(`${server!.url}/healthz`);
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    await waitFor(async () => (await health()).status === 200, 'healthz 200', 5_000);

    const until = Date.now() + 1_000;
    while (Date.now() < until) {
      // busy: the loop is stuck for 1 s
    }
    const stuck = await health();
    expect(stuck.status).toBe(503);
    expect(stuck.body).toMatchObject({ ok: false, error: 'event loop stuck' });
    expect(stuck.body.eventLoopDelayMs).toBeGreaterThanOrEqual(700);

    // Recovered: healthy again once the window has passed.
    await waitFor(async () => (await health()).status === 200, 'healthz 200 again', 5_000);
  });

  it('/metrics answers in Prometheus text format; other paths 404, other methods 405', async () => {
    server = await start();
    const res = await fetch(`${server.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(() => parsePrometheus('')).not.toThrow();
    const samples = parsePrometheus(await res.text());
    expect(samples.some((s) => s.name === 'storycheck_pool_no_usable_session')).toBe(true);

    const missing = await fetch(`${server.url}/nope`);
    expect(missing.status).toBe(404);
    await missing.arrayBuffer();
    const post = await fetch(`${server.url}/healthz`, { method: 'POST' });
    expect(post.status).toBe(405);
    await post.arrayBuffer();
  });

  it('rejects when the port is taken, leaving nothing open', async () => {
    server = await start();
    const port = Number(new URL(server.url).port);
    await expect(
      startHealthServer({
        port,
        metrics: new WorkerMetrics({ processMetrics: false }),
        checks: { redis: async () => undefined, postgres: async () => undefined },
      }),
    ).rejects.toThrow(/EADDRINUSE/);
  });
});

describe('watchdog', () => {
  let dog: Watchdog | undefined;

  afterEach(() => {
    dog?.stop();
    dog = undefined;
  });

  /** A fresh queue under its own prefix on the shared Redis, obliterated by `done()`. */
  async function freshQueue(jobs: number) {
    const prefix = `${tp.prefix}-wd-${randomUUID().slice(0, 8)}`;
    const q = openCheckQueue(redis, prefix);
    const id = randomUUID();
    for (let i = 0; i < jobs; i++)
      await q.add(CHECK_JOB, { batchId: id, username: `u${i}` }, { jobId: `${id}.u${i}` });
    return {
      q,
      prefix,
      async done() {
        await q.obliterate({ force: true });
        await q.close();
      },
    };
  }

  it('fires once when jobs wait and nothing is taken for idleMs (no worker at all)', async () => {
    const { q, done } = await freshQueue(2);
    try {
      const reasons: string[] = [];
      const started = Date.now();
      let firedAfterMs = 0;
      dog = startWatchdog({
        idleMs: 600,
        checkEveryMs: 100,
        jobsWaiting: waitingOf(q),
        onStall: (r) => {
          firedAfterMs = Date.now() - started;
          reasons.push(r);
        },
      });
      await waitFor(() => reasons.length > 0, 'the watchdog to fire', 5_000);
      await sleep(400);
      expect(reasons).toHaveLength(1);
      expect(reasons[0]).toMatch(/^watchdog: 2 job\(s\) waiting but none taken or finished for /);
      expect(reasons[0]).not.toContain('\n');
      expect(firedAfterMs).toBeGreaterThanOrEqual(600);
    } finally {
      await done();
    }
  });

  it('does not fire while touch() is called, and fires once the touches stop', async () => {
    const { q, done } = await freshQueue(1);
    try {
      let fired = 0;
      dog = startWatchdog({
        idleMs: 500,
        checkEveryMs: 100,
        jobsWaiting: waitingOf(q),
        onStall: () => (fired += 1),
      });
      const toucher = setInterval(() => dog?.touch(), 100);
      await sleep(1_500);
      clearInterval(toucher);
      expect(fired).toBe(0);
      await waitFor(() => fired > 0, 'the watchdog to fire after touches stop', 5_000);
    } finally {
      await done();
    }
  });

  it('does not fire while no job is waiting', async () => {
    const { q, done } = await freshQueue(0);
    try {
      let fired = 0;
      dog = startWatchdog({
        idleMs: 300,
        checkEveryMs: 100,
        jobsWaiting: waitingOf(q),
        onStall: () => (fired += 1),
      });
      await sleep(1_200);
      expect(fired).toBe(0);
    } finally {
      await done();
    }
  });

  it('gives a queue that just filled up its full idleMs', async () => {
    const { q, done } = await freshQueue(0);
    try {
      let firedAt = 0;
      dog = startWatchdog({
        idleMs: 800,
        checkEveryMs: 100,
        jobsWaiting: waitingOf(q),
        onStall: () => (firedAt = Date.now()),
      });
      await sleep(1_200); // idle and empty for longer than idleMs
      const addedAt = Date.now();
      await q.add(CHECK_JOB, { batchId, username: 'late' }, { jobId: `${batchId}.late` });
      await waitFor(() => firedAt > 0, 'the watchdog to fire', 5_000);
      expect(firedAt - addedAt).toBeGreaterThanOrEqual(700);
    } finally {
      await done();
    }
  });

  it('watches a real worker: quiet while it consumes, fires when it silently stops', async () => {
    const { q, prefix, done } = await freshQueue(3);
    const conn = createRedis(TEST_REDIS_URL, { role: 'worker', name: 'watchdog-worker' });
    let fired: string | undefined;
    dog = startWatchdog({
      idleMs: 800,
      checkEveryMs: 100,
      jobsWaiting: waitingOf(q),
      onStall: (r) => (fired = r),
    });
    const worker = new Worker(
      'story-check',
      async () => {
        await sleep(150);
      },
      { connection: conn, prefix: queuePrefix(prefix), concurrency: 1 },
    );
    // The wiring the worker process uses: taking or finishing a job is movement.
    worker.on('active', () => dog?.touch());
    worker.on('completed', () => dog?.touch());
    worker.on('failed', () => dog?.touch());
    try {
      await waitFor(
        async () => (await q.getJobCounts('completed')).completed === 3,
        'the worker to finish 3 jobs',
      );
      // Stalled consumer: it stops taking jobs, says nothing, and its process stays up.
      await worker.pause(true);
      const id = randomUUID();
      for (const u of ['x1', 'x2'])
        await q.add(CHECK_JOB, { batchId: id, username: u }, { jobId: `${id}.${u}` });
      expect(fired).toBeUndefined();
      await waitFor(() => fired, 'the watchdog to notice the stalled worker', 5_000);
      // One of the two may already sit in the paused worker's hands; the other waits.
      expect(fired).toMatch(/^watchdog: [12] job\(s\) waiting but none taken or finished/);
    } finally {
      await worker.close(true);
      conn.disconnect();
      await done();
    }
  });

  it('treats a short Redis outage as "cannot tell": no stall', async () => {
    const conn = createRedis(privateRedis.url, { role: 'worker', name: 'watchdog-blip' });
    const q = new Queue('story-check', { connection: conn, prefix: queuePrefix(tp.prefix) });
    q.on('error', () => undefined);
    try {
      await q.add(CHECK_JOB, { batchId, username: 'blip' }, { jobId: `${batchId}.blip` });
      let fired = 0;
      dog = startWatchdog({
        idleMs: 2_000,
        checkEveryMs: 100,
        measureTimeoutMs: 200,
        jobsWaiting: waitingOf(q),
        onStall: () => (fired += 1),
      });
      const toucher = setInterval(() => dog?.touch(), 100);
      await sleep(300);
      await privateRedis.kill();
      await sleep(900); // errors (timeouts) for < idleMs
      await privateRedis.start(); // back, empty: nothing waits any more
      clearInterval(toucher);
      await sleep(2_500);
      expect(fired).toBe(0);
    } finally {
      dog?.stop();
      await q.close().catch(() => undefined);
      conn.disconnect();
    }
  });

  it('fires with a "Redis unreachable" reason when its connection is cut for idleMs', async () => {
    const conn = createRedis(privateRedis.url, { role: 'worker', name: 'watchdog-cut' });
    const q = new Queue('story-check', { connection: conn, prefix: queuePrefix(tp.prefix) });
    q.on('error', () => undefined);
    try {
      await q.add(CHECK_JOB, { batchId, username: 'cut' }, { jobId: `${batchId}.cut` });
      let reason: string | undefined;
      let calls = 0;
      dog = startWatchdog({
        idleMs: 800,
        checkEveryMs: 100,
        measureTimeoutMs: 200,
        jobsWaiting: waitingOf(q),
        onStall: (r) => {
          calls += 1;
          reason = r;
        },
      });
      const toucher = setInterval(() => dog?.touch(), 100);
      await sleep(300);
      expect(reason).toBeUndefined();
      clearInterval(toucher); // the worker stops moving when its Redis goes away
      await privateRedis.kill();
      const cutAt = Date.now();
      await waitFor(() => reason, 'the watchdog to report Redis unreachable', 5_000);
      expect(Date.now() - cutAt).toBeGreaterThanOrEqual(600);
      expect(reason).toMatch(/^watchdog: Redis unreachable: cannot read the queue's waiting count/);
      expect(reason).not.toContain('\n');
      await sleep(300);
      expect(calls).toBe(1);
    } finally {
      dog?.stop();
      await privateRedis.start();
      await waitFor(() => conn.status === 'ready', 'the client to reconnect', 10_000);
      await q.close().catch(() => undefined);
      conn.disconnect();
    }
  });
});
