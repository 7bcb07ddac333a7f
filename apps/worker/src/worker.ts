import { DelayedError, Worker, type Job } from 'bullmq';
import type { Config } from '@storycheck/config';
import { redactString, type Logger } from '@storycheck/logger';
import { openDb } from '@storycheck/db';
import { STORY_CHECK_QUEUE, createRedis, queuePrefix, type CheckPayload } from '@storycheck/queue';
import { startHealthServer, type HealthServer } from './health.js';
import { handleStallLimit, isStallLimitFailure } from './stall-limit.js';
import { startWatchdog, type Watchdog } from './watchdog.js';
import { infraDependencyOf } from './outcomes.js';
import { firstLine } from './dependencies.js';
import { startMaintenance } from './maintenance.js';
import { bestEffort } from './best-effort.js';
import { openWorkerParts, type WorkerConnections, type WorkerParts } from './setup.js';
import { JobProcessor } from './process-job.js';
import { KnownBatches } from './known-batches.js';

/** A running worker process's moving parts, and how to stop them. */
export interface RunningWorker {
  worker: Worker<CheckPayload>;
  /**
   * Stops fetching jobs, waits up to `timeoutMs` (default WORKER_SHUTDOWN_TIMEOUT) for in-flight
   * jobs, then aborts their requests and puts them back (no attempt spent), and closes every
   * connection. Safe to call twice; the second call forces.
   */
  close(timeoutMs?: number): Promise<void>;
  /** URL of the health/metrics server (WORKER_HTTP_PORT), if it runs. */
  httpUrl?: string | undefined;
}

/** Options of {@link startWorker}. */
export interface StartWorkerOptions {
  config: Config;
  logger: Logger;
  /** Worker name shown in bull-board and logs. Default `worker-<pid>`. */
  name?: string;
  /** The watchdog saw the worker stall (jobs waiting, none taken): the process should exit 1. */
  onStall?: (reason: string) => void;
}

/**
 * Starts a BullMQ worker on the story-check queue (process-job.ts: what each job goes through;
 * setup.ts: the parts it runs on). Failures follow the table in outcomes.ts.
 */
export async function startWorker(opts: StartWorkerOptions): Promise<RunningWorker> {
  const { config, logger } = opts;
  const name = opts.name ?? `worker-${process.pid}`;
  const conns: WorkerConnections = {
    db: openDb(config.databaseUrl, {
      max: Math.min(20, config.workerConcurrency + 2),
      onError: (e) => logger.warn('postgres connection error', { error: e.message }),
    }),
    connection: createRedis(config.redisUrl, {
      role: 'worker',
      name,
      onError: (e) => logger.warn('redis connection error', { error: e.message }),
    }),
    // Caches, single flight and the pool: many concurrent jobs' small commands, sent together
    // (auto-pipelining) on a connection of their own, apart from BullMQ's.
    state: createRedis(config.redisUrl, {
      role: 'worker',
      name: `${name}:state`,
      autoPipelining: true,
      onError: (e) => logger.warn('redis connection error', { error: e.message }),
    }),
  };
  try {
    return await startWorkerOn(opts, name, conns);
  } catch (e) {
    // Startup failed half-way (a dependency went away): close what was opened, so a retry
    // (main.ts) starts from scratch and nothing keeps the process alive.
    conns.connection.disconnect();
    conns.state.disconnect();
    // The start's own error is what matters; Postgres may be the reason it failed.
    await bestEffort(conns.db.close(), logger, 'close Postgres after a failed start');
    throw e;
  }
}

/** Opens the parts, then the BullMQ worker, the watchdog, the health server and maintenance. */
async function startWorkerOn(
  opts: StartWorkerOptions,
  name: string,
  conns: WorkerConnections,
): Promise<RunningWorker> {
  const { config, logger } = opts;
  const parts = await openWorkerParts(config, logger, name, conns);
  const { metrics, deps, pauses } = parts;
  const processor = new JobProcessor({
    logger,
    recorder: parts.recorder,
    batches: new KnownBatches(conns.db.db, logger),
    parts,
    metrics,
    signal: parts.abort.signal,
    probeDependencies: () => void deps.check(),
  });
  const worker = new Worker<CheckPayload>(
    STORY_CHECK_QUEUE,
    processor.process as (job: Job<CheckPayload>, token?: string) => Promise<{ status: string }>,
    {
      connection: conns.connection,
      prefix: queuePrefix(config.prefix),
      name,
      concurrency: config.workerConcurrency,
      // A killed worker's jobs come back after the lock expires; counting such stalls would turn
      // a crash into a lost item, so stalls are tolerated many times (each is a redelivery only).
      lockDuration: config.workerLockDurationMs,
      stalledInterval: config.workerLockDurationMs,
      maxStalledCount: 10,
      autorun: true,
    },
  );
  pauses.attach(worker);
  logWorkerEvents(worker, logger, parts);
  await worker.waitUntilReady();
  await deps.start();
  const watchdog = watchWorker(opts, worker, parts);
  const health: HealthServer | undefined =
    config.workerHttpPort === undefined
      ? undefined
      : await startHealthServer({
          port: config.workerHttpPort,
          host: config.workerHttpHost,
          metrics,
          checks: parts.probes,
        });
  if (health) logger.info('health and metrics', { url: health.url });
  const maintenance = await startMaintenance({
    connection: conns.connection,
    prefix: config.prefix,
    db: conns.db.db,
    retentionMs: config.retentionMs,
    logger,
  });
  const close = closer({ config, logger, conns, parts, worker, watchdog, health, maintenance });
  return { worker, close, httpUrl: health?.url };
}

