import { Caches, SingleFlight } from '@storycheck/cache';
import { createPool, type Pool } from '@storycheck/pool';
import {
  CHECK_JOB,
  checkRedisKind,
  createRedis,
  openCheckQueue,
  redisNodes,
  type CheckQueue,
} from '@storycheck/queue';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  TEST_REDIS_URL,
  startRedisCluster,
  uniqueId,
  type PrivateRedisSetup,
} from '@storycheck/testkit';
import type { Redis } from 'ioredis';

/**
 * Every shared structure on a real Redis Cluster (3 primaries + 3 replicas, started here):
 * caches (one MGET per username, SCAN over every primary), single flight (publish-and-release
 * in one script), the pool's scripts and a BullMQ queue. Without the hash tags each of these
 * fails with CROSSSLOT; without walking every primary `cache stats`/`clear` see a third.
 */
let cluster: PrivateRedisSetup;
let redis: Redis;
let other: Redis;
const prefix = `sctest-ck-${uniqueId()}`;

beforeAll(async () => {
  cluster = await startRedisCluster();
  redis = createRedis(cluster.url, { role: 'worker', autoPipelining: true });
  other = createRedis(cluster.url, { role: 'worker' });
}, 120_000);
afterAll(async () => {
  redis.disconnect();
  other.disconnect();
  await cluster.stop();
});

const ttls = { userIdMs: 60_000, notFoundMs: 60_000, resultMs: 60_000 };
const names = Array.from({ length: 60 }, (_, i) => `user.${i}`);

describe('caches on a Redis Cluster', () => {
  it('per-username entries spread over every primary; lookup, stats and clear see them all', async () => {
    const caches = new Caches(redis, prefix, ttls);
    const now = Math.floor(Date.now() / 1000);
    await Promise.all(
      names.map(async (u, i) => {
        await caches.setUserId(u, {
          found: true,
          userId: String(1000 + i),
          isPrivate: false,
          seenAtSecs: now,
        });
        await caches.setResult(u, {
          status: 'none',
          userId: String(1000 + i),
          storyCount: 0,
          latestStoryAt: null,
          expiresAt: null,
          checkedAt: new Date(now * 1000),
        });
      }),
    );
    const looked = await Promise.all(names.map((u) => caches.lookup(u)));
    expect(looked.map((l) => l.result?.userId)).toEqual(names.map((_, i) => String(1000 + i)));
    // Every primary holds some of them.
    const perNode = await Promise.all(
      redisNodes(redis).map(async (n) => (await n.keys(`${prefix}:cache:*`)).length),
    );
    expect(perNode).toHaveLength(3);
    for (const n of perNode) expect(n).toBeGreaterThan(0);
    const stats = await caches.stats();
    expect(stats.userIds.entries).toBe(names.length);
    expect(stats.results.entries).toBe(names.length);
    expect(await caches.clear({ userIds: true, results: true })).toEqual({
      userIds: names.length,
      results: names.length,
    });
    expect((await caches.stats()).results.entries).toBe(0);
    await caches.close();
  });

  it('single flight across two connections: one leader, the other borrows its answer', async () => {
    const opts = { encode: (v: string) => v, decode: (s: string) => s, pollMs: 10 };
    const a = new SingleFlight<string>(redis, prefix, opts);
    const b = new SingleFlight<string>(other, prefix, opts);
    let calls = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const lead = a.run('anna', async () => {
      calls++;
      await gate;
      return 'answer';
    });
    // b starts once a holds the lock.
    for (let i = 0; i < 100 && calls === 0; i++) await new Promise((r) => setTimeout(r, 10));
    const follow = b.run('anna', async () => {
      calls++;
      return 'own';
    });
    await new Promise((r) => setTimeout(r, 100));
    release();
    expect(await lead).toEqual({ value: 'answer', shared: false });
    expect(await follow).toEqual({ value: 'answer', shared: true });
    expect(calls).toBe(1);
  });
});

describe('pool and queue on a Redis Cluster', () => {
  let pool: Pool;
  let queue: CheckQueue;

  afterAll(async () => {
    await queue.obliterate({ force: true });
    await queue.close();
  });

  it('the pool scripts run: upsert, acquire, report, snapshot', async () => {
    pool = createPool({
      redis,
      prefix,
      defaults: {
        sessionRate: { count: 10, periodMs: 1000 },
        sessionBurst: 2,
        proxyRate: { count: 10, periodMs: 1000 },
        proxyBurst: 2,
      },
    });
    await pool.upsertProxy({ id: 'px1', label: 'p1' });
    await pool.upsertSession({ id: 's1', label: 'acct1', proxyId: 'px1' });
    const got = await pool.acquire();
    expect(got.ok).toBe(true);
    if (got.ok) await pool.reportSuccess(got.lease);
    const snap = await pool.snapshot();
    expect(snap.sessions.map((s) => s.id)).toEqual(['s1']);
    expect(snap.proxies.map((p) => p.id)).toEqual(['px1']);
  });

  it('a BullMQ queue adds and counts jobs', async () => {
    queue = openCheckQueue(redis, prefix);
    const batchId = '00000000-0000-4000-8000-000000000001';
    await queue.addBulk(
      ['a', 'b', 'c'].map((username) => ({
        name: CHECK_JOB as typeof CHECK_JOB,
        data: { batchId, username },
        opts: { jobId: `${batchId}.${username}` },
      })),
    );
    expect(await queue.getJobCounts('waiting')).toEqual({ waiting: 3 });
  });
});

describe('a REDIS_URL that cannot work', () => {
  it('redis:// naming one node of a Cluster is refused at start with a clear line', async () => {
    const node = `redis://127.0.0.1:${[...cluster.processes.keys()][0]}`;
    const one = createRedis(node);
    await expect(checkRedisKind(one, node)).rejects.toThrow(
      /REDIS_URL names one node of a Redis Cluster: list its nodes as redis\+cluster:\/\//,
    );
    one.disconnect();
    // The shared single node passes.
    const single = createRedis(TEST_REDIS_URL);
    await expect(checkRedisKind(single, TEST_REDIS_URL)).resolves.toBeUndefined();
    single.disconnect();
    // The worker itself stops with that line and exit code 1.
    const worker = fileURLToPath(new URL('../dist/main.js', import.meta.url));
    const r = spawnSync(process.execPath, [worker], {
      env: {
        ...process.env,
        REDIS_URL: node,
        STORYCHECK_PREFIX: prefix,
        DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/postgres',
        LOG_LEVEL: 'error',
      },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/REDIS_URL names one node of a Redis Cluster/);
  });
});
