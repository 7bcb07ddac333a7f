import { and, asc, desc, eq, sql } from 'drizzle-orm';
import type { ResultRecord } from '@storycheck/model';
import type { Db } from './client.js';
import { batchLog, items } from './schema.js';
import { resultRecordOf } from './batches.js';

/**
 * Read-only queries behind the board's page for one batch: checks finished per time bucket,
 * failures grouped by error code, the log's error rows, and one page of items filtered by
 * status. Each is one bounded query on the batch's indexes.
 */

/** Checks that finished in one time bucket (`at` = bucket start, epoch ms). */
export interface ThroughputBucket {
  at: number;
  checks: number;
  failed: number;
}

/**
 * Items checked per `bucketMs` bucket, from the items' `checked_at` (a result's time), oldest
 * first; empty buckets are left out (the caller draws them as 0).
 */
export async function batchThroughput(
  db: Db,
  batchId: string,
  bucketMs: number,
): Promise<ThroughputBucket[]> {
  const bucketS = Math.max(0.001, bucketMs / 1_000);
  const rows = await db.execute<{ b: string; checks: number; failed: number }>(sql`
    SELECT floor(extract(epoch FROM ${items.checkedAt}) / ${bucketS})::bigint AS b,
           count(*)::int AS checks,
           count(*) FILTER (WHERE ${items.status} = 'failed')::int AS failed
      FROM ${items}
     WHERE ${items.batchId} = ${batchId} AND ${items.checkedAt} IS NOT NULL
     GROUP BY 1 ORDER BY 1`);
  return rows.rows.map((r) => ({
    at: Math.round(Number(r.b) * bucketS * 1_000),
    checks: Number(r.checks),
    failed: Number(r.failed),
  }));
}

/** Failed items sharing one error code. */
export interface FailureGroup {
  /** Stable error code (null when a failed item has none). */
  code: string | null;
  count: number;
  /** Up to `examples` usernames, in input order. */
  usernames: string[];
  /** The latest log message seen with this code, or null. Redacted, but not HTML-safe. */
  message: string | null;
}

/** Failed items grouped by error code, largest group first, with example names and a message. */
export async function batchFailures(
  db: Db,
  batchId: string,
  examples = 5,
): Promise<FailureGroup[]> {
  const rows = await db.execute<{ code: string | null; n: number; names: string[] }>(sql`
    SELECT ${items.error} AS code, count(*)::int AS n,
           (array_agg(${items.username} ORDER BY ${items.seq}))[1:${examples}] AS names
      FROM ${items}
     WHERE ${items.batchId} = ${batchId} AND ${items.status} = 'failed'
     GROUP BY 1 ORDER BY 2 DESC, 1`);
  const msgs = await db.execute<{ code: string; message: string | null }>(sql`
    SELECT DISTINCT ON (${batchLog.errorCode}) ${batchLog.errorCode} AS code,
           ${batchLog.errorMessage} AS message
      FROM ${batchLog}
     WHERE ${batchLog.batchId} = ${batchId} AND ${batchLog.errorCode} IS NOT NULL
     ORDER BY ${batchLog.errorCode}, ${batchLog.id} DESC`);
  const byCode = new Map(msgs.rows.map((m) => [m.code, m.message]));
  return rows.rows.map((r) => ({
    code: r.code,
    count: Number(r.n),
    usernames: r.names ?? [],
    message: r.code === null ? null : (byCode.get(r.code) ?? null),
  }));
}

/** A batch-log row with an error: a retry, a delay or a final failure. */
export interface LogError {
  at: string;
  username: string | null;
  attempt: number | null;
  outcome: string | null;
  errorClass: string | null;
  errorCode: string | null;
  /** Redacted, but not HTML-safe. */
  errorMessage: string | null;
  sessionLabel: string | null;
  proxyLabel: string | null;
}

/** The newest `limit` error rows of the batch log, newest first, and how many there are. */
export async function batchLogErrors(
  db: Db,
  batchId: string,
  limit = 50,
): Promise<{ total: number; rows: LogError[] }> {
  const where = and(eq(batchLog.batchId, batchId), sql`${batchLog.errorCode} IS NOT NULL`);
  const [count] = await db
    .select({ n: sql<number>`count(*)::int` })
    .from(batchLog)
    .where(where);
  const rows = await db
    .select({
      at: batchLog.at,
      username: batchLog.username,
      attempt: batchLog.attempt,
      outcome: batchLog.outcome,
      errorClass: batchLog.errorClass,
      errorCode: batchLog.errorCode,
      errorMessage: batchLog.errorMessage,
      sessionLabel: batchLog.sessionLabel,
      proxyLabel: batchLog.proxyLabel,
    })
    .from(batchLog)
    .where(where)
    .orderBy(desc(batchLog.id))
    .limit(limit);
  return {
    total: Number(count?.n ?? 0),
    rows: rows.map((r) => ({ ...r, at: r.at.toISOString() })),
  };
}

/**
 * One page of a batch's items in input order, optionally only those with `status` (`pending`
 * or a final status); `offset` rows skipped. Returns the page and the number of matching items.
 */
export async function batchItemsPage(
  db: Db,
  batchId: string,
  opts: { status?: string | undefined; offset: number; limit: number },
): Promise<{ total: number; rows: ResultRecord[] }> {
  const where = and(
    eq(items.batchId, batchId),
    opts.status === undefined ? undefined : eq(items.status, opts.status),
  );
  const [count] = await db
    .select({ n: sql<number>`count(*)::int` })
    .from(items)
    .where(where);
  const rows = await db
    .select()
    .from(items)
    .where(where)
    .orderBy(asc(items.seq), asc(items.id))
    .offset(opts.offset)
    .limit(opts.limit);
  return {
    total: Number(count?.n ?? 0),
    rows: rows.map(resultRecordOf),
  };
}