/** At most one `worker error` line per this many ms for Redis's own errors. */
const WORKER_ERROR_LOG_EVERY_MS = 5_000;

/**
 * BullMQ's own Redis errors (its connections, the blocking duplicate): one line each, and a
 * probe, so a Redis outage pauses the worker instead of spinning.
 */
function logWorkerEvents(worker: Worker<CheckPayload>, logger: Logger, parts: WorkerParts): void {
  let lastWorkerErrorAt = 0;
  worker.on('error', (e) => {
    if (infraDependencyOf(e)) {
      void parts.deps.check();
      if (Date.now() - lastWorkerErrorAt < WORKER_ERROR_LOG_EVERY_MS) return;
      lastWorkerErrorAt = Date.now();
    }
    logger.error('worker error', { error: redactString(firstLine(e)) });
  });
  worker.on('failed', (job, e) => {
    if (job && isStallLimitFailure(e))
      void handleStallLimit(job, { recorder: parts.recorder, logger });
    else if (job && !(e instanceof DelayedError))
      logger.debug('job failed', { jobId: job.id, error: e.message });
  });
}

/** The watchdog: jobs waiting and none taken for WORKER_WATCHDOG_IDLE means a stall. */
function watchWorker(
  opts: StartWorkerOptions,
  worker: Worker<CheckPayload>,
  parts: WorkerParts,
): Watchdog {
  const { config, logger } = opts;
  const watchdog = startWatchdog({
    pausedOnPurpose: () => parts.pauses.any,
    onCheck: (r) => parts.metrics.watchdogCheck(r),
    idleMs: config.workerWatchdogIdleMs,
    jobsWaiting: async () => {
      const c = await parts.queue.getJobCounts('waiting', 'prioritized');
      return (c.waiting ?? 0) + (c.prioritized ?? 0);
    },
    onStall: (reason) => (opts.onStall ?? ((r: string) => logger.error(r)))(reason),
  });
  worker.on('active', () => watchdog.touch());
  worker.on('completed', () => watchdog.touch());
  worker.on('failed', () => watchdog.touch());
  return watchdog;
}

/** How long in-flight checks get to put their jobs back once aborted (ms) before a forced close. */
const ABORTED_SETTLE_MS = 3_000;

/** What {@link closer} closes. */
interface Closing {
  config: Config;
  logger: Logger;
  conns: WorkerConnections;
  parts: WorkerParts;
  worker: Worker<CheckPayload>;
  watchdog: Watchdog;
  health: HealthServer | undefined;
  maintenance: { close(): Promise<void> };
}

/** The worker's close (see {@link RunningWorker.close}). */
function closer(c: Closing): RunningWorker['close'] {
  let closing: Promise<void> | undefined;
  return async (timeoutMs = c.config.workerShutdownTimeoutMs): Promise<void> => {
    if (closing) {
      // Second call: force now.
      c.parts.abort.abort();
      await c.worker.close(true);
      return closing;
    }
    closing = (async () => {
      await stopJobs(c, timeoutMs);
      await closeParts(c);
    })();
    return closing;
  };
}

/**
 * Stops fetching and waits up to `timeoutMs` for in-flight jobs; past it, aborts their checks
 * (they put their jobs back: delay 0, no attempt spent) and forces the close after
 * {@link ABORTED_SETTLE_MS}.
 */
async function stopJobs(c: Closing, timeoutMs: number): Promise<void> {
  const graceful = c.worker.close();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([
    graceful.then(() => false),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(true), timeoutMs))),
  ]);
  clearTimeout(timer);
  if (!timedOut) return;
  c.logger.warn('shutdown deadline passed; aborting in-flight checks', { timeoutMs });
  c.parts.abort.abort();
  c.parts.coalescer.flush();
  const settled = await Promise.race([
    graceful.then(() => true),
    new Promise<boolean>((r) => setTimeout(() => r(false), ABORTED_SETTLE_MS).unref()),
  ]);
  if (!settled) await c.worker.close(true);
}

/** Closes everything but the worker, after the last results are committed. */
async function closeParts(c: Closing): Promise<void> {
  const { parts, logger } = c;
  await parts.recorder.drain();
  // On the way out a failed close changes nothing: the connections are dropped below anyway.
  await bestEffort(parts.caches.close(), logger, 'close the caches');
  await bestEffort(c.maintenance.close(), logger, 'close maintenance');
  c.watchdog.stop();
  parts.deps.stop();
  await c.health?.close();
  await bestEffort(parts.queue.close(), logger, 'close the queue handle');
  parts.fleet.close();
  parts.leaseTrace?.end();
  parts.stopSessionPoll();
  parts.checker.close();
  c.conns.connection.disconnect();
  c.conns.state.disconnect();
  await c.conns.db.close();
}
