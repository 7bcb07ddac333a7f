import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { migrate } from '@storycheck/db';
import {
  runNode,
  startPrivatePostgres,
  waitFor,
  sleep,
  TEST_REDIS_URL,
  createTestPrefix,
  spawnNode,
  type PrivatePostgres,
  type Spawned,
  type TestPrefix,
} from '@storycheck/testkit';
import { startSim, type SimServer } from '@storycheck/upstream-sim';

/**
 * Issue 14 item 2, against a private Postgres: the worker's connections are terminated
 * (pg_terminate_backend) while it records results, then Postgres is stopped (a second worker
 * started meanwhile must wait, not exit) and started again. The worker survives all of it (no "Unhandled 'error' event … Connection
 * terminated unexpectedly"), records nothing as failed for it, resumes by itself, and the batch
 * completes exactly with every result right.
 */
const WORKER = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const CLI = fileURLToPath(new URL('../../producer/dist/main.js', import.meta.url));
const DB = 'faults';
let pgp: PrivatePostgres;
let sim: SimServer;
let tp: TestPrefix;
let url: string;
const procs: Spawned[] = [];

beforeAll(async () => {
  pgp = await startPrivatePostgres();
  url = await pgp.createDatabase(DB, migrate);
  tp = createTestPrefix();
  sim = await startSim({ seed: 31, size: 600, latencyMs: 40 });
});
afterAll(async () => {
  for (const p of procs) await p.kill();
  await tp.clean();
  await sim.close();
  await pgp.destroy();
});

const env = (extra: Record<string, string> = {}) => ({
  DATABASE_URL: url,
  REDIS_URL: TEST_REDIS_URL,
  STORYCHECK_PREFIX: tp.prefix,
  IG_BASE_URL: sim.url,
  LOG_LEVEL: 'info',
  LOG_FORMAT: 'json',
  WORKER_LOCK_DURATION: '2s',
  ...extra,
});

/** A fresh client per question: the server goes away during this test. */
async function q<T>(sql: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  c.on('error', () => undefined);
  await c.connect();
  try {
    return (await c.query(sql, params)).rows as T[];
  } finally {
    await c.end().catch(() => undefined);
  }
}
const done = async (batchId: string) =>
  (await q<{ done: number }>('SELECT done FROM batches WHERE id = $1', [batchId]))[0]!.done;

const dump = (w: Spawned) => (e: unknown) => {
  process.stderr.write(w.stderr().slice(-4000));
  throw e;
};

it('survives terminated connections and a Postgres stop/start; the batch completes exactly', async () => {
  const names = sim.world.usernames().slice(0, 400);
  const enq = await runNode(CLI, ['enqueue', '-', '--json'], env(), names.join('\n'));
  expect(enq.code).toBe(0);
  const batchId = JSON.parse(enq.stdout).batchId as string;
  const w = spawnNode(WORKER, [], env({ WORKER_CONCURRENCY: '8' }));
  procs.push(w);
  // Terminate the worker's backends 5 times while it is recording, each after progress.
  let last = 0;
  let cut = 0;
  for (let i = 0; i < 5; i++) {
    await waitFor(
      async () => (await done(batchId)) > last,
      `progress before cut ${i}`,
      60_000,
    ).catch(dump(w));
    last = await done(batchId);
    // A burst of cuts, so some land on a client checked out between two queries.
    for (let k = 0; k < 20 && w.child.exitCode === null; k++) {
      cut += await pgp.terminateBackends(DB);
      await sleep(50);
    }
    expect(w.child.exitCode).toBeNull();
  }
  expect(cut).toBeGreaterThan(0);
  await waitFor(async () => (await done(batchId)) > last, 'progress after the cuts', 60_000).catch(
    dump(w),
  );
  // A stop of ~10 s: every connection drops (57P01), new ones are refused meanwhile.
  await pgp.stop();
  // A worker started during the outage waits and retries instead of exiting: count its lines
  // (backoff 1, 2, 4 s: three lines also make an outage of several seconds).
  const late = spawnNode(WORKER, [], env({ WORKER_CONCURRENCY: '8' }));
  procs.push(late);
  await waitFor(
    () => late.child.exitCode !== null || late.stderr().split('cannot start yet').length - 1 >= 3,
    'three start retries',
    60_000,
  ).catch(dump(late));
  expect(late.child.exitCode).toBeNull();
  expect(w.child.exitCode).toBeNull();
  await pgp.start();
  await waitFor(
    () => late.stderr().includes('worker started'),
    'the late worker to start',
    60_000,
  ).catch(dump(late));
  await waitFor(
    async () =>
      w.child.exitCode !== null ||
      (await q<{ state: string }>('SELECT state FROM batches WHERE id = $1', [batchId]))[0]!
        .state === 'completed',
    'completion',
    180_000,
  ).catch(dump(w));
  expect(w.child.exitCode).toBeNull();
  expect(late.child.exitCode).toBeNull();
  expect(w.stderr()).not.toContain("Unhandled 'error' event");
  expect(w.stderr()).toContain('dependency unavailable; pausing');

  const b = (await q<Record<string, number>>('SELECT * FROM batches WHERE id = $1', [batchId]))[0]!;
  const rows = await q<{ username: string; status: string; attempts: number }>(
    'SELECT username, status, attempts FROM items WHERE batch_id = $1',
    [batchId],
  );
  expect(rows).toHaveLength(names.length);
  expect(b.done).toBe(names.length);
  const by: Record<string, number> = {};
  for (const r of rows) by[r.status] = (by[r.status] ?? 0) + 1;
  expect({
    active: b.count_active,
    none: b.count_none,
    private: b.count_private,
    not_found: b.count_not_found,
    failed: b.count_failed,
  }).toEqual({
    active: by.active ?? 0,
    none: by.none ?? 0,
    private: by.private ?? 0,
    not_found: by.not_found ?? 0,
    failed: by.failed ?? 0,
  });
  const nowSecs = Math.floor(Date.now() / 1000);
  const wrong = rows.filter((r) => r.status !== sim.world.truth(r.username, nowSecs).status);
  expect(wrong).toEqual([]);
  // The outage spent no attempt: every check was answered on its first.
  expect(rows.filter((r) => r.attempts !== 1)).toEqual([]);
}, 400_000);
