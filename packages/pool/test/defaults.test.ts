import type { Redis } from 'ioredis';
import { loadConfig } from '@storycheck/config';
import { createRedis } from '@storycheck/queue';
import { createTestPrefix, TEST_REDIS_URL } from '@storycheck/testkit';
import { openPool, poolDefaults } from '../src/index.js';

const tp = createTestPrefix();
let redis: Redis;

beforeAll(() => {
  redis = createRedis(TEST_REDIS_URL);
});
afterAll(async () => {
  await tp.clean();
  await redis.quit();
});

describe('openPool (the configuration a worker runs with)', () => {
  it('THROTTLE_BACKOFF_BASE and _CAP reach the pool: cooldowns stay within min(cap, base·2^k)', async () => {
    const config = loadConfig({
      STORYCHECK_PREFIX: tp.prefix,
      SESSION_RATE: '10/1s',
      THROTTLE_BACKOFF_BASE: '100ms',
      THROTTLE_BACKOFF_CAP: '250ms',
      // The backoff formula alone: adaptive mode waits longer for an unknown
      // penalty and ignores throttles of a lease already reported (pool.test.ts covers it).
      ADAPTIVE_RATES: 'false',
    });
    expect(config).toMatchObject({ throttleBackoffBaseMs: 100, throttleBackoffCapMs: 250 });
    const pool = openPool(config, redis);
    await pool.upsertSession({ id: 's', label: 's', proxyId: null });
    const r = await pool.acquire();
    if (!r.ok) throw new Error('expected a lease');
    // With the defaults (60 s, 30 min) each of these would be random(0, 60 s · 2^k): five of
    // them all under a quarter of a second would be a ~1e-12 coincidence.
    const bounds = [100, 200, 250, 250, 250];
    const seen: number[] = [];
    for (let k = 0; k < bounds.length; k++) {
      const t = await pool.reportThrottled(r.lease);
      seen.push((t.sessionCooldownUntilUs! - t.nowUs) / 1000);
    }
    seen.forEach((ms, k) => expect(ms).toBeLessThanOrEqual(bounds[k]!));
    expect((await pool.snapshot()).sessions[0]).toMatchObject({ throttleStreak: 5 });
  });

  it('BUDGET_MARGIN (default 0.03) shaves rates; bursts keep LEASE_SPREAD (default 300 ms) of requests in reserve, at least one', () => {
    const d0 = poolDefaults(loadConfig({ SESSION_RATE: '10/1s', SESSION_BURST: '5' }));
    expect(d0.sessionRate).toEqual({ count: 10, periodMs: 1031 });
    // 300 ms at one request per 100 ms: 3 in reserve.
    expect(d0.sessionBurst).toBe(2);
    // The production defaults (intervals of 1.1 s and 3.3 s): one in reserve.
    const prod = poolDefaults(loadConfig({}));
    expect(prod).toMatchObject({ sessionBurst: 4, proxyBurst: 9 });
    const wide = poolDefaults(
      loadConfig({ SESSION_RATE: '10/1s', SESSION_BURST: '5', LEASE_SPREAD: '100ms' }),
    );
    expect(wide.sessionBurst).toBe(4);
    // Never below a burst of 1.
    const tight = poolDefaults(
      loadConfig({ SESSION_RATE: '10/1s', SESSION_BURST: '5', LEASE_SPREAD: '2s' }),
    );
    expect(tight.sessionBurst).toBe(1);
    const off = poolDefaults(
      loadConfig({ SESSION_RATE: '10/1s', SESSION_BURST: '5', BUDGET_MARGIN: '0' }),
    );
    expect(off).toMatchObject({ sessionRate: { count: 10, periodMs: 1000 }, sessionBurst: 5 });
    const d = poolDefaults(
      loadConfig({ SESSION_RATE: '10/1s', SESSION_BURST: '5', BUDGET_MARGIN: '0.1' }),
    );
    expect(d.sessionRate).toEqual({ count: 10, periodMs: 1112 });
    expect(d.sessionBurst).toBe(2);
  });
});
