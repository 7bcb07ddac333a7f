import type { Redis } from 'ioredis';
import { createRedis } from '@storycheck/queue';
import { createTestPrefix, sleep, TEST_REDIS_URL } from '@storycheck/testkit';
import {
  createPool,
  PoolError,
  type AcquireResult,
  type Lease,
  type Pool,
  type PoolOptions,
  type SessionState,
} from '../src/index.js';
import {
  dumpKeys,
  firstViolation,
  groupTimes,
  startPrivateRedis,
  type Admission,
  type PrivateRedis,
} from './helpers.js';

const rate = (count: number, periodMs: number) => ({ count, periodMs });
/** Budgets large enough never to bind, unless a test narrows one. */
const WIDE = {
  sessionRate: rate(1000, 1000),
  sessionBurst: 100,
  proxyRate: rate(1000, 1000),
  proxyBurst: 100,
};

const tp = createTestPrefix();
let redis: Redis;
let n = 0;

beforeAll(() => {
  redis = createRedis(TEST_REDIS_URL);
});
afterAll(async () => {
  await tp.clean();
  await redis.quit();
});

/** A pool under its own sub-prefix (so each test starts empty); keys still under tp.prefix. */
function makePool(opts: Partial<PoolOptions> = {}, conn: Redis = redis): Pool & { prefix: string } {
  const prefix = `${tp.prefix}:t${++n}`;
  const pool = createPool({ redis: conn, prefix, defaults: WIDE, random: () => 0.5, ...opts });
  return Object.assign(pool, { prefix });
}

function lease(r: AcquireResult): Lease {
  if (!r.ok) throw new Error(`expected a lease, got ${JSON.stringify(r)}`);
  return r.lease;
}

async function acquireMany(pool: Pool, count: number): Promise<AcquireResult[]> {
  const out: AcquireResult[] = [];
  for (let i = 0; i < count; i++) out.push(await pool.acquire());
  return out;
}

/** The next lease, waiting (Redis-time waits) for budget or a cooldown to end. */
async function leaseWhenReady(pool: Pool): Promise<Lease> {
  for (;;) {
    const r = await pool.acquire();
    if (r.ok) return r.lease;
    if (r.reason !== 'budget') throw new Error('no usable session');
    await sleep(r.waitMs + 1);
  }
}

const sessionsOf = (rs: AcquireResult[]) => rs.map((r) => (r.ok ? r.lease.sessionId : '-'));

