import { sleep, waitFor } from '@storycheck/testkit';
import { startSim, type SimServer } from '@storycheck/upstream-sim';
import { Harness } from './harness.js';

const h = new Harness();
let sim: SimServer;
let slowSim: SimServer;

beforeAll(async () => {
  await h.setup();
  sim = await startSim({ seed: 7, size: 400 });
  slowSim = await startSim({ seed: 7, size: 400, latencyMs: 150 });
});
afterEach(() => h.stopAll());
afterAll(async () => {
  await h.teardown();
  await sim.close();
  await slowSim.close();
});

describe('one batch end to end', () => {
  it('enqueue → two workers → result rows match the simulator, exactly once', async () => {
    const names = [...sim.world.usernames().slice(0, 120), 'nobody.here_1', 'nobody.here_2'];
    const batchId = await h.enqueue(names);
    const stories0 = sim.stats().byKind.reels_media;
    h.startWorker(sim);
    h.startWorker(sim);
    await waitFor(
      async () => (await h.batch(batchId)).state === 'completed',
      'batch completion',
      60_000,
    );

    const nowSecs = Math.floor(Date.now() / 1000);
    const rows = (
      await h.client.query('SELECT * FROM items WHERE batch_id = $1 ORDER BY seq', [batchId])
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
    // The stories of jobs in flight shared requests: far fewer reels_media requests than users.
    const storyRequests = sim.stats().byKind.reels_media - stories0;
    const withId = rows.filter((r: { user_id: string | null }) => r.user_id !== null).length;
    expect(storyRequests).toBeLessThan(withId / 2);
    await h.expectCountersExact(batchId);
    // Every check left a batch-log row with its timings.
    const log = await h.client.query(
      "SELECT count(*)::int AS n, min(total_ms) AS min FROM batch_log WHERE batch_id = $1 AND event = 'check'",
      [batchId],
    );
    expect(log.rows[0].n).toBe(names.length);
    const events = await h.client.query(
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
    const batchId = await h.enqueue([u1, u2]);
    h.startWorker(sim);
    await waitFor(async () => (await h.batch(batchId)).state === 'completed', 'batch completion');
    const before = await h.batch(batchId);
    const rowBefore = (
      await h.client.query('SELECT * FROM items WHERE batch_id = $1 AND username = $2', [
        batchId,
        u1,
      ])
    ).rows[0];

    // A second delivery of the same (batch, username), as after a stall or lock loss.
    const dup = await h.queue.add('check', { batchId, username: u1 }, { jobId: `dup-${batchId}` });
    await waitFor(async () => (await dup.getState()) === 'completed', 'duplicate job');

    expect(await h.batch(batchId)).toEqual(before);
    const rows = (
      await h.client.query('SELECT * FROM items WHERE batch_id = $1 AND username = $2', [
        batchId,
        u1,
      ])
    ).rows;
    expect(rows).toEqual([rowBefore]);
    const dupLog = await h.client.query(
      "SELECT count(*)::int AS n FROM batch_log WHERE batch_id = $1 AND data->>'duplicateDelivery' = 'true'",
      [batchId],
    );
    expect(dupLog.rows[0].n).toBe(1);
  });
});

describe('observability', () => {
  it('a worker’s /metrics counters move when a batch runs; /readyz answers', async () => {
    const port = 20_000 + (process.pid % 20_000);
    h.startWorker(sim, { WORKER_HTTP_PORT: String(port) });
    await waitFor(
      async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null))?.ok,
      'health port',
    );
    const names = sim.world.usernames().slice(380, 400);
    const batchId = await h.enqueue(names);
    await waitFor(async () => (await h.batch(batchId)).state === 'completed', 'batch completion');
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const finished = [
      ...text.matchAll(/^storycheck_checks_finished_total\{[^}]*\} (\d+)/gm),
    ].reduce((a, m) => a + Number(m[1]), 0);
    expect(finished).toBe(names.length);
    expect(text).toMatch(
      /^storycheck_upstream_requests_total\{[^}]*endpoint="profile"[^}]*\} \d+/m,
    );
    for (const u of names) expect(text).not.toContain(u);
  });
});

describe('stopping is safe', () => {
  it('SIGTERM during a batch exits 0, and the batch completes after a restart', async () => {
    const names = sim.world.usernames().slice(250, 330);
    const batchId = await h.enqueue(names);
    const w = h.startWorker(slowSim, { WORKER_CONCURRENCY: '4' });
    await waitFor(async () => (await h.batch(batchId)).done >= 8, 'some progress');
    w.child.kill('SIGTERM');
    const code = await Promise.race([w.exited, sleep(15_000).then(() => 'timeout')]);
    expect(code).toBe(0);
    const mid = await h.batch(batchId);
    expect(mid.state).toBe('running');
    expect(mid.done).toBeLessThan(names.length);
    // Nothing the stopped worker held stays locked.
    expect(await h.queue.getActiveCount()).toBe(0);

    h.startWorker(slowSim, { WORKER_CONCURRENCY: '8' });
    await waitFor(
      async () => (await h.batch(batchId)).state === 'completed',
      'completion after restart',
      60_000,
    );
    await h.expectCountersExact(batchId);
    const n = await h.client.query(
      'SELECT count(*)::int AS n, count(DISTINCT username)::int AS d FROM items WHERE batch_id = $1',
      [batchId],
    );
    expect(n.rows[0]).toEqual({ n: names.length, d: names.length });
  });
});
