import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '@storycheck/testkit';
import {
  addItems,
  createBatch,
  getBatchStatus,
  deleteOlderThan,
  markBatchStarted,
  migrate,
  openDb,
  recordResult,
  recordResults,
  ResultRecorder,
  sealBatch,
  streamResults,
  type DbHandle,
} from '../src/index.js';

let tdb: TestDatabase;
let h: DbHandle;

beforeAll(async () => {
  tdb = await createTestDatabase(migrate);
  h = openDb(tdb.url);
});
afterAll(async () => {
  await h.close();
  await tdb.drop();
});

describe('migrate', () => {
  it('creates a missing database and is safe to run twice, even concurrently', async () => {
    const other = await createTestDatabase();
    try {
      const first = await migrate(other.url);
      expect(first.createdDatabase).toBe(true);
      const again = await Promise.all([migrate(other.url), migrate(other.url)]);
      expect(again.map((r) => r.createdDatabase)).toEqual([false, false]);
      const c = new pg.Client({ connectionString: other.url });
      await c.connect();
      const t = await c.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
      );
      await c.end();
      expect(t.rows.map((r) => r.table_name)).toEqual([
        'batch_log',
        'batches',
        'items',
        'proxies',
        'sessions',
      ]);
    } finally {
      await other.drop();
    }
  });
});

describe('batch lifecycle', () => {
  it('skips names already in the batch and counts total once', async () => {
    const id = randomUUID();
    await createBatch(h.db, { id, name: 'dups' });
    const first = await addItems(h.db, id, [
      { seq: 1, username: 'a' },
      { seq: 2, username: 'b' },
      { seq: 3, username: 'a' },
    ]);
    expect(first.map((r) => r.username)).toEqual(['a', 'b']);
    const second = await addItems(h.db, id, [
      { seq: 4, username: 'b' },
      { seq: 5, username: 'c' },
    ]);
    expect(second.map((r) => r.username)).toEqual(['c']);
    expect((await getBatchStatus(h.db, id))!.total).toBe(3);
  });

  it('moves an item to its final state once; a second record changes nothing', async () => {
    const id = randomUUID();
    await createBatch(h.db, { id });
    await addItems(h.db, id, [
      { seq: 1, username: 'x' },
      { seq: 2, username: 'y' },
    ]);
    await sealBatch(h.db, id, { duplicates: 1, rejected: 2 });
    expect(await markBatchStarted(h.db, id)).toBe(true);
    expect(await markBatchStarted(h.db, id)).toBe(false);

    const r1 = await recordResult(h.db, id, 'x', {
      status: 'active',
      storyCount: 2,
      userId: '123',
      attempts: 1,
    });
    expect(r1).toEqual({ applied: true, completedBatch: false });
    const r2 = await recordResult(h.db, id, 'x', {
      status: 'failed',
      error: 'upstream_error',
      attempts: 2,
    });
    expect(r2).toEqual({ applied: false, completedBatch: false });
    let s = (await getBatchStatus(h.db, id))!;
    expect(s).toMatchObject({ state: 'running', total: 2, done: 1, duplicates: 1, rejected: 2 });
    expect(s.counts).toEqual({ active: 1, none: 0, private: 0, not_found: 0, failed: 0 });

    // Concurrent double delivery of the last item: exactly one applies.
    const both = await Promise.all([
      recordResult(h.db, id, 'y', { status: 'none', attempts: 1 }),
      recordResult(h.db, id, 'y', { status: 'none', attempts: 1 }),
    ]);
    expect(both.filter((o) => o.applied)).toHaveLength(1);
    expect(both.filter((o) => o.completedBatch)).toHaveLength(1);
    s = (await getBatchStatus(h.db, id))!;
    expect(s).toMatchObject({ state: 'completed', done: 2 });
    expect(s.counts).toEqual({ active: 1, none: 1, private: 0, not_found: 0, failed: 0 });
    expect(s.finishedAt).not.toBeNull();

    const rows = [];
    for await (const r of streamResults(h.db, id, 1)) rows.push(r);
    expect(rows.map((r) => [r.username, r.status, r.userId])).toEqual([
      ['x', 'active', '123'],
      ['y', 'none', null],
    ]);
  });

  it('does not complete an unsealed batch even when every item so far is final', async () => {
    const id = randomUUID();
    await createBatch(h.db, { id });
    await addItems(h.db, id, [{ seq: 1, username: 'p' }]);
    await recordResult(h.db, id, 'p', { status: 'not_found', attempts: 1 });
    expect((await getBatchStatus(h.db, id))!.state).toBe('running');
    await sealBatch(h.db, id, { duplicates: 0, rejected: 0 });
    expect((await getBatchStatus(h.db, id))!.state).toBe('completed');
  });
});

