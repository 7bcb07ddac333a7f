import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { parseRedisUrl, slotTag } from '@storycheck/config';

/**
 * What a connection is for. BullMQ's blocking connections (workers, queue events) must retry
 * forever (`maxRetriesPerRequest: null`) or BullMQ refuses them; a producer/CLI connection
 * should fail fast instead of hanging an operator's command when Redis is down.
 */
export type RedisRole = 'worker' | 'client';

/** Options for {@link createRedis}. */
export interface CreateRedisOptions {
  /** `worker` for BullMQ Worker/QueueEvents, `client` for everything else. Default `client`. */
  role?: RedisRole;
  /** Connection name shown by `CLIENT LIST` (helps find a stuck process). */
  name?: string;
  /** Called for connection errors; every client needs an `error` listener or node crashes. */
  onError?: (err: Error) => void;
  /** Connect timeout in ms. Default 5000. */
  connectTimeoutMs?: number;
  /**
   * Send the commands issued in one event-loop tick as one write (ioredis auto-pipelining).
   * Worth it on a connection many concurrent jobs share (caches, pool); never for BullMQ's
   * own connections. Default false.
   */
  autoPipelining?: boolean;
}

/**
 * The one factory for Redis connections. REDIS_URL's scheme picks the kind (packages/config
 * parseRedisUrl): `redis://` one node, `redis+cluster://` an ioredis Cluster client seeded
 * with the listed nodes, `redis+sentinel://` an ioredis client that asks the sentinels for the
 * current primary (and asks again after a failover). Every setting is here for a reason:
 * - `maxRetriesPerRequest: null` for workers (BullMQ requirement), 2 for clients (fail fast);
 * - `enableReadyCheck` so commands wait until Redis has loaded its data after a restart;
 * - reconnect with capped exponential backoff (50 ms · 2^n, at most 2 s) — never give up,
 *   a worker outlives a Redis restart or failover;
 * - on a Cluster, workers retry a command through a failover (CLUSTERDOWN, MOVED, a closed
 *   node) for about 30 s (`maxRedirections` × `retryDelayOnClusterDown`), clients for a few s;
 * - an `error` listener always (an unhandled 'error' event would crash the process); the
 *   message is logged without the URL (it may carry a password).
 *
 * The return type is `Redis`: a Cluster client answers the same commands (defineCommand,
 * MULTI and pipelines within one slot, duplicate) and BullMQ takes either. Code that must see
 * every node (SCAN) checks {@link isCluster} and walks {@link redisNodes}.
 */
export function createRedis(url: string, opts: CreateRedisOptions = {}): Redis {
  const role = opts.role ?? 'client';
  const retryStrategy = (times: number) => Math.min(2_000, 50 * 2 ** Math.min(times, 6));
  const options: RedisOptions = {
    maxRetriesPerRequest: role === 'worker' ? null : 2,
    enableReadyCheck: true,
    connectTimeout: opts.connectTimeoutMs ?? 5_000,
    connectionName: opts.name,
    retryStrategy,
    lazyConnect: false,
    enableAutoPipelining: opts.autoPipelining ?? false,
  };
  const target = parseRedisUrl(url);
  let redis: Redis;
  if (target.kind === 'cluster') {
    const {
      retryStrategy: _r,
      enableAutoPipelining: _a,
      lazyConnect: _l,
      ...nodeOptions
    } = options;
    const clusterOptions: ClusterOptions = {
      clusterRetryStrategy: retryStrategy,
      enableReadyCheck: true,
      enableAutoPipelining: opts.autoPipelining ?? false,
      lazyConnect: false,
      maxRedirections: role === 'worker' ? 100 : 20,
      retryDelayOnFailover: 300,
      retryDelayOnClusterDown: 300,
      retryDelayOnTryAgain: 300,
      slotsRefreshTimeout: 2_000,
      redisOptions: {
        ...nodeOptions,
        username: target.username,
        password: target.password,
        ...(target.tls ? { tls: {} } : {}),
      },
    };
    redis = new Cluster(target.nodes, clusterOptions) as unknown as Redis;
  } else if (target.kind === 'sentinel') {
    redis = new Redis({
      ...options,
      sentinels: target.sentinels,
      name: target.name,
      db: target.db,
      username: target.username,
      password: target.password,
      sentinelPassword: target.password,
      sentinelRetryStrategy: retryStrategy,
      // After a failover the old primary may come back as a replica: a write there answers
      // READONLY; reconnecting asks the sentinels for the new primary.
      reconnectOnError: (err) => err.message.startsWith('READONLY'),
      failoverDetector: true,
      ...(target.tls ? { tls: {}, enableTLSForSentinelMode: true } : {}),
    });
  } else {
    redis = new Redis(url, options);
  }
  let lastLoggedMs = 0;
  redis.on('error', (err: Error) => {
    // Reconnect loops emit one error per try; report at most one every 5 s.
    const now = Date.now();
    if (now - lastLoggedMs < 5_000) return;
    lastLoggedMs = now;
    // A Cluster client's "Failed to refresh slots cache" hides the node's own answer (e.g.
    // "cluster support disabled": REDIS_URL says redis+cluster:// for a plain node).
    const cause = (err as Error & { lastNodeError?: Error }).lastNodeError;
    opts.onError?.(cause ? new Error(`${err.message} (${cause.message})`) : err);
  });
  return redis;
}

/**
 * Refuses, at start, a REDIS_URL that cannot work with the Redis it reaches: `redis://` or
 * `redis+sentinel://` pointing at a node of a Redis Cluster, which would answer MOVED for
 * every key of another node's slots. (The opposite, `redis+cluster://` for a plain node, never
 * gets ready; its errors say "cluster support disabled".) Waits for the connection.
 */
export async function checkRedisKind(redis: Redis, url: string): Promise<void> {
  if (parseRedisUrl(url).kind === 'cluster') return;
  const info = await redis.info('cluster');
  if (/^cluster_enabled:1/m.test(info))
    throw new Error(
      'REDIS_URL names one node of a Redis Cluster: list its nodes as redis+cluster://host:port,host:port (docs/deploy.md)',
    );
}

/** True when `redis` is an ioredis Cluster client (REDIS_URL redis+cluster://). */
export function isCluster(redis: Redis): boolean {
  return (redis as unknown as { isCluster?: boolean }).isCluster === true;
}

/**
 * The connections that together hold every key: the primaries of a Cluster, or the client
 * itself. For commands that see one node only (SCAN, DBSIZE).
 */
export function redisNodes(redis: Redis): Redis[] {
  return isCluster(redis) ? (redis as unknown as Cluster).nodes('master') : [redis];
}

/**
 * The BullMQ `prefix` of every queue under STORYCHECK_PREFIX: `<prefix>:{<prefix>}`, so a
 * queue's keys are `<prefix>:{<prefix>}:<queue>:<suffix>` — they start with the prefix (it
 * owns its keys) and share one hash tag, as BullMQ's scripts need on a Redis Cluster
 * (e.g. the wait list `storycheck:{storycheck}:story-check:wait`).
 */
export function queuePrefix(prefix: string): string {
  return `${prefix}:${slotTag(prefix)}`;
}
