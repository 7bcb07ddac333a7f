import type { Redis } from 'ioredis';
import type { CheckStatus, StoryResult } from '@storycheck/model';
import { cacheKeys } from './keys.js';

/** A user-id cache entry: the id and private flag, or that the username does not exist. */
export type UserIdEntry =
  | { found: true; userId: string; isPrivate: boolean; seenAtSecs: number }
  | { found: false; seenAtSecs: number };

/** Cache TTLs in ms. */
export interface CacheTtls {
  /** USER_ID_CACHE_TTL: ids never change, usernames can (default 7 d). */
  userIdMs: number;
  /** Not-found answers: shorter, a name may be registered (default 1 h). */
  notFoundMs: number;
  /** STORY_CACHE_TTL: recent results (default 60 s); 0 disables the result cache. */
  resultMs: number;
}

/** Names of the hit/miss counters. */
export type CacheName = 'userIds' | 'results';

/**
 * The user-id and result caches in Redis, shared by every worker. Entries are a few dozen bytes
 * of text (no raw payloads): `u|<id>|<0|1>|<seenAt>` or `n|<seenAt>` for user ids (≈ 40 B of
 * value + key ≈ 100 B per entry with Redis overhead), a compact CSV for results (≈ 150 B).
 */
export class Caches {
  private readonly keys: ReturnType<typeof cacheKeys>;
  /** Hit/miss counts not yet added to the Redis counters (see {@link flushStats}). */
  private unflushed = new Map<string, number>();
  private flushTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    private readonly ttl: CacheTtls,
    /** How often counted hits and misses are added to Redis, ms. Default 1 000. */
    private readonly statsFlushMs = 1_000,
  ) {
    this.keys = cacheKeys(prefix);
  }

  /** The user-id entry of `username`, counting a hit or a miss. */
  async getUserId(username: string): Promise<UserIdEntry | null> {
    const v = await this.redis.get(this.keys.uid(username));
    this.count('userIds', v !== null);
    return decodeUserId(v);
  }

  /**
   * Both entries of `username` in one round trip (MGET): its cached result and its user id.
   * Counts the result lookup; the user-id entry is counted only on a result miss (when it
   * will be used), so hit ratios mean what they did with two separate lookups.
   */
  async lookup(username: string): Promise<{
    result: StoryResult | null;
    userId: UserIdEntry | null;
  }> {
    if (this.ttl.resultMs <= 0) return { result: null, userId: await this.getUserId(username) };
    const [r, u] = await this.redis.mget(this.keys.res(username), this.keys.uid(username));
    const result = r == null ? null : decodeResult(r);
    this.count('results', result !== null);
    if (result !== null) return { result, userId: null };
    this.count('userIds', u != null);
    return { result: null, userId: decodeUserId(u ?? null) };
  }

  /** Stores what a profile lookup said (not-found answers with the shorter TTL). */
  async setUserId(username: string, entry: UserIdEntry): Promise<void> {
    const now = entry.seenAtSecs;
    if (entry.found) {
      await this.redis.set(
        this.keys.uid(username),
        `u|${entry.userId}|${entry.isPrivate ? 1 : 0}|${now}`,
        'PX',
        this.ttl.userIdMs,
      );
    } else if (this.ttl.notFoundMs > 0) {
      await this.redis.set(this.keys.uid(username), `n|${now}`, 'PX', this.ttl.notFoundMs);
    }
  }

  /** Drops a user-id entry (its id now carries another username: a rename). */
  async dropUserId(username: string): Promise<void> {
    await this.redis.del(this.keys.uid(username));
  }

  /**
   * Caches a result (only final, successful answers: never failures or throttling) for
   * STORY_CACHE_TTL — for an active story no longer than until it expires, so a cached "active"
   * never outlives the story. Only the record's fields are stored (times in whole seconds).
   */
  async setResult(
    username: string,
    r: StoryResult,
    nowSecs = Math.floor(Date.now() / 1000),
  ): Promise<void> {
    let ttlMs = this.ttl.resultMs;
    if (ttlMs <= 0) return;
    if (r.status === 'active' && r.expiresAt !== null)
      ttlMs = Math.min(ttlMs, (secs(r.expiresAt) - nowSecs) * 1000);
    if (ttlMs <= 0) return;
    await this.redis.set(this.keys.res(username), encodeResult(r), 'PX', ttlMs);
  }

  /**
   * Counts a hit or a miss in memory; the counts reach Redis within `statsFlushMs` (one
   * MULTI for all of them) instead of one round trip on every lookup's path.
   */
  private count(cache: CacheName, hit: boolean): void {
    const field = `${cache}:${hit ? 'hits' : 'misses'}`;
    this.unflushed.set(field, (this.unflushed.get(field) ?? 0) + 1);
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      this.flushStats().catch(() => undefined); // counters are best effort; retried next time
    }, this.statsFlushMs);
    this.flushTimer.unref();
  }

  /** Adds the counted hits and misses to the shared counters now (also done on a timer). */
  async flushStats(): Promise<void> {
    if (this.unflushed.size === 0) return;
    const counts = this.unflushed;
    this.unflushed = new Map();
    const m = this.redis.multi();
    for (const [field, n] of counts) m.hincrby(this.keys.stats, field, n);
    m.hsetnx(this.keys.stats, 'since', String(Date.now()));
    try {
      await m.exec();
    } catch (err) {
      for (const [field, n] of counts)
        this.unflushed.set(field, (this.unflushed.get(field) ?? 0) + n);
      throw err;
    }
  }

  /** Flushes the counters and stops the flush timer (the connection stays the caller's). */
  async close(): Promise<void> {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    await this.flushStats();
  }

  /** Entries and hit ratio per cache since the counters were last reset. */
  async stats(): Promise<CacheStats> {
    await this.flushStats();
    const h = await this.redis.hgetall(this.keys.stats);
    const one = async (name: CacheName, kind: 'uid' | 'res') => {
      const hits = Number(h[`${name}:hits`] ?? 0);
      const misses = Number(h[`${name}:misses`] ?? 0);
      return {
        entries: await this.countKeys(this.keys.pattern(kind)),
        hits,
        misses,
        hitRatio: hits + misses ? hits / (hits + misses) : null,
      };
    };
    return {
      since: h.since ? new Date(Number(h.since)).toISOString() : null,
      userIds: await one('userIds', 'uid'),
      results: await one('results', 'res'),
    };
  }

  /** Deletes the chosen caches' entries (SCAN + UNLINK, never KEYS) and resets their counters. */
  async clear(which: {
    userIds: boolean;
    results: boolean;
  }): Promise<{ userIds: number; results: number }> {
    const out = { userIds: 0, results: 0 };
    if (which.userIds) out.userIds = await this.deleteKeys(this.keys.pattern('uid'));
    if (which.results) out.results = await this.deleteKeys(this.keys.pattern('res'));
    const fields = [
      ...(which.userIds ? ['userIds:hits', 'userIds:misses'] : []),
      ...(which.results ? ['results:hits', 'results:misses'] : []),
    ];
    if (fields.length) await this.redis.hdel(this.keys.stats, ...fields);
    if (which.userIds && which.results) await this.redis.del(this.keys.stats);
    return out;
  }

  private async countKeys(pattern: string): Promise<number> {
    let n = 0;
    await scanEveryNode(this.redis, pattern, async (_node, keys) => {
      n += keys.length;
    });
    return n;
  }

  private async deleteKeys(pattern: string): Promise<number> {
    let n = 0;
    await scanEveryNode(this.redis, pattern, async (node, keys) => {
      // One UNLINK per key: on a Cluster node a multi-key UNLINK must stay within one slot.
      const pipe = node.pipeline();
      for (const k of keys) pipe.unlink(k);
      for (const [err, v] of (await pipe.exec()) ?? []) {
        if (err) throw err;
        n += Number(v);
      }
    });
    return n;
  }
}

