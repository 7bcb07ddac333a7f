import { setMaxListeners } from 'node:events';
import { createWriteStream } from 'node:fs';
import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Config } from '@storycheck/config';
import { coerceError, redactString, type Logger } from '@storycheck/logger';
import {
  ResultRecorder,
  getBatchStatus,
  markBatchStarted,
  openDb,
  type DbHandle,
} from '@storycheck/db';
import {
  STORY_CHECK_QUEUE,
  checkRedisKind,
  createRedis,
  openCheckQueue,
  queuePrefix,
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
import {
  actionFor,
  causeChain,
  errorCode,
  infraDependencyOf,
  infraErrorOf,
  throttleDelayMs,
  type Dependency,
} from './outcomes.js';
import { DependencyMonitor, firstLine } from './dependencies.js';
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
  // Caches, single flight and the pool: many concurrent jobs' small commands, sent together
  // (auto-pipelining) on a connection of their own, apart from BullMQ's.
  const state = createRedis(config.redisUrl, {
    role: 'worker',
    name: `${name}:state`,
    autoPipelining: true,
    onError: (e) => logger.warn('redis connection error', { error: e.message }),
  });
  try {
    return await startWorkerOn(opts, name, db, connection, state);
  } catch (e) {
    // Startup failed half-way (a dependency went away): close what was opened, so a retry
    // (main.ts) starts from scratch and nothing keeps the process alive.
    connection.disconnect();
    state.disconnect();
    await db.close().catch(() => undefined);
    throw e;
  }
}

/** Why the worker stopped fetching jobs on purpose (it resumes by itself). */
type PauseReason = 'no_session' | Dependency;

/** How long a job of a batch that is not in this database is put back for (ms). */
const UNKNOWN_BATCH_DELAY_MS = 30_000;

