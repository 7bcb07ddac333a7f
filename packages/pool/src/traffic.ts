import type { Redis } from 'ioredis';
import { poolKeys } from './keys.js';

/**
 * Upstream traffic over time, for the board's pool page: requests sent and throttled answers
 * per proxy, counted in 10-second buckets. Each bucket is one Redis HASH
 * `<pool base>t:<bucket start, epoch s>` with fields `r:<proxy>` (requests) and `t:<proxy>`
 * (throttled), proxy `-` for requests sent without one; it expires after an hour. Recording
 * costs one HINCRBY per event (plus one EXPIRE the first time a field appears in a bucket),
 * which an auto-pipelined connection batches with the lease's own commands. Buckets follow
 * each worker's clock: a skew of a second or two moves a count to the next bucket, no more.
 */

/** Width of one bucket, ms. */
export const TRAFFIC_BUCKET_MS = 10_000;
/** How long a bucket is kept, s. */
export const TRAFFIC_TTL_S = 3_600;
/** Field name used for requests sent without a proxy. */
export const DIRECT = '-';

/** Counts of one bucket. */
export interface TrafficBucket {
  /** Bucket start, epoch ms. */
  at: number;
  /** Requests sent, per proxy id (`-` = direct). */
  requests: Record<string, number>;
  /** Throttled answers, per proxy id. */
  throttled: Record<string, number>;
}

/** Writes and reads the traffic buckets of one pool (one STORYCHECK_PREFIX). */
export interface Traffic {
  /** Counts one upstream request sent through `proxyId` (null = direct). Never throws. */
  request(proxyId: string | null): void;
  /** Counts one throttled answer received through `proxyId` (null = direct). Never throws. */
  throttled(proxyId: string | null): void;
  /**
   * The complete buckets of the last `minutes` (the running bucket left out), oldest first,
   * empty ones included; `nowMs` defaults to this process's clock.
   */
  read(minutes: number, nowMs?: number): Promise<TrafficBucket[]>;
}

/** Creates the traffic recorder/reader over a connection (auto-pipelined on workers). */
export function createTraffic(redis: Redis, prefix: string): Traffic {
  const base = `${poolKeys(prefix).base}t:`;
  const keyOf = (bucketMs: number) => `${base}${Math.floor(bucketMs / 1_000)}`;
  const count = (kind: 'r' | 't', proxyId: string | null) => {
    const bucket = Math.floor(Date.now() / TRAFFIC_BUCKET_MS) * TRAFFIC_BUCKET_MS;
    const key = keyOf(bucket);
    redis
      .hincrby(key, `${kind}:${proxyId ?? DIRECT}`, 1)
      .then((n) => (n === 1 ? redis.expire(key, TRAFFIC_TTL_S) : undefined))
      .catch(() => undefined); // a lost count costs a chart a dot, never a request
  };
  return {
    request: (proxyId) => count('r', proxyId),
    throttled: (proxyId) => count('t', proxyId),
    async read(minutes, nowMs = Date.now()) {
      const n = Math.max(1, Math.round((minutes * 60_000) / TRAFFIC_BUCKET_MS));
      const current = Math.floor(nowMs / TRAFFIC_BUCKET_MS) * TRAFFIC_BUCKET_MS;
      const starts = Array.from({ length: n }, (_, i) => current - (n - i) * TRAFFIC_BUCKET_MS);
      const pipe = redis.pipeline();
      for (const at of starts) pipe.hgetall(keyOf(at));
      const res = (await pipe.exec()) ?? [];
      return starts.map((at, i) => {
        const [err, h] = res[i] ?? [null, {}];
        if (err) throw err;
        const b: TrafficBucket = { at, requests: {}, throttled: {} };
        for (const [f, v] of Object.entries((h ?? {}) as Record<string, string>)) {
          const target = f.startsWith('r:') ? b.requests : f.startsWith('t:') ? b.throttled : null;
          if (target) target[f.slice(2)] = Number(v);
        }
        return b;
      });
    },
  };
}