describe('acquire', () => {
  it('leases the least recently used session, with its proxy and labels', async () => {
    const pool = makePool();
    await pool.upsertProxy({ id: 'p1', label: 'proxy one' });
    for (const id of ['a', 'b', 'c'])
      await pool.upsertSession({ id, label: `session ${id}`, proxyId: 'p1' });
    const rs = await acquireMany(pool, 6);
    expect(sessionsOf(rs)).toEqual(['a', 'b', 'c', 'a', 'b', 'c']);
    const first = lease(rs[0]!);
    expect(first).toMatchObject({
      sessionLabel: 'session a',
      proxyId: 'p1',
      proxyLabel: 'proxy one',
    });
    expect(new Set(rs.map((r) => lease(r).leaseId)).size).toBe(6);
    // Redis time, µs, increasing.
    const times = rs.map((r) => lease(r).atUs);
    expect([...times].sort((x, y) => x - y)).toEqual(times);
  });

  it('admits the burst, then one per interval, and says how long to wait', async () => {
    // A 500 ms interval: back-to-back calls stay well inside it even on a loaded machine.
    const pool = makePool({ defaults: { ...WIDE, sessionRate: rate(2, 1000), sessionBurst: 3 } });
    await pool.upsertSession({ id: 's', label: 's', proxyId: null });
    const rs = await acquireMany(pool, 4);
    expect(rs.slice(0, 3).every((r) => r.ok)).toBe(true);
    const rejected = rs[3]!;
    if (rejected.ok || rejected.reason !== 'budget') throw new Error('expected budget');
    // The 4th is due one interval (500 ms) after the first admission.
    expect(rejected.waitMs).toBeGreaterThan(0);
    expect(rejected.waitMs).toBeLessThanOrEqual(500);
    await sleep(rejected.waitMs + 2);
    expect((await pool.acquire()).ok).toBe(true);
    const again = await pool.acquire();
    expect(again.ok).toBe(false);
  });

  it('the proxy budget and the global budget bind too', async () => {
    const pool = makePool({
      defaults: { ...WIDE, proxyRate: rate(1, 60_000), proxyBurst: 2 },
    });
    await pool.upsertProxy({ id: 'p', label: 'p' });
    for (const id of ['a', 'b', 'c']) await pool.upsertSession({ id, label: id, proxyId: 'p' });
    const rs = await acquireMany(pool, 3);
    expect(rs.map((r) => r.ok)).toEqual([true, true, false]);
    expect(rs[2]).toMatchObject({ reason: 'budget' });

    const g = makePool({ defaults: { ...WIDE, globalRate: rate(1, 60_000), globalBurst: 2 } });
    for (const id of ['a', 'b', 'c']) await g.upsertSession({ id, label: id, proxyId: null });
    const gs = await acquireMany(g, 3);
    expect(gs.map((r) => r.ok)).toEqual([true, true, false]);
    const w = gs[2]!;
    expect(w.ok === false && w.reason === 'budget' && w.waitMs > 50_000).toBe(true);
  });

  it('a proxy with budget left leaves its other sessions alone; once it binds they all wait for it', async () => {
    const pool = makePool({ defaults: { ...WIDE, proxyRate: rate(1, 60_000), proxyBurst: 2 } });
    await pool.upsertProxy({ id: 'p', label: 'p' });
    for (const id of ['a', 'b', 'c']) await pool.upsertSession({ id, label: id, proxyId: 'p' });
    const score = (id: string) => redis.zscore(pool.keys.ready, id);
    const before = { b: await score('b'), c: await score('c') };

    // One of the proxy's two: it may still send, so b's and c's scores are not written.
    expect(lease(await pool.acquire()).sessionId).toBe('a');
    expect({ b: await score('b'), c: await score('c') }).toEqual(before);
    let snap = await pool.snapshot();
    expect(snap.sessions.map((s) => [s.id, s.leasable, s.nextSendInMs])).toEqual([
      ['a', true, 0],
      ['b', true, 0],
      ['c', true, 0],
    ]);
    expect(snap.proxies[0]).toMatchObject({ nextSendInMs: 0, usageCount: 1 });

    // The second uses it up: every session on it (the pick and its siblings) and the proxy
    // itself now wait the proxy's interval (60 s).
    expect(lease(await pool.acquire()).sessionId).toBe('b');
    snap = await pool.snapshot();
    for (const s of snap.sessions) expect(s.nextSendInMs).toBeGreaterThan(50_000);
    expect(snap.proxies[0]!.nextSendInMs).toBeGreaterThan(50_000);
    const w = await pool.acquire();
    expect(w.ok === false && w.reason === 'budget' && w.waitMs > 50_000).toBe(true);
  });

  it('keeps the lru hash a hash table (O(1) pick-window lookups) from the first session on', async () => {
    const pool = makePool();
    await pool.upsertSession({ id: 'a', label: 'a', proxyId: null });
    // Without the pad field a hash of up to 512 short fields is a listpack (linear lookups).
    expect(await redis.object('ENCODING', pool.keys.lru)).toBe('hashtable');
    for (const id of ['b', 'c']) await pool.upsertSession({ id, label: id, proxyId: null });
    const rs = await acquireMany(pool, 4);
    expect(sessionsOf(rs)).toEqual(['a', 'b', 'c', 'a']);
    expect(await redis.object('ENCODING', pool.keys.lru)).toBe('hashtable');
    expect(await pool.removeSession('a')).toBe(true);
    expect(await redis.hkeys(pool.keys.lru)).toEqual(expect.arrayContaining(['#', 'b', 'c']));
    expect(await redis.hexists(pool.keys.lru, 'a')).toBe(0);
  });

  it('a rejected call changes no state (DUMP of every pool key before and after)', async () => {
    const pool = makePool({
      defaults: {
        ...WIDE,
        sessionRate: rate(1, 60_000),
        sessionBurst: 1,
        globalRate: rate(1, 60_000),
        globalBurst: 2,
      },
    });
    await pool.upsertProxy({ id: 'p', label: 'p' });
    await pool.upsertSession({ id: 'a', label: 'a', proxyId: 'p' });
    await pool.upsertSession({ id: 'b', label: 'b', proxyId: 'p' });
    await pool.upsertSession({ id: 'c', label: 'c', proxyId: 'p' });
    expect((await acquireMany(pool, 2)).every((r) => r.ok)).toBe(true);
    // c may send, the global budget may not: rejected by the global key after the pick.
    const before = await dumpKeys(redis, pool.prefix);
    expect(Object.keys(before).length).toBeGreaterThan(5);
    for (const r of await acquireMany(pool, 5))
      expect(r).toMatchObject({ ok: false, reason: 'budget' });
    expect(await dumpKeys(redis, pool.prefix)).toEqual(before);

    // Session budgets exhausted (no global budget).
    const q = makePool({ defaults: { ...WIDE, sessionRate: rate(1, 60_000), sessionBurst: 1 } });
    await q.upsertSession({ id: 'a', label: 'a', proxyId: null });
    lease(await q.acquire());
    const before2 = await dumpKeys(redis, q.prefix);
    for (const r of await acquireMany(q, 5))
      expect(r).toMatchObject({ ok: false, reason: 'budget' });
    expect(await dumpKeys(redis, q.prefix)).toEqual(before2);

    // Nothing usable at all.
    await q.markSession('a', 'invalid');
    const before3 = await dumpKeys(redis, q.prefix);
    for (const r of await acquireMany(q, 3))
      expect(r).toEqual({ ok: false, reason: 'no_usable_session' });
    expect(await dumpKeys(redis, q.prefix)).toEqual(before3);
  });

  it('no_usable_session (operator needed) is distinct from budget (wait N ms)', async () => {
    const pool = makePool({ defaults: { ...WIDE, sessionRate: rate(1, 60_000), sessionBurst: 1 } });
    expect(await pool.acquire()).toEqual({ ok: false, reason: 'no_usable_session' });
    await pool.upsertProxy({ id: 'p', label: 'p' });
    await pool.upsertSession({ id: 'a', label: 'a', proxyId: 'p' });
    lease(await pool.acquire());
    expect(await pool.acquire()).toMatchObject({ ok: false, reason: 'budget' });
    await pool.markProxy('p', 'disabled');
    expect(await pool.acquire()).toEqual({ ok: false, reason: 'no_usable_session' });
    await pool.markProxy('p', 'active');
    expect(await pool.acquire()).toMatchObject({ ok: false, reason: 'budget' });
    // A session bound to a proxy that does not exist (yet) is not leasable.
    const q = makePool();
    await q.upsertSession({ id: 'a', label: 'a', proxyId: 'later' });
    expect(await q.acquire()).toEqual({ ok: false, reason: 'no_usable_session' });
    await q.upsertProxy({ id: 'later', label: 'later' });
    expect(lease(await q.acquire()).proxyId).toBe('later');
  });
});

