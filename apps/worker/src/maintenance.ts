import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '@storycheck/logger';
import { deleteOlderThan, type Db } from '@storycheck/db';
import {
  MAINTENANCE_QUEUE,
  RETENTION_EVERY_MS,
  RETENTION_JOB,
  queuePrefix,
} from '@storycheck/queue';

/** The maintenance side of a worker process; `close()` stops it. */
export interface Maintenance {
  queue: Queue;
  worker: Worker;
  close(): Promise<void>;
}

/**
 * Schedules the retention job (a BullMQ job scheduler: every worker upserts the same one, so the
 * fleet runs it once per RETENTION_EVERY_MS) and consumes the maintenance queue one job at a
 * time. Retention deletes completed batches finished more than `retentionMs` ago (their items
 * and log go by cascade) and batch-log rows older than that.
 */
export async function startMaintenance(opts: {
  connection: Redis;
  prefix: string;
  db: Db;
  retentionMs: number;
  logger: Logger;
}): Promise<Maintenance> {
  const { connection, prefix, db, retentionMs, logger } = opts;
  const queue = new Queue(MAINTENANCE_QUEUE, { connection, prefix: queuePrefix(prefix) });
  // Every BullMQ Queue/Worker needs an 'error' listener: without one BullMQ prints the raw error
  // (a multi-line stack, not a JSON log line) on every reconnect attempt during a Redis outage.
  let lastErrorAt = 0;
  const onError = (e: Error): void => {
    if (Date.now() - lastErrorAt < 5_000) return;
    lastErrorAt = Date.now();
    logger.warn('maintenance queue error', {
      error: (e.message.split('\n')[0] ?? '').slice(0, 300),
    });
  };
  queue.on('error', onError);
  await queue.upsertJobScheduler(
    RETENTION_JOB,
    { every: RETENTION_EVERY_MS },
    { name: RETENTION_JOB, opts: { removeOnComplete: 24, removeOnFail: 24 } },
  );
  const worker = new Worker(
    MAINTENANCE_QUEUE,
    async (job) => {
      if (job.name !== RETENTION_JOB) return { skipped: job.name };
      const cutoff = new Date(Date.now() - retentionMs);
      const gone = await deleteOlderThan(db, cutoff);
      if (gone.batches || gone.logRows)
        logger.info('retention', { cutoff: cutoff.toISOString(), ...gone });
      return gone;
    },
    { connection, prefix: queuePrefix(prefix), concurrency: 1 },
  );
  worker.on('error', onError);
  return {
    queue,
    worker,
    async close() {
      await worker.close();
      await queue.close();
    },
  };
}
