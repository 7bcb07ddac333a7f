import { and, asc, desc, eq, gt, inArray, or, sql, type SQL } from 'drizzle-orm';
import type { Db } from './client.js';
import {
  FINAL_STATUSES,
  type FinalStatus,
  type ResultRecord,
  type StoryResult,
} from '@storycheck/model';
import { batches, batchLog, items } from './schema.js';

/** A batch as `status --json` shows it (CONTRACT.md). */
export interface BatchStatus {
  batchId: string;
  name: string | null;
  state: 'queued' | 'running' | 'completed';
  total: number;
  done: number;
  counts: Record<FinalStatus, number>;
  duplicates: number;
  rejected: number;
  sealed: boolean;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

/** Creates a batch row (state `queued`, unsealed) and its `created` log event. */
export async function createBatch(
  db: Db,
  batch: { id: string; name?: string | null },
): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.insert(batches).values({ id: batch.id, name: batch.name ?? null });
    await tx
      .insert(batchLog)
      .values({ batchId: batch.id, event: 'created', data: { name: batch.name ?? null } });
  });
}

/** True when a batch with this id exists. */
export async function batchExists(db: Db, batchId: string): Promise<boolean> {
  const rows = await db.select({ id: batches.id }).from(batches).where(eq(batches.id, batchId));
  return rows.length > 0;
}

/**
 * Inserts items in one multi-row statement; names already in the batch (or repeated within
 * `rows`) are skipped. Returns the rows actually inserted, whose jobs the caller must add
 * next — after this returns, so every job's row exists first (DESIGN.md invariant 1). The
 * batch total moves in the same transaction.
 */
export async function addItems(
  db: Db,
  batchId: string,
  rows: ReadonlyArray<{ seq: number; username: string }>,
): Promise<Array<{ seq: number; username: string }>> {
  if (rows.length === 0) return [];
  // unnest() of two arrays: one statement with three parameters whatever the chunk size,
  // far cheaper to build and parse than a VALUES list of thousands of tuples.
  const seqs = rows.map((r) => r.seq);
  const names = rows.map((r) => r.username);
  return db.transaction(async (tx) => {
    const res = await tx.execute<{ seq: number; username: string }>(sql`
      INSERT INTO items (batch_id, seq, username)
      SELECT ${batchId}, s, u FROM unnest(${sql.param(seqs)}::bigint[], ${sql.param(names)}::text[]) AS t(s, u)
      ON CONFLICT (batch_id, username) DO NOTHING
      RETURNING seq, username`);
    const inserted = res.rows;
    if (inserted.length) {
      await tx.execute(sql`
        UPDATE batches SET
          total = total + ${inserted.length},
          state = CASE WHEN state = 'completed' THEN 'running' ELSE state END,
          finished_at = CASE WHEN state = 'completed' THEN NULL ELSE finished_at END
        WHERE id = ${batchId}`);
    }
    return inserted.map((r) => ({ seq: Number(r.seq), username: r.username }));
  });
}

/**
 * Marks the producer's work on a batch as finished: adds the duplicate and rejected counts
 * and, when every item is already final, completes the batch. Until sealed, a batch cannot
 * complete (workers may finish the first chunk before the last one is written).
 */
export async function sealBatch(
  db: Db,
  batchId: string,
  counts: { duplicates: number; rejected: number },
): Promise<void> {
  await db.execute(sql`
    UPDATE batches SET
      sealed = true,
      duplicates = duplicates + ${counts.duplicates},
      rejected = rejected + ${counts.rejected},
      state = CASE WHEN done >= total THEN 'completed' ELSE state END,
      finished_at = CASE WHEN done >= total THEN coalesce(finished_at, now()) ELSE finished_at END
    WHERE id = ${batchId}`);
}

/**
 * Moves a batch from `queued` to `running` and logs `started`, once: returns true only for the
 * call that made the move.
 */
export async function markBatchStarted(db: Db, batchId: string): Promise<boolean> {
  return db.transaction(async (tx) => {
    const moved = await tx
      .update(batches)
      .set({ state: 'running', startedAt: sql`now()` })
      .where(and(eq(batches.id, batchId), eq(batches.state, 'queued')))
      .returning({ id: batches.id });
    if (moved.length) await tx.insert(batchLog).values({ batchId, event: 'started' });
    return moved.length > 0;
  });
}

