/**
 * Budgets the way the upstream enforces them: GCRA per session and per client IP, 429 (or the
 * 401 form) over budget, a penalty period after a violation — and never a throttle within budget.
 * The budget clock is driven by the test (clockMs), so the assertions are exact.
 */
import { BudgetBook, startProxies, startSim } from '../src/index.js';
import type { ProxyPool, SimServer, SimUser } from '../src/index.js';
import { get, getViaProxy, getViaTunnel } from './http-helpers.js';

describe('BudgetBook (GCRA)', () => {
  const budget = { rate: { count: 10, periodMs: 1000 }, burst: 3 };

  it('admits burst back to back, then one per interval', () => {
    const book = new BudgetBook();
    const at = (t: number): string => book.take('k', t, budget, 0, false);
    expect([at(0), at(0), at(0), at(0)]).toEqual(['ok', 'ok', 'ok', 'violation']);
    expect(at(99)).toBe('violation');
    expect(at(100)).toBe('ok');
    expect(at(100)).toBe('violation');
    expect(at(1000)).toBe('ok'); // refilled to burst by now
    expect(book.take('other', 0, budget, 0, false)).toBe('ok'); // keys are independent
    expect(book.take('k', 0, null, 0, false)).toBe('ok'); // no budget: unlimited
  });

  it('never admits more than burst + floor(W / interval) in any window W', () => {
    // Deterministic pseudo-random arrivals, bursty and idle by turns.
    let x = 12345;
    const rand = (): number => {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      return x / 2 ** 32;
    };
    const book = new BudgetBook();
    const admitted: number[] = [];
    let t = 0;
    for (let i = 0; i < 5000; i++) {
      t += rand() < 0.7 ? Math.floor(rand() * 20) : Math.floor(rand() * 400);
      if (book.take('k', t, budget, 0, false) === 'ok') admitted.push(t);
    }
    const intervalMs = 100;
    let worstExcess = -Infinity;
    for (let i = 0; i < admitted.length; i++) {
      for (let j = i; j < admitted.length; j++) {
        const w = (admitted[j] as number) - (admitted[i] as number);
        if (w > 3000) break;
        worstExcess = Math.max(
          worstExcess,
          j - i + 1 - (budget.burst + Math.floor(w / intervalMs)),
        );
      }
    }
    expect(worstExcess).toBe(0); // the bound is reached, never exceeded
    expect(admitted.length).toBeGreaterThan(1000);
  });

  it('punishes for penaltyMs; with penaltyExtends each request restarts the penalty', () => {
    const book = new BudgetBook();
    const b1 = { rate: { count: 1, periodMs: 1000 }, burst: 1 };
    expect(book.take('k', 0, b1, 5000, false)).toBe('ok');
    expect(book.take('k', 10, b1, 5000, false)).toBe('violation');
    expect(book.take('k', 2000, b1, 5000, false)).toBe('penalty'); // budget back, still punished
    expect(book.penaltyUntilMs('k')).toBe(5010);
    expect(book.take('k', 5010, b1, 5000, false)).toBe('ok');

    const harsh = new BudgetBook();
    harsh.take('k', 0, b1, 5000, true);
    expect(harsh.take('k', 10, b1, 5000, true)).toBe('violation');
    expect(harsh.take('k', 4000, b1, 5000, true)).toBe('penalty');
    expect(harsh.take('k', 8000, b1, 5000, true)).toBe('penalty'); // extended to 9000, then 13000
    expect(harsh.take('k', 13_000, b1, 5000, true)).toBe('ok');
  });
});

