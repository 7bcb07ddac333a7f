import type { Redis } from 'ioredis';

/** One admission from the hammer's log: session, proxy ("" = none), Redis time µs. */
export type Admission = [session: string, proxy: string, atUs: number];

/** One throttle report: session, proxy, Redis µs of the report, cooldown ends (-1 = none). */
export type ThrottleRecord = [
  session: string,
  proxy: string,
  nowUs: number,
  sessionUntilUs: number,
  proxyUntilUs: number,
];

/**
 * Checks the budget invariant on one key's admission times (any order): for every window
 * anchored at two admissions t_i <= t_j, the admissions in it (j - i + 1) must not exceed
 * burst + floor((t_j - t_i) / interval). Returns the first violation, or null.
 */
export function firstViolation(
  timesUs: readonly number[],
  intervalUs: number,
  burst: number,
): { from: number; to: number; admitted: number; allowed: number } | null {
  const t = [...timesUs].sort((a, b) => a - b);
  for (let i = 0; i < t.length; i++) {
    for (let j = i; j < t.length; j++) {
      const allowed = burst + Math.floor((t[j]! - t[i]!) / intervalUs);
      if (j - i + 1 > allowed) return { from: t[i]!, to: t[j]!, admitted: j - i + 1, allowed };
    }
  }
  return null;
}

/** Admissions a key could have had between its first and last one: burst + floor(span / T). */
export function capacity(timesUs: readonly number[], intervalUs: number, burst: number): number {
  if (timesUs.length === 0) return 0;
  const span = Math.max(...timesUs) - Math.min(...timesUs);
  return burst + Math.floor(span / intervalUs);
}

/** Jain's fairness index of shares: 1 = perfectly equal, 1/n = one takes everything. */
export function jain(xs: readonly number[]): number {
  const sum = xs.reduce((a, b) => a + b, 0);
  const sq = xs.reduce((a, b) => a + b * b, 0);
  return sq === 0 ? 1 : (sum * sum) / (xs.length * sq);
}

/** Groups admission times by a key function. */
export function groupTimes(log: readonly Admission[], key: (a: Admission) => string) {
  const out = new Map<string, number[]>();
  for (const a of log) {
    const k = key(a);
    if (k === '') continue;
    const list = out.get(k) ?? [];
    list.push(a[2]);
    out.set(k, list);
  }
  return out;
}

/** Every key under a prefix with its DUMP (hex) and whether it has a TTL: the pool's state. */
export async function dumpKeys(redis: Redis, prefix: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    for (const k of keys) {
      const d = await redis.dumpBuffer(k);
      const ttl = await redis.pttl(k);
      out[k] = `${d?.toString('hex') ?? 'none'} ttl=${ttl >= 0 ? 'yes' : String(ttl)}`;
    }
  } while (cursor !== '0');
  return out;
}

export { startPrivateRedis, type PrivateRedis } from '@storycheck/testkit';
