import { migrate } from '@storycheck/db';
import { createTestDatabase, waitFor, type TestDatabase } from '@storycheck/testkit';
import { startSim, type SimServer } from '@storycheck/upstream-sim';
import { Harness } from './harness.js';

/**
 * Issue 14 item 6: a worker whose DATABASE_URL points at another database than the producer's
 * (B instead of A) refuses the jobs of a batch it does not know before any upstream request:
 * nothing recorded, no attempt spent, one clear log line. The items stay pending in A and
 * complete once a correctly configured worker runs.
 */
const h = new Harness();
let sim: SimServer;
let other: TestDatabase;

beforeAll(async () => {
  await h.setup();
  other = await createTestDatabase(migrate);
  sim = await startSim({ seed: 11, size: 100 });
});
afterAll(async () => {
  await h.teardown();
  await other.drop();
  await sim.close();
});

it('refuses jobs of a batch not in its database, spending no budget; a right worker completes them', async () => {
  const names = sim.world.usernames().slice(0, 30);
  const batchId = await h.enqueue(names);
  const before = sim.stats().totalRequests;
  const wrong = h.startWorker(sim, { DATABASE_URL: other.url });
  await waitFor(
    () =>
      wrong.stderr().includes(`batch ${batchId} not in this database`) ||
      sim.stats().totalRequests > before ||
      wrong.child.exitCode !== null,
    'the refusal line',
    60_000,
  ).catch((e: unknown) => {
    process.stderr.write(wrong.stderr().slice(-3000));
    throw e;
  });
  expect(sim.stats().totalRequests - before).toBe(0);
  // Every job has been taken and put back by now (or is about to be): count them.
  await waitFor(
    async () => (await h.queue.getJobCounts('delayed')).delayed === names.length,
    'every job put back',
    60_000,
  ).catch((e: unknown) => {
    process.stderr.write(wrong.stderr().slice(-3000));
    throw e;
  });
  expect(wrong.child.exitCode).toBeNull();
  expect(sim.stats().totalRequests - before).toBe(0);
  const jobs = await h.queue.getJobs(['delayed']);
  expect(jobs.every((j) => j.attemptsMade === 0)).toBe(true);
  // One line for the batch, not one per job.
  expect(wrong.stderr().split(`batch ${batchId} not in this database`).length - 1).toBe(1);
  const pending = await h.client.query(
    "SELECT count(*)::int AS n FROM items WHERE batch_id = $1 AND status = 'pending'",
    [batchId],
  );
  expect(pending.rows[0].n).toBe(names.length);
  const leaked = await h.client.query(
    'SELECT 1 FROM batch_log WHERE batch_id = $1 AND event = $2',
    [batchId, 'check'],
  );
  expect(leaked.rowCount).toBe(0);

  await h.stopAll();
  h.startWorker(sim);
  await h.queue.promoteJobs(); // the put-back delay is 30 s; no need to wait it out
  await waitFor(async () => (await h.batch(batchId)).state === 'completed', 'completion', 90_000);
  await h.expectCountersExact(batchId);
  const failed = await h.client.query(
    "SELECT count(*)::int AS n FROM items WHERE batch_id = $1 AND status = 'failed'",
    [batchId],
  );
  expect(failed.rows[0].n).toBe(0);
}, 240_000);
