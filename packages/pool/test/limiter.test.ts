import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { createRedis } from '@storycheck/queue';
import {
  createTestPrefix,
  sleep,
  spawnNode,
  TEST_REDIS_URL,
  waitFor,
  type Spawned,
} from '@storycheck/testkit';
import { createPool, type PoolDefaults } from '../src/index.js';
import {
  capacity,
  firstViolation,
  groupTimes,
  jain,
  startPrivateRedis,
  type Admission,
  type PrivateRedis,
  type ThrottleRecord,
} from './helpers.js';

/**
 * The limiter under several processes (issue 5, "What it must show"): 4 node processes hammer
 * one pool for a few seconds each, with their clocks skewed by up to ±200 ms, and the checks
 * run on the merged admission log (Redis times).
 */

const HAMMER = fileURLToPath(new URL('./fixtures/hammer.mjs', import.meta.url));
const DIST = fileURLToPath(new URL('../dist/index.js', import.meta.url));
/** Clock skew of each hammer process, ms. */
const SKEWS_MS = [-200, 200, 0, 150];
const DURATION_MS = 3_000;
const rate = (count: number, periodMs: number) => ({ count, periodMs });
/** Exact emission interval in µs (the limiter rounds up; checking against the exact one is stricter). */
const ivUs = (r: { count: number; periodMs: number }) => (r.periodMs * 1000) / r.count;

const tp = createTestPrefix();
let redis: Redis;
const running = new Set<Spawned>();

beforeAll(() => {
  if (!existsSync(DIST))
    throw new Error('packages/pool/dist is missing: run pnpm --filter @storycheck/pool build');
  redis = createRedis(TEST_REDIS_URL);
});
afterAll(async () => {
  await Promise.all([...running].map((p) => p.kill()));
  await tp.clean();
  await redis.quit();
});

interface HammerResult {
  admissions: Admission[];
  throttles: ThrottleRecord[];
  calls: number;
  perProcess: number[];
}

/**
 * Runs SKEWS_MS.length hammer processes against one pool, started together, and merges their
 * logs; `during` runs while they hammer.
 */
async function hammer(
  cfg: Record<string, unknown>,
  during?: () => Promise<void>,
): Promise<HammerResult> {
  const procs = SKEWS_MS.map((skewMs) => {
    const p = spawnNode(
      HAMMER,
      [JSON.stringify({ durationMs: DURATION_MS, loops: 2, ...cfg, skewMs })],
      {},
    );
    running.add(p);
    return p;
  });
  await waitFor(
    () => procs.every((p) => p.stderr().includes('ready')),
    'hammer processes to be ready',
    20_000,
    20,
  );
  for (const p of procs) p.child.stdin!.write('go\n');
  await during?.();
  const out: HammerResult = { admissions: [], throttles: [], calls: 0, perProcess: [] };
  for (const p of procs) {
    const code = await p.exited;
    running.delete(p);
    if (code !== 0) throw new Error(`hammer exited ${String(code)}: ${p.stderr()}`);
    const r = JSON.parse(p.stdout()) as Omit<HammerResult, 'perProcess'> & { errors: string[] };
    expect(r.errors).toEqual([]);
    out.admissions.push(...r.admissions);
    out.throttles.push(...r.throttles);
    out.calls += r.calls;
    out.perProcess.push(r.admissions.length);
  }
  return out;
}

/** Asserts burst + floor(W / interval) for every key of a kind; returns the times per key. */
function expectBudgetsHold(
  log: Admission[],
  by: (a: Admission) => string,
  intervalUs: number,
  burst: number,
): Map<string, number[]> {
  const groups = groupTimes(log, by);
  for (const [key, times] of groups) {
    const v = firstViolation(times, intervalUs, burst);
    expect({ key, violation: v }).toEqual({ key, violation: null });
  }
  return groups;
}

