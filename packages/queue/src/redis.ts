import { Redis, type RedisOptions } from 'ioredis';

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
 * The one factory for Redis connections. Every setting is here for a reason:
 * - `maxRetriesPerRequest: null` for workers (BullMQ requirement), 2 for clients (fail fast);
 * - `enableReadyCheck` so commands wait until Redis has loaded its data after a restart;
 * - reconnect with capped exponential backoff (50 ms · 2^n, at most 2 s) — never give up,
 *   a worker outlives a Redis restart;
 * - an `error` listener always (an unhandled 'error' event would crash the process); the
 *   message is logged without the URL (it may carry a password).
 */
export function createRedis(url: string, opts: CreateRedisOptions = {}): Redis {
  const role = opts.role ?? 'client';
  const options: RedisOptions = {
    maxRetriesPerRequest: role === 'worker' ? null : 2,
    enableReadyCheck: true,
    connectTimeout: opts.connectTimeoutMs ?? 5_000,
    connectionName: opts.name,
    retryStrategy: (times) => Math.min(2_000, 50 * 2 ** Math.min(times, 6)),
    lazyConnect: false,
    enableAutoPipelining: opts.autoPipelining ?? false,
  };
  const redis = new Redis(url, options);
  let lastLoggedMs = 0;
  redis.on('error', (err: Error) => {
    // Reconnect loops emit one error per try; report at most one every 5 s.
    const now = Date.now();
    if (now - lastLoggedMs < 5_000) return;
    lastLoggedMs = now;
    opts.onError?.(err);
  });
  return redis;
}
