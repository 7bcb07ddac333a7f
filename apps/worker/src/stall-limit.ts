import type { Job } from 'bullmq';
import type { ResultRecorder } from '@storycheck/db';
import type { Logger } from '@storycheck/logger';
import { CHECK_ATTEMPTS, parseCheckPayload } from '@storycheck/queue';

/**
 * The reason BullMQ gives a job that stalled (its worker died or froze past the lock) more
 * often than the worker's `maxStalledCount`. BullMQ 6 marks such a job on the stall and fails
 * it, without running the processor, the next time a worker takes it.
 */
export const STALL_LIMIT_REASON = 'job stalled more than allowable limit';

/**
 * Why an item was recorded `failed` after its job stalled past the limit on every attempt
 * ({@link handleStallLimit}): code `stalled`. Named in the item's row and the batch log.
 */
export class StalledJobError extends Error {
  override name = 'StalledJobError';
  readonly code = 'stalled';
  constructor() {
    super(`${STALL_LIMIT_REASON} on every attempt`);
  }
}

/** True when `err` is BullMQ's stall-limit failure ({@link STALL_LIMIT_REASON}). */
export function isStallLimitFailure(err: Error | undefined): boolean {
  return err?.message === STALL_LIMIT_REASON;
}

/**
 * What the worker does with a check job BullMQ failed for stalling too often, so that the item
 * is never left pending with no job (kill -9 at any moment loses nothing: docs/architecture.md).
 *
 * A stall is a worker's death or freeze, not the check's fault: the job goes back to the queue
 * (`job.retry`; BullMQ counted one attempt for the failure). Only when every attempt is spent
 * — the job stalled past the limit CHECK_ATTEMPTS times, i.e. it looks like it kills the
 * workers that take it — is the item recorded as failed with error `stalled`, exactly once,
 * so the batch still finishes with exact counters.
 *
 * Returns what was done; never throws (a Redis or Postgres error is logged; the item then
 * waits for `batches reconcile`, as before).
 */
export async function handleStallLimit(
  job: Job<unknown>,
  deps: { recorder: ResultRecorder; logger: Logger },
): Promise<'requeued' | 'recorded' | 'ignored'> {
  const { recorder, logger } = deps;
  let payload;
  try {
    payload = parseCheckPayload(job.data);
  } catch {
    return 'ignored';
  }
  const { batchId, username } = payload;
  try {
    if (job.attemptsMade < (job.opts.attempts ?? CHECK_ATTEMPTS)) {
      await job.retry('failed');
      logger.warn('job stalled past the limit; put back', {
        batchId,
        jobId: job.id,
        username,
        attemptsMade: job.attemptsMade,
      });
      return 'requeued';
    }
    const at = new Date();
    const err = new StalledJobError();
    await recorder.record({
      batchId,
      username,
      result: { status: 'failed', attempts: job.attemptsMade, error: err.code },
      logEntry: () => ({
        batchId,
        event: 'check',
        username,
        startedAt: at,
        finishedAt: at,
        totalMs: 0,
        attempt: job.attemptsMade,
        errorClass: err.name,
        errorCode: err.code,
        errorMessage: err.message,
        outcome: 'failed',
      }),
    });
    logger.error('check failed', {
      batchId,
      jobId: job.id,
      username,
      errorClass: err.name,
      errorCode: err.code,
      error: err.message,
    });
    return 'recorded';
  } catch (e) {
    logger.error('stalled job not handled; batches reconcile re-creates it', {
      batchId,
      jobId: job.id,
      error: e instanceof Error ? e.message.split('\n')[0] : String(e),
    });
    return 'ignored';
  }
}