describe('group commit', () => {
  const rows = async (sql: string, params: unknown[]) => {
    const c = new pg.Client({ connectionString: tdb.url });
    await c.connect();
    try {
      return (await c.query(sql, params)).rows;
    } finally {
      await c.end();
    }
  };

  it('records many results in one transaction: each once, counters per batch, one completion', async () => {
    const a = randomUUID();
    const b = randomUUID();
    for (const id of [a, b]) {
      await createBatch(h.db, { id });
      await addItems(h.db, id, [
        { seq: 1, username: 'u1' },
        { seq: 2, username: 'u2' },
        { seq: 3, username: 'u3' },
      ]);
      await sealBatch(h.db, id, { duplicates: 0, rejected: 0 });
    }
    // Already final before the group: must not move again.
    await recordResult(h.db, a, 'u3', { status: 'private', attempts: 1 });
    const at = new Date('2026-01-02T03:04:05Z');
    const log = (batchId: string, username: string) => (applied: boolean) => ({
      batchId,
      event: 'check',
      username,
      outcome: applied ? 'applied' : 'duplicate',
    });
    const out = await recordResults(h.db, [
      {
        batchId: a,
        username: 'u1',
        result: {
          status: 'active',
          storyCount: 3,
          userId: '9007199254740993',
          expiresAt: at,
          attempts: 1,
        },
        logEntry: log(a, 'u1'),
      },
      {
        batchId: a,
        username: 'u2',
        result: { status: 'none', attempts: 2 },
        logEntry: log(a, 'u2'),
      },
      // The same item twice in one group (a redelivered job): the first applies.
      {
        batchId: a,
        username: 'u2',
        result: { status: 'failed', error: 'x', attempts: 3 },
        logEntry: log(a, 'u2'),
      },
      {
        batchId: a,
        username: 'u3',
        result: { status: 'none', attempts: 1 },
        logEntry: log(a, 'u3'),
      },
      { batchId: b, username: 'u1', result: { status: 'not_found', attempts: 1 } },
      { batchId: a, username: 'nobody', result: { status: 'none', attempts: 1 } },
    ]);
    expect(out).toEqual([
      { applied: true, completedBatch: true },
      { applied: true, completedBatch: false },
      { applied: false, completedBatch: false },
      { applied: false, completedBatch: false },
      { applied: true, completedBatch: false },
      { applied: false, completedBatch: false },
    ]);
    const sa = (await getBatchStatus(h.db, a))!;
    expect(sa).toMatchObject({ state: 'completed', done: 3 });
    expect(sa.counts).toEqual({ active: 1, none: 1, private: 1, not_found: 0, failed: 0 });
    const sb = (await getBatchStatus(h.db, b))!;
    expect(sb).toMatchObject({ state: 'running', done: 1 });
    expect(sb.counts).toMatchObject({ not_found: 1 });
    const items = await rows(
      'SELECT username, status, story_count, user_id, expires_at, attempts FROM items WHERE batch_id = $1 ORDER BY seq',
      [a],
    );
    expect(items).toEqual([
      {
        username: 'u1',
        status: 'active',
        story_count: 3,
        user_id: '9007199254740993',
        expires_at: at,
        attempts: 1,
      },
      {
        username: 'u2',
        status: 'none',
        story_count: null,
        user_id: null,
        expires_at: null,
        attempts: 2,
      },
      {
        username: 'u3',
        status: 'private',
        story_count: null,
        user_id: null,
        expires_at: null,
        attempts: 1,
      },
    ]);
    const events = await rows(
      "SELECT event, username, outcome FROM batch_log WHERE batch_id = $1 AND event IN ('check', 'finished') ORDER BY id",
      [a],
    );
    expect(events).toEqual([
      { event: 'check', username: 'u1', outcome: 'applied' },
      { event: 'check', username: 'u2', outcome: 'applied' },
      { event: 'check', username: 'u2', outcome: 'duplicate' },
      { event: 'check', username: 'u3', outcome: 'duplicate' },
      { event: 'finished', username: null, outcome: null },
    ]);
  });

  it('ResultRecorder: concurrent records share transactions, and one bad entry fails alone', async () => {
    const id = randomUUID();
    const n = 300;
    await createBatch(h.db, { id });
    await addItems(
      h.db,
      id,
      Array.from({ length: n }, (_, i) => ({ seq: i, username: `r${i}` })),
    );
    await sealBatch(h.db, id, { duplicates: 0, rejected: 0 });
    const groups: number[] = [];
    const recorder = new ResultRecorder(h.db, {
      maxGroup: 100,
      onGroupError: (_e, size) => groups.push(size),
    });
    const record = (i: number) =>
      recorder.record({
        batchId: id,
        username: `r${i}`,
        result: { status: i % 2 ? 'none' : 'active', attempts: 1 },
        logEntry: () => ({ batchId: id, event: 'check', username: `r${i}` }),
      });
    // Queued in the middle of the second group: a log row of a batch that does not exist breaks
    // its group's transaction (foreign key); its 99 neighbours must still be recorded.
    const all = [
      ...Array.from({ length: 150 }, (_, i) => record(i)),
      recorder.record({
        batchId: id,
        username: 'r0',
        result: { status: 'none', attempts: 1 },
        logEntry: () => ({ batchId: 'no-such-batch', event: 'check', username: 'r0' }),
      }),
      ...Array.from({ length: n - 150 }, (_, i) => record(150 + i)),
    ];
    const settled = await Promise.allSettled(all);
    await recorder.drain();
    expect(recorder.pending).toBe(0);
    const rejected = settled.filter((s) => s.status === 'rejected');
    expect(rejected).toHaveLength(1);
    expect(settled[150]!.status).toBe('rejected');
    expect(groups).toEqual([100]); // the group holding the bad entry was retried one by one
    const outcomes = [...settled.slice(0, 150), ...settled.slice(151)].map(
      (s) => (s as PromiseFulfilledResult<{ applied: boolean; completedBatch: boolean }>).value,
    );
    expect(outcomes.every((o) => o.applied)).toBe(true);
    expect(outcomes.filter((o) => o.completedBatch)).toHaveLength(1);
    const st = (await getBatchStatus(h.db, id))!;
    expect(st).toMatchObject({ state: 'completed', done: n });
    expect(st.counts).toMatchObject({ active: n / 2, none: n / 2 });
    // Rows of one transaction share now(): far fewer transactions than results.
    const [tx] = await rows(
      "SELECT count(DISTINCT at)::int AS n FROM batch_log WHERE batch_id = $1 AND event = 'check'",
      [id],
    );
    expect(tx.n).toBeLessThan(n / 2);
  });
});