describe('session budgets over HTTP', () => {
  let sim: SimServer;
  let clock = 0;
  let path: string;

  beforeAll(async () => {
    sim = await startSim({
      seed: 3,
      size: 100,
      clockMs: () => clock,
      sessions: [
        { sessionid: 'cookie-a', label: 'a' },
        { sessionid: 'cookie-b', label: 'b', budget: { rate: '2/1s', burst: 1 } },
        { sessionid: 'cookie-free', label: 'free', budget: null },
      ],
      budgets: { session: { rate: '10/1s', burst: 3 }, penaltyMs: 5000 },
    });
    const user = sim.world.users[0] as SimUser;
    path = `/api/v1/users/web_profile_info/?username=${user.username}`;
  });
  afterAll(async () => {
    await sim.close();
  });
  beforeEach(() => {
    sim.resetBudgets();
    sim.resetStats();
    sim.updateScenario({ budgets: { throttleStyle: 'json', penaltyExtends: false } });
  });

  const status = async (session?: string): Promise<number> =>
    (await get(`${sim.url}${path}`, { session })).status;

  it('requests within a session budget are never throttled', async () => {
    clock = 1_000_000;
    const statuses: number[] = [];
    // Exactly the sustained rate (one per 100 ms) for 60 requests, plus a full burst at the start.
    for (let i = 0; i < 3; i++) statuses.push(await status('cookie-a'));
    clock += 300;
    for (let i = 0; i < 60; i++) {
      statuses.push(await status('cookie-a'));
      clock += 100;
    }
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect(sim.stats().bySession.a).toEqual({
      requests: 63,
      throttled: 0,
      byStatus: { '200': 63 },
    });
  });

  it('over budget → 429, then punished for penaltyMs even once the budget is back', async () => {
    clock = 2_000_000;
    expect([await status('cookie-a'), await status('cookie-a'), await status('cookie-a')]).toEqual([
      200, 200, 200,
    ]);
    const over = await get(`${sim.url}${path}`, { session: 'cookie-a' });
    expect(over.status).toBe(429);
    expect(over.text).toBe(
      '{"message":"Please wait a few minutes before you try again.","status":"fail"}',
    );
    expect(over.headers['retry-after']).toBeUndefined();
    clock += 1000; // bucket full again, but the penalty (5 s) holds
    expect(await status('cookie-a')).toBe(429);
    clock += 3999;
    expect(await status('cookie-a')).toBe(429);
    clock += 1;
    expect(await status('cookie-a')).toBe(200);
    // Other sessions, anonymous requests and unlimited sessions were never affected.
    expect(await status('cookie-b')).toBe(200);
    expect(await status()).toBe(200);
    const stats = sim.stats();
    expect(stats.bySession.a).toMatchObject({ requests: 7, throttled: 3 });
    expect(stats.byOutcome['throttled:session']).toBe(3);
    expect(stats.bySession.b?.throttled).toBe(0);
  });

  it('per-session overrides and unlimited sessions', async () => {
    clock = 3_000_000;
    expect([await status('cookie-b'), await status('cookie-b')]).toEqual([200, 429]); // burst 1
    const free: number[] = [];
    for (let i = 0; i < 50; i++) free.push(await status('cookie-free'));
    expect(free.every((s) => s === 200)).toBe(true);
    // budgets.sessions overrides by label win over the session's own budget.
    sim.updateScenario({ budgets: { sessions: { b: null } } });
    clock += 10_000;
    for (let i = 0; i < 20; i++) expect(await status('cookie-b')).toBe(200);
    sim.updateScenario({ budgets: { sessions: {} } });
  });

  it('the 401 "please wait" form and penaltyExtends', async () => {
    clock = 4_000_000;
    sim.updateScenario({ budgets: { throttleStyle: '401-please-wait', penaltyExtends: true } });
    for (let i = 0; i < 3; i++) await status('cookie-a');
    const over = await get(`${sim.url}${path}`, { session: 'cookie-a' });
    expect(over.status).toBe(401);
    expect(JSON.parse(over.text)).toEqual({
      message: 'Please wait a few minutes before you try again.',
      require_login: true,
      status: 'fail',
    });
    clock += 4000;
    expect(await status('cookie-a')).toBe(401); // restarts the 5 s penalty
    clock += 4000;
    expect(await status('cookie-a')).toBe(401);
    clock += 5000;
    expect(await status('cookie-a')).toBe(200);
  });

  it('a budget also holds in real time (paced client never throttled, bursting client is)', async () => {
    const real = await startSim({
      size: 20,
      budgets: { session: { rate: '10/1s', burst: 2 }, penaltyMs: 0 },
    });
    try {
      const p = `/api/v1/users/web_profile_info/?username=${real.world.users[0]?.username ?? ''}`;
      const paced: number[] = [];
      for (let i = 0; i < 8; i++) {
        paced.push((await get(`${real.url}${p}`, { session: 'paced' })).status);
        await new Promise((r) => setTimeout(r, 130)); // slower than one per 100 ms
      }
      expect(paced.every((s) => s === 200)).toBe(true);
      const burst = await Promise.all(
        Array.from({ length: 10 }, () => get(`${real.url}${p}`, { session: 'burst' })),
      );
      const admitted = burst.filter((r) => r.status === 200).length;
      expect(admitted + burst.filter((r) => r.status === 429).length).toBe(10);
      // burst 2, plus one per 100 ms the ten arrivals were spread over (a loaded machine).
      const times = real
        .requestLog()
        .filter((e) => e.session !== null && e.session === real.requestLog().at(-1)?.session)
        .map((e) => e.timeMs);
      const spreadMs = Math.max(...times) - Math.min(...times);
      expect(admitted).toBeGreaterThanOrEqual(2);
      expect(admitted).toBeLessThanOrEqual(2 + Math.ceil(spreadMs / 100));
      expect(admitted).toBeLessThan(10);
    } finally {
      await real.close();
    }
  });
});