/**
 * SCANs `pattern` on every node that holds keys (each primary of a Redis Cluster, where SCAN
 * sees one node only; the client itself otherwise) and hands each page to `onKeys` with the
 * node it came from.
 */
async function scanEveryNode(
  redis: Redis,
  pattern: string,
  onKeys: (node: Redis, keys: string[]) => Promise<void>,
): Promise<void> {
  const cluster = redis as unknown as { isCluster?: boolean; nodes?: (role: 'master') => Redis[] };
  const nodes = cluster.isCluster === true && cluster.nodes ? cluster.nodes('master') : [redis];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await onKeys(node, keys);
    } while (cursor !== '0');
  }
}

function decodeUserId(v: string | null): UserIdEntry | null {
  if (v === null) return null;
  const [kind, a, b, c] = v.split('|');
  if (kind === 'u' && a && /^\d+$/.test(a))
    return { found: true, userId: a, isPrivate: b === '1', seenAtSecs: Number(c) };
  if (kind === 'n') return { found: false, seenAtSecs: Number(a) };
  return null;
}

/** What `cache stats` reports. */
export interface CacheStats {
  since: string | null;
  userIds: { entries: number; hits: number; misses: number; hitRatio: number | null };
  results: { entries: number; hits: number; misses: number; hitRatio: number | null };
}

/** One letter per status in the stored text (a cache written by an older worker reads the same). */
const STATUS_CODE: Record<CheckStatus, string> = {
  active: 'a',
  none: 'n',
  private: 'p',
  not_found: 'x',
};
const CODE_STATUS = new Map(
  Object.entries(STATUS_CODE).map(([status, code]) => [code, status as CheckStatus]),
);
const secs = (d: Date) => Math.floor(d.getTime() / 1000);
const num = (v: number | null) => (v === null ? '' : String(v));
const time = (d: Date | null) => (d === null ? '' : String(secs(d)));
const back = (v: string | undefined) => (v === undefined || v === '' ? null : Number(v));
const date = (v: string | undefined) =>
  v === undefined || v === '' ? null : new Date(Number(v) * 1000);

/**
 * `a|<userId>|<count>|<latest>|<expires>|<checkedAt>` (times in epoch seconds): compact, no
 * JSON keys. Fields of `r` beyond the record (a check's cost) are not stored.
 */
export function encodeResult(r: StoryResult): string {
  return [
    STATUS_CODE[r.status],
    r.userId ?? '',
    num(r.storyCount),
    time(r.latestStoryAt),
    time(r.expiresAt),
    secs(r.checkedAt),
  ].join('|');
}

/** Inverse of {@link encodeResult} (times to the second); null for anything unreadable. */
export function decodeResult(v: string): StoryResult | null {
  const [s, u, c, l, e, t] = v.split('|');
  const status = CODE_STATUS.get(s ?? '');
  if (!status || t === undefined) return null;
  return {
    status,
    userId: u ? u : null,
    storyCount: back(c),
    latestStoryAt: date(l),
    expiresAt: date(e),
    checkedAt: new Date(Number(t) * 1000),
  };
}
