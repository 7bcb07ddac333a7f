import { setMaxListeners } from 'node:events';
import { createWriteStream } from 'node:fs';
import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Config } from '@storycheck/config';
import { redactString, type Logger } from '@storycheck/logger';
import {
  ResultRecorder,
  getBatchStatus,
  markBatchStarted,
  openDb,
  type DbHandle,
} from '@storycheck/db';
import {
  STORY_CHECK_QUEUE,
  createRedis,
  openCheckQueue,
  parseCheckPayload,
  type CheckPayload,
} from '@storycheck/queue';
import { Caches, SingleFlight, decodeResult, encodeResult } from '@storycheck/cache';
import { StoriesCoalescer, StoryChecker, ThrottledError } from '@storycheck/story-checker';
import { checkUsername, type CheckOutcome } from './checking.js';
import { Fleet, LeaseWaitError, NoSessionError, type Credentials } from './fleet.js';
import type { Lease } from '@storycheck/pool';
import { WorkerMetrics, statusClassOf } from './metrics.js';
import { startHealthServer, type HealthServer } from './health.js';
import { startWatchdog } from './watchdog.js';
import { actionFor, causeChain, errorCode, throttleDelayMs } from './outcomes.js';
import { startMaintenance } from './maintenance.js';

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
 * Starts a BullMQ worker on the story-check queue. For each job: parse the payload (jobs outlive
 * the code that wrote them), mark the batch started, check the username upstream, then record
 * the result exactly once (the item row and the batch counters in one transaction) and append
 * a batch-log row with timings. Failures follow the table in outcomes.ts.
 */
