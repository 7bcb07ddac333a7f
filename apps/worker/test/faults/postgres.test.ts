import pg from 'pg';
import { sleep, waitFor } from '@storycheck/testkit';
import { migrate } from '@storycheck/db';
import { BATCH_NAMES, FaultWorld } from './world.js';

// PostgreSQL faults (docs/architecture.md "Faults"): restarts, connections terminated under the
// workers, and a worker pointed at the wrong database.

const w = new FaultWorld();
let names: string[];
const slice = (i: number) => names.slice(i * BATCH_NAMES, (i + 1) * BATCH_NAMES);

beforeAll(async () => {
  await w.setup({ seed: 22, size: BATCH_NAMES * 3, latencyMs: 5 });
  names = w.sim.world.usernames();
}, 180_000);
afterAll(() => w.teardown(), 120_000);
afterEach(() => w.stopWorkers(), 60_000);

it('pg_ctl restart ×3 mid-batch: exact, no worker exits', async () => {
  const batch = slice(0);
  const batchId = await w.enqueue(batch);
  w.startWorker('a');
  w.startWorker('b');
  let done = 0;
  for (let i = 1; i <= 3; i++) {
    // Each restart comes after more progress, so it hits workers in the middle of their writes.
    done = Math.max(done + 1, Math.floor((BATCH_NAMES * i) / 5));
    await w.waitDone(batchId, done, `progress before restart ${i}`);
    await w.pg.stop(); // pg_ctl stop -m fast: every connection drops (admin shutdown)
    await w.pg.start();
  }
  await w.waitCompleted(batchId, 'completion after the restarts');
  await w.check(batchId, batch);
});

it('pg_terminate_backend of every worker connection, three times: exact, no worker exits', async () => {
  const batch = slice(1);
  const batchId = await w.enqueue(batch);
  w.startWorker('a');
  w.startWorker('b');
  const admin = new pg.Client({ connectionString: `${w.pg.serverUrl}/postgres` });
  admin.on('error', () => undefined);
  await admin.connect();
  try {
    for (let i = 1; i <= 3; i++) {
      await w.waitDone(batchId, Math.floor((BATCH_NAMES * i) / 5), `progress before kill ${i}`);
      const killed = await admin.query(
        `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
          WHERE datname = 'storycheck' AND pid <> pg_backend_pid()`,
      );
      expect(killed.rowCount).toBeGreaterThan(0);
      await sleep(500);
    }
  } finally {
    await admin.end();
  }
  await w.waitCompleted(batchId, 'completion after the terminated connections');
  await w.check(batchId, batch);
});

it('a worker pointed at the wrong database spends no upstream request and fails no job', async () => {
  const batch = slice(2);
  const batchId = await w.enqueue(batch);
  // Another database on the same server, migrated and empty: the jobs' batch is not in it.
  await w.pg.createDatabase('elsewhere', migrate);
  const requests0 = w.sim.stats().totalRequests;
  const wrong = w.startWorker('wrong-db', {
    DATABASE_URL: `${w.pg.serverUrl}/elsewhere`,
    LOG_LEVEL: 'info',
  });
  // It either refuses to start, or takes jobs and refuses them: wait until it did one or the
  // other (a log line naming the batch, or its exit), with a generous deadline.
  await waitFor(
    () =>
      wrong.child.exitCode !== null ||
      /not in (this|its) database|unknown batch|no batch|batch .*(does not exist|not found|missing)/i.test(
        wrong.stderr(),
      ),
    'the wrong-database worker to refuse',
    60_000,
    250,
  );
  wrong.told = true; // refusing to start is an allowed answer
  expect(w.sim.stats().totalRequests - requests0).toBe(0);
  const items = await w.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM items WHERE batch_id = $1 AND status <> 'pending'",
    [batchId],
  );
  expect(items[0]!.n).toBe(0);
  // Every line it wrote is JSON, and it names the problem, not an SQL dump.
  expect(w.nonJsonLines(wrong)).toEqual([]);
  await wrong.kill();

  // The right workers then do the whole batch: no job was spent.
  w.startWorker('a');
  w.startWorker('b');
  await w.waitCompleted(batchId, 'completion by the right workers');
  await w.check(batchId, batch);
  const attempts = await w.query<{ max: number }>(
    'SELECT max(attempts)::int AS max FROM items WHERE batch_id = $1',
    [batchId],
  );
  expect(attempts[0]!.max).toBe(1);
});