describe('release and leasing one session', () => {
  it('release gives the budget back: session, proxy and global, and the siblings may send again', async () => {
    const pool = makePool({
      defaults: {
        ...WIDE,
        sessionRate: rate(1, 60_000),
        sessionBurst: 1,
        proxyRate: rate(1, 60_000),
        proxyBurst: 1,
        globalRate: rate(1, 60_000),
        globalBurst: 1,
      },
    });
    await pool.upsertProxy({ id: 'p', label: 'p' });
    for (const id of ['a', 'b']) await pool.upsertSession({ id, label: id, proxyId: 'p' });
    const l = lease(await pool.acquire());
    // Every budget is spent for a minute: nothing may send.
    expect(await pool.acquire()).toMatchObject({ ok: false, reason: 'budget' });
    await pool.release(l);
    // Given back: a lease at once (the sibling, least recently used, or the same session).
    const again = lease(await pool.acquire());
    expect(['a', 'b']).toContain(again.sessionId);
    expect(await pool.acquire()).toMatchObject({ ok: false, reason: 'budget' });
    // Usage counts only what was sent.
    const snap = await pool.snapshot();
    expect(snap.sessions.reduce((n, s) => n + s.usageCount, 0)).toBe(1);
    expect(snap.proxies[0]!.usageCount).toBe(1);
  });

  it('a lease given back after a sibling was admitted never backdates the sibling', async () => {
    // Y leased from a full bucket, A after it, then Y given back: the budget must count A from
    // A's own admission. Moving the TAT back one interval (the old release) counted A as if
    // admitted at Y's time, and the bucket admitted the next request A − Y early.
    const ivUs = 60_000_000;
    const pool = makePool({ defaults: { ...WIDE, sessionRate: rate(1, 60_000), sessionBurst: 3 } });
    await pool.upsertSession({ id: 's', label: 's', proxyId: null });
    const y = lease(await pool.acquire());
    await sleep(5);
    const a = lease(await pool.acquire());
    expect(a.atUs).toBeGreaterThan(y.atUs);
    await pool.release(y);
    const tat = Number(await redis.hget(pool.keys.session('s'), 'tat'));
    // What A alone allows: a TAT of at least A + T.
    expect(tat).toBeGreaterThanOrEqual(a.atUs + ivUs);
  });

  it('random leases, sends and give-backs never put a session, a proxy or the global budget over', async () => {
    // Short intervals (2–4 ms), so that real time between the calls refills the buckets and
    // every order of admissions, clamps and give-backs happens; the invariant is checked on the
    // requests "sent" (leases not given back), by their admission times.
    const iv = { session: 4_000, proxy: 3_000, global: 2_000 };
    const burst = { session: 2, proxy: 3, global: 4 };
    const pool = makePool({
      defaults: {
        sessionRate: rate(1, iv.session / 1000),
        sessionBurst: burst.session,
        proxyRate: rate(1, iv.proxy / 1000),
        proxyBurst: burst.proxy,
        globalRate: rate(1, iv.global / 1000),
        globalBurst: burst.global,
      },
    });
    for (const p of ['p', 'q']) await pool.upsertProxy({ id: p, label: p });
    for (const [id, p] of [
      ['a', 'p'],
      ['b', 'p'],
      ['c', 'q'],
    ] as const)
      await pool.upsertSession({ id, label: id, proxyId: p });
    let seed = 15;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const held: Lease[] = [];
    const sent: Lease[] = [];
    let released = 0;
    // Until enough of both happened (a count, not a time): a fast machine needs more steps.
    for (let step = 0; step < 20_000 && (released < 100 || sent.length < 100); step++) {
      const r = rnd();
      if (r < 0.45) {
        const got = await pool.acquire();
        if (got.ok) held.push(got.lease);
      } else if (r < 0.75 && held.length) {
        const [l] = held.splice(Math.floor(rnd() * held.length), 1);
        await pool.release(l!);
        released++;
      } else if (held.length) {
        sent.push(...held.splice(0, held.length));
      } else await sleep(Math.floor(rnd() * 3));
    }
    sent.push(...held);
    expect(released).toBeGreaterThanOrEqual(100);
    expect(sent.length).toBeGreaterThanOrEqual(100);
    const log: Admission[] = sent.map((l) => [l.sessionId, l.proxyId ?? '', l.atUs]);
    const over: string[] = [];
    for (const [kind, key, ivUs, b] of [
      ['session', (a: Admission) => a[0], iv.session, burst.session],
      ['proxy', (a: Admission) => a[1], iv.proxy, burst.proxy],
      ['global', () => 'all', iv.global, burst.global],
    ] as const)
      for (const [k, ts] of groupTimes(log, key)) {
        const v = firstViolation(ts, ivUs, b);
        if (v) over.push(`${kind} ${k}: ${JSON.stringify(v)}`);
      }
    expect(over).toEqual([]);
  });

  it('release after a cooldown began leaves the cooled session where the cooldown put it', async () => {
    const pool = makePool({ defaults: { ...WIDE, sessionRate: rate(1, 60_000), sessionBurst: 2 } });
    await pool.upsertSession({ id: 's', label: 's', proxyId: null });
    const first = lease(await pool.acquire());
    const second = lease(await pool.acquire());
    await pool.reportThrottled(first, { retryAfterMs: 60_000 });
    await pool.release(second);
    const snap = (await pool.snapshot()).sessions[0]!;
    expect(snap.status).toBe('cooling');
    expect(await pool.acquire()).toMatchObject({ ok: false, reason: 'budget' });
  });

  it('acquire(id) leases that session only, says how long until it may send, and never revives it', async () => {
    const pool = makePool({ defaults: { ...WIDE, sessionRate: rate(1, 60_000), sessionBurst: 1 } });
    await pool.upsertProxy({ id: 'p', label: 'p' });
    for (const id of ['a', 'b']) await pool.upsertSession({ id, label: id, proxyId: 'p' });
    expect(lease(await pool.acquire('b')).sessionId).toBe('b');
    const w = await pool.acquire('b');
    expect(w.ok === false && w.reason === 'budget' && w.waitMs > 50_000).toBe(true);
    // The other one is untouched.
    expect(lease(await pool.acquire()).sessionId).toBe('a');
    // An invalid session can be leased by name (sessions check) and stays out of the ready set.
    await pool.upsertSession({ id: 'c', label: 'c', proxyId: 'p' });
    await pool.markSession('c', 'invalid');
    expect(lease(await pool.acquire('c')).sessionId).toBe('c');
    expect(await redis.zscore(pool.keys.ready, 'c')).toBeNull();
    expect((await pool.snapshot()).sessions.find((s) => s.id === 'c')!.status).toBe('invalid');
    // Unknown session, or its proxy disabled: none.
    expect(await pool.acquire('zz')).toEqual({ ok: false, reason: 'no_usable_session' });
    await pool.markProxy('p', 'disabled');
    expect(await pool.acquire('a')).toEqual({ ok: false, reason: 'no_usable_session' });
  });

  it('acquire(id) of a cooling session waits for the cooldown', async () => {
    const pool = makePool();
    await pool.upsertSession({ id: 's', label: 's', proxyId: null });
    await pool.reportThrottled(lease(await pool.acquire()), { retryAfterMs: 60_000 });
    const w = await pool.acquire('s');
    expect(w.ok === false && w.reason === 'budget' && w.waitMs > 50_000).toBe(true);
  });
});

