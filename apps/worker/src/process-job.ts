import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import { coerceError, redactString, type Logger } from '@storycheck/logger';
import type { BatchLogEntry, ResultRecorder } from '@storycheck/db';
import { parseCheckPayload, type CheckPayload } from '@storycheck/queue';
import { checkUsername, type CheckOutcome, type CheckingParts } from './checking.js';
import type { WorkerMetrics } from './metrics.js';
import type { KnownBatches } from './known-batches.js';
import { bestEffort } from './best-effort.js';
import { firstLine } from './dependencies.js';
import {
  DelayStreak,
  causeChain,
  decide,
  errorCode,
  infraErrorOf,
  putBackDelayMs,
  unknownBatchDelayMs,
  type Decision,
} from './outcomes.js';

/** At most one `dependency error; check put back …` line per this many ms. */
const PUT_BACK_LOG_EVERY_MS = 5_000;

/** What {@link JobProcessor} works with. */
export interface JobProcessorOptions {
  logger: Logger;
  recorder: ResultRecorder;
  batches: KnownBatches;
  /** What a check goes through (checking.ts). */
  parts: CheckingParts;
  metrics: WorkerMetrics;
  /** Aborted at the shutdown deadline. */
  signal: AbortSignal;
  /** Probes Redis and Postgres now: a job put back for their failure may mean one is down. */
  probeDependencies: () => void;
}

/** One job being processed: what its steps share. */
interface JobRun {
  job: Job<unknown>;
  token: string | undefined;
  batchId: string;
  username: string;
  log: Logger;
  attempt: number;
  maxAttempts: number;
  startedAt: Date;
}

/** The batch-log fields of a failed check, redacted. */
type FailureEntry = Omit<BatchLogEntry, 'outcome'> & {
  errorClass: string;
  errorCode: string;
  errorMessage: string;
};

/**
 * Processes the story-check jobs: parse the payload (jobs outlive the code that wrote them),
 * put the job back when its batch is not in this database, mark the batch started, check the
 * username upstream, then record the result exactly once (the item row and the batch counters
 * in one transaction) with a batch-log row of timings. A failure's fate is the outcome table's
 * ({@link decide}); a Redis or Postgres failure anywhere puts the job back without an attempt.
 */
export class JobProcessor {
  /** Delayed checks in a row in this process (the throttle backoff's k). */
  private readonly streak = new DelayStreak();
  private lastPutBackLogAt = 0;
  private putBackUnlogged = 0;

  constructor(private readonly o: JobProcessorOptions) {}

  /** BullMQ's processor function. */
  readonly process = async (job: Job<unknown>, token?: string): Promise<{ status: string }> => {
    try {
      return await this.processOnce(job, token);
    } catch (err) {
      if (err instanceof DelayedError || err instanceof UnrecoverableError) throw err;
      if (!infraErrorOf(err)) throw err;
      return this.putBack(job, token, err, putBackDelayMs(this.o.signal.aborted));
    }
  };

  private async processOnce(job: Job<unknown>, token?: string): Promise<{ status: string }> {
    const { batchId, username } = this.payloadOf(job);
    const log = this.o.logger.child({ batchId, jobId: job.id });
    if (!(await this.o.batches.known(batchId))) {
      await job.moveToDelayed(Date.now() + unknownBatchDelayMs(), token);
      throw new DelayedError();
    }
    await this.o.batches.markStarted(batchId, log);
    const run: JobRun = {
      ...{ job, token, batchId, username, log },
      attempt: job.attemptsMade + 1,
      maxAttempts: job.opts.attempts ?? 1,
      startedAt: new Date(),
    };
    let result: CheckOutcome;
    try {
      result = await checkUsername(this.o.parts, username, this.o.signal);
    } catch (err) {
      return this.onCheckError(run, err);
    }
    this.streak.reset();
    return this.recordChecked(run, result);
  }

  /** The job's payload; an invalid one fails the job for good (no retry can fix it). */
  private payloadOf(job: Job<unknown>): CheckPayload {
    try {
      return parseCheckPayload(job.data);
    } catch (e) {
      this.o.logger.error('job payload rejected', { jobId: job.id, error: coerceError(e).message });
      throw new UnrecoverableError(`invalid payload: ${coerceError(e).message}`);
    }
  }

  /** A check threw: do what the outcome table decides. */
  private async onCheckError(run: JobRun, err: unknown): Promise<{ status: string }> {
    const d = decide(err, {
      aborted: this.o.signal.aborted,
      attempt: run.attempt,
      maxAttempts: run.maxAttempts,
      streak: this.streak,
    });
    // Redis or Postgres failed, not the check: process() puts the job back.
    if (d.job === 'put_back') throw err;
    const { log, username } = run;
    const entry = failureEntry(run, err);
    if (d.job === 'delay') {
      log.warn('check delayed', { username, errorCode: errorCode(err), delayMs: d.delayMs });
      // The row only describes the delay; the job goes back whether or not it is written.
      await bestEffort(
        this.o.recorder.log([{ ...entry, outcome: 'delayed', data: { delayMs: d.delayMs } }]),
        log,
        'log a delayed check',
      );
      await run.job.moveToDelayed(Date.now() + d.delayMs, run.token);
      throw new DelayedError();
    }
    if (d.job === 'retry') {
      log.warn('check failed, will retry', {
        username,
        attempt: run.attempt,
        errorClass: entry.errorClass,
        errorCode: entry.errorCode,
        error: entry.errorMessage,
      });
      // The row only describes the retry; BullMQ retries whether or not it is written.
      await bestEffort(
        this.o.recorder.log([{ ...entry, outcome: 'retry' }]),
        log,
        'log a retried check',
      );
      throw err;
    }
    return this.recordFailed(run, d, entry);
  }