describe('retention', () => {
  it('deletes completed batches finished before the cutoff with their items and log, and old log rows', async () => {
    const old = randomUUID();
    const fresh = randomUUID();
    const unfinished = randomUUID();
    for (const id of [old, fresh, unfinished]) {
      await createBatch(h.db, { id });
      await addItems(h.db, id, [{ seq: 1, username: 'r' }]);
      await sealBatch(h.db, id, { duplicates: 0, rejected: 0 });
    }
    await recordResult(h.db, old, 'r', { status: 'none', attempts: 1 });
    await recordResult(h.db, fresh, 'r', { status: 'none', attempts: 1 });
    const c = new pg.Client({ connectionString: tdb.url });
    await c.connect();
    await c.query("UPDATE batches SET finished_at = now() - interval '40 days' WHERE id = $1", [
      old,
    ]);
    await c.query("UPDATE batches SET created_at = now() - interval '40 days' WHERE id = $1", [
      unfinished,
    ]);
    await c.query("UPDATE batch_log SET at = now() - interval '40 days' WHERE batch_id = $1", [
      unfinished,
    ]);
    const gone = await deleteOlderThan(h.db, new Date(Date.now() - 30 * 86_400_000));
    expect(gone.batches).toBe(1);
    expect(gone.logRows).toBeGreaterThan(0);
    const left = await c.query('SELECT id FROM batches WHERE id = ANY($1) ORDER BY id', [
      [old, fresh, unfinished],
    ]);
    expect(left.rows.map((r) => r.id).sort()).toEqual([fresh, unfinished].sort());
    const items = await c.query('SELECT count(*)::int AS n FROM items WHERE batch_id = $1', [old]);
    expect(items.rows[0].n).toBe(0);
    const logs = await c.query('SELECT count(*)::int AS n FROM batch_log WHERE batch_id = $1', [
      unfinished,
    ]);
    expect(logs.rows[0].n).toBe(0);
    await c.end();
  });
});