/**
 * An item's final result as the row stores it: the result record (`StoryResult` of
 * packages/model; a field left out is stored as null, `checkedAt` as now) with a final status,
 * plus the job's facts the record does not hold — attempts, whether the answer was cached, the
 * error code of a `failed` item. The worker passes its check outcome as it is.
 */
export type ItemResult = Partial<Omit<StoryResult, 'status'>> & {
  status: FinalStatus;
  /** Attempts spent (1 for a first-try answer). */
  attempts: number;
  cached?: boolean;
  /** Stable error code, for `failed`. */
  error?: string | null;
};

/** What {@link recordResult} did. */
export interface RecordOutcome {
  /** True when this call moved the item to its final state (false: it already was final). */
  applied: boolean;
  /** True when this call completed the batch. */
  completedBatch: boolean;
}

/** One item's result for {@link recordResults}. */
export interface ResultEntry {
  batchId: string;
  username: string;
  result: ItemResult;
  /** Batch-log row of this check, written in the same transaction (before `finished`). */
  logEntry?: ((applied: boolean) => BatchLogEntry) | undefined;
}

/**
 * Records an item's final result, exactly once (DESIGN.md invariant 2): the row moves from
 * `pending` to its final status and the batch counters move in the same transaction, only if
 * the row was still pending. A job run twice finds the row final and changes nothing.
 */
export async function recordResult(
  db: Db,
  batchId: string,
  username: string,
  result: ItemResult,
  /** Batch-log row of this check, written in the same transaction (before `finished`). */
  logEntry?: (applied: boolean) => BatchLogEntry,
): Promise<RecordOutcome> {
  const [outcome] = await recordResults(db, [{ batchId, username, result, logEntry }]);
  return outcome!;
}

/**
 * Records many items' final results in ONE transaction of a fixed number of statements
 * (whatever the count): one UPDATE of the items over unnest()ed arrays that only touches rows
 * still `pending`, one counter UPDATE per batch (in batch-id order, so concurrent writers
 * never deadlock on batch rows), one INSERT of the log rows. Same exactly-once rule as
 * {@link recordResult}: a row already final (or named twice in `entries`) is not applied again
 * and moves no counter. Outcomes come back in the order of `entries`. This is what lets a
 * worker commit (and fsync) once per group of checks instead of once per check.
 *
 * A little over 80 lines, on purpose: the three statements must run in one transaction over
 * arrays built together, and reading them in one place is what shows the exactly-once rule.
 */
