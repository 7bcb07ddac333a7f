#!/usr/bin/env node
// Limiter benchmark (issue 5): the cost of one acquire with 1,000 sessions on 200 proxies.
// Prints numbers; never asserts. Cleans its keys.
//
//   node bench/limiter.mjs            5 s per phase
//   node bench/limiter.mjs --quick    1 s per phase (CI keeps it working)
//
// Phases (one process, `loops` concurrent acquire loops on one connection):
//   open       budgets that never bind: every acquire admits → acquires/s, p50/p99 latency,
//              Redis µs per acquire (INFO commandstats, cmdstat_evalsha usec_per_call delta)
//   saturated  the global budget binds (1,000/s, burst 20); loops sleep the returned wait
//              (exactly, then with a little jitter) → admitted/s, utilization of the global
//              budget, Redis calls per admitted request
//   report     reportSuccess after each acquire → Redis calls and µs per checked request
// On a shared Redis, other clients' EVALSHA calls land in the same counters: the bench prints
// its own call count beside Redis's so a difference is visible.
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { createPool } from '@storycheck/pool';

const quick = process.argv.includes('--quick');
const PHASE_MS = quick ? 1_000 : 5_000;
const SESSIONS = 1_000;
const PROXIES = 200;
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `scbench-pool-${process.pid}`;
const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
redis.on('error', () => {});
const rate = (count, periodMs) => ({ count, periodMs });
const fmt = (n, d = 0) =>
  Number(n).toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function wipe() {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 5000);
    cursor = next;
    if (keys.length) await redis.del(...keys);
  } while (cursor !== '0');
}

/** Script calls and µs spent in them, from INFO commandstats (EVALSHA + EVAL). */
async function scriptStats() {
  const info = await redis.info('commandstats');
  let calls = 0;
  let usec = 0;
  for (const m of info.matchAll(/cmdstat_(evalsha|eval):calls=(\d+),usec=(\d+)/g)) {
    calls += Number(m[2]);
    usec += Number(m[3]);
  }
  return { calls, usec };
}

async function setup(defaults) {
  await wipe();
  const pool = createPool({ redis, prefix, defaults });
  for (let p = 0; p < PROXIES; p++) await pool.upsertProxy({ id: `p${p}`, label: `proxy-${p}` });
  for (let s = 0; s < SESSIONS; s++)
    await pool.upsertSession({ id: `s${s}`, label: `session-${s}`, proxyId: `p${s % PROXIES}` });
  return pool;
}

/** Runs `loops` loops for PHASE_MS; each iteration is `step` returning the calls it made. */
async function drive(loops, step) {
  const lat = [];
  let calls = 0;
  let admitted = 0;
  const before = await scriptStats();
  const t0 = performance.now();
  const end = t0 + PHASE_MS;
  await Promise.all(
    Array.from({ length: loops }, async () => {
      while (performance.now() < end) {
        const s = performance.now();
        const r = await step();
        lat.push(performance.now() - s);
        calls += r.calls;
        admitted += r.admitted;
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  const after = await scriptStats();
  lat.sort((a, b) => a - b);
  const redisCalls = after.calls - before.calls;
  return {
    secs,
    calls,
    admitted,
    p50: pct(lat, 0.5),
    p99: pct(lat, 0.99),
    redisCalls,
    usecPerCall: redisCalls ? (after.usec - before.usec) / redisCalls : 0,
  };
}

const WIDE = {
  sessionRate: rate(1_000_000, 1000),
  sessionBurst: 1000,
  proxyRate: rate(1_000_000, 1000),
  proxyBurst: 1000,
};

try {
  console.log(
    `pool limiter bench: ${fmt(SESSIONS)} sessions on ${PROXIES} proxies, ${PHASE_MS / 1000} s per phase${quick ? ' (quick)' : ''}`,
  );

  let pool = await setup(WIDE);
  for (const loops of [1, 16]) {
    const r = await drive(loops, async () => {
      const a = await pool.acquire();
      return { calls: 1, admitted: a.ok ? 1 : 0 };
    });
    console.log(
      `open       loops=${String(loops).padStart(2)}  ${fmt(r.admitted / r.secs).padStart(7)} acquires/s  p50 ${fmt(r.p50 * 1000).padStart(5)} µs  p99 ${fmt(r.p99 * 1000).padStart(6)} µs  Redis ${fmt(r.usecPerCall, 1)} µs/acquire  (calls: ours ${fmt(r.calls)}, Redis ${fmt(r.redisCalls)})`,
    );
    const m = (name, value, unit, goal) =>
      console.log(
        `BENCH ${JSON.stringify({ name: `limiter loops=${loops} ${name}`, value, unit, ...(goal ? { goal } : {}) })}`,
      );
    m('acquires/s', r.admitted / r.secs, 'acquires/s');
    m('p50', r.p50 * 1000, 'µs');
    m('p99', r.p99 * 1000, 'µs');
    m('Redis µs/acquire', r.usecPerCall, 'µs', '<= 50');
  }

  const GLOBAL = rate(1_000, 1000);
  // Loops that all sleep exactly the returned wait wake together (a herd: many rejected calls
  // per admission); a little jitter on the wait spreads them.
  for (const [name, jitterMs] of [
    ['exact waits', 0],
    ['waits + U(0, 5 ms)', 5],
  ]) {
    pool = await setup({ ...WIDE, globalRate: GLOBAL, globalBurst: 20 });
    let first = 0;
    let last = 0;
    const r = await drive(32, async () => {
      const a = await pool.acquire();
      if (a.ok) {
        first ||= a.lease.atUs;
        last = Math.max(last, a.lease.atUs);
        return { calls: 1, admitted: 1 };
      }
      await sleep((a.reason === 'budget' ? a.waitMs : 50) + Math.random() * jitterMs);
      return { calls: 1, admitted: 0 };
    });
    const allowed = 20 + Math.floor((last - first) / 1000);
    console.log(
      `saturated  loops=32  ${fmt(r.admitted / r.secs).padStart(7)} admitted/s of 1,000/s global  utilization ${(r.admitted / allowed).toFixed(3)}  ${(r.calls / r.admitted).toFixed(2)} acquire calls per admitted request  Redis ${fmt(r.usecPerCall, 1)} µs/call  (${name})`,
    );
    console.log(
      `BENCH ${JSON.stringify({ name: `limiter saturated (${name}) calls per admitted`, value: r.calls / r.admitted, unit: 'calls' })}`,
    );
  }

  pool = await setup(WIDE);
  {
    const r = await drive(16, async () => {
      const a = await pool.acquire();
      if (!a.ok) return { calls: 1, admitted: 0 };
      await pool.reportSuccess(a.lease);
      return { calls: 2, admitted: 1 };
    });
    console.log(
      `report     loops=16  ${fmt(r.admitted / r.secs).padStart(7)} checked requests/s (acquire + reportSuccess)  ${(r.calls / r.admitted).toFixed(2)} Redis calls per request  Redis ${fmt(r.usecPerCall, 1)} µs/call`,
    );
    console.log(
      `BENCH ${JSON.stringify({ name: 'limiter Redis calls per admitted request', value: r.calls / r.admitted, unit: 'calls' })}`,
    );
  }
} finally {
  await wipe();
  redis.disconnect();
}
