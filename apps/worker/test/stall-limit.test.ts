import { waitFor } from '@storycheck/testkit';
import { startSim, type SimServer } from '@storycheck/upstream-sim';
import { Harness } from './harness.js';

/**
 * A job that stalled (its worker was killed or froze past the lock) more often than BullMQ's
 * `maxStalledCount` is marked by BullMQ's stall check (`defa` on the job's hash) and failed,
 * without running the processor, by the next worker that takes it. Before, the item then
 * stayed pending with no job until `batches reconcile`. Now: put back while attempts are left,
 * recorded `failed` (error `stalled`) exactly once when every attempt is spent.
 *
 * The test sets the mark itself — the same HSET BullMQ's moveStalledJobsToWait script makes
 * after the limit — rather than killing a worker ten times at the right moment.
 */
const h = new Harness();
let sim: SimServer;

beforeAll(async () => {
  await h.setup();
  sim = await startSim({ seed: 31, size: 100 });
});
afterAll(async () => {
  await h.teardown();
  await sim.close();
});

const STALL_LIMIT = 'job stalled more than allowable limit';

it('a job failed for stalling is put back (then checked right); one with no attempt left is recorded failed', async () => {
  const names = sim.world.usernames().slice(0, 20);
  const batchId = await h.enqueue(names);
  const [requeued, exhausted] = [names[3]!, names[7]!];
  // Attempts: 5 per job (CHECK_ATTEMPTS); the failure itself counts one.
  await h.redis.hset(h.queue.toKey(`${batchId}.${requeued}`), 'defa', STALL_LIMIT, 'atm', '0');
  await h.redis.hset(h.queue.toKey(`${batchId}.${exhausted}`), 'defa', STALL_LIMIT, 'atm', '4');
  const w = h.startWorker(sim);
  await waitFor(
    async () => (await h.batch(batchId)).state === 'completed',
    'batch completion',
    90_000,
  ).catch((e: unknown) => {
    process.stderr.write(w.stderr().slice(-3000));
    throw e;
  });
  await h.expectCountersExact(batchId);
  const rows = (
    await h.client.query('SELECT username, status, error FROM items WHERE batch_id = $1', [batchId])
  ).rows as Array<{ username: string; status: string; error: string | null }>;
  const by = new Map(rows.map((r) => [r.username, r]));
  const nowSecs = Math.floor(Date.now() / 1000);
  for (const u of names) {
    if (u === exhausted) continue;
    expect({ u, status: by.get(u)!.status }).toEqual({
      u,
      status: sim.world.truth(u, nowSecs).status,
    });
  }
  expect(by.get(exhausted)).toMatchObject({ status: 'failed', error: 'stalled' });
  // The put-back job ran its check: one profile lookup for it.
  expect(sim.stats().profileLookups[requeued] ?? 0).toBeGreaterThanOrEqual(1);
  expect(sim.stats().profileLookups[exhausted] ?? 0).toBe(0);
  const log = await h.client.query(
    "SELECT count(*)::int AS n FROM batch_log WHERE batch_id = $1 AND error_code = 'stalled'",
    [batchId],
  );
  expect(log.rows[0].n).toBe(1);
  expect(w.stderr()).toContain('job stalled past the limit; put back');
});
