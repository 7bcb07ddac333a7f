import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import {
  freePort,
  parsePrometheus,
  runNode,
  startPrivateRedis,
  waitFor,
  type PrivateRedis,
  type Spawned,
} from '@storycheck/testkit';
import { startSim, type SimServer } from '@storycheck/upstream-sim';
import { Harness } from './harness.js';

/**
 * Issue 14 items 1 and 7, against a private Redis:
 * - Redis full (maxmemory, noeviction) while checks run: no item becomes a final `failed`
 *   result; the worker pauses, says so on /readyz and in a metric, and resumes by itself when
 *   Redis has room again. A worker started while Redis is full waits instead of exiting.
 * - Redis killed (SIGKILL) and started again from its AOF: the worker writes only JSON log
 *   lines meanwhile, survives, resumes by itself and the batch completes exactly.
 */
const h = new Harness();
let sim: SimServer;
const CLI = fileURLToPath(new URL('../../producer/dist/main.js', import.meta.url));
const privates: PrivateRedis[] = [];

beforeAll(async () => {
  await h.setup();
  sim = await startSim({ seed: 21, size: 600, latencyMs: 60 });
});
afterAll(async () => {
  await h.stopAll();
  for (const r of privates) await r.stop();
  await h.teardown();
  await sim.close();
});

async function enqueueInto(redisUrl: string, names: string[]): Promise<string> {
  const r = await runNode(
    CLI,
    ['enqueue', '-', '--json'],
    { ...h.env('http://127.0.0.1:9'), REDIS_URL: redisUrl },
    names.join('\n'),
  );
  if (r.code !== 0) throw new Error(`enqueue failed: ${r.stderr}`);
  return JSON.parse(r.stdout).batchId as string;
}

/** Rows whose check spent more than one attempt (none should: no fault is the upstream's). */
async function retriedRows(batchId: string): Promise<number> {
  const r = await h.client.query(
    'SELECT count(*)::int AS n FROM items WHERE batch_id = $1 AND attempts > 1',
    [batchId],
  );
  return r.rows[0].n as number;
}

async function failedRows(batchId: string): Promise<number> {
  const r = await h.client.query(
    "SELECT count(*)::int AS n FROM items WHERE batch_id = $1 AND status = 'failed'",
    [batchId],
  );
  return r.rows[0].n as number;
}

/** Every final row agrees with the simulator's truth. */
async function expectRight(batchId: string): Promise<void> {
  const nowSecs = Math.floor(Date.now() / 1000);
  const rows = (
    await h.client.query('SELECT username, status FROM items WHERE batch_id = $1', [batchId])
  ).rows as Array<{ username: string; status: string }>;
  const wrong = rows.filter((r) => r.status !== sim.world.truth(r.username, nowSecs).status);
  expect(wrong).toEqual([]);
}

async function metric(
  port: number,
  name: string,
  labels: Record<string, string>,
): Promise<number | null> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const s = parsePrometheus(text).find(
    (x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v),
  );
  return s ? s.value : null;
}

const dump = (w: Spawned) => (e: unknown) => {
  process.stderr.write(w.stderr().slice(-4000));
  throw e;
};

