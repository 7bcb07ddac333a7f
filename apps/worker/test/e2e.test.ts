import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import pg from 'pg';
import { Redis } from 'ioredis';
import { migrate } from '@storycheck/db';
import {
  TEST_REDIS_URL,
  createTestDatabase,
  createTestPrefix,
  runNode,
  sleep,
  spawnNode,
  waitFor,
  type Spawned,
  type TestDatabase,
  type TestPrefix,
} from '@storycheck/testkit';
import { startSim, type SimServer } from '@storycheck/upstream-sim';

const WORKER = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const CLI = fileURLToPath(new URL('../../producer/dist/main.js', import.meta.url));

let tdb: TestDatabase;
let tp: TestPrefix;
let sim: SimServer;
let slowSim: SimServer;
let client: pg.Client;
let redis: Redis;
let queue: Queue;
const procs: Spawned[] = [];

function envFor(s: SimServer, extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: tdb.url,
    REDIS_URL: TEST_REDIS_URL,
    STORYCHECK_PREFIX: tp.prefix,
    IG_BASE_URL: s.url,
    LOG_LEVEL: 'warn',
    LOG_FORMAT: 'json',
    WORKER_LOCK_DURATION: '2s',
    ...extra,
  };
}
function startWorkerProcess(s: SimServer, extra: Record<string, string> = {}): Spawned {
  const p = spawnNode(WORKER, [], envFor(s, extra));
  procs.push(p);
  return p;
}
async function enqueue(s: SimServer, names: string[]): Promise<string> {
  const r = await runNode(CLI, ['enqueue', '-', '--json'], envFor(s), names.join('\n'));
  if (r.code !== 0) throw new Error(`enqueue failed: ${r.stderr}`);
  return JSON.parse(r.stdout).batchId as string;
}
async function batch(batchId: string) {
  return (await client.query('SELECT * FROM batches WHERE id = $1', [batchId])).rows[0];
}
/** Counters must equal count(*) per status: the exactness invariant, checked from Postgres. */
async function expectCountersExact(batchId: string) {
  const b = await batch(batchId);
  const rows = (
    await client.query(
      'SELECT status, count(*)::int AS n FROM items WHERE batch_id = $1 GROUP BY status',
      [batchId],
    )
  ).rows as Array<{ status: string; n: number }>;
  const by = Object.fromEntries(rows.map((r) => [r.status, r.n]));
  expect(by.pending ?? 0).toBe(0);
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
  expect(b.done).toBe(b.total);
}

beforeAll(async () => {
  tdb = await createTestDatabase(migrate);
  tp = createTestPrefix();
  sim = await startSim({ seed: 7, size: 400 });
  slowSim = await startSim({ seed: 7, size: 400, latencyMs: 150 });
  client = new pg.Client({ connectionString: tdb.url });
  await client.connect();
  redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
  queue = new Queue('story-check', { connection: redis, prefix: tp.prefix });
});

afterEach(async () => {
  await Promise.all(procs.splice(0).map((p) => p.kill()));
});

afterAll(async () => {
  await Promise.all(procs.map((p) => p.kill()));
  await queue.close();
  redis.disconnect();
  await client.end();
  await sim.close();
  await slowSim.close();
  await tp.clean();
  await tdb.drop();
});

