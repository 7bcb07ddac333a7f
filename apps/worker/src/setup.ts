import { setMaxListeners } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import type { Config } from '@storycheck/config';
import { redactString, type Logger } from '@storycheck/logger';
import { ResultRecorder, type DbHandle } from '@storycheck/db';
import { checkRedisKind, openCheckQueue, type CheckQueue } from '@storycheck/queue';
import type { Redis } from 'ioredis';
import { Caches, SingleFlight, decodeResult, encodeResult } from '@storycheck/cache';
import type { StoryResult } from '@storycheck/model';
import { StoriesCoalescer, StoryChecker } from '@storycheck/story-checker';
import type { Lease } from '@storycheck/pool';
import { Fleet, type Credentials } from './session-fleet.js';
import { WorkerMetrics, statusClassOf } from './metrics.js';
import { DependencyMonitor } from './dependencies.js';
import { NO_SESSION_POLL_MS, type Dependency } from './outcomes.js';
import { Pauses } from './pauses.js';
import { bestEffort } from './best-effort.js';

/** How long the Redis probe's health key lives (ms): a dead worker's key goes away by itself. */
const HEALTH_KEY_TTL_MS = 30_000;

/** The connections a worker runs on (opened and closed by startWorker). */
export interface WorkerConnections {
  db: DbHandle;
  /** BullMQ's connection. */
  connection: Redis;
  /** Caches, single flight and the pool: auto-pipelined, apart from BullMQ's. */
  state: Redis;
}

/** Everything a worker runs on besides its connections and the BullMQ worker itself. */
export interface WorkerParts {
  /** Commits results in groups (one transaction per group of finished checks). */
  recorder: ResultRecorder;
  queue: CheckQueue;
  metrics: WorkerMetrics;
  checker: StoryChecker;
  /** Aborted at the shutdown deadline: every in-flight check listens on its signal. */
  abort: AbortController;
  pauses: Pauses;
  /** Redis is probed with a write (a PING answers even when Redis is full), Postgres with SELECT 1. */
  probes: Record<Dependency, () => Promise<void>>;
  deps: DependencyMonitor;
  fleet: Fleet;
  /** The ids of jobs in flight share reels_media requests (DESIGN.md "Requests per check"). */
  coalescer: StoriesCoalescer<Credentials>;
  caches: Caches;
  flight: SingleFlight<StoryResult>;
  /** LEASE_TRACE_FILE, when set. */
  leaseTrace: WriteStream | undefined;
  /** Stops looking for a usable session (the `no_session` pause's poll). */
  stopSessionPoll(): void;
}

/**
 * Opens a worker's parts on its connections, in order: refuses a redis:// URL that reaches a
 * Cluster node (it would fail key by key), then the queue, metrics, checker, dependency
 * probes, the session fleet, the coalescer and the caches. Throws when a step fails; the caller
 * closes the connections (startWorker).
 */
export async function openWorkerParts(
  config: Config,
  logger: Logger,
  name: string,
  conns: WorkerConnections,
): Promise<WorkerParts> {
  const recorder = new ResultRecorder(conns.db.db, {
    onGroupError: (e, size) =>
      logger.warn('result group commit failed; retrying its results one by one', {
        error: redactString(e.message),
        size,
      }),
  });
  await checkRedisKind(conns.connection, config.redisUrl);
  const queue = openCheckQueue(conns.connection, config.prefix);
  // An unlistened 'error' would crash the process; an outage shows in the worker's own 'error'
  // events and the dependency probes, which pause the worker.
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
  const pauses = new Pauses(metrics, logger);
  const { probes, deps } = dependencyMonitor(config, logger, name, conns, metrics, pauses);
  const { fleet, leaseTrace, stopSessionPoll } = await startFleet(
    config,
    logger,
    conns,
    metrics,
    checker,
    pauses,
  );
  const coalescer = createCoalescer(config, logger, checker, fleet, abort.signal);
  const caches = new Caches(conns.state, config.prefix, {
    userIdMs: config.userIdCacheTtlMs,
    notFoundMs: config.notFoundCacheTtlMs,
    resultMs: config.storyCacheTtlMs,
  });
  const flight = new SingleFlight(conns.state, config.prefix, {
    waitMs: config.singleFlightWaitMs,
    encode: encodeResult,
    decode: decodeResult,
  });
  return {
    ...{ recorder, queue, metrics, checker, abort, pauses, probes, deps },
    ...{ fleet, coalescer, caches, flight, leaseTrace, stopSessionPoll },
  };
}

