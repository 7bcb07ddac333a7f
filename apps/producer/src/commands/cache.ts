import { Caches } from '@storycheck/cache';
import type { Context } from '../context.js';

function caches(ctx: Context): Caches {
  const c = ctx.config;
  return new Caches(ctx.redis, c.prefix, {
    userIdMs: c.userIdCacheTtlMs,
    notFoundMs: c.notFoundCacheTtlMs,
    resultMs: c.storyCacheTtlMs,
  });
}

const pct = (r: number | null) => (r === null ? '-' : `${(r * 100).toFixed(1)}%`);

/** `storycheck cache stats [--json]`: entries and hit ratio per cache since the last reset. */
export async function cacheStats(ctx: Context, opts: { json?: boolean }): Promise<void> {
  const s = await caches(ctx).stats();
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(s)}\n`);
    return;
  }
  process.stdout.write(
    `counting since ${s.since ?? '(no lookups yet)'}\n` +
      `user ids: ${s.userIds.entries} entries, ${s.userIds.hits} hits, ${s.userIds.misses} misses, hit ratio ${pct(s.userIds.hitRatio)}\n` +
      `results:  ${s.results.entries} entries, ${s.results.hits} hits, ${s.results.misses} misses, hit ratio ${pct(s.results.hitRatio)}\n`,
  );
}

/**
 * `storycheck cache clear [--user-ids] [--results]`: deletes the chosen caches' entries (both
 * when neither flag is given) and resets their counters.
 */
export async function cacheClear(
  ctx: Context,
  opts: { userIds?: boolean; results?: boolean; json?: boolean },
): Promise<void> {
  const both = !opts.userIds && !opts.results;
  const n = await caches(ctx).clear({
    userIds: both || !!opts.userIds,
    results: both || !!opts.results,
  });
  process.stdout.write(
    opts.json
      ? `${JSON.stringify({ deleted: n })}\n`
      : `deleted ${n.userIds} user-id entries and ${n.results} results\n`,
  );
}
