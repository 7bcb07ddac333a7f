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