describe('session states', () => {
  it.each([
    { state: 'invalid' as const, via: 'reportSessionDead' },
    { state: 'challenge' as const, via: 'reportSessionDead' },
    { state: 'suspended' as const, via: 'reportSessionDead' },
    { state: 'disabled' as const, via: 'markSession' },
  ])('$state ($via): never leased again until enabled or re-imported', async ({ state, via }) => {
    const pool = makePool();
    await pool.upsertSession({ id: 'x', label: 'x', proxyId: null });
    await pool.upsertSession({ id: 'y', label: 'y', proxyId: null });
    const l = lease(await pool.acquire());
    expect(l.sessionId).toBe('x');
    if (via === 'reportSessionDead' && state !== 'disabled')
      await pool.reportSessionDead(l, state, 'login_required');
    else await pool.markSession('x', state);
    expect(sessionsOf(await acquireMany(pool, 20))).toEqual(Array(20).fill('y'));
    const snap = await pool.snapshot();
    expect(snap.sessions.find((s) => s.id === 'x')).toMatchObject({
      status: state,
      leasable: false,
      nextSendInMs: null,
    });
    // Enabled: leased again (it is now the least recently used).
    expect(await pool.enableSession('x')).toBe(state);
    expect(lease(await pool.acquire()).sessionId).toBe('x');
    // Re-imported: the same.
    await pool.markSession('x', state);
    expect(sessionsOf(await acquireMany(pool, 3))).toEqual(['y', 'y', 'y']);
    await pool.upsertSession({ id: 'x', label: 'x', proxyId: null });
    expect(lease(await pool.acquire()).sessionId).toBe('x');
  });

  it('keepState: a sync does not revive an invalid session; a re-import keeps tat and cooldown', async () => {
    const pool = makePool({ defaults: { ...WIDE, sessionRate: rate(1, 60_000), sessionBurst: 1 } });
    await pool.upsertSession({ id: 'x', label: 'x', proxyId: null });
    lease(await pool.acquire());
    await pool.markSession('x', 'invalid');
    expect(
      await pool.upsertSession({ id: 'x', label: 'x2', proxyId: null }, { keepState: true }),
    ).toBe(false);
    expect(await pool.acquire()).toEqual({ ok: false, reason: 'no_usable_session' });
    // Re-import: active again, but its budget is still spent (no fresh burst).
    await pool.upsertSession({ id: 'x', label: 'x2', proxyId: null });
    const r = await pool.acquire();
    expect(r).toMatchObject({ ok: false, reason: 'budget' });
    expect(r.ok === false && r.reason === 'budget' && r.waitMs > 50_000).toBe(true);
    const [s] = (await pool.snapshot()).sessions;
    expect(s).toMatchObject({ label: 'x2', status: 'active', usageCount: 1 });
  });

  it('validates ids, states and budgets with PoolError', async () => {
    const pool = makePool();
    await expect(pool.upsertSession({ id: 'a:b', label: 'x', proxyId: null })).rejects.toThrow(
      PoolError,
    );
    await expect(pool.upsertSession({ id: 'a', label: 'x', proxyId: '{p}' })).rejects.toThrow(
      /proxy id/,
    );
    await expect(
      pool.upsertSession({ id: 'a', label: 'x', proxyId: null, burst: 0 }),
    ).rejects.toThrow(/burst/);
    await expect(
      pool.upsertSession({ id: 'a', label: 'x', proxyId: null, rate: rate(0, 1000) }),
    ).rejects.toThrow(/rate/);
    await expect(pool.markSession('a', 'bogus' as SessionState)).rejects.toThrow(/state/);
    expect(await pool.markSession('nobody', 'disabled')).toBeNull();
  });
});