describe('per-IP budgets through loopback proxies', () => {
  let sim: SimServer;
  let pool: ProxyPool;
  let clock = 0;
  let path: string;

  beforeAll(async () => {
    sim = await startSim({
      seed: 5,
      size: 100,
      clockMs: () => clock,
      budgets: {
        ip: { rate: '4/1m', burst: 4 },
        ips: { '127.0.0.4': { rate: '1/1m', burst: 1 } },
        penaltyMs: 60_000,
      },
    });
    pool = await startProxies({ count: 3 });
    path = `/api/v1/users/web_profile_info/?username=${sim.world.users[1]?.username ?? ''}`;
  });
  afterAll(async () => {
    await pool.close();
    await sim.close();
  });

  it('each proxy egress address has its own budget; requests within it never get 429', async () => {
    clock = 10_000_000;
    const [p1, p2, p3] = pool.proxies;
    if (!p1 || !p2 || !p3) throw new Error('3 proxies expected');
    const viaP1: number[] = [];
    for (let i = 0; i < 6; i++) viaP1.push((await getViaProxy(p1.url, `${sim.url}${path}`)).status);
    expect(viaP1).toEqual([200, 200, 200, 200, 429, 429]);
    // p2 is another IP: its budget is untouched (and a tunnel counts the same as forwarding).
    const viaP2: number[] = [];
    for (let i = 0; i < 2; i++) viaP2.push((await getViaProxy(p2.url, `${sim.url}${path}`)).status);
    for (let i = 0; i < 2; i++)
      viaP2.push((await getViaTunnel(p2.url, `${sim.url}${path}`)).status);
    expect(viaP2).toEqual([200, 200, 200, 200]);
    expect((await getViaTunnel(p2.url, `${sim.url}${path}`)).status).toBe(429);
    // p3 (127.0.0.4) has a per-IP override of 1/1m.
    expect([
      (await getViaProxy(p3.url, `${sim.url}${path}`)).status,
      (await getViaProxy(p3.url, `${sim.url}${path}`)).status,
    ]).toEqual([200, 429]);
    // Direct requests come from 127.0.0.1, yet another budget.
    expect((await get(`${sim.url}${path}`)).status).toBe(200);

    const { byClient, byOutcome } = sim.stats();
    expect(byClient['127.0.0.2']).toMatchObject({ requests: 6, throttled: 2 });
    expect(byClient['127.0.0.3']).toMatchObject({ requests: 5, throttled: 1 });
    expect(byClient['127.0.0.4']).toMatchObject({ requests: 2, throttled: 1 });
    expect(byClient['127.0.0.1']).toMatchObject({ requests: 1, throttled: 0 });
    expect(byOutcome['throttled:ip']).toBe(4);
    // The punished IP stays punished for the penalty, then recovers.
    clock += 59_999;
    expect((await getViaProxy(p1.url, `${sim.url}${path}`)).status).toBe(429);
    clock += 1;
    expect((await getViaProxy(p1.url, `${sim.url}${path}`)).status).toBe(200);
  });
});