async function startWorkerOn(
  opts: StartWorkerOptions,
  name: string,
  db: DbHandle,
  connection: ReturnType<typeof createRedis>,
  state: ReturnType<typeof createRedis>,
): Promise<RunningWorker> {
  const { config, logger } = opts;
  // Results are committed in groups (one transaction per group of finished checks): see
  // ResultRecorder. Each job still waits for its own row to be committed.
  const recorder = new ResultRecorder(db.db, {
    onGroupError: (e, size) =>
      logger.warn('result group commit failed; retrying its results one by one', {
        error: redactString(e.message),
        size,
      }),
  });
  // A redis:// URL that reaches a Cluster node would fail key by key: refuse it now, clearly
  // (startWorker closes what was opened).
  await checkRedisKind(connection, config.redisUrl);
  const queue = openCheckQueue(connection, config.prefix);
  queue.on('error', () => undefined);
  const metrics = new WorkerMetrics({ queue });
  const checker = new StoryChecker({
    baseUrl: config.igBaseUrl,
    requestTimeoutMs: config.requestTimeoutMs,
    logger,
    allowPrivateProxies: config.allowPrivateProxies,
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
  // The worker fetches no job while any reason holds, and resumes when the last one clears.
  const pauses = new Set<PauseReason>();
  const setPaused = (reason: PauseReason, on: boolean): void => {
    const before = pauses.size > 0;
    if (on) pauses.add(reason);
    else pauses.delete(reason);
    metrics.paused(reason, on);
    const after = pauses.size > 0;
    if (!before && after) worker?.pause(true).catch(() => undefined);
    if (before && !after) worker?.resume().catch(() => undefined);
  };
  // Redis is probed with a write (a PING answers even when Redis is full), Postgres with SELECT 1.
  const healthKey = `${config.prefix}:health:${name}`;
  const probes = {
    redis: async () => {
      await state.set(healthKey, String(Date.now()), 'PX', 30_000);
    },
    postgres: async () => {
      await db.pool.query('SELECT 1');
    },
  };
  const deps = new DependencyMonitor({
    probes,
    onChange: (dependency, up, error) => {
      metrics.dependencyUp(dependency, up);
      if (up) logger.info('dependency available again; resuming', { dependency });
      else
        logger.error('dependency unavailable; pausing: no job is taken until it answers again', {
          dependency,
          error: error ? redactString(error) : undefined,
        });
      setPaused(dependency, !up);
    },
  });
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
      setPaused('no_session', true);
      clearInterval(resumeTimer);
      resumeTimer = setInterval(() => {
        fleet
          .anyUsable()
          .then((ok) => {
            if (!ok || !worker) return;
            clearInterval(resumeTimer);
            logger.info('a session is usable again; resuming');
            setPaused('no_session', false);
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
  /** Batches not in this database, with when that was last looked up (ms). */
  const unknownBatches = new Map<string, number>();
  let throttleStreak = 0;
  let lastPutBackLogAt = 0;
  let putBackUnlogged = 0;

  /**
   * A Redis or Postgres failure inside a job: not the check's fault. The job goes back to the
   * queue without spending an attempt and nothing final is recorded; the dependencies are
   * probed now, so the worker pauses if one is down. When Redis itself refuses the move (full,
   * gone), the job stays active without a lock renewal and comes back when its lock expires
   * (a stall, not an attempt). At most one log line per 5 s.
   */
  const putBack = async (
    job: Job<unknown>,
    token: string | undefined,
    err: unknown,
    delayMs: number,
  ): Promise<never> => {
    void deps.check();
    const now = Date.now();
    if (now - lastPutBackLogAt >= 5_000) {
      logger.warn('dependency error; check put back without spending an attempt', {
        jobId: job.id,
        kind: infraErrorOf(err),
        error: redactString(firstLine(err)),
        delayMs,
        ...(putBackUnlogged ? { alsoPutBack: putBackUnlogged } : {}),
      });
      lastPutBackLogAt = now;
      putBackUnlogged = 0;
    } else putBackUnlogged += 1;
    try {
      await job.moveToDelayed(Date.now() + delayMs, token);
    } catch (e) {
      logger.warn('could not put the job back; it returns when its lock expires', {
        jobId: job.id,
        error: redactString(firstLine(e)),
      });
    }
    throw new DelayedError();
  };

  /**
   * Is the job's batch in this database? A worker whose DATABASE_URL points at another
   * database than the producer's can never record a result: it must not spend upstream budget.
   * Known batches are remembered; an unknown one is looked up again at most every 10 s.
   */
  const lookingUp = new Map<string, Promise<boolean>>();
  const batchKnown = async (batchId: string): Promise<boolean> => {
    if (startedBatches.has(batchId)) return true;
    const seen = unknownBatches.get(batchId);
    if (seen !== undefined && Date.now() - seen < 10_000) return false;
    // Concurrent jobs of one batch share one lookup (and one log line).
    let p = lookingUp.get(batchId);
    if (!p) {
      p = (async () => {
        const found = (await getBatchStatus(db.db, batchId)) !== null;
        if (found) unknownBatches.delete(batchId);
        else {
          if (seen === undefined)
            logger.error(
              `batch ${batchId} not in this database (DATABASE_URL points elsewhere?); its jobs are put back, no upstream request is made`,
              { batchId },
            );
          unknownBatches.set(batchId, Date.now());
        }
        return found;
      })().finally(() => lookingUp.delete(batchId));
      lookingUp.set(batchId, p);
    }
    return p;
  };

  const processJob = async (job: Job<unknown>, token?: string): Promise<{ status: string }> => {
    try {
      return await processJobOnce(job, token);
    } catch (err) {
      if (err instanceof DelayedError || err instanceof UnrecoverableError) throw err;
      if (!infraErrorOf(err)) throw err;
      const delayMs = abort.signal.aborted ? 0 : 2_000 + Math.floor(Math.random() * 3_000);
      return putBack(job, token, err, delayMs);
    }
  };

  const processJobOnce = async (job: Job<unknown>, token?: string): Promise<{ status: string }> => {
    let payload: CheckPayload;
    try {
      payload = parseCheckPayload(job.data);
    } catch (e) {
      logger.error('job payload rejected', { jobId: job.id, error: coerceError(e).message });
      throw new UnrecoverableError(`invalid payload: ${coerceError(e).message}`);
    }
    const { batchId, username } = payload;
    const log = logger.child({ batchId, jobId: job.id });
    if (!(await batchKnown(batchId))) {
      await job.moveToDelayed(
        Date.now() + UNKNOWN_BATCH_DELAY_MS + Math.floor(Math.random() * 5_000),
        token,
      );
      throw new DelayedError();
    }
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
      // Redis or Postgres failed, not the check: processJob puts the job back.
      if (infraErrorOf(err) && !abort.signal.aborted) throw err;
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
        errorClass: coerceError(err).name,
        errorCode: errorCode(err),
        errorMessage: redactString(coerceError(err).message),
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
  if (pauses.size > 0) worker.pause(true).catch(() => undefined);
  // BullMQ's own Redis errors (its connections, the blocking duplicate): one line each, and a
  // probe, so a Redis outage pauses the worker instead of spinning.
  let lastWorkerErrorAt = 0;
  worker.on('error', (e) => {
    if (infraDependencyOf(e)) {
      void deps.check();
      if (Date.now() - lastWorkerErrorAt < 5_000) return;
      lastWorkerErrorAt = Date.now();
    }
    logger.error('worker error', { error: redactString(firstLine(e)) });
  });
  worker.on('failed', (job, e) => {
    if (job && !(e instanceof DelayedError))
      logger.debug('job failed', { jobId: job.id, error: e.message });
  });
  await worker.waitUntilReady();
  await deps.start();
  const watchdog = startWatchdog({
    pausedOnPurpose: () => pauses.size > 0,
    onCheck: (r) => metrics.watchdogCheck(r),
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
          checks: probes,
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
      deps.stop();
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
