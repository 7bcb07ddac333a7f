import { Redis } from 'ioredis';
import { TEST_REDIS_URL, createTestPrefix, sleep, type TestPrefix } from '@storycheck/testkit';
import { Caches, SingleFlight, decodeResult, encodeResult } from '../src/index.js';
import type { StoryResult } from '@storycheck/model';

let tp: TestPrefix;
let redis: Redis;
let other: Redis;

beforeAll(() => {
  tp = createTestPrefix();
  redis = new Redis(TEST_REDIS_URL);
  other = new Redis(TEST_REDIS_URL); // a second "process"
});
afterAll(async () => {
  await tp.clean();
  redis.disconnect();
  other.disconnect();
});

const at = (secs: number) => new Date(secs * 1000);
const result: StoryResult = {
  status: 'active',
  userId: '1234567890123',
  storyCount: 3,
  latestStoryAt: at(1_800_000_000),
  expiresAt: at(1_800_086_400),
  checkedAt: at(1_799_999_000),
};

describe('Caches', () => {
  it('round-trips results compactly', () => {
    const enc = encodeResult(result);
    expect(enc.length).toBeLessThan(60);
    expect(decodeResult(enc)).toEqual(result);
    expect(decodeResult('garbage')).toBeNull();
    // The stored text is the same as before the record moved to packages/model: entries
    // written by an older worker still read.
    expect(enc).toBe('a|1234567890123|3|1800000000|1800086400|1799999000');
    expect(decodeResult('x|||||1799999000')).toEqual({
      status: 'not_found',
      userId: null,
      storyCount: null,
      latestStoryAt: null,
      expiresAt: null,
      checkedAt: at(1_799_999_000),
    });
    // Times are stored to the second; a check's cost is not stored at all.
    const fresh = { ...result, checkedAt: new Date(1_799_999_000_750), requests: 2 };
    expect(decodeResult(encodeResult(fresh))).toEqual(result);
  });

  it('caches user ids, not-found answers with their own TTL, and counts hits and misses', async () => {
    const c = new Caches(redis, tp.prefix, { userIdMs: 60_000, notFoundMs: 300, resultMs: 60_000 });
    expect(await c.getUserId('anna')).toBeNull();
    await c.setUserId('anna', { found: true, userId: '42', isPrivate: true, seenAtSecs: 100 });
    await c.setUserId('ghost', { found: false, seenAtSecs: 100 });
    expect(await c.getUserId('anna')).toEqual({
      found: true,
      userId: '42',
      isPrivate: true,
      seenAtSecs: 100,
    });
    expect(await c.getUserId('ghost')).toEqual({ found: false, seenAtSecs: 100 });
    expect(await redis.pttl(`${tp.prefix}:cache:uid:{anna}`)).toBeGreaterThan(50_000);
    await sleep(400);
    expect(await c.getUserId('ghost')).toBeNull();
    const s = await c.stats();
    expect(s.userIds).toMatchObject({ entries: 1, hits: 2, misses: 2, hitRatio: 0.5 });
    await c.dropUserId('anna');
    expect(await c.getUserId('anna')).toBeNull();
  });

  it('lookup reads both entries at once and counts like two lookups; counts reach Redis on flush', async () => {
    const prefix = `${tp.prefix}-lk`;
    const ttl = { userIdMs: 60_000, notFoundMs: 60_000, resultMs: 60_000 };
    const c = new Caches(redis, prefix, ttl, 60_000); // no timer flush within this test
    const reader = new Caches(other, prefix, ttl); // another process reading the counters
    expect(await c.lookup('zoe')).toEqual({ result: null, userId: null });
    await c.setUserId('zoe', { found: true, userId: '7', isPrivate: false, seenAtSecs: 5 });
    expect(await c.lookup('zoe')).toEqual({
      result: null,
      userId: { found: true, userId: '7', isPrivate: false, seenAtSecs: 5 },
    });
    await c.setResult('zoe', result);
    // A result hit does not count (or return) the user id: it is not needed.
    expect(await c.lookup('zoe')).toEqual({ result, userId: null });
    // Counted in memory only, until flushed.
    expect((await reader.stats()).results).toMatchObject({ hits: 0, misses: 0 });
    await c.close();
    const s = await reader.stats();
    expect(s.results).toMatchObject({ hits: 1, misses: 2 });
    expect(s.userIds).toMatchObject({ hits: 1, misses: 1 });
    expect(s.since).not.toBeNull();
    // With the result cache off, lookup is the user-id read alone.
    const off = new Caches(redis, prefix, { ...ttl, resultMs: 0 });
    expect(await off.lookup('zoe')).toEqual({
      result: null,
      userId: { found: true, userId: '7', isPrivate: false, seenAtSecs: 5 },
    });
    expect((await off.stats()).userIds).toMatchObject({ hits: 2, misses: 1 });
  });

  it('flushes counted hits on its timer', async () => {
    const prefix = `${tp.prefix}-tm`;
    const ttl = { userIdMs: 60_000, notFoundMs: 60_000, resultMs: 60_000 };
    const c = new Caches(redis, prefix, ttl, 50);
    await c.lookup('nobody');
    await sleep(300);
    expect(await redis.hget(`${prefix}:cache:stats`, 'results:misses')).toBe('1');
    await c.close();
  });

  it('never keeps an active result past its story’s expiry; 0 TTL disables it', async () => {
    const c = new Caches(redis, tp.prefix, {
      userIdMs: 60_000,
      notFoundMs: 60_000,
      resultMs: 60_000,
    });
    const now = 1_800_000_000;
    await c.setResult('soon', { ...result, expiresAt: at(now + 5) }, now);
    const ttl = await redis.pttl(`${tp.prefix}:cache:res:{soon}`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(5_000);
    await c.setResult('gone', { ...result, expiresAt: at(now - 1) }, now);
    expect(await redis.exists(`${tp.prefix}:cache:res:{gone}`)).toBe(0);
    const off = new Caches(redis, `${tp.prefix}-off`, { userIdMs: 1, notFoundMs: 1, resultMs: 0 });
    await off.setResult('x', result);
    expect((await off.lookup('x')).result).toBeNull();
  });

  it('clear empties exactly the chosen caches', async () => {
    const c = new Caches(redis, `${tp.prefix}-clr`, {
      userIdMs: 60_000,
      notFoundMs: 60_000,
      resultMs: 60_000,
    });
    for (let i = 0; i < 30; i++) {
      await c.setUserId(`u${i}`, {
        found: true,
        userId: String(i + 1),
        isPrivate: false,
        seenAtSecs: 1,
      });
      await c.setResult(`u${i}`, { ...result, status: 'none', expiresAt: null });
    }
    expect(await c.clear({ userIds: false, results: true })).toEqual({ userIds: 0, results: 30 });
    expect((await c.stats()).results.entries).toBe(0);
    expect((await c.stats()).userIds.entries).toBe(30);
    expect(await c.clear({ userIds: true, results: true })).toEqual({ userIds: 30, results: 0 });
    expect(await redis.keys(`${tp.prefix}-clr:cache:*`)).toEqual([]);
  });
});

describe('SingleFlight', () => {
  const codec = { encode: (v: string) => v, decode: (s: string) => s };

  it('50 concurrent askers in two processes: one lookup', async () => {
    const a = new SingleFlight<string>(redis, tp.prefix, codec);
    const b = new SingleFlight<string>(other, tp.prefix, codec);
    let calls = 0;
    const lookup = async () => {
      calls++;
      await sleep(150);
      return 'answer';
    };
    const all = await Promise.all(
      Array.from({ length: 50 }, (_, i) => (i % 2 ? a : b).run('same-user', lookup)),
    );
    expect(calls).toBe(1);
    expect(all.every((r) => r.value === 'answer')).toBe(true);
    expect(all.filter((r) => !r.shared)).toHaveLength(1);
  });

  it('when the leader fails, a follower takes over; errors are not shared', async () => {
    const a = new SingleFlight<string>(redis, tp.prefix, codec);
    const b = new SingleFlight<string>(other, tp.prefix, codec);
    const leader = a.run('flaky', async () => {
      await sleep(100);
      throw new Error('upstream 502');
    });
    await sleep(20);
    const follower = b.run('flaky', async () => 'second try');
    await expect(leader).rejects.toThrow('upstream 502');
    await expect(follower).resolves.toEqual({ value: 'second try', shared: false });
  });

  it('a follower waits no longer than its bound, then asks itself', async () => {
    const a = new SingleFlight<string>(redis, tp.prefix, { ...codec, lockMs: 10_000 });
    const b = new SingleFlight<string>(other, tp.prefix, { ...codec, waitMs: 200 });
    const slow = a.run('stuck', async () => {
      await sleep(1_500);
      return 'late';
    });
    await sleep(20);
    const t0 = Date.now();
    const r = await b.run('stuck', async () => 'own');
    expect(r).toEqual({ value: 'own', shared: false });
    expect(Date.now() - t0).toBeLessThan(1_200);
    await slow;
  });
});