// eslint-disable-next-line max-lines-per-function -- the reason is in the comment above
export async function recordResults(
  db: Db,
  entries: readonly ResultEntry[],
): Promise<RecordOutcome[]> {
  if (entries.length === 0) return [];
  const key = (b: string, u: string) => `${b}\u0000${u}`;
  // The first entry of a (batch, username) is the one that may apply; repeats are duplicates.
  const firstIndex = new Map<string, number>();
  entries.forEach((e, i) => {
    const k = key(e.batchId, e.username);
    if (!firstIndex.has(k)) firstIndex.set(k, i);
  });
  const unique = [...firstIndex.values()].map((i) => entries[i]!);
  const col = <T>(f: (r: ItemResult) => T) => sql.param(unique.map((e) => f(e.result)));
  return db.transaction(async (tx) => {
    const res = await tx.execute<{ batch_id: string; username: string; status: FinalStatus }>(sql`
      UPDATE items AS i SET
        status = v.status,
        story_count = v.story_count,
        latest_story_at = v.latest_story_at,
        expires_at = v.expires_at,
        user_id = v.user_id,
        attempts = v.attempts,
        cached = v.cached,
        error = v.error,
        checked_at = coalesce(v.checked_at, now())
      FROM unnest(
        ${sql.param(unique.map((e) => e.batchId))}::text[],
        ${sql.param(unique.map((e) => e.username))}::text[],
        ${col((r) => r.status)}::text[],
        ${col((r) => r.storyCount ?? null)}::int[],
        ${col((r) => r.latestStoryAt ?? null)}::timestamptz[],
        ${col((r) => r.expiresAt ?? null)}::timestamptz[],
        ${col((r) => r.userId ?? null)}::text[],
        ${col((r) => r.attempts)}::int[],
        ${col((r) => r.cached ?? false)}::bool[],
        ${col((r) => r.error ?? null)}::text[],
        ${col((r) => r.checkedAt ?? null)}::timestamptz[]
      ) AS v(batch_id, username, status, story_count, latest_story_at, expires_at, user_id,
             attempts, cached, error, checked_at)
      WHERE i.batch_id = v.batch_id AND i.username = v.username AND i.status = 'pending'
      RETURNING i.batch_id, i.username, i.status`);
    const applied = new Set(res.rows.map((r) => key(r.batch_id, r.username)));
    // Per batch: how many items reached each final state in this transaction.
    const moved = new Map<string, Record<FinalStatus, number>>();
    for (const r of res.rows) {
      let c = moved.get(r.batch_id);
      if (!c) {
        c = Object.fromEntries(FINAL_STATUSES.map((st) => [st, 0])) as Record<FinalStatus, number>;
        moved.set(r.batch_id, c);
      }
      c[r.status] += 1;
    }
    const completed = new Set<string>();
    for (const batchId of [...moved.keys()].sort()) {
      const c = moved.get(batchId)!;
      const n = FINAL_STATUSES.reduce((sum, st) => sum + c[st], 0);
      const r = await tx.execute<{ completed: boolean }>(sql`
        UPDATE batches SET
          done = done + ${n},
          count_active = count_active + ${c.active},
          count_none = count_none + ${c.none},
          count_private = count_private + ${c.private},
          count_not_found = count_not_found + ${c.not_found},
          count_failed = count_failed + ${c.failed},
          started_at = coalesce(started_at, now()),
          state = CASE WHEN sealed AND done + ${n} >= total THEN 'completed' ELSE 'running' END,
          finished_at = CASE WHEN sealed AND done + ${n} >= total THEN now() ELSE NULL END
        WHERE id = ${batchId}
        RETURNING (state = 'completed') AS completed`);
      if (r.rows[0]?.completed === true) completed.add(batchId);
    }
    // A batch completes once: the first applied entry of a completed batch reports it.
    const reported = new Set<string>();
    const outcomes = entries.map((e, i) => {
      const k = key(e.batchId, e.username);
      const applies = firstIndex.get(k) === i && applied.has(k);
      const completes = applies && completed.has(e.batchId) && !reported.has(e.batchId);
      if (completes) reported.add(e.batchId);
      return { applied: applies, completedBatch: completes };
    });
    const log: BatchLogEntry[] = [];
    entries.forEach((e, i) => {
      if (e.logEntry) log.push(e.logEntry(outcomes[i]!.applied));
    });
    for (const batchId of [...completed].sort()) log.push({ batchId, event: 'finished' });
    if (log.length) await tx.insert(batchLog).values(log);
    return outcomes;
  });
}

/** Reads a batch's status, or null when there is no such batch. */
export async function getBatchStatus(db: Db, batchId: string): Promise<BatchStatus | null> {
  const [b] = await db.select().from(batches).where(eq(batches.id, batchId));
  return b ? toStatus(b) : null;
}

/** The most recent batches, newest first (`limit`, default 20). */
export async function listBatches(db: Db, limit = 20): Promise<BatchStatus[]> {
  const rows = await db.select().from(batches).orderBy(desc(batches.createdAt)).limit(limit);
  return rows.map(toStatus);
}

function toStatus(b: typeof batches.$inferSelect): BatchStatus {
  return {
    batchId: b.id,
    name: b.name,
    state: b.state as BatchStatus['state'],
    total: b.total,
    done: b.done,
    counts: {
      active: b.countActive,
      none: b.countNone,
      private: b.countPrivate,
      not_found: b.countNotFound,
      failed: b.countFailed,
    },
    duplicates: b.duplicates,
    rejected: b.rejected,
    sealed: b.sealed,
    createdAt: b.createdAt.toISOString(),
    startedAt: b.startedAt?.toISOString() ?? null,
    finishedAt: b.finishedAt?.toISOString() ?? null,
  };
}

/**
 * Streams a batch's items in input order, `pageSize` rows per query (keyset pagination on
 * (seq, id), so a million rows never sit in memory at once).
 */