describe('the budget checker', () => {
  it('catches an excess (so the checks below can fail)', () => {
    const T = 100_000;
    expect(firstViolation([0, 1, 2], T, 3)).toBeNull();
    expect(firstViolation([0, 1, 2, 3], T, 3)).toMatchObject({ admitted: 4, allowed: 3 });
    // Steady rate after a burst is fine; one too early is not.
    expect(firstViolation([0, 0, T, 2 * T, 3 * T], T, 2)).toBeNull();
    expect(firstViolation([0, 0, T, 2 * T - 1, 3 * T], T, 2)).not.toBeNull();
    expect(jain([5, 5, 5, 5])).toBe(1);
    expect(jain([10, 0, 0, 0])).toBe(0.25);
    expect(capacity([0, 10 * T], T, 3)).toBe(13);
  });
});

describe('4 processes hammering one pool (clocks skewed ±200 ms)', () => {
  it('global budget binding: no window over budget, utilization ≥ 0.98, equal shares (Jain ≥ 0.99)', async () => {
    const prefix = `${tp.prefix}:global`;
    const defaults: PoolDefaults = {
      sessionRate: rate(10, 1000),
      sessionBurst: 2,
      proxyRate: rate(60, 1000),
      proxyBurst: 4,
      globalRate: rate(100, 1000),
      globalBurst: 5,
    };
    const pool = createPool({ redis, prefix, defaults });
    for (let p = 0; p < 6; p++) await pool.upsertProxy({ id: `p${p}`, label: `proxy-${p}` });
    for (let s = 0; s < 24; s++)
      await pool.upsertSession({ id: `s${s}`, label: `session-${s}`, proxyId: `p${s % 6}` });

    const r = await hammer({ redisUrl: TEST_REDIS_URL, prefix, defaults, reportSuccess: true });
    const log = r.admissions;
    expect(r.perProcess.every((n) => n > 0)).toBe(true);

    const sessions = expectBudgetsHold(log, (a) => a[0], ivUs(defaults.sessionRate), 2);
    expectBudgetsHold(log, (a) => a[1], ivUs(defaults.proxyRate), 4);
    const global = expectBudgetsHold(log, () => 'global', ivUs(defaults.globalRate!), 5);

    const times = global.get('global')!;
    const utilization = times.length / capacity(times, ivUs(defaults.globalRate!), 5);
    expect(utilization).toBeGreaterThanOrEqual(0.98);
    expect(utilization).toBeLessThanOrEqual(1);
    const shares = [...Array(24).keys()].map((s) => sessions.get(`s${s}`)?.length ?? 0);
    expect(jain(shares)).toBeGreaterThanOrEqual(0.99);
    process.stderr.write(
      `global-bound: ${log.length} admissions, ${r.calls} acquire calls, utilization ${utilization.toFixed(4)}, Jain ${jain(shares).toFixed(4)}, per process ${r.perProcess.join('/')}\n`,
    );
  });

  it('session budgets binding: no window over budget, utilization ≥ 0.98, equal shares', async () => {
    const prefix = `${tp.prefix}:sessions`;
    const defaults: PoolDefaults = {
      sessionRate: rate(5, 1000),
      sessionBurst: 2,
      proxyRate: rate(40, 1000),
      proxyBurst: 4,
    };
    const pool = createPool({ redis, prefix, defaults });
    for (let p = 0; p < 10; p++) await pool.upsertProxy({ id: `p${p}`, label: `proxy-${p}` });
    for (let s = 0; s < 40; s++)
      await pool.upsertSession({ id: `s${s}`, label: `session-${s}`, proxyId: `p${s % 10}` });

    const r = await hammer({ redisUrl: TEST_REDIS_URL, prefix, defaults });
    const sessions = expectBudgetsHold(r.admissions, (a) => a[0], ivUs(defaults.sessionRate), 2);
    expectBudgetsHold(r.admissions, (a) => a[1], ivUs(defaults.proxyRate), 4);
    expect(sessions.size).toBe(40);
    let admitted = 0;
    let allowed = 0;
    for (const times of sessions.values()) {
      admitted += times.length;
      allowed += capacity(times, ivUs(defaults.sessionRate), 2);
    }
    const utilization = admitted / allowed;
    expect(utilization).toBeGreaterThanOrEqual(0.98);
    const shares = [...sessions.values()].map((t) => t.length);
    expect(jain(shares)).toBeGreaterThanOrEqual(0.99);
    process.stderr.write(
      `session-bound: ${admitted} admissions, ${r.calls} acquire calls, utilization ${utilization.toFixed(4)}, Jain ${jain(shares).toFixed(4)}\n`,
    );
  });

  describe('on a private redis-server (SCRIPT FLUSH must not disturb the shared one)', () => {
    let priv: PrivateRedis;
    let conn: Redis;
    beforeAll(async () => {
      priv = await startPrivateRedis();
      conn = createRedis(priv.url);
    });
    afterAll(async () => {
      await conn.quit();
      await priv.stop();
    });

    it('throttles under load: no admission inside a cooldown; budgets (proxies binding) hold across two SCRIPT FLUSHes', async () => {
      const prefix = `${tp.prefix}:cooldown`;
      // Two sessions of 20/s share each proxy of 30/s: the proxies bind.
      const defaults: PoolDefaults = {
        sessionRate: rate(20, 1000),
        sessionBurst: 3,
        proxyRate: rate(30, 1000),
        proxyBurst: 3,
      };
      const pool = createPool({ redis: conn, prefix, defaults });
      for (let p = 0; p < 4; p++) await pool.upsertProxy({ id: `p${p}`, label: `proxy-${p}` });
      for (let s = 0; s < 8; s++)
        await pool.upsertSession({ id: `s${s}`, label: `session-${s}`, proxyId: `p${s % 4}` });

      const flushedAtUs: number[] = [];
      const r = await hammer(
        {
          redisUrl: priv.url,
          prefix,
          defaults,
          backoff: { baseMs: 50, capMs: 400 },
          throttleEvery: 5,
          retryAfterMaxMs: 200,
          reportSuccess: true,
        },
        async () => {
          for (let i = 0; i < 2; i++) {
            await sleep(1_000);
            await conn.script('FLUSH');
            const [s, us] = await conn.time();
            flushedAtUs.push(Number(s) * 1e6 + Number(us));
          }
        },
      );
      const log = r.admissions;

      expectBudgetsHold(log, (a) => a[0], ivUs(defaults.sessionRate), 3);
      expectBudgetsHold(log, (a) => a[1], ivUs(defaults.proxyRate), 3);
      expect(r.throttles.length).toBeGreaterThan(20);
      const proxyCooldowns = r.throttles.filter((t) => t[4] > 0);
      expect(proxyCooldowns.length).toBeGreaterThan(3);
      const inside: unknown[] = [];
      for (const [session, proxy, nowUs, sUntil, pUntil] of r.throttles) {
        for (const [s, p, at] of log) {
          if (s === session && at > nowUs && at < sUntil) inside.push({ session, at, sUntil });
          if (pUntil > 0 && p === proxy && at > nowUs && at < pUntil)
            inside.push({ proxy, at, pUntil });
        }
      }
      expect(inside).toEqual([]);
      // Work went on after each flush (EVALSHA → NOSCRIPT → EVAL, transparently).
      for (const f of flushedAtUs)
        expect(log.filter((a) => a[2] > f + 100_000).length).toBeGreaterThan(0);
      const evals = /cmdstat_eval:calls=(\d+)/.exec(await conn.info('commandstats'));
      expect(Number(evals?.[1] ?? 0)).toBeGreaterThan(0);
      process.stderr.write(
        `cooldowns: ${log.length} admissions, ${r.throttles.length} throttles (${proxyCooldowns.length} on the IP), 0 inside a cooldown\n`,
      );
    });
  });
});
