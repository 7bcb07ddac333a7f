import { Redis } from 'ioredis';
import { TEST_REDIS_URL, createTestPrefix, type TestPrefix } from '@storycheck/testkit';
import { TRAFFIC_BUCKET_MS, TRAFFIC_TTL_S, createTraffic, poolKeys } from '../src/index.js';

let redis: Redis;
let tp: TestPrefix;

beforeAll(() => {
  redis = new Redis(TEST_REDIS_URL, { enableAutoPipelining: true });
  tp = createTestPrefix();
});
afterAll(async () => {
  await tp.clean();
  await redis.quit();
});

describe('traffic buckets', () => {
  it('counts requests and throttles per proxy in 10 s buckets that expire, and reads them back', async () => {
    const traffic = createTraffic(redis, tp.prefix);
    for (let i = 0; i < 25; i++) traffic.request('px1');
    for (let i = 0; i < 3; i++) traffic.throttled('px1');
    for (let i = 0; i < 4; i++) traffic.request(null);
    // Recording is fire-and-forget: wait until every count landed.
    const bucketKeys = async () => redis.keys(`${poolKeys(tp.prefix).base}t:*`);
    const total = async () => {
      let n = 0;
      for (const k of await bucketKeys())
        for (const v of Object.values(await redis.hgetall(k))) n += Number(v);
      return n;
    };
    for (let i = 0; i < 500 && (await total()) < 32; i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(await total()).toBe(32);
    for (const k of await bucketKeys()) {
      const ttl = await redis.ttl(k);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(TRAFFIC_TTL_S);
    }
    // Read as if two buckets later: the counts sit in complete buckets now.
    const buckets = await traffic.read(1, Date.now() + 2 * TRAFFIC_BUCKET_MS);
    expect(buckets).toHaveLength(6);
    for (let i = 1; i < buckets.length; i++)
      expect(buckets[i]!.at - buckets[i - 1]!.at).toBe(TRAFFIC_BUCKET_MS);
    const sum = (f: (b: (typeof buckets)[number]) => number) =>
      buckets.reduce((a, b) => a + f(b), 0);
    expect(sum((b) => b.requests.px1 ?? 0)).toBe(25);
    expect(sum((b) => b.throttled.px1 ?? 0)).toBe(3);
    expect(sum((b) => b.requests['-'] ?? 0)).toBe(4);
    // The running bucket is left out.
    const now = await traffic.read(1);
    expect(now.every((b) => b.at + TRAFFIC_BUCKET_MS <= Date.now())).toBe(true);
  });
});