export async function startWorker(opts: StartWorkerOptions): Promise<RunningWorker> {
  const { config, logger } = opts;
  const name = opts.name ?? `worker-${process.pid}`;
  const db: DbHandle = openDb(config.databaseUrl, {
    max: Math.min(20, config.workerConcurrency + 2),
    onError: (e) => logger.warn('postgres connection error', { error: e.message }),
  });
  const connection = createRedis(config.redisUrl, {
    role: 'worker',
    name,
    onError: (e) => logger.warn('redis connection error', { error: e.message }),
  });
  // Results are committed in groups (one transaction per group of finished checks): see
  // ResultRecorder. Each job still waits for its own row to be committed.
  const recorder = new ResultRecorder(db.db, {
    onGroupError: (e, size) =>
      logger.warn('result group commit failed; retrying its results one by one', {
        error: redactString(e.message),
        size,
      }),
  });
  // Caches, single flight and the pool: many concurrent jobs' small commands, sent together
  // (auto-pipelining) on a connection of their own, apart from BullMQ's.
  const state = createRedis(config.redisUrl, {
    role: 'worker',
    name: `${name}:state`,
    autoPipelining: true,
    onError: (e) => logger.warn('redis connection error', { error: e.message }),
  });
  const queue = openCheckQueue(connection, config.prefix);
  queue.on('error', () => undefined);
  const metrics = new WorkerMetrics({ queue });
  const checker = new StoryChecker({
    baseUrl: config.igBaseUrl,
    requestTimeoutMs: config.requestTimeoutMs,
    logger,
    onAnswer: (a) => {
      metrics.upstreamRequest(a.endpoint, statusClassOf(a.statusCode));
      if (a.throttled) metrics.throttled(a.endpoint);
    },
  });
  const abort = new AbortController();
  // Every in-flight job listens on this one signal: more than node's default 10 is normal.
  setMaxListeners(0, abort.signal);
  // Assigned once below; declared first because the fleet's pause/resume callback needs it.
  // eslint-disable-next-line prefer-const
  let worker: Worker<CheckPayload> | undefined;
  let resumeTimer: NodeJS.Timeout | undefined;
  const leaseTrace = config.leaseTraceFile
    ? createWriteStream(config.leaseTraceFile, { flags: 'a' })
    : undefined;
  const fleet = await Fleet.start({
    config,
    db: db.db,
    redis: state,
    logger,
    onLeaseWait: (ms) => metrics.limiterWait(ms),
    // A lease goes out on an open connection (or is given back): see packages/pool README.
    connections: checker,
    ...(leaseTrace
      ? {
          onLeaseSent: (l: Lease, sentAtMs: number) =>
            leaseTrace!.write(
              `${JSON.stringify({ atUs: l.atUs, session: l.sessionLabel, proxy: l.proxyLabel, sentAtMs })}\n`,
            ),
        }
      : {}),
    onUsableChange: (usable) => {
      metrics.noUsableSession(!usable);
      if (usable) return;
      // No usable session at all: stop taking jobs until one is enabled or re-imported.
      logger.error(
        'no usable session: every session is invalid, challenged, suspended or disabled; pausing until one is usable',
      );
      worker?.pause(true).catch(() => undefined);
      clearInterval(resumeTimer);
      resumeTimer = setInterval(() => {
        fleet
          .anyUsable()
          .then((ok) => {
            if (!ok || !worker) return;
            clearInterval(resumeTimer);
            logger.info('a session is usable again; resuming');
            void worker.resume();
          })
          .catch(() => undefined);
      }, 5_000);
      resumeTimer.unref();
    },
  });
  // The ids of jobs in flight share reels_media requests (DESIGN.md "Requests per check").
  const coalescer = new StoriesCoalescer<Credentials>({
    // Every job slot waits here (WORKER_CONCURRENCY below the chunk size): no job can finish and
    // make room for one that could join, so the request goes now instead of after
    // STORIES_MAX_WAIT. Otherwise it waits as before: a request saved is budget saved.
    nothingMoreExpected: (waiting) => waiting >= config.workerConcurrency,
    withContext: (fn) => fleet.withLease(abort.signal, fn),
    fetch: (ids, c) =>
      checker.fetchStories(ids, {
        signal: abort.signal,
        ...(c.session ? { session: c.session } : {}),
        ...(c.proxy ? { proxy: c.proxy } : {}),
      }),
    chunkSize: config.storiesChunkSize,
    maxWaitMs: config.storiesMaxWaitMs,
    onShrink: (n) =>
      logger.warn('upstream refused the reel count; chunk size halved', { chunkSize: n }),
  });
  const caches = new Caches(state, config.prefix, {
    userIdMs: config.userIdCacheTtlMs,
    notFoundMs: config.notFoundCacheTtlMs,
    resultMs: config.storyCacheTtlMs,
  });
  const flight = new SingleFlight(state, config.prefix, {
    waitMs: config.singleFlightWaitMs,
    encode: encodeResult,
    decode: decodeResult,
  });
  const parts = { checker, coalescer, caches, flight, fleet, metrics };
  const startedBatches = new Set<string>();
  let throttleStreak = 0;

  const processJob = async (job: Job<unknown>, token?: string): Promise<{ status: string }> => {
    let payload: CheckPayload;
    try {
      payload = parseCheckPayload(job.data);
    } catch (e) {
      logger.error('job payload rejected', { jobId: job.id, error: (e as Error).message });
      throw new UnrecoverableError(`invalid payload: ${(e as Error).message}`);
    }
    const { batchId, username } = payload;
    const log = logger.child({ batchId, jobId: job.id });
    if (!startedBatches.has(batchId)) {
      if (await markBatchStarted(db.db, batchId)) log.info('batch started');
      startedBatches.add(batchId);
    }
    const attempt = job.attemptsMade + 1;
    const maxAttempts = job.opts.attempts ?? 1;
    const t0 = new Date();
    let result: CheckOutcome;
    try {
      result = await checkUsername(parts, username, abort.signal);
    } catch (err) {
      const action = actionFor(err);
      const finishedAt = new Date();
      const base = {
        batchId,
        event: 'check',
        username,
        startedAt: t0,
        finishedAt,
        totalMs: finishedAt.getTime() - t0.getTime(),
        attempt,
        errorClass: (err as Error).name,
        errorCode: errorCode(err),
        errorMessage: redactString((err as Error).message ?? String(err)),
        cause: causeChain(err).map((c) => ({ ...c, message: redactString(c.message) })),
      };
      if (action === 'delay') {
        throttleStreak += 1;
        const delayMs = abort.signal.aborted
          ? 0
          : err instanceof LeaseWaitError
            ? err.waitMs + Math.floor(Math.random() * 250)
            : err instanceof NoSessionError
              ? 10_000
              : throttleDelayMs(
                  throttleStreak,
                  err instanceof ThrottledError ? err.retryAfterMs : undefined,
                );
        log.warn('check delayed', { username, errorCode: errorCode(err), delayMs });
        await recorder
          .log([{ ...base, outcome: 'delayed', data: { delayMs } }])
          .catch(() => undefined);
        await job.moveToDelayed(Date.now() + delayMs, token);
        throw new DelayedError();
      }
      const last = action === 'fail' || attempt >= maxAttempts;
      if (!last) {
        log.warn('check failed, will retry', {
          username,
          attempt,
          errorClass: base.errorClass,
          errorCode: base.errorCode,
          error: base.errorMessage,
        });
        await recorder.log([{ ...base, outcome: 'retry' }]).catch(() => undefined);
        throw err;
      }
      const outcome = await recorder.record({
        batchId,
        username,
        result: { status: 'failed', attempts: attempt, error: errorCode(err) },
        logEntry: () => ({ ...base, outcome: 'failed' }),
      });
      log.log(action === 'fail' ? 'error' : 'warn', 'check failed', {
        username,
        attempt,
        errorClass: base.errorClass,
        errorCode: base.errorCode,
        error: base.errorMessage,
        cause: base.cause,
      });
      metrics.checkFinished('failed', finishedAt.getTime() - t0.getTime(), false);
      if (outcome.completedBatch) await logBatchSummary(log, batchId);
      if (action === 'fail')
        throw new UnrecoverableError(`${base.errorCode}: ${base.errorMessage}`);
      return { status: 'failed' };
    }
    throttleStreak = 0;
    const finishedAt = new Date();
    const outcome = await recorder.record({
      batchId,
      username,
      result: {
        status: result.status,
        storyCount: result.storyCount,
        latestStoryAt: result.latestStoryAt,
        expiresAt: result.expiresAt,
        userId: result.userId,
        attempts: attempt,
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
        attempt,
        outcome: result.status,
        data: applied ? (result.cached ? { cached: true } : null) : { duplicateDelivery: true },
      }),
    });
    metrics.checkFinished(result.status, finishedAt.getTime() - t0.getTime(), result.cached);
    log.info('checked', {
      username,
      status: result.status,
      durationMs: finishedAt.getTime() - t0.getTime(),
      requests: result.requests,
      ...(result.cached ? { cached: true } : {}),
      ...(outcome.applied ? {} : { duplicate: true }),
    });
    if (outcome.completedBatch) await logBatchSummary(log, batchId);
    return { status: result.status };
  };

  worker = new Worker<CheckPayload>(
    STORY_CHECK_QUEUE,
    processJob as (job: Job<CheckPayload>, token?: string) => Promise<{ status: string }>,
    {
      connection,
      prefix: config.prefix,
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
  worker.on('error', (e) => logger.error('worker error', { error: e.message }));
  worker.on('failed', (job, e) => {
    if (job && !(e instanceof DelayedError))
      logger.debug('job failed', { jobId: job.id, error: e.message });
  });
  await worker.waitUntilReady();
  const watchdog = startWatchdog({
    idleMs: config.workerWatchdogIdleMs,
    jobsWaiting: async () => {
      const c = await queue.getJobCounts('waiting', 'prioritized');
      return (c.waiting ?? 0) + (c.prioritized ?? 0);
    },
    onStall: (reason) => (opts.onStall ?? ((r: string) => logger.error(r)))(reason),
  });
  worker.on('active', () => watchdog.touch());
  worker.on('completed', () => watchdog.touch());
  worker.on('failed', () => watchdog.touch());
  const health: HealthServer | undefined =
    config.workerHttpPort === undefined
      ? undefined
      : await startHealthServer({
          port: config.workerHttpPort,
          host: config.workerHttpHost,
          metrics,
          checks: {
            redis: async () => {
              await connection.ping();
            },
            postgres: async () => {
              await db.pool.query('SELECT 1');
            },
          },
        });
  if (health) logger.info('health and metrics', { url: health.url });
  const maintenance = await startMaintenance({
    connection,
    prefix: config.prefix,
    db: db.db,
    retentionMs: config.retentionMs,
    logger,
  });

  /** One line per finished batch: its counts and how long it ran. */
  const logBatchSummary = async (log: Logger, batchId: string): Promise<void> => {
    const st = await getBatchStatus(db.db, batchId).catch(() => null);
    if (!st) return;
    const secs =
      st.startedAt && st.finishedAt
        ? (Date.parse(st.finishedAt) - Date.parse(st.startedAt)) / 1000
        : null;
    log.info('batch completed', { total: st.total, ...st.counts, durationSecs: secs });
  };

  let closing: Promise<void> | undefined;
  const close = async (timeoutMs = config.workerShutdownTimeoutMs): Promise<void> => {
    if (closing) {
      // Second call: force now.
      abort.abort();
      await worker.close(true);
      return closing;
    }
    closing = (async () => {
      const graceful = worker.close();
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        graceful.then(() => false),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(true), timeoutMs))),
      ]);
      clearTimeout(timer);
      if (timedOut) {
        logger.warn('shutdown deadline passed; aborting in-flight checks', { timeoutMs });
        abort.abort(); // in-flight checks put their jobs back (delay 0, no attempt spent)
        coalescer.flush();
        const settled = await Promise.race([
          graceful.then(() => true),
          new Promise<boolean>((r) => setTimeout(() => r(false), 3_000).unref()),
        ]);
        if (!settled) await worker.close(true);
      }
      await recorder.drain();
      await caches.close().catch(() => undefined);
      await maintenance.close().catch(() => undefined);
      watchdog.stop();
      await health?.close();
      await queue.close().catch(() => undefined);
      fleet.close();
      leaseTrace?.end();
      clearInterval(resumeTimer);
      checker.close();
      connection.disconnect();
      state.disconnect();
      await db.close();
    })();
    return closing;
  };
  return { worker, close, httpUrl: health?.url };
}