describe('cooldown and backoff', () => {
  it('cooldown = max(Retry-After, full jitter), only moves later, returns with an empty burst; k resets on success', async () => {
    let r = 0.5;
    const pool = makePool({
      defaults: { ...WIDE, sessionRate: rate(10, 1000), sessionBurst: 3 },
      backoff: { baseMs: 100, capMs: 1000 },
      random: () => r,
    });
    await pool.upsertSession({ id: 's', label: 's', proxyId: null });
    const l = lease(await pool.acquire());
    // k = 0: 0.5 · min(1000, 100) = 50 ms.
    const t1 = await pool.reportThrottled(l);
    expect(t1.sessionCooldownUntilUs! - t1.nowUs).toBe(50_000);
    // k = 1: 0.5 · 200 = 100 ms.
    const t2 = await pool.reportThrottled(l);
    expect(t2.sessionCooldownUntilUs! - t2.nowUs).toBe(100_000);
    // Retry-After wins when longer.
    const t3 = await pool.reportThrottled(l, { retryAfterMs: 400 });
    expect(t3.sessionCooldownUntilUs! - t3.nowUs).toBe(400_000);
    // A shorter one never brings the end earlier.
    r = 0;
    const t4 = await pool.reportThrottled(l, { retryAfterMs: 1 });
    expect(t4.sessionCooldownUntilUs).toBe(t3.sessionCooldownUntilUs);
    let snap = (await pool.snapshot()).sessions[0]!;
    expect(snap).toMatchObject({ status: 'cooling', throttleStreak: 4, lastError: 'throttled' });
    expect(snap.cooldownLeftMs).toBeGreaterThan(0);
    expect(snap.cooldownLeftMs).toBeLessThanOrEqual(400);

    const w = await pool.acquire();
    if (w.ok || w.reason !== 'budget') throw new Error('expected a budget wait');
    // Waits until the cooldown's end, in Redis time.
    const [secs, micros] = await redis.time();
    const nowUs = Number(secs) * 1e6 + Number(micros);
    expect(w.waitUs).toBeLessThanOrEqual(t3.sessionCooldownUntilUs! - t3.nowUs);
    expect(nowUs + w.waitUs).toBeGreaterThanOrEqual(t3.sessionCooldownUntilUs! - 5_000);
    await sleep(w.waitMs + 2);
    // One request at the end of the cooldown, then the rate: no burst (burst is 3). How late
    // this process wakes up decides whether the next call is admitted at once (a late wake-up
    // has earned an interval), so the check is on Redis times: the k-th admission after the
    // cooldown comes no earlier than its end + k intervals (100 ms).
    const cu = t3.sessionCooldownUntilUs!;
    const after = lease(await pool.acquire());
    expect(after.atUs).toBeGreaterThanOrEqual(cu);
    const times = [after.atUs];
    while (times.length < 3) {
      const a = await pool.acquire();
      if (a.ok) times.push(a.lease.atUs);
      else await sleep(a.reason === 'budget' ? a.waitMs : 10);
    }
    times.forEach((t, k) => expect(t).toBeGreaterThanOrEqual(cu + k * 100_000));

    await pool.reportSuccess(after);
    snap = (await pool.snapshot()).sessions[0]!;
    expect(snap.throttleStreak).toBe(0);
    // k reset: the next throttle is back to 0.5 · 100 ms.
    r = 0.5;
    const t5 = await pool.reportThrottled(after);
    expect(t5.sessionCooldownUntilUs! - t5.nowUs).toBe(50_000);
    // Without the adaptive mode nothing is learned: the cooldown is the formula alone.
    expect((await pool.snapshot()).sessions[0]).toMatchObject({
      learnedPenaltyMs: null,
      throttledRateFactor: null,
      rateFactor: 1,
    });
  });

  it('ipPattern cools the proxy, and with it every session on it, not the others', async () => {
    const pool = makePool({ backoff: { baseMs: 60_000, capMs: 60_000 } });
    await pool.upsertProxy({ id: 'p1', label: 'p1' });
    await pool.upsertProxy({ id: 'p2', label: 'p2' });
    await pool.upsertSession({ id: 'a', label: 'a', proxyId: 'p1' });
    await pool.upsertSession({ id: 'b', label: 'b', proxyId: 'p1' });
    await pool.upsertSession({ id: 'c', label: 'c', proxyId: 'p2' });
    const l = lease(await pool.acquire());
    expect(l.sessionId).toBe('a');
    const t = await pool.reportThrottled(l, { ipPattern: true, retryAfterMs: 30_000 });
    expect(t.proxyCooldownUntilUs).not.toBeNull();
    expect(sessionsOf(await acquireMany(pool, 10))).toEqual(Array(10).fill('c'));
    const snap = await pool.snapshot();
    expect(snap.proxies.find((p) => p.id === 'p1')).toMatchObject({ status: 'cooling' });
    expect(snap.sessions.find((s) => s.id === 'b')).toMatchObject({
      status: 'active',
      leasable: true,
    });
    expect(snap.sessions.find((s) => s.id === 'b')!.nextSendInMs).toBeGreaterThan(20_000);
  });

  it('adaptive: the first throttle of a streak lowers the rate; the rest of the streak and requests in flight do not; never below the floor', async () => {
    const pool = makePool({
      defaults: { ...WIDE, sessionRate: rate(10, 1000), sessionBurst: 5 },
      backoff: { baseMs: 1, capMs: 1 },
      adaptive: { raiseAfter: 1000, decrease: 0.5, floor: 0.2 },
    });
    await pool.upsertSession({ id: 's', label: 's', proxyId: null });
    const info = async () => (await pool.snapshot()).sessions[0]!;
    const l0 = lease(await pool.acquire());
    const l1 = lease(await pool.acquire());
    expect(await info()).toMatchObject({ rateFactor: 1, throttledRateFactor: null });
    // The first throttle lowers it at once and remembers the rate that got throttled.
    await pool.reportThrottled(l1);
    expect(await info()).toMatchObject({
      rateFactor: 0.5,
      intervalMs: 200,
      throttledRateFactor: 1,
      throttleStreak: 1,
    });
    // l0 was in flight when the session cooled down: its throttle tells nothing new, and its
    // success says nothing about the penalty that started after it was sent.
    await pool.reportThrottled(l0, { code: 'throttled_html' });
    await pool.reportSuccess(l0);
    expect(await info()).toMatchObject({
      rateFactor: 0.5,
      throttleStreak: 1,
      lastError: 'throttled_html',
    });
    // Sent after the cooldown and throttled before any success: the upstream's penalty of the
    // first violation, not the new rate — the backoff grows, the rate stays.
    const l2 = await leaseWhenReady(pool);
    await pool.reportThrottled(l2);
    expect(await info()).toMatchObject({ rateFactor: 0.5, throttleStreak: 2 });
    // A success ends the streak; each new streak lowers the rate again, down to the floor.
    for (const expected of [0.25, 0.2, 0.2]) {
      const l = await leaseWhenReady(pool);
      await pool.reportSuccess(l);
      await pool.reportThrottled(l);
      expect(await info()).toMatchObject({ rateFactor: expected, throttleStreak: 1 });
    }
    expect(await info()).toMatchObject({ intervalMs: 500, throttledRateFactor: 0.2 });
  });

  it('adaptive: learns how long the upstream penalty lasts and starts the next cooldown with it', async () => {
    const pool = makePool({
      defaults: { ...WIDE, sessionRate: rate(10, 1000), sessionBurst: 5 },
      backoff: { baseMs: 1, capMs: 1 },
      adaptive: { raiseAfter: 1000, caution: 0.9 },
    });
    await pool.upsertSession({ id: 's', label: 's', proxyId: null });
    const info = async () => (await pool.snapshot()).sessions[0]!;
    const l1 = lease(await pool.acquire());
    await pool.reportThrottled(l1); // the penalty starts about when l1 arrived
    await sleep(150);
    const l2 = await leaseWhenReady(pool);
    await pool.reportThrottled(l2); // still running at l2
    expect((await info()).learnedPenaltyMs).toBe((l2.atUs - l1.atUs) / 1000);
    await sleep(150);
    // While it runs, the next try waits twice what it has lasted so far.
    const l3 = await leaseWhenReady(pool);
    expect(l3.atUs).toBeGreaterThanOrEqual(l1.atUs + 2 * (l2.atUs - l1.atUs));
    await pool.reportSuccess(l3); // over by l3: it ended between l2 and l3, likely nearer l3
    const lo = l2.atUs - l1.atUs;
    const pwUs = lo + Math.floor(((l3.atUs - l1.atUs - lo) * 3) / 4);
    expect(await info()).toMatchObject({ learnedPenaltyMs: pwUs / 1000, throttleStreak: 0 });
    // The next streak cools down until its first throttled request's admission + the learned
    // penalty, although the backoff alone would allow 1 ms.
    const l4 = await leaseWhenReady(pool);
    const t4 = await pool.reportThrottled(l4);
    expect(t4.sessionCooldownUntilUs).toBe(l4.atUs + pwUs);
    // That was enough (the next request got through): next time try a little shorter.
    const l5 = await leaseWhenReady(pool);
    expect(l5.atUs).toBeGreaterThanOrEqual(l4.atUs + pwUs);
    await pool.reportSuccess(l5);
    expect((await info()).learnedPenaltyMs).toBe(Math.floor(pwUs * 0.9) / 1000);
  });

  it('adaptive: raises half the way to caution × the rate throttled (by step at most), then by probeStep of it; a throttle after a raise goes back to the rate before it', async () => {
    const pool = makePool({
      defaults: { ...WIDE, sessionRate: rate(10, 1000), sessionBurst: 5 },
      backoff: { baseMs: 1, capMs: 1 },
      adaptive: {
        decrease: 0.5,
        raiseAfter: 2,
        step: 0.25,
        caution: 0.9,
        probeStep: 0.05,
        probeAfter: 4,
      },
    });
    await pool.upsertSession({ id: 's', label: 's', proxyId: null });
    const factor = async () => (await pool.snapshot()).sessions[0]!.rateFactor;
    const successes = async (l: Lease, n: number) => {
      const seen: number[] = [];
      for (let i = 0; i < n; i++) {
        await pool.reportSuccess(l);
        seen.push(await factor());
      }
      return seen;
    };
    await pool.reportThrottled(lease(await pool.acquire()));
    expect(await factor()).toBe(0.5);
    const l = await leaseWhenReady(pool);
    // Every 2 successes half the way to 0.9 × 1, by 0.25 at most: +0.2, +0.1, +0.05, +0.025.
    expect(await successes(l, 8)).toEqual([0.5, 0.7, 0.7, 0.8, 0.8, 0.85, 0.85, 0.875]);
    // Throttled at 0.875, with no window to learn from (one lease's successes): back to 0.85,
    // the rate before the latest raise, which got through; 0.875 is the rate known too high.
    const l2 = await leaseWhenReady(pool);
    await pool.reportThrottled(l2);
    expect((await pool.snapshot()).sessions[0]).toMatchObject({
      rateFactor: 0.85,
      throttledRateFactor: 0.875,
    });
    // From there +0.05 × 0.875 every 4 successes up to 0.875; above it (a rough ceiling, not
    // pinned down by a long window) +0.1 × 0.875 every 2, never above the configured rate.
    const l3 = await leaseWhenReady(pool);
    expect(await successes(l3, 10)).toEqual([0.85, 0.85, 0.85, 0.893, 0.893, 0.98, 0.98, 1, 1, 1]);
  });

  it('adaptive: learns the rate from the window of successes before a throttle (GCRA bounds)', async () => {
    // 5/s (200 ms), burst 1: leases come one interval apart; the upstream's burst guessed 4.
    const pool = makePool({
      defaults: { ...WIDE, sessionRate: rate(5, 1000), sessionBurst: 1 },
      backoff: { baseMs: 1, capMs: 1 },
      adaptive: { decrease: 0.5, caution: 0.99, raiseAfter: 1000, upstreamBurst: 4 },
    });
    await pool.upsertSession({ id: 's', label: 's', proxyId: null });
    const leases: Lease[] = [];
    for (let i = 0; i < 12; i++) {
      const l = await leaseWhenReady(pool);
      leases.push(l);
      if (i < 11) await pool.reportSuccess(l);
    }
    await pool.reportThrottled(leases[11]!);
    // The window as the script keeps it: restarted after a gap longer than 4 intervals (the
    // upstream's bucket would have refilled; a loaded machine may make one).
    let wa = 0;
    let wn = 0;
    let wl = 0;
    for (const l of leases.slice(0, 11)) {
      if (wn === 0 || l.atUs - wl > 4 * 200_000) [wa, wn] = [l.atUs, 1];
      else wn++;
      wl = l.atUs;
    }
    const throttledAt = leases[11]!.atUs;
    const snap = (await pool.snapshot()).sessions[0]!;
    if (wn <= 4 || throttledAt - wl > 4 * 200_000) {
      // Too short a window (only on a very loaded machine): the plain decrease.
      expect(snap.rateFactor).toBe(0.5);
      return;
    }
    // It admitted wn requests from wa to wl and refused the next one: lower and upper bounds.
    const lo = Math.floor(((wn - 4) * 200_000 * 1000) / (wl - wa));
    const hi = Math.floor(((wn + 2 - 4) * 200_000 * 1000) / (throttledAt - wa));
    const rf = Math.min(990, Math.max(500, lo));
    expect(snap.rateFactor).toBe(rf / 1000);
    expect(snap.throttledRateFactor).toBe(Math.max(Math.min(1000, hi), rf) / 1000);
  });

  it('adaptive: what one session learns reaches its class (same configured rate) on its next success, not other classes', async () => {
    const pool = makePool({
      defaults: { ...WIDE, sessionRate: rate(10, 1000), sessionBurst: 1 },
      backoff: { baseMs: 60_000, capMs: 60_000 },
      adaptive: { decrease: 0.5, raiseAfter: 1000 },
    });
    await pool.upsertSession({ id: 'a', label: 'a', proxyId: null });
    await pool.upsertSession({ id: 'b', label: 'b', proxyId: null });
    await pool.upsertSession({ id: 'c', label: 'c', proxyId: null, rate: rate(20, 1000) });
    const la = lease(await pool.acquire('a'));
    const lb = lease(await pool.acquire('b'));
    const lc = lease(await pool.acquire('c'));
    await pool.reportThrottled(la);
    const byId = async () =>
      Object.fromEntries((await pool.snapshot()).sessions.map((x) => [x.id, x]));
    // The class record, keyed by the configured interval (10/s: 100 000 µs).
    expect(Object.keys(await redis.hgetall(pool.keys.adapt))).toEqual(['r:100000']);
    // b does not know yet: the class is read on a success.
    expect((await byId()).b).toMatchObject({ rateFactor: 1, throttledRateFactor: null });
    await pool.reportSuccess(lb);
    await pool.reportSuccess(lc);
    const s = await byId();
    expect(s.b).toMatchObject({ rateFactor: 0.5, throttledRateFactor: 1, intervalMs: 200 });
    // It ran as fast as a was throttled at: it skips one send (one new interval, 200 ms, on
    // top of the one its lease took).
    expect(s.b!.nextSendInMs).toBeGreaterThan(100);
    expect(s.c).toMatchObject({ rateFactor: 1, throttledRateFactor: null });
    // Taken over once: b's own successes do not lower it again.
    await pool.reportSuccess(lb);
    expect((await byId()).b).toMatchObject({ rateFactor: 0.5 });
  });

  it('adaptive: an unknown penalty gets a first cooldown of base·(4 + 2r); once learned, the penalty', async () => {
    const pool = makePool({
      defaults: { ...WIDE, sessionRate: rate(10, 1000), sessionBurst: 5 },
      backoff: { baseMs: 100, capMs: 10_000 },
      adaptive: { raiseAfter: 1000 },
    });
    await pool.upsertSession({ id: 's', label: 's', proxyId: null });
    const l1 = lease(await pool.acquire());
    const t1 = await pool.reportThrottled(l1); // r = 0.5: 100 ms × 5
    expect(t1.sessionCooldownUntilUs! - t1.nowUs).toBe(500_000);
    const l2 = await leaseWhenReady(pool);
    await pool.reportSuccess(l2); // the first cooldown was enough: the penalty is at most this
    expect((await pool.snapshot()).sessions[0]!.learnedPenaltyMs).toBe((l2.atUs - l1.atUs) / 1000);
    const l3 = await leaseWhenReady(pool);
    const t3 = await pool.reportThrottled(l3);
    expect(t3.sessionCooldownUntilUs).toBe(
      Math.max(l3.atUs + (l2.atUs - l1.atUs), t3.nowUs + 50_000),
    );
  });

  it('rejects adaptive and backoff options out of range', () => {
    expect(() => makePool({ adaptive: { decrease: 1 } })).toThrow(/adaptive decrease/);
    expect(() => makePool({ adaptive: { probeAfter: 0 } })).toThrow(/adaptive probeAfter/);
    expect(() => makePool({ adaptive: { caution: 1.5 } })).toThrow(/adaptive caution/);
    expect(() => makePool({ adaptive: { upstreamBurst: 1.5 } })).toThrow(/adaptive upstreamBurst/);
    expect(() => makePool({ backoff: { baseMs: 1000, capMs: 10 } })).toThrow(PoolError);
    expect(() => makePool({ backoff: { baseMs: 0 } })).toThrow(/backoff base/);
  });
});

