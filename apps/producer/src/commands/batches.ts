import { once } from 'node:events';
import {
  appendBatchLog,
  getBatchStatus,
  pendingItems,
  streamBatchLog,
  type BatchLogRow,
} from '@storycheck/db';
import { CHECK_JOB, checkJobId } from '@storycheck/queue';
import { UsageError, type Context } from '../context.js';

async function write(s: string): Promise<void> {
  if (!process.stdout.write(s)) await once(process.stdout, 'drain');
}

function logJson(r: BatchLogRow): Record<string, unknown> {
  return {
    at: r.at.toISOString(),
    event: r.event,
    username: r.username,
    outcome: r.outcome,
    startedAt: r.startedAt?.toISOString() ?? null,
    finishedAt: r.finishedAt?.toISOString() ?? null,
    totalMs: r.totalMs,
    profileMs: r.profileMs,
    storiesMs: r.storiesMs,
    requests: r.requests,
    cacheHits: r.cacheHits,
    session: r.sessionLabel,
    proxy: r.proxyLabel,
    attempt: r.attempt,
    errorClass: r.errorClass,
    errorCode: r.errorCode,
    errorMessage: r.errorMessage,
    cause: r.cause,
    data: r.data,
  };
}

function logLine(r: BatchLogRow): string {
  const parts = [r.at.toISOString(), r.event.padEnd(10)];
  if (r.event !== 'check') {
    if (r.data) parts.push(JSON.stringify(r.data));
    return parts.join(' ');
  }
  parts.push(r.username ?? '-', r.outcome ?? '-');
  if (r.totalMs !== null) {
    parts.push(`${r.totalMs}ms (profile ${r.profileMs ?? '-'}ms, stories ${r.storiesMs ?? '-'}ms)`);
  }
  if (r.requests !== null) parts.push(`requests ${r.requests}`);
  if (r.cacheHits) parts.push(`cache hits ${r.cacheHits}`);
  if (r.attempt !== null) parts.push(`attempt ${r.attempt}`);
  if (r.sessionLabel) parts.push(`session ${r.sessionLabel}`);
  if (r.proxyLabel) parts.push(`proxy ${r.proxyLabel}`);
  if (r.errorCode) parts.push(`${r.errorClass ?? 'Error'}/${r.errorCode}: ${r.errorMessage ?? ''}`);
  return parts.join('  ');
}

/**
 * `storycheck batches log <batchId> [--errors] [--json]`: the batch log (created, started,
 * finished, reconciled; one row per check attempt with timings, labels and errors), streamed.
 */
export async function batchesLog(
  ctx: Context,
  batchId: string,
  opts: { errors?: boolean; json?: boolean },
): Promise<void> {
  if (!(await getBatchStatus(ctx.db.db, batchId))) throw new UsageError(`no batch ${batchId}`);
  let first = true;
  if (opts.json) await write('[');
  for await (const r of streamBatchLog(ctx.db.db, batchId, { errorsOnly: opts.errors ?? false })) {
    if (opts.json) await write(`${first ? '\n' : ',\n'}${JSON.stringify(logJson(r))}`);
    else await write(`${logLine(r)}\n`);
    first = false;
  }
  if (opts.json) await write(first ? ']\n' : '\n]\n');
}

/** What `batches reconcile` did. */
export interface ReconcileReport {
  batchId: string;
  pending: number;
  recreated: number;
  retried: number;
  sealed: boolean;
}

/** Pending items examined per round trip. */
const RECONCILE_PAGE = 1_000;

/**
 * `storycheck batches reconcile <batchId>`: for every item still pending in Postgres (the
 * truth), makes sure a job exists in Redis: a missing job is re-created, a job that ended in
 * the failed set while its item is still pending is replaced by a fresh one. Jobs that exist
 * and are waiting, delayed or active are left alone. Safe to run at any time, also while
 * workers run: a job re-created for an item that finishes meanwhile records nothing twice.
 */
export async function reconcile(
  ctx: Context,
  batchId: string,
  opts: { json?: boolean },
): Promise<ReconcileReport> {
  const status = await getBatchStatus(ctx.db.db, batchId);
  if (!status) throw new UsageError(`no batch ${batchId}`);
  const queue = ctx.queue;
  const client = ctx.redis;
  const failedKey = queue.toKey('failed');
  let pending = 0;
  let recreated = 0;
  let retried = 0;
  let afterSeq = -1;
  for (;;) {
    const page = await pendingItems(ctx.db.db, batchId, afterSeq, RECONCILE_PAGE);
    if (page.length === 0) break;
    afterSeq = page[page.length - 1]!.seq;
    pending += page.length;
    const ids = page.map((r) => checkJobId(batchId, r.username));
    const pipe = client.pipeline();
    for (const id of ids) {
      pipe.exists(queue.toKey(id));
      pipe.zscore(failedKey, id);
    }
    const answers = (await pipe.exec()) ?? [];
    const missing: string[] = [];
    for (let i = 0; i < page.length; i++) {
      const exists = answers[2 * i]?.[1] === 1;
      const failed = answers[2 * i + 1]?.[1] !== null && answers[2 * i + 1]?.[1] !== undefined;
      if (exists && failed) {
        await queue.remove(ids[i]!);
        retried++;
        missing.push(page[i]!.username);
      } else if (!exists) {
        recreated++;
        missing.push(page[i]!.username);
      }
    }
    if (missing.length) {
      await queue.addBulk(
        missing.map((username) => ({
          name: CHECK_JOB,
          data: { batchId, username },
          opts: { jobId: checkJobId(batchId, username) },
        })),
      );
    }
  }
  const report: ReconcileReport = {
    batchId,
    pending,
    recreated: recreated,
    retried,
    sealed: status.sealed,
  };
  await appendBatchLog(ctx.db.db, [
    { batchId, event: 'reconciled', data: { pending, recreated, retried } },
  ]);
  if (opts.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  else {
    process.stdout.write(
      `batch ${batchId}: ${pending} pending item${pending === 1 ? '' : 's'} checked, ${recreated} job${recreated === 1 ? '' : 's'} re-created, ${retried} failed job${retried === 1 ? '' : 's'} replaced\n`,
    );
  }
  if (!status.sealed) {
    process.stderr.write(
      `warning: batch ${batchId} is not sealed: its enqueue did not finish; run the same enqueue again with --batch-id ${batchId}\n`,
    );
  }
  return report;
}