it('a full Redis never turns a check into a failed result; the worker pauses and resumes', async () => {
  const r = await startPrivateRedis({ args: ['--maxmemory-policy', 'noeviction'] });
  privates.push(r);
  const admin = new Redis(r.url);
  const names = sim.world.usernames().slice(0, 200);
  const batchId = await enqueueInto(r.url, names);
  const port = await freePort();
  const w = h.startWorker(sim, {
    REDIS_URL: r.url,
    WORKER_HTTP_PORT: String(port),
    WORKER_CONCURRENCY: '8',
    LOG_LEVEL: 'info',
  });
  await waitFor(async () => (await h.batch(batchId)).done >= 10, 'some checks done', 60_000).catch(
    dump(w),
  );
  // Fill it: a limit below what it uses now refuses every write (OOM), as a full Redis does.
  const used = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))![1]);
  await admin.config('SET', 'maxmemory', String(Math.floor(used / 2)));
  await waitFor(
    async () =>
      w.stderr().includes('dependency unavailable; pausing') || (await failedRows(batchId)) > 0,
    'the worker to pause',
    60_000,
  ).catch(dump(w));
  expect(await failedRows(batchId)).toBe(0);
  const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
  expect(ready.status).toBe(503);
  expect(((await ready.json()) as { checks: { redis: string } }).checks.redis).not.toBe('ok');
  expect(await metric(port, 'storycheck_worker_dependency_up', { dependency: 'redis' })).toBe(0);
  // A worker started now waits for room instead of exiting: count its retry lines.
  const late = h.startWorker(sim, { REDIS_URL: r.url, LOG_LEVEL: 'info' });
  await waitFor(
    () => late.child.exitCode !== null || late.stderr().split('cannot start yet').length - 1 >= 2,
    'two start retries',
    60_000,
  ).catch(dump(late));
  expect(late.child.exitCode).toBeNull();
  expect(await failedRows(batchId)).toBe(0);

  await admin.config('SET', 'maxmemory', '0');
  await waitFor(
    async () => (await h.batch(batchId)).state === 'completed',
    'completion',
    120_000,
  ).catch(dump(w));
  await h.expectCountersExact(batchId);
  expect(await failedRows(batchId)).toBe(0);
  expect(await retriedRows(batchId)).toBe(0);
  await expectRight(batchId);
  expect(w.stderr()).toContain('dependency available again; resuming');
  expect(await metric(port, 'storycheck_worker_dependency_up', { dependency: 'redis' })).toBe(1);
  await waitFor(
    () => late.stderr().includes('worker started'),
    'the late worker to start',
    60_000,
  ).catch(dump(late));
  expect(w.child.exitCode).toBeNull();
  expect(late.child.exitCode).toBeNull();
  admin.disconnect();
  await h.stopAll();
}, 300_000);

it('through a Redis kill -9 and restart the worker logs JSON only, survives and finishes', async () => {
  const r = await startPrivateRedis({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
  privates.push(r);
  const names = sim.world.usernames().slice(200, 400);
  const batchId = await enqueueInto(r.url, names);
  const w = h.startWorker(sim, { REDIS_URL: r.url, WORKER_CONCURRENCY: '8', LOG_LEVEL: 'info' });
  await waitFor(async () => (await h.batch(batchId)).done >= 10, 'some checks done', 60_000).catch(
    dump(w),
  );
  await r.kill();
  // Down long enough for reconnect errors on every connection (reported once per 5 s each).
  await waitFor(
    () => w.stderr().split('redis connection error').length - 1 >= 4,
    'reconnect errors',
    60_000,
  ).catch(dump(w));
  expect(w.child.exitCode).toBeNull();
  await r.start();
  await waitFor(
    async () => (await h.batch(batchId)).state === 'completed',
    'completion',
    120_000,
  ).catch(dump(w));
  await h.expectCountersExact(batchId);
  expect(await failedRows(batchId)).toBe(0);
  expect(await retriedRows(batchId)).toBe(0);
  await expectRight(batchId);
  expect(w.child.exitCode).toBeNull();
  const notJson = w
    .stderr()
    .split('\n')
    .filter((l) => l.trim() !== '')
    .filter((l) => {
      try {
        JSON.parse(l);
        return false;
      } catch {
        return true;
      }
    });
  expect(notJson).toEqual([]);
  // The queue in the restarted Redis agrees: nothing left to do.
  const conn = new Redis(r.url, { maxRetriesPerRequest: null });
  const q = new Queue('story-check', { connection: conn, prefix: h.tp.prefix });
  const c = await q.getJobCounts('waiting', 'active', 'delayed');
  expect(c).toEqual({ waiting: 0, active: 0, delayed: 0 });
  await q.close();
  conn.disconnect();
  await h.stopAll();
}, 300_000);
