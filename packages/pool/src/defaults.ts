import type { Config, Rate } from '@storycheck/config';
import type { Redis } from 'ioredis';
import { createPool, type Pool, type PoolDefaults } from './pool.js';

/**
 * Pool defaults from the configuration (SESSION_*, PROXY_*, GLOBAL_*), shaved by
 * BUDGET_MARGIN (default 0.03) and LEASE_SPREAD (default 300 ms): rates × (1 − margin), and
 * each burst keeps {@link burstReserve} requests unused (at least 1; the burst stays ≥ 1);
 * margin 0 = no shaving at all.
 *
 * Why both, and why the rate part is small: a lease is granted at Redis time, but its request
 * reaches the upstream a variable delay later (event loop, connection set-up, proxy, network),
 * so requests leased one interval apart can arrive closer together. An upstream enforcing the
 * same GCRA budget tolerates that only from the slack its bucket holds. The burst reserve is
 * that slack, at once and for ever: keeping r requests of every burst unused lets arrivals bunch
 * by r intervals without a 429 — in the first seconds of a run too, when the reserve is all
 * there is. It is sized in time (LEASE_SPREAD), so a fast budget (a short interval) keeps more
 * requests in reserve than a slow one: one for the production defaults (1.1 s and 3.3 s), up
 * to 6 in apps/worker/bench/pool.mjs, where time runs ~100× faster. A rate margin adds slack
 * only slowly (m of an interval per request, up to the upstream's burst); it covers what is
 * left — clock-rate differences and rounding — and costs m of every budget, for ever. Hence a
 * small one. The worker bounds its own part of the spread (packages/pool README, "Lease →
 * arrival"): connections open before a lease is used, and a late lease is given back.
 */
export function poolDefaults(config: Config): PoolDefaults {
  const m = config.budgetMargin;
  const spread = config.leaseSpreadMs;
  const burst = (b: number, r: Rate) => (m > 0 ? Math.max(1, b - burstReserve(r, spread)) : b);
  return {
    sessionRate: shave(config.sessionRate, m),
    sessionBurst: burst(config.sessionBurst, config.sessionRate),
    proxyRate: shave(config.proxyRate, m),
    proxyBurst: burst(config.proxyBurst, config.proxyRate),
    globalRate: config.globalRate ? shave(config.globalRate, m) : undefined,
    globalBurst: config.globalRate
      ? burst(config.globalBurst, config.globalRate)
      : config.globalBurst,
  };
}

/**
 * Requests of a burst kept unused so that arrivals may bunch by `spreadMs` without exceeding
 * the upstream's budget: ceil(spread / interval), at least 1.
 */
export function burstReserve(rate: Rate, spreadMs: number): number {
  return Math.max(1, Math.ceil(spreadMs / (rate.periodMs / rate.count) - 1e-9));
}

/**
 * The pool of this deployment (STORYCHECK_PREFIX) on `redis`, with the configured budgets, the
 * throttle backoff (THROTTLE_BACKOFF_BASE / _CAP) and the adaptive mode (ADAPTIVE_RATES).
 */
export function openPool(config: Config, redis: Redis): Pool {
  return createPool({
    redis,
    prefix: config.prefix,
    defaults: poolDefaults(config),
    backoff: { baseMs: config.throttleBackoffBaseMs, capMs: config.throttleBackoffCapMs },
    // The configured burst (before the reserve) is the operator's guess of the upstream's.
    adaptive: config.adaptiveRates ? { upstreamBurst: config.sessionBurst } : false,
  });
}

/** A rate slowed by `margin` (BUDGET_MARGIN): the same count over period / (1 − margin). */
export function shave(r: Rate, margin: number): Rate {
  return margin > 0 ? { count: r.count, periodMs: Math.ceil(r.periodMs / (1 - margin)) } : r;
}