describe('proxy circuit and binding', () => {
  it('a broken proxy gets no traffic; after a randomised recovery one probe; success closes it', async () => {
    // The recovery (1.5 s) is long next to a few calls, so a loaded machine does not reach it
    // before the checks below; the sleep then waits for it in Redis time.
    const pool = makePool({
      circuit: { baseMs: 2_000, capMs: 20_000, probeMs: 60_000 },
      random: () => 0.5,
    });
    await pool.upsertProxy({ id: 'p1', label: 'p1' });
    await pool.upsertProxy({ id: 'p2', label: 'p2' });
    await pool.upsertSession({ id: 'a', label: 'a', proxyId: 'p1' });
    await pool.upsertSession({ id: 'b', label: 'b', proxyId: 'p1' });
    await pool.upsertSession({ id: 'c', label: 'c', proxyId: 'p2' });
    const l = lease(await pool.acquire());
    const br = (await pool.reportProxyBroken(l, 'ECONNREFUSED'))!;
    expect(br.recoverAtUs - br.nowUs).toBe(1_500_000);
    // d = 2 s: recovery at now + 1 + 0.5 · 1 s.
    const snap = await pool.snapshot();
    const p1 = snap.proxies.find((p) => p.id === 'p1')!;
    expect(p1).toMatchObject({ status: 'broken', lastError: 'ECONNREFUSED', breakStreak: 1 });
    expect(p1.recoverAt).toBe(Math.floor(br.recoverAtUs / 1000));
    expect(sessionsOf(await acquireMany(pool, 5))).toEqual(Array(5).fill('c'));
    // Sessions stay bound: a broken proxy does not move them.
    expect(snap.sessions.filter((s) => s.proxyId === 'p1').map((s) => s.id)).toEqual(['a', 'b']);
    const [secs, micros] = await redis.time();
    await sleep(Math.ceil((br.recoverAtUs - (Number(secs) * 1e6 + Number(micros))) / 1000) + 5);
    const probe = lease(await pool.acquire());
    expect(probe.proxyId).toBe('p1');
    // One probe at a time: p1 is held while it runs.
    expect(sessionsOf(await acquireMany(pool, 5))).toEqual(Array(5).fill('c'));
    await pool.reportSuccess(probe);
    const after = await pool.snapshot();
    expect(after.proxies.find((p) => p.id === 'p1')).toMatchObject({
      status: 'active',
      breakStreak: 0,
    });
    expect(new Set(sessionsOf(await acquireMany(pool, 6)))).toEqual(new Set(['a', 'b', 'c']));
  });

  it('consecutive breaks back off longer: d/2 + r·d/2 with d = min(cap, base·2^k)', async () => {
    const pool = makePool({
      circuit: { baseMs: 1000, capMs: 3000, probeMs: 1000 },
      random: () => 0,
    });
    await pool.upsertProxy({ id: 'p', label: 'p' });
    await pool.upsertSession({ id: 'a', label: 'a', proxyId: 'p' });
    const l = lease(await pool.acquire());
    const gaps: number[] = [];
    for (let i = 0; i < 4; i++) {
      const r = (await pool.reportProxyBroken(l, 'ETIMEDOUT'))!;
      gaps.push(r.recoverAtUs - r.nowUs);
    }
    expect(gaps).toEqual([500_000, 1_000_000, 1_500_000, 1_500_000]);
    const top = makePool({
      circuit: { baseMs: 1000, capMs: 3000, probeMs: 1000 },
      random: () => 0.999999,
    });
    await top.upsertProxy({ id: 'p', label: 'p' });
    await top.upsertSession({ id: 'a', label: 'a', proxyId: 'p' });
    const r = (await top.reportProxyBroken(lease(await top.acquire()), 'ETIMEDOUT'))!;
    expect(r.recoverAtUs - r.nowUs).toBe(999_999);
    // A lease without a proxy has no circuit to open.
    expect(await top.reportProxyBroken({ ...l, proxyId: null }, 'x')).toBeNull();
  });

  it('rebind is explicit and only for a dead proxy (unless forced)', async () => {
    const pool = makePool();
    await pool.upsertProxy({ id: 'p1', label: 'p1' });
    await pool.upsertProxy({ id: 'p2', label: 'p2' });
    await pool.upsertSession({ id: 'a', label: 'a', proxyId: 'p1' });
    await expect(pool.rebind('a', 'p2')).rejects.toMatchObject({ code: 'proxy_alive' });
    await expect(pool.rebind('a', 'nope')).rejects.toMatchObject({ code: 'no_such_proxy' });
    await expect(pool.rebind('zz', 'p2')).rejects.toMatchObject({ code: 'no_such_session' });
    const l = lease(await pool.acquire());
    await pool.reportProxyBroken(l, 'ECONNRESET');
    expect(await pool.acquire()).toMatchObject({ ok: false, reason: 'budget' });
    expect(await pool.rebind('a', 'p2')).toBe('p1');
    expect(lease(await pool.acquire()).proxyId).toBe('p2');
    expect(await pool.rebind('a', 'p1', { force: true })).toBe('p2');
    const s = (await pool.snapshot()).sessions[0]!;
    expect(s.proxyId).toBe('p1');
  });

  it('removing a proxy parks its sessions; removing a session forgets it', async () => {
    const pool = makePool();
    await pool.upsertProxy({ id: 'p', label: 'p' });
    await pool.upsertSession({ id: 'a', label: 'a', proxyId: 'p' });
    expect(await pool.removeProxy('p')).toBe(true);
    expect(await pool.acquire()).toEqual({ ok: false, reason: 'no_usable_session' });
    await pool.upsertProxy({ id: 'p', label: 'p' });
    expect(lease(await pool.acquire()).sessionId).toBe('a');
    expect(await pool.removeSession('a')).toBe(true);
    expect(await pool.removeSession('a')).toBe(false);
    expect(await pool.acquire()).toEqual({ ok: false, reason: 'no_usable_session' });
    expect((await pool.snapshot()).sessions).toEqual([]);
  });
});

