import { randomUUID } from 'node:crypto';
import { addItems, createBatch, openDb, sealBatch, type DbHandle } from '@storycheck/db';
import { waitFor } from '@storycheck/testkit';
import { startSim, type SimServer } from '@storycheck/upstream-sim';
import { Harness } from './harness.js';

const h = new Harness();
let sim: SimServer;
let slowSim: SimServer;
let db: DbHandle;

beforeAll(async () => {
  await h.setup();
  sim = await startSim({ seed: 21, size: 1200 });
  slowSim = await startSim({ seed: 21, size: 1200, latencyMs: 300 });
  db = openDb(h.tdb.url);
});
afterEach(() => h.stopAll());
afterAll(async () => {
  await db.close();
  await h.teardown();
  await sim.close();
  await slowSim.close();
});

const counts = (s: SimServer) => ({
  profile: s.stats().byKind.profile,
  stories: s.stats().byKind.reels_media,
});

async function runBatch(names: string[]): Promise<string> {
  const batchId = await h.enqueue(names);
  await waitFor(
    async () => (await h.batch(batchId)).state === 'completed',
    'batch completion',
    90_000,
  );
  await h.expectCountersExact(batchId);
  return batchId;
}

describe('caches in the worker', () => {
  it('second run inside STORY_CACHE_TTL: zero requests; once results are gone: zero profile requests and ~n/chunk story requests', async () => {
    const names = sim.world.usernames().slice(0, 1000);
    // A longer coalescing window than the default keeps the story-request bound independent of
    // how loaded the machine running the tests is.
    h.startWorker(sim, { STORY_CACHE_TTL: '5m', STORIES_MAX_WAIT: '300ms' });
    const c0 = counts(sim);
    const first = await runBatch(names);
    const c1 = counts(sim);
    expect(c1.profile - c0.profile).toBe(1000);

    const second = await runBatch(names);
    const c2 = counts(sim);
    expect(c2).toEqual(c1);
    const cached = await h.client.query(
      'SELECT count(*)::int AS n FROM items WHERE batch_id = $1 AND cached',
      [second],
    );
    expect(cached.rows[0].n).toBe(1000);
    // Same answers as the first run.
    const diff = await h.client.query(
      `SELECT a.username FROM items a JOIN items b USING (username)
       WHERE a.batch_id = $1 AND b.batch_id = $2 AND a.status <> b.status`,
      [first, second],
    );
    expect(diff.rows).toEqual([]);

    // The result cache expires (its TTL is tested in packages/cache; here it is emptied at once,
    // so the test does not depend on how long the runs took); the user-id cache stays.
    const r = await h.cli(['cache', 'clear', '--results', '--json']);
    expect(JSON.parse(r.stdout).deleted).toEqual({ userIds: 0, results: 1000 });
    await runBatch(names);
    const c3 = counts(sim);
    expect(c3.profile - c2.profile).toBe(0);
    const withReel = names.filter((u) => sim.world.truth(u).exists).length;
    expect(c3.stories - c2.stories).toBeLessThanOrEqual(Math.ceil(withReel / 20) + 10);

    // cache clear really empties: stats show nothing, and the next run asks again.
    // Workers add their hit counts to Redis on a timer (statsFlushMs, 1 s): wait for the count
    // rather than read it the moment the batch completes.
    let stats = { userIds: { entries: 0, hits: 0 } };
    await waitFor(
      async () => {
        stats = JSON.parse((await h.cli(['cache', 'stats', '--json'])).stdout);
        return stats.userIds.hits >= 1000;
      },
      'user-id cache hits flushed to Redis',
      30_000,
    ).catch(() => undefined);
    expect(stats.userIds.entries).toBe(1000);
    expect(stats.userIds.hits).toBeGreaterThanOrEqual(1000);
    const cleared = await h.cli(['cache', 'clear', '--json']);
    expect(JSON.parse(cleared.stdout).deleted.userIds).toBe(1000);
    const after = JSON.parse((await h.cli(['cache', 'stats', '--json'])).stdout);
    expect(after.userIds.entries + after.results.entries).toBe(0);
    await runBatch(names.slice(0, 50));
    expect(counts(sim).profile - c3.profile).toBe(50);
  });

  it('50 concurrent checks of one username make one profile request', async () => {
    const username = slowSim.world.usernames()[1100]!;
    const ids: string[] = [];
    for (let i = 0; i < 50; i++) {
      const id = randomUUID();
      ids.push(id);
      await createBatch(db.db, { id });
      await addItems(db.db, id, [{ seq: 1, username }]);
      await sealBatch(db.db, id, { duplicates: 0, rejected: 0 });
    }
    await h.queue.addBulk(
      ids.map((batchId) => ({
        name: 'check',
        data: { batchId, username },
        opts: { jobId: `${batchId}.${username}` },
      })),
    );
    const before = slowSim.stats().profileLookups[username] ?? 0;
    h.startWorker(slowSim, { WORKER_CONCURRENCY: '30' });
    h.startWorker(slowSim, { WORKER_CONCURRENCY: '30' });
    await waitFor(
      async () =>
        (
          await h.client.query(
            "SELECT count(*)::int AS n FROM batches WHERE id = ANY($1) AND state = 'completed'",
            [ids],
          )
        ).rows[0].n === 50,
      'all 50 batches',
      60_000,
    );
    expect((slowSim.stats().profileLookups[username] ?? 0) - before).toBe(1);
    const statuses = await h.client.query(
      'SELECT DISTINCT status FROM items WHERE batch_id = ANY($1)',
      [ids],
    );
    expect(statuses.rows.map((r: { status: string }) => r.status)).toEqual([
      slowSim.world.truth(username).status,
    ]);
  });
});

describe('a renamed account', () => {
  it('is reported under its new reality, not through a stale cached id', async () => {
    const now = Math.floor(Date.now() / 1000);
    const user = sim.world.users.find(
      (u) =>
        !u.isPrivate &&
        sim.world.truth(u.username, now).status === 'active' &&
        sim.world.usernames().indexOf(u.username) >= 1000,
    )!;
    h.startWorker(sim);
    // Warm the user-id cache with the old name.
    const first = await runBatch([user.username]);
    const r1 = await h.client.query('SELECT status, user_id FROM items WHERE batch_id = $1', [
      first,
    ]);
    expect(r1.rows[0]).toEqual({ status: 'active', user_id: user.userId });
    // The account renames itself; the old name is free now. Results are not cached for this.
    await h.cli(['cache', 'clear', '--results']);
    sim.renameUser(user.username, `${user.username.slice(0, 20)}_new`);
    const second = await runBatch([user.username]);
    const r2 = await h.client.query('SELECT status, user_id FROM items WHERE batch_id = $1', [
      second,
    ]);
    // The stories answer showed the id under another name: the stale entry was dropped and the
    // name looked up afresh — it no longer exists.
    expect(r2.rows[0]).toEqual({ status: 'not_found', user_id: null });
    // And the new name is found under the same id.
    const third = await runBatch([`${user.username.slice(0, 20)}_new`]);
    const r3 = await h.client.query('SELECT status, user_id FROM items WHERE batch_id = $1', [
      third,
    ]);
    expect(r3.rows[0]).toEqual({ status: 'active', user_id: user.userId });
  });
});