export async function* streamResults(
  db: Db,
  batchId: string,
  pageSize = 5_000,
): AsyncGenerator<ResultRecord> {
  let cursor: { seq: number; id: number } | null = null;
  for (;;) {
    const where: SQL | undefined = cursor
      ? and(
          eq(items.batchId, batchId),
          or(gt(items.seq, cursor.seq), and(eq(items.seq, cursor.seq), gt(items.id, cursor.id))),
        )
      : eq(items.batchId, batchId);
    const rows: Array<typeof items.$inferSelect> = await db
      .select()
      .from(items)
      .where(where)
      .orderBy(asc(items.seq), asc(items.id))
      .limit(pageSize);
    for (const r of rows) {
      yield resultRecordOf(r);
    }
    if (rows.length < pageSize) return;
    const last: typeof items.$inferSelect = rows[rows.length - 1]!;
    cursor = { seq: last.seq, id: last.id };
  }
}

/** An item row as a result record (`results`, the board's batch page). */
export function resultRecordOf(r: typeof items.$inferSelect): ResultRecord {
  return {
    username: r.username,
    status: r.status as ResultRecord['status'],
    storyCount: r.storyCount,
    latestStoryAt: r.latestStoryAt?.toISOString() ?? null,
    expiresAt: r.expiresAt?.toISOString() ?? null,
    userId: r.userId,
    checkedAt: r.checkedAt?.toISOString() ?? null,
    attempts: r.attempts,
    cached: r.cached,
    error: r.error,
  };
}

/** One batch-log row to append (a check attempt or a batch event). */
export type BatchLogEntry = typeof batchLog.$inferInsert;

/** Appends rows to the batch log in one statement. */
export async function appendBatchLog(db: Db, entries: BatchLogEntry[]): Promise<void> {
  if (entries.length) await db.insert(batchLog).values(entries);
}

/** Pending items of a batch after `afterSeq`, in input order (`limit` rows), for re-enqueueing. */
export async function pendingItems(
  db: Db,
  batchId: string,
  afterSeq: number,
  limit: number,
): Promise<Array<{ seq: number; username: string }>> {
  return db
    .select({ seq: items.seq, username: items.username })
    .from(items)
    .where(and(eq(items.batchId, batchId), eq(items.status, 'pending'), gt(items.seq, afterSeq)))
    .orderBy(asc(items.seq))
    .limit(limit);
}

/**
 * Which of `usernames` are still pending in the batch: when an interrupted enqueue is run
 * again, their jobs are added again (a job still in Redis makes that a no-op).
 */
export async function pendingAmong(
  db: Db,
  batchId: string,
  usernames: string[],
): Promise<string[]> {
  if (usernames.length === 0) return [];
  const rows = await db
    .select({ username: items.username })
    .from(items)
    .where(
      and(
        eq(items.batchId, batchId),
        eq(items.status, 'pending'),
        inArray(items.username, usernames),
      ),
    );
  return rows.map((r) => r.username);
}

/** A batch-log row as `batches log` shows it. */
export type BatchLogRow = typeof batchLog.$inferSelect;

/**
 * Streams a batch's log in order of writing, `pageSize` rows per query. With `errorsOnly`,
 * only check rows that carry an error (retries, delays and failures).
 */
export async function* streamBatchLog(
  db: Db,
  batchId: string,
  opts: { errorsOnly?: boolean; pageSize?: number } = {},
): AsyncGenerator<BatchLogRow> {
  const pageSize = opts.pageSize ?? 5_000;
  let after = 0;
  for (;;) {
    const where = and(
      eq(batchLog.batchId, batchId),
      gt(batchLog.id, after),
      opts.errorsOnly ? sql`${batchLog.errorCode} IS NOT NULL` : undefined,
    );
    const rows: BatchLogRow[] = await db
      .select()
      .from(batchLog)
      .where(where)
      .orderBy(asc(batchLog.id))
      .limit(pageSize);
    yield* rows;
    if (rows.length < pageSize) return;
    after = rows[rows.length - 1]!.id;
  }
}

/**
 * Retention: deletes batch-log rows written before `cutoff`, and completed batches (with their
 * items and log, by cascade) finished before it. Returns how many of each went.
 */
export async function deleteOlderThan(
  db: Db,
  cutoff: Date,
): Promise<{ batches: number; logRows: number }> {
  return db.transaction(async (tx) => {
    const gone = await tx
      .delete(batches)
      .where(
        and(eq(batches.state, 'completed'), sql`${batches.finishedAt} < ${cutoff.toISOString()}`),
      )
      .returning({ id: batches.id });
    const logs = await tx.execute(sql`DELETE FROM batch_log WHERE at < ${cutoff.toISOString()}`);
    return { batches: gone.length, logRows: logs.rowCount ?? 0 };
  });
}