describe('snapshot and what Redis holds', () => {
  it('reports state, usage, last used, cooldown left and last error; Redis holds no secret', async () => {
    const pool = makePool({ backoff: { baseMs: 10_000, capMs: 10_000 } });
    await pool.upsertProxy({ id: 'p', label: 'proxy-label' });
    await pool.upsertSession({
      id: '1',
      label: 'alice',
      proxyId: 'p',
      rate: rate(100, 60_000),
      burst: 7,
    });
    await pool.upsertSession({ id: '2', label: 'bob', proxyId: 'p' });
    const l1 = lease(await pool.acquire());
    const l2 = lease(await pool.acquire());
    await pool.reportThrottled(l1, { retryAfterMs: 5_000 });
    await pool.reportSessionDead(l2, 'invalid', 'login_required');
    const snap = await pool.snapshot();
    expect(snap.at).toBeGreaterThan(1_600_000_000_000);
    const [alice, bob] = snap.sessions;
    expect(alice).toMatchObject({
      id: '1',
      label: 'alice',
      proxyId: 'p',
      status: 'cooling',
      leasable: true,
      usageCount: 1,
      lastError: 'throttled',
      intervalMs: 600,
      burst: 7,
      rateFactor: 1,
    });
    expect(alice!.cooldownLeftMs).toBeGreaterThan(4_000);
    expect(alice!.cooldownUntil! - snap.at).toBeGreaterThan(4_000);
    expect(Math.abs(alice!.lastUsedAt! - snap.at)).toBeLessThan(5_000);
    expect(bob).toMatchObject({
      status: 'invalid',
      leasable: false,
      lastError: 'login_required',
      usageCount: 1,
    });
    expect(snap.proxies[0]).toMatchObject({
      id: 'p',
      label: 'proxy-label',
      status: 'active',
      usageCount: 2,
    });

    // Every field the pool stores is a number, a state, a label, an id or an error code.
    const allowed = new Set([
      ...[
        'label',
        'proxy',
        'st',
        'iv0',
        'iv',
        'b',
        'rf',
        'tat',
        'cu',
        'lu',
        'n',
        'bk',
        'ok',
        'rt',
        'tr',
        'ps',
        'pw',
        'mk',
        'hd',
        'rg',
        'wa',
        'wn',
        'wl',
        'sy',
        'err',
        'ea',
      ],
      ...['ra', 'cb'],
    ]);
    for (const key of Object.keys(await dumpKeys(redis, pool.prefix))) {
      if ((await redis.type(key)) !== 'hash') continue;
      const h = await redis.hgetall(key);
      if (key === pool.keys.lru) {
        // session id → last lease µs, and the pad field (a fixed text)
        const { '#': pad, ...lus } = h;
        expect(pad).toMatch(/^pad: /);
        expect(Object.keys(lus).sort()).toEqual(['1', '2']);
        for (const v of Object.values(lus)) expect(v).toMatch(/^\d{16}$/);
        continue;
      }
      for (const f of Object.keys(h)) expect(allowed.has(f) ? f : `${key}.${f}`).toBe(f);
    }
  });
});

