import { slotTag } from '@storycheck/config';

/**
 * Redis key layout of one pool. Every key starts with `<prefix>:` (so a prefix owns its keys,
 * CONTRACT.md) and carries the hash tag `{<prefix>:pool}` (config `slotTag`), so all keys of a pool land in one
 * Redis Cluster slot and one script may touch them all.
 */
export interface PoolKeys {
  /** `<prefix>:{<prefix>:pool}:` — every other key starts with it (the scripts' ARGV[1]). */
  base: string;
  /** SET of every session id. */
  sessions: string;
  /**
   * ZSET of leasable sessions, score = Redis µs when it may next send (its proxy included);
   * exact when in the future, a past score only means "may send now" (lib.lua, "Scores").
   */
  ready: string;
  /** SET of every proxy id. */
  proxies: string;
  /** ZSET of proxies that are not disabled, score = Redis µs when the proxy may next send (same rule). */
  proxyReady: string;
  /** STRING, the global budget's TAT in µs (absent = full burst). */
  global: string;
  /** STRING, the lease counter. */
  seq: string;
  /**
   * HASH session id → last lease µs (one HMGET reads a whole pick window), plus the pad field
   * `#` that keeps it a hash table (O(1) lookups at any pool size; upsert-session.lua).
   */
  lru: string;
  /** HASH of adaptive mode's class records: what sessions of one configured budget learned. */
  adapt: string;
  /** HASH of one session. */
  session(id: string): string;
  /** HASH of one proxy. */
  proxy(id: string): string;
  /** SET of the ids of the sessions bound to one proxy. */
  proxySessions(id: string): string;
}

/** Builds the key layout for a STORYCHECK_PREFIX. */
export function poolKeys(prefix: string): PoolKeys {
  const base = `${prefix}:${slotTag(`${prefix}:pool`)}:`;
  return {
    base,
    sessions: `${base}sessions`,
    ready: `${base}ready`,
    proxies: `${base}proxies`,
    proxyReady: `${base}proxy-ready`,
    global: `${base}global`,
    seq: `${base}seq`,
    lru: `${base}lru`,
    adapt: `${base}adapt`,
    session: (id) => `${base}s:${id}`,
    proxy: (id) => `${base}p:${id}`,
    proxySessions: (id) => `${base}p:${id}:s`,
  };
}
