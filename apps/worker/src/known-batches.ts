import type { Logger } from '@storycheck/logger';
import { getBatchStatus, markBatchStarted, type Db } from '@storycheck/db';
import { bestEffort } from './best-effort.js';
import { UNKNOWN_BATCH_RECHECK_MS } from './outcomes.js';

/**
 * The batches this worker has seen. A worker whose DATABASE_URL points at another database than
 * the producer's can never record a result: it must not spend upstream budget, so a job's batch
 * is looked up first. Known batches are remembered; an unknown one is looked up again at most
 * every {@link UNKNOWN_BATCH_RECHECK_MS}, and logged once.
 */
export class KnownBatches {
  private readonly started = new Set<string>();
  /** Batches not in this database, with when that was last looked up (ms). */
  private readonly unknown = new Map<string, number>();
  /** Lookups in flight: concurrent jobs of one batch share one (and one log line). */
  private readonly lookingUp = new Map<string, Promise<boolean>>();

  constructor(
    private readonly db: Db,
    private readonly logger: Logger,
  ) {}

  /** Is the batch in this database? */
  async known(batchId: string): Promise<boolean> {
    if (this.started.has(batchId)) return true;
    const seen = this.unknown.get(batchId);
    if (seen !== undefined && Date.now() - seen < UNKNOWN_BATCH_RECHECK_MS) return false;
    let p = this.lookingUp.get(batchId);
    if (!p) {
      p = this.lookUp(batchId, seen === undefined).finally(() => this.lookingUp.delete(batchId));
      this.lookingUp.set(batchId, p);
    }
    return p;
  }

  /** Marks the batch started (once per process; logs `batch started` when this set it). */
  async markStarted(batchId: string, log: Logger): Promise<void> {
    if (this.started.has(batchId)) return;
    if (await markBatchStarted(this.db, batchId)) log.info('batch started');
    this.started.add(batchId);
  }

  /** One line per finished batch: its counts and how long it ran. */
  async logSummary(log: Logger, batchId: string): Promise<void> {
    // The result is committed already; a summary line that cannot be read is only missing.
    const st = await bestEffort(getBatchStatus(this.db, batchId), log, 'read the batch summary');
    if (!st) return;
    const secs =
      st.startedAt && st.finishedAt
        ? (Date.parse(st.finishedAt) - Date.parse(st.startedAt)) / 1000
        : null;
    log.info('batch completed', { total: st.total, ...st.counts, durationSecs: secs });
  }

  private async lookUp(batchId: string, firstTime: boolean): Promise<boolean> {
    const found = (await getBatchStatus(this.db, batchId)) !== null;
    if (found) this.unknown.delete(batchId);
    else {
      if (firstTime)
        this.logger.error(
          `batch ${batchId} not in this database (DATABASE_URL points elsewhere?); its jobs are put back, no upstream request is made`,
          { batchId },
        );
      this.unknown.set(batchId, Date.now());
    }
    return found;
  }
}