describe('Redis time only', () => {
  const realNow = Date.now;
  afterEach(() => {
    Date.now = realNow;
  });

  it.each([{ skewMs: 3_600_000 }, { skewMs: -3_600_000 }, { skewMs: 200 }, { skewMs: -200 }])(
    'a client clock skewed by $skewMs ms changes nothing',
    async ({ skewMs }) => {
      Date.now = () => realNow.call(Date) + skewMs;
      const pool = makePool({
        defaults: { ...WIDE, sessionRate: rate(10, 1000), sessionBurst: 2 },
        backoff: { baseMs: 1, capMs: 1 },
      });
      await pool.upsertSession({ id: 's', label: 's', proxyId: null });
      const rs = await acquireMany(pool, 3);
      expect(rs.map((r) => r.ok)).toEqual([true, true, false]);
      const w = rs[2]!;
      expect(w.ok === false && w.reason === 'budget' && w.waitMs <= 100).toBe(true);
      const t = await pool.reportThrottled(lease(rs[0]!), { retryAfterMs: 300 });
      expect(t.sessionCooldownUntilUs! - t.nowUs).toBe(300_000);
      const c = await pool.acquire();
      expect(c.ok === false && c.reason === 'budget' && c.waitMs > 150 && c.waitMs <= 300).toBe(
        true,
      );
      // Admission times are Redis's, whatever this process believes.
      const redisNowMs = Number((await redis.time())[0]) * 1000;
      expect(Math.abs(lease(rs[0]!).atUs / 1000 - redisNowMs)).toBeLessThan(5_000);
    },
  );
});

describe('scripts survive SCRIPT FLUSH and a Redis restart (private redis-server)', () => {
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

  it('keeps working, and keeps the budget state, after SCRIPT FLUSH', async () => {
    const pool = makePool(
      { defaults: { ...WIDE, sessionRate: rate(5, 1000), sessionBurst: 2 } },
      conn,
    );
    await pool.upsertSession({ id: 's', label: 's', proxyId: null });
    expect((await acquireMany(pool, 3)).map((r) => r.ok)).toEqual([true, true, false]);
    await conn.script('FLUSH');
    // The state survived and the script was sent again (EVALSHA → NOSCRIPT → EVAL).
    const r = await pool.acquire();
    expect(r).toMatchObject({ ok: false, reason: 'budget' });
    await sleep((r.ok === false && r.reason === 'budget' ? r.waitMs : 0) + 2);
    expect((await pool.acquire()).ok).toBe(true);
    const stats = await conn.info('commandstats');
    expect(stats).toMatch(/cmdstat_eval:calls=\d+/);
  });

  it('keeps working after the server restarts (empty) once members are upserted again', async () => {
    const pool = makePool({}, conn);
    await pool.upsertSession({ id: 's', label: 's', proxyId: null });
    lease(await pool.acquire());
    await priv.restart();
    await sleep(300);
    expect(await pool.acquire()).toEqual({ ok: false, reason: 'no_usable_session' });
    await pool.upsertSession({ id: 's', label: 's', proxyId: null });
    expect(lease(await pool.acquire()).sessionId).toBe('s');
  });
});