describe('one batch end to end', () => {
  it('enqueue → two workers → result rows match the simulator, exactly once', async () => {
    const names = [...sim.world.usernames().slice(0, 120), 'nobody.here_1', 'nobody.here_2'];
    const batchId = await enqueue(sim, names);
    startWorkerProcess(sim);
    startWorkerProcess(sim);
    await waitFor(
      async () => (await batch(batchId)).state === 'completed',
      'batch completion',
      60_000,
    );

    const nowSecs = Math.floor(Date.now() / 1000);
    const rows = (
      await client.query('SELECT * FROM items WHERE batch_id = $1 ORDER BY seq', [batchId])
    ).rows;
    expect(rows.map((r: { username: string }) => r.username)).toEqual(names);
    let active = 0;
    for (const r of rows) {
      const t = sim.world.truth(r.username, nowSecs);
      expect({ u: r.username, status: r.status }).toEqual({ u: r.username, status: t.status });
      if (t.status === 'active') {
        active++;
        expect(r.story_count).toBe(t.storyCount);
        expect(r.latest_story_at.getTime()).toBe(t.latestStoryAt! * 1000);
        expect(r.expires_at.getTime()).toBe(t.expiresAt! * 1000);
      }
      if (t.status === 'active' || t.status === 'none') expect(r.user_id).toBe(t.userId);
      expect(r.attempts).toBe(1);
      expect(r.checked_at).not.toBeNull();
    }
    expect(active).toBeGreaterThan(10);
    await expectCountersExact(batchId);
    // Every check left a batch-log row with its timings.
    const log = await client.query(
      "SELECT count(*)::int AS n, min(total_ms) AS min FROM batch_log WHERE batch_id = $1 AND event = 'check'",
      [batchId],
    );
    expect(log.rows[0].n).toBe(names.length);
    const events = await client.query(
      "SELECT event FROM batch_log WHERE batch_id = $1 AND event <> 'check' ORDER BY id",
      [batchId],
    );
    expect(events.rows.map((r: { event: string }) => r.event)).toEqual([
      'created',
      'started',
      'finished',
    ]);
  });

  it('the same job processed twice leaves one result row and the counters unchanged', async () => {
    const [u1, u2] = sim.world.usernames().slice(200, 202) as [string, string];
    const batchId = await enqueue(sim, [u1, u2]);
    startWorkerProcess(sim);
    await waitFor(async () => (await batch(batchId)).state === 'completed', 'batch completion');
    const before = await batch(batchId);
    const rowBefore = (
      await client.query('SELECT * FROM items WHERE batch_id = $1 AND username = $2', [batchId, u1])
    ).rows[0];

    // A second delivery of the same (batch, username), as after a stall or lock loss.
    const dup = await queue.add('check', { batchId, username: u1 }, { jobId: `dup-${batchId}` });
    await waitFor(async () => (await dup.getState()) === 'completed', 'duplicate job');

    expect(await batch(batchId)).toEqual(before);
    const rows = (
      await client.query('SELECT * FROM items WHERE batch_id = $1 AND username = $2', [batchId, u1])
    ).rows;
    expect(rows).toEqual([rowBefore]);
    const dupLog = await client.query(
      "SELECT count(*)::int AS n FROM batch_log WHERE batch_id = $1 AND data->>'duplicateDelivery' = 'true'",
      [batchId],
    );
    expect(dupLog.rows[0].n).toBe(1);
  });
});

describe('stopping is safe', () => {
  it('SIGTERM during a batch exits 0, and the batch completes after a restart', async () => {
    const names = sim.world.usernames().slice(250, 330);
    const batchId = await enqueue(slowSim, names);
    const w = startWorkerProcess(slowSim, { WORKER_CONCURRENCY: '4' });
    await waitFor(async () => (await batch(batchId)).done >= 8, 'some progress');
    w.child.kill('SIGTERM');
    const code = await Promise.race([w.exited, sleep(15_000).then(() => 'timeout')]);
    expect(code).toBe(0);
    const mid = await batch(batchId);
    expect(mid.state).toBe('running');
    expect(mid.done).toBeLessThan(names.length);
    // Nothing the stopped worker held stays locked.
    expect(await queue.getActiveCount()).toBe(0);

    startWorkerProcess(slowSim, { WORKER_CONCURRENCY: '8' });
    await waitFor(
      async () => (await batch(batchId)).state === 'completed',
      'completion after restart',
      60_000,
    );
    await expectCountersExact(batchId);
    const n = await client.query(
      'SELECT count(*)::int AS n, count(DISTINCT username)::int AS d FROM items WHERE batch_id = $1',
      [batchId],
    );
    expect(n.rows[0]).toEqual({ n: names.length, d: names.length });
  });

  it('kill -9 of one of two workers loses nothing: stalled jobs are taken over', async () => {
    const names = sim.world.usernames().slice(330, 400);
    const batchId = await enqueue(slowSim, names);
    const victim = startWorkerProcess(slowSim, { WORKER_CONCURRENCY: '6' });
    startWorkerProcess(slowSim, { WORKER_CONCURRENCY: '2' });
    await waitFor(async () => (await batch(batchId)).done >= 6, 'some progress');
    victim.child.kill('SIGKILL');
    await victim.exited;
    await waitFor(
      async () => (await batch(batchId)).state === 'completed',
      'completion after kill -9',
      60_000,
    );
    await expectCountersExact(batchId);
  });
});