  /** `record_failed` / `fail`: the item is recorded `failed`; `fail` also fails the job. */
  private async recordFailed(
    run: JobRun,
    d: Decision,
    entry: FailureEntry,
  ): Promise<{ status: string }> {
    const { log, username, batchId } = run;
    const outcome = await this.o.recorder.record({
      batchId,
      username,
      result: { status: 'failed', attempts: run.attempt, error: entry.errorCode },
      logEntry: () => ({ ...entry, outcome: 'failed' }),
    });
    log.log(d.job === 'fail' ? 'error' : 'warn', 'check failed', {
      username,
      attempt: run.attempt,
      errorClass: entry.errorClass,
      errorCode: entry.errorCode,
      error: entry.errorMessage,
      cause: entry.cause,
    });
    this.o.metrics.checkFinished('failed', entry.totalMs ?? 0, false);
    if (outcome.completedBatch) await this.o.batches.logSummary(log, batchId);
    if (d.job === 'fail') throw new UnrecoverableError(`${entry.errorCode}: ${entry.errorMessage}`);
    return { status: 'failed' };
  }

  /** The check answered: record its result (once) and its batch-log row. */
  private async recordChecked(run: JobRun, result: CheckOutcome): Promise<{ status: string }> {
    const { log, username, batchId, startedAt: t0 } = run;
    const finishedAt = new Date();
    const outcome = await this.o.recorder.record({
      batchId,
      username,
      result: {
        status: result.status,
        storyCount: result.storyCount,
        latestStoryAt: result.latestStoryAt,
        expiresAt: result.expiresAt,
        userId: result.userId,
        attempts: run.attempt,
        cached: result.cached,
        checkedAt: result.checkedAt,
      },
      logEntry: (applied) => ({
        batchId,
        event: 'check',
        username,
        startedAt: t0,
        finishedAt,
        totalMs: result.timings?.total.durationMs ?? finishedAt.getTime() - t0.getTime(),
        profileMs: result.timings?.profile?.durationMs ?? null,
        storiesMs: result.timings?.stories?.durationMs ?? null,
        requests: result.requests,
        cacheHits: result.cacheHits,
        sessionLabel: result.sessionLabel,
        proxyLabel: result.proxyLabel,
        attempt: run.attempt,
        outcome: result.status,
        data: applied ? (result.cached ? { cached: true } : null) : { duplicateDelivery: true },
      }),
    });
    this.o.metrics.checkFinished(result.status, finishedAt.getTime() - t0.getTime(), result.cached);
    log.info('checked', {
      username,
      status: result.status,
      durationMs: finishedAt.getTime() - t0.getTime(),
      requests: result.requests,
      ...(result.cached ? { cached: true } : {}),
      ...(outcome.applied ? {} : { duplicate: true }),
    });
    if (outcome.completedBatch) await this.o.batches.logSummary(log, batchId);
    return { status: result.status };
  }

  /**
   * A Redis or Postgres failure inside a job: not the check's fault. The job goes back to the
   * queue without spending an attempt and nothing final is recorded; the dependencies are
   * probed now, so the worker pauses if one is down. When Redis itself refuses the move (full,
   * gone), the job stays active without a lock renewal and comes back when its lock expires
   * (a stall, not an attempt). At most one log line per {@link PUT_BACK_LOG_EVERY_MS}.
   */
  private async putBack(
    job: Job<unknown>,
    token: string | undefined,
    err: unknown,
    delayMs: number,
  ): Promise<never> {
    this.o.probeDependencies();
    const now = Date.now();
    if (now - this.lastPutBackLogAt >= PUT_BACK_LOG_EVERY_MS) {
      this.o.logger.warn('dependency error; check put back without spending an attempt', {
        jobId: job.id,
        kind: infraErrorOf(err),
        error: redactString(firstLine(err)),
        delayMs,
        ...(this.putBackUnlogged ? { alsoPutBack: this.putBackUnlogged } : {}),
      });
      this.lastPutBackLogAt = now;
      this.putBackUnlogged = 0;
    } else this.putBackUnlogged += 1;
    try {
      await job.moveToDelayed(Date.now() + delayMs, token);
    } catch (e) {
      this.o.logger.warn('could not put the job back; it returns when its lock expires', {
        jobId: job.id,
        error: redactString(firstLine(e)),
      });
    }
    throw new DelayedError();
  }
}

/** The batch-log fields of a check that threw `err` (message and causes redacted). */
function failureEntry(run: JobRun, err: unknown): FailureEntry {
  const finishedAt = new Date();
  return {
    batchId: run.batchId,
    event: 'check',
    username: run.username,
    startedAt: run.startedAt,
    finishedAt,
    totalMs: finishedAt.getTime() - run.startedAt.getTime(),
    attempt: run.attempt,
    errorClass: coerceError(err).name,
    errorCode: errorCode(err),
    errorMessage: redactString(coerceError(err).message ?? String(err)),
    cause: causeChain(err).map((c) => ({ ...c, message: redactString(c.message) })),
  };
}