/** The Redis and Postgres probes, and the monitor that pauses the worker while one fails. */
function dependencyMonitor(
  config: Config,
  logger: Logger,
  name: string,
  conns: WorkerConnections,
  metrics: WorkerMetrics,
  pauses: Pauses,
): { probes: WorkerParts['probes']; deps: DependencyMonitor } {
  const healthKey = `${config.prefix}:health:${name}`;
  const probes = {
    redis: async () => {
      await conns.state.set(healthKey, String(Date.now()), 'PX', HEALTH_KEY_TTL_MS);
    },
    postgres: async () => {
      await conns.db.pool.query('SELECT 1');
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
      pauses.set(dependency, !up);
    },
  });
  return { probes, deps };
}

/**
 * Starts the session fleet. With no usable session at all the worker pauses (`no_session`)
 * and looks for one every {@link NO_SESSION_POLL_MS} until a session is enabled or re-imported.
 */
async function startFleet(
  config: Config,
  logger: Logger,
  conns: WorkerConnections,
  metrics: WorkerMetrics,
  checker: StoryChecker,
  pauses: Pauses,
): Promise<{ fleet: Fleet; leaseTrace: WriteStream | undefined; stopSessionPoll(): void }> {
  const leaseTrace = config.leaseTraceFile
    ? createWriteStream(config.leaseTraceFile, { flags: 'a' })
    : undefined;
  let poll: NodeJS.Timeout | undefined;
  const lookForSession = (): void => {
    // A failed look (Redis away) is only a missed poll: the next one comes in NO_SESSION_POLL_MS.
    void bestEffort(fleet.anyUsable(), logger, 'look for a usable session').then((ok) => {
      if (!ok || !pauses.attached) return;
      clearInterval(poll);
      logger.info('a session is usable again; resuming');
      pauses.set('no_session', false);
    });
  };
  const fleet: Fleet = await Fleet.start({
    config,
    db: conns.db.db,
    redis: conns.state,
    logger,
    onLeaseWait: (ms) => metrics.limiterWait(ms),
    // A lease goes out on an open connection (or is given back): see packages/pool README.
    connections: checker,
    ...(leaseTrace ? { onLeaseSent: leaseTraceWriter(leaseTrace) } : {}),
    onUsableChange: (usable) => {
      metrics.noUsableSession(!usable);
      if (usable) return;
      logger.error(
        'no usable session: every session is invalid, challenged, suspended or disabled; pausing until one is usable',
      );
      pauses.set('no_session', true);
      clearInterval(poll);
      poll = setInterval(lookForSession, NO_SESSION_POLL_MS);
      poll.unref();
    },
  });
  return { fleet, leaseTrace, stopSessionPoll: () => clearInterval(poll) };
}

/** One JSON line per request sent under a lease (LEASE_TRACE_FILE). */
function leaseTraceWriter(out: WriteStream): (l: Lease, sentAtMs: number) => void {
  return (l, sentAtMs) =>
    out.write(
      `${JSON.stringify({ atUs: l.atUs, session: l.sessionLabel, proxy: l.proxyLabel, sentAtMs })}\n`,
    );
}

/** The coalescer: the ids of jobs in flight share reels_media requests. */
function createCoalescer(
  config: Config,
  logger: Logger,
  checker: StoryChecker,
  fleet: Fleet,
  signal: AbortSignal,
): StoriesCoalescer<Credentials> {
  return new StoriesCoalescer<Credentials>({
    // Every job slot waits here (WORKER_CONCURRENCY below the chunk size): no job can finish and
    // make room for one that could join, so the request goes now instead of after
    // STORIES_MAX_WAIT. Otherwise it waits as before: a request saved is budget saved.
    nothingMoreExpected: (waiting) => waiting >= config.workerConcurrency,
    withContext: (fn) => fleet.withLease(signal, fn),
    fetch: (ids, c) =>
      checker.fetchStories(ids, {
        signal,
        ...(c.session ? { session: c.session } : {}),
        ...(c.proxy ? { proxy: c.proxy } : {}),
      }),
    chunkSize: config.storiesChunkSize,
    maxWaitMs: config.storiesMaxWaitMs,
    onShrink: (n) =>
      logger.warn('upstream refused the reel count; chunk size halved', { chunkSize: n }),
  });
}
