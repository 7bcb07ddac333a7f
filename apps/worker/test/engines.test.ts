import { startProxies, startSim, type ProxyPool, type SimServer } from '@storycheck/upstream-sim';
import {
  TEST_REDIS_URL,
  createTestPrefix,
  startRedisCluster,
  startRedisSentinel,
  waitFor,
  type PrivateRedisSetup,
} from '@storycheck/testkit';
import { Harness } from './harness.js';

/**
 * The core end-to-end run on every kind of Redis the product supports: one node (the shared
 * test Redis), a real Redis Cluster (3 primaries + 1 replica each) and a real Sentinel setup
 * (1 primary, 1 replica, 3 sentinels), the last two started here on free loopback ports. A batch
 * goes through 2 workers using 4 sessions on 2 proxies against a simulator that enforces the
 * same budgets; results must match the simulator, exactly once, with no throttled answer. On
 * Cluster and Sentinel a primary is then killed (-9) mid-batch: the workers must reconnect by
 * themselves and the batch complete exactly, within what a lost write costs (docs/deploy.md).
 */
const KEY = Buffer.alloc(32, 7).toString('base64');
const PROXY_PASS = 'CANARYengineProxyPass';
const sid = (n: number) => `${2_000_000 + n}%3AabcdefghijklMNOP%3A${n}%3ACANARYcookie${n}`;
const SESSION_RATE = '4/1s';
const PROXY_RATE = '8/1s';
/**
 * Throttled answers a failover may cost: a write the promoted replica never got gives back at
 * most the grants of the replication lag (a few ms: in practice none). Bounded by one burst per
 * session (3) and per proxy (5); a broken limiter sends at concurrency speed and gets far more.
 */
const LOST_WRITE_THROTTLES = 4 * 3 + 2 * 5;

function poolEnv(): Record<string, string> {
  return {
    STORYCHECK_SECRET_KEY: KEY,
    ALLOW_PRIVATE_PROXIES: 'true',
    SESSION_RATE,
    SESSION_BURST: '3',
    PROXY_RATE,
    PROXY_BURST: '5',
    BUDGET_MARGIN: '0.25',
    WORKER_CONCURRENCY: '8',
  };
}

