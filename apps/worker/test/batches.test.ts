import { randomUUID } from 'node:crypto';
import { addItems, createBatch, openDb, sealBatch, type DbHandle } from '@storycheck/db';
import { waitFor } from '@storycheck/testkit';
import { startSim, type SimServer } from '@storycheck/upstream-sim';
import { Harness } from './harness.js';

const h = new Harness();
let sim: SimServer;
let names: string[];

beforeAll(async () => {
  await h.setup();
  sim = await startSim({ seed: 11, size: 2400, latencyMs: 10 });
  names = sim.world.usernames();
});
afterEach(() => h.stopAll());
afterAll(async () => {
  await h.teardown();
  await sim.close();
});

/** Deletes every Redis key of the test prefix, as if Redis had lost its data. */
async function wipeQueueKeys(): Promise<number> {
  let cursor = '0';
  let n = 0;
  do {
    const [next, keys] = await h.redis.scan(cursor, 'MATCH', `${h.tp.prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) n += await h.redis.del(...keys);
  } while (cursor !== '0');
  return n;
}

describe('a batch survives process and Redis failures', () => {
  it('kill -9 of one of two workers mid-batch (2,000 names): every name answered once', async () => {
    const batchNames = names.slice(0, 2000);
    const batchId = await h.enqueue(batchNames);
    const victim = h.startWorker(sim, { WORKER_CONCURRENCY: '10' });
    h.startWorker(sim, { WORKER_CONCURRENCY: '10' });
    await waitFor(
      async () => (await h.batch(batchId)).done >= 300,
      'progress before the kill',
      60_000,
    );
    victim.child.kill('SIGKILL');
    await victim.exited;
    expect((await h.batch(batchId)).state).toBe('running');
    await waitFor(
      async () => (await h.batch(batchId)).state === 'completed',
      'completion after kill -9',
      120_000,
    );
    await h.expectCountersExact(batchId);
    const truthMismatch = (
      await h.client.query('SELECT username, status FROM items WHERE batch_id = $1', [batchId])
    ).rows.filter(
      (r: { username: string; status: string }) => sim.world.truth(r.username).status !== r.status,
    );
    expect(truthMismatch).toEqual([]);
  });

  it('after the queue keys are wiped mid-batch, reconcile completes it: nothing lost, nothing doubled', async () => {
    const batchNames = names.slice(2000, 2400);
    const batchId = await h.enqueue(batchNames);
    const w = h.startWorker(sim, { WORKER_CONCURRENCY: '2' });
    await waitFor(async () => (await h.batch(batchId)).done >= 40, 'some progress');
    w.child.kill('SIGTERM');
    expect(await w.exited).toBe(0);
    expect(await wipeQueueKeys()).toBeGreaterThan(0);
    const before = await h.batch(batchId);
    expect(before.done).toBeLessThan(batchNames.length);

    // Nothing left in Redis: a worker alone would never finish the batch.
    const r = await h.cli(['batches', 'reconcile', batchId, '--json']);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({
      batchId,
      pending: batchNames.length - before.done,
      retried: 0,
      sealed: true,
    });
    expect(report.recreated).toBe(report.pending);
    // Running it again while the jobs exist adds nothing.
    const again = JSON.parse((await h.cli(['batches', 'reconcile', batchId, '--json'])).stdout);
    expect(again.recreated).toBe(0);

    h.startWorker(sim, { WORKER_CONCURRENCY: '10' });
    await waitFor(
      async () => (await h.batch(batchId)).state === 'completed',
      'completion after reconcile',
      60_000,
    );
    await h.expectCountersExact(batchId);
    const events = await h.client.query(
      "SELECT event FROM batch_log WHERE batch_id = $1 AND event <> 'check' ORDER BY id",
      [batchId],
    );
    expect(events.rows.map((e: { event: string }) => e.event)).toEqual([
      'created',
      'started',
      'reconciled',
      'reconciled',
      'finished',
    ]);
  });
});

describe('batch log', () => {
  let db: DbHandle;
  beforeAll(() => {
    db = openDb(h.tdb.url);
  });
  afterAll(() => db.close());

  it('records every failed attempt with class, code and redacted message; --errors shows only those', async () => {
    // A batch whose jobs allow 2 attempts 10 ms apart, against an upstream that refuses
    // connections: attempt 1 → retry row, attempt 2 → failed row and a `failed` result.
    const batchId = randomUUID();
    await createBatch(db.db, { id: batchId, name: 'unreachable' });
    await addItems(db.db, batchId, [
      { seq: 1, username: 'alpha' },
      { seq: 2, username: 'beta' },
    ]);
    await sealBatch(db.db, batchId, { duplicates: 0, rejected: 0 });
    await h.queue.addBulk(
      ['alpha', 'beta'].map((username) => ({
        name: 'check',
        data: { batchId, username },
        opts: {
          jobId: `${batchId}.${username}`,
          attempts: 2,
          backoff: { type: 'fixed', delay: 10 },
        },
      })),
    );
    h.startWorker('http://user:CANARYpass99@127.0.0.1:9');
    await waitFor(
      async () => (await h.batch(batchId)).state === 'completed',
      'batch to fail',
      30_000,
    );
    await h.expectCountersExact(batchId);
    const items = await h.client.query(
      'SELECT username, status, error, attempts FROM items WHERE batch_id = $1 ORDER BY seq',
      [batchId],
    );
    expect(items.rows).toEqual([
      { username: 'alpha', status: 'failed', error: 'network_error', attempts: 2 },
      { username: 'beta', status: 'failed', error: 'network_error', attempts: 2 },
    ]);

    const json = await h.cli(['batches', 'log', batchId, '--errors', '--json']);
    expect(json.code).toBe(0);
    const rows = JSON.parse(json.stdout) as Array<Record<string, unknown>>;
    expect(rows).toHaveLength(4);
    expect(rows.map((r) => r.outcome).sort()).toEqual(['failed', 'failed', 'retry', 'retry']);
    for (const r of rows) {
      expect(r).toMatchObject({
        event: 'check',
        errorClass: 'UpstreamError',
        errorCode: 'network_error',
      });
      expect(typeof r.totalMs).toBe('number');
      expect(Array.isArray(r.cause)).toBe(true);
      expect((r.cause as unknown[]).length).toBeGreaterThan(1);
    }
    expect(json.stdout).not.toContain('CANARYpass99');

    const all = await h.cli(['batches', 'log', batchId]);
    const lines = all.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/ created /);
    expect(lines.filter((l) => / check /.test(l))).toHaveLength(4);
    expect(lines.at(-1)).toMatch(/ finished/);
    expect(all.stdout).toMatch(/UpstreamError\/network_error/);
  });
});
