import { sleep } from '@storycheck/testkit';
import { BATCH_NAMES, FaultWorld } from './world.js';

// Redis faults (docs/architecture.md "Faults"): a crash with its append-only file, a wipe of
// every key, and a Redis that is full. Two workers run through each; the verdict is
// FaultWorld.check: every name exactly one final, right result, counters = rows, no worker died.

const w = new FaultWorld();
let names: string[];
const slice = (i: number) => names.slice(i * BATCH_NAMES, (i + 1) * BATCH_NAMES);

beforeAll(async () => {
  await w.setup({ seed: 21, size: BATCH_NAMES * 3, latencyMs: 5 });
  names = w.sim.world.usernames();
}, 180_000);
afterAll(() => w.teardown(), 120_000);
afterEach(() => w.stopWorkers(), 60_000);

it('kill -9 of Redis mid-batch, restarted from its AOF: workers reconnect, the batch is exact', async () => {
  const batch = slice(0);
  const batchId = await w.enqueue(batch);
  const a = w.startWorker('a');
  const b = w.startWorker('b');
  await w.waitDone(batchId, Math.floor(BATCH_NAMES / 5), 'progress before the crash');
  await w.redis.kill9();
  await sleep(3_000); // down for a while: workers see refused connections
  await w.redis.start();
  await w.waitCompleted(batchId, 'completion after the Redis crash');
  await w.check(batchId, batch);
  // Every log line stays JSON through the outage (no raw ECONNREFUSED stacks).
  expect(w.nonJsonLines(a)).toEqual([]);
  expect(w.nonJsonLines(b)).toEqual([]);
});

it('FLUSHALL mid-batch, then `storycheck batches reconcile`: exact', async () => {
  const batch = slice(1);
  const batchId = await w.enqueue(batch);
  w.startWorker('a');
  w.startWorker('b');
  await w.waitDone(batchId, Math.floor(BATCH_NAMES / 5), 'progress before the flush');
  const r = await w.redisClient();
  try {
    await r.flushall();
  } finally {
    r.disconnect();
  }
  // Jobs in flight may still finish; then nothing moves until reconcile re-creates the rest.
  const rec = await w.cli(['batches', 'reconcile', batchId, '--json']);
  expect(rec.code).toBe(0);
  await w.waitCompleted(batchId, 'completion after FLUSHALL + reconcile');
  await w.check(batchId, batch);
});

it('Redis full (maxmemory, noeviction) during a big enqueue while workers run: no item finalised wrong, no worker exits', async () => {
  const batch = slice(2);
  const batchId = await w.enqueue(batch);
  w.startWorker('a');
  w.startWorker('b');
  await w.waitDone(batchId, Math.floor(BATCH_NAMES / 10), 'progress before Redis fills up');
  const r = await w.redisClient();
  try {
    const used = Number(/used_memory:(\d+)/.exec(await r.info('memory'))![1]);
    await r.config('SET', 'maxmemory-policy', 'noeviction');
    await r.config('SET', 'maxmemory', String(used + 1024 * 1024));
    // A big enqueue of names the upstream does not know: it stops on OOM with one line.
    const big = Array.from({ length: 5_000 }, (_, i) => `nobody_${i}`);
    const enq = await w.cli(['enqueue', '-', '--json'], big.join('\n'));
    expect(enq.code).toBe(1);
    expect(enq.stderr.trim().split('\n')).toHaveLength(1);
    const bigId = /batch ([0-9a-f-]{36})/.exec(enq.stderr)?.[1];
    expect(bigId).toBeDefined();
    // A worker started while Redis is full waits instead of exiting.
    w.startWorker('c');
    // Redis stays full for a while, workers running.
    await sleep(10_000);
    await r.config('SET', 'maxmemory', '0');
    await w.waitCompleted(batchId, 'completion after Redis had room again');
    await w.check(batchId, batch);
    // The half-written big batch: unsealed, and none of its rows finalised wrong either (they
    // are all names the upstream does not know: not_found, never failed).
    const bigRows = await w.query<{ status: string; n: number }>(
      "SELECT status, count(*)::int AS n FROM items WHERE batch_id = $1 AND status <> 'pending' GROUP BY status",
      [bigId],
    );
    expect(bigRows.filter((x) => x.status !== 'not_found')).toEqual([]);
    expect((await w.batch(bigId!)).sealed).toBe(false);
    w.expectWorkersAlive();
  } finally {
    r.disconnect();
  }
});