describe.each(['single', 'cluster', 'sentinel'] as const)('on %s Redis', (engine) => {
  let setup: PrivateRedisSetup | undefined;
  let h: Harness;
  let sim: SimServer;
  let proxies: ProxyPool;

  beforeAll(async () => {
    if (engine === 'cluster') setup = await startRedisCluster({ nodeTimeoutMs: 2_000 });
    if (engine === 'sentinel') setup = await startRedisSentinel({ downAfterMs: 1_000 });
    h = new Harness(setup?.url ?? TEST_REDIS_URL, poolEnv());
    let tp = createTestPrefix();
    if (engine === 'cluster') {
      // A prefix whose queue and pool live on the same primary, so the one killed below holds
      // both the queue and the budgets.
      for (let i = 0; i < 200; i++) {
        const [q, p] = await Promise.all([
          setup!.primaryPort(tp.prefix),
          setup!.primaryPort(`${tp.prefix}:pool`),
        ]);
        if (q === p) break;
        tp = createTestPrefix();
      }
    }
    await h.setup(tp);
    proxies = await startProxies({ count: 2, auth: { user: 'pu', pass: PROXY_PASS } });
    sim = await startSim({
      seed: 41,
      size: 600,
      requireSession: true,
      sessions: [1, 2, 3, 4].map((n) => ({ sessionid: sid(n), label: `acct${n}` })),
      budgets: {
        session: { rate: SESSION_RATE, burst: 3 },
        ip: { rate: PROXY_RATE, burst: 5 },
        penaltyMs: 5_000,
      },
    });
    const proxyLines = proxies.proxies
      .map((p) => {
        const u = new URL(p.url);
        u.username = 'pu';
        u.password = PROXY_PASS;
        return `${p.label}=${u.href}`;
      })
      .join('\n');
    const imp = await h.cli(['proxies', 'import', '-'], proxyLines);
    expect(imp.stderr).toBe('');
    const sessions = [1, 2, 3, 4].map((n) => ({
      label: `acct${n}`,
      sessionid: sid(n),
      ds_user_id: String(2_000_000 + n),
      proxy: n % 2 ? 'p1' : 'p2',
    }));
    const si = await h.cli(
      ['sessions', 'import', '-'],
      sessions.map((s) => JSON.stringify(s)).join('\n'),
    );
    expect(si.stderr).toBe('');
    expect(si.code).toBe(0);
  }, 180_000);
  afterEach(() => h.stopAll());
  afterAll(async () => {
    await h.teardown();
    await proxies.close();
    await sim.close();
    await setup?.stop();
  });

  /** Every row matches the simulator's truth; one row per name; counters equal rows. */
  async function expectExact(batchId: string, names: string[]): Promise<void> {
    const nowSecs = Math.floor(Date.now() / 1000);
    const rows = (
      await h.client.query('SELECT * FROM items WHERE batch_id = $1 ORDER BY seq', [batchId])
    ).rows as Array<{ username: string; status: string; user_id: string | null }>;
    expect(rows.map((r) => r.username)).toEqual(names);
    for (const r of rows) {
      const t = sim.world.truth(r.username, nowSecs);
      expect({ u: r.username, status: r.status }).toEqual({ u: r.username, status: t.status });
    }
    await h.expectCountersExact(batchId);
  }

  const throttled = () =>
    sim
      .requestLog()
      .filter((e) => e.status === 429 || (e.status === 401 && e.kind !== 'current_user')).length;

  it('a batch through 2 workers: every result right, exactly once, budgets hold', async () => {
    const names = sim.world.usernames().slice(0, 80);
    const batchId = await h.enqueue(names);
    h.startWorker(sim);
    h.startWorker(sim);
    await waitFor(
      async () => (await h.batch(batchId)).state === 'completed',
      'batch completion',
      150_000,
      250,
    ).catch((e: unknown) => {
      process.stderr.write(h.procs.map((p) => p.stderr().slice(-3000)).join('\n---\n'));
      throw e;
    });
    await expectExact(batchId, names);
    expect(throttled()).toBe(0);
  }, 240_000);

  if (engine !== 'single') {
    it('the primary killed -9 mid-batch: workers reconnect, the batch completes exactly', async () => {
      const before = throttled();
      const names = sim.world.usernames().slice(100, 220);
      const batchId = await h.enqueue(names);
      const workers = [h.startWorker(sim), h.startWorker(sim)];
      await waitFor(async () => (await h.batch(batchId)).done >= 20, 'progress', 120_000, 250);
      // The primary that holds this prefix's queue (on Cluster also its pool, see beforeAll).
      const victim = await setup!.primaryPort(h.tp.prefix);
      await setup!.processes.get(victim)!.kill();
      const doneAtKill = (await h.batch(batchId)).done as number;
      expect(doneAtKill).toBeLessThan(names.length);
      // A replica takes over (Cluster: after cluster-node-timeout; Sentinel: after
      // down-after-milliseconds and the election).
      await waitFor(
        async () => (await setup!.primaryPort(h.tp.prefix).catch(() => victim)) !== victim,
        'a promoted replica',
        60_000,
        250,
      );
      await waitFor(
        async () => (await h.batch(batchId)).state === 'completed',
        'batch completion after the failover',
        180_000,
        250,
      ).catch((e: unknown) => {
        process.stderr.write(h.procs.map((p) => p.stderr().slice(-3000)).join('\n---\n'));
        throw e;
      });
      // The same worker processes finished it: none exited.
      for (const w of workers) expect(w.child.exitCode).toBeNull();
      await expectExact(batchId, names);
      expect(throttled() - before).toBeLessThanOrEqual(LOST_WRITE_THROTTLES);
      // The CLI, a new process, finds the new primary by itself (cache stats reads Redis; on a
      // Cluster it scans every primary of the new topology).
      const st = await h.cli(['cache', 'stats', '--json']);
      expect(st.stderr).toBe('');
      expect(st.code).toBe(0);
      expect(JSON.parse(st.stdout).userIds.entries).toBeGreaterThan(0);
    }, 360_000);
  }
});
