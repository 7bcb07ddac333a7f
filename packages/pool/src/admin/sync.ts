import { parseRate, type Config } from '@storycheck/config';
import { mirrorPool, type Db, type PoolStore } from '@storycheck/db';
import { burstReserve, shave } from '../defaults.js';
import type { Pool } from '../pool.js';

/*
 * The one place where the pool's two stores meet, each way in one direction only:
 *
 * - Operator settings — which sessions and proxies exist, labels, bindings, budgets, and
 *   whether a session is disabled — live in Postgres and flow Postgres → Redis
 *   ({@link syncFromStore}). Live states are never taken from Postgres.
 * - Live state — usage, last used, cooldowns, throttles, invalid/challenge/suspended, broken
 *   proxies — lives in Redis and is read from Redis (`Pool.snapshot`). {@link mirrorToStore}
 *   copies it into the rows for SQL readers; it never writes the operator's `disabled`, and
 *   never overwrites it, so a mirror racing `sessions enable`/`disable` cannot undo it.
 */

/**
 * Brings the pool in line with the store (Postgres → Redis): creates missing members and
 * updates labels, bindings and budgets (per-session overrides shaved by BUDGET_MARGIN and
 * LEASE_SPREAD as `poolDefaults` shaves the defaults). Live states survive — an invalid
 * session is not revived; sessions and proxies disabled in the store are disabled in the pool.
 * Run by every worker at start and every 30 s, and by the CLI's pool commands.
 */
export async function syncFromStore(pool: Pool, config: Config, store: PoolStore): Promise<void> {
  const m = config.budgetMargin;
  const spread = config.leaseSpreadMs;
  for (const p of store.proxies) {
    await pool.upsertProxy({ id: p.id, label: p.label }, { keepState: true });
    if (p.status === 'disabled') await pool.markProxy(p.id, 'disabled');
  }
  for (const s of store.sessions) {
    const rate = s.rate ? parseRate(s.rate) : undefined;
    await pool.upsertSession(
      {
        id: s.id,
        label: s.label,
        proxyId: s.proxyId,
        rate: rate ? shave(rate, m) : undefined,
        burst:
          s.burst === null
            ? undefined
            : m > 0
              ? Math.max(1, s.burst - burstReserve(rate ?? config.sessionRate, spread))
              : s.burst,
      },
      { keepState: true },
    );
    if (s.status === 'disabled') await pool.disableSession(s.id);
  }
}

/**
 * Mirrors the pool's live state (Redis → Postgres): status, usage, last used, cooldown and
 * last error of every member into its row. Idempotent; a worker runs it every 30 s and when it
 * retires a session, `sessions check` after its verdicts. Leaves `disabled` to the operator.
 */
export async function mirrorToStore(pool: Pool, db: Db): Promise<void> {
  const snap = await pool.snapshot();
  const d = (ms: number | null) => (ms === null ? null : new Date(ms));
  await mirrorPool(db, {
    sessions: snap.sessions.map((s) => ({
      id: Number(s.id),
      status: s.status,
      usageCount: s.usageCount,
      lastUsed: d(s.lastUsedAt),
      cooldownUntil: d(s.cooldownUntil),
      lastError: s.lastError,
    })),
    proxies: snap.proxies.map((p) => ({
      id: Number(p.id),
      status: p.status,
      usageCount: p.usageCount,
      lastUsed: d(p.lastUsedAt),
      cooldownUntil: d(p.cooldownUntil),
      lastError: p.lastError,
    })),
  });
}
