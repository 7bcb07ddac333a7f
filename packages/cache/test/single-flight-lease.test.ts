import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import {
  TEST_REDIS_URL,
  createTestPrefix,
  spawnNode,
  waitFor,
  type Spawned,
  type TestPrefix,
} from '@storycheck/testkit';
import type { StoryResult } from '@storycheck/model';
import { SingleFlight, decodeResult, encodeResult } from '../src/index.js';

/**
 * Issue 14 item 5: a follower waits for a single-flight leader only while the leader lives.
 * The leader holds a short lease it renews (a heartbeat); a frozen (SIGSTOPped) leader stops
 * renewing, its lease lapses and the follower does the lookup itself — long before
 * SINGLE_FLIGHT_WAIT, which is set huge here. A live leader slower than its lease keeps it.
 */
const HOLDER = fileURLToPath(new URL('./fixtures/flight-holder.mjs', import.meta.url));
let tp: TestPrefix;
let redis: Redis;
const procs: Spawned[] = [];

beforeAll(() => {
  tp = createTestPrefix();
  redis = new Redis(TEST_REDIS_URL);
});
afterAll(async () => {
  for (const p of procs) {
    p.child.kill('SIGCONT');
    await p.kill();
  }
  await tp.clean();
  redis.disconnect();
});

const mine: StoryResult = {
  status: 'active',
  userId: '7',
  storyCount: 1,
  latestStoryAt: new Date(1_800_000_000_000),
  expiresAt: new Date(1_800_086_400_000),
  checkedAt: new Date(1_800_000_001_000),
};

function holder(key: string, env: Record<string, string> = {}): Spawned {
  const p = spawnNode(HOLDER, [], {
    REDIS_URL: TEST_REDIS_URL,
    PREFIX: tp.prefix,
    KEY: key,
    ...env,
  });
  procs.push(p);
  return p;
}

/** Resolves with `p`'s value, or with 'deadline' after `ms` (well below the follower's waitMs). */
function within<T>(p: Promise<T>, ms: number): Promise<T | 'deadline'> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<'deadline'>((r) => (t = setTimeout(() => r('deadline'), ms))),
  ]);
}

it('a follower takes the lookup over from a frozen leader when its lease lapses', async () => {
  const h = holder('frozen');
  await waitFor(() => h.stdout().includes('leading'), 'the holder to lead', 30_000);
  h.child.kill('SIGSTOP');
  // SINGLE_FLIGHT_WAIT 10 min: only the leader's lapsed lease can end the wait before the deadline.
  const flight = new SingleFlight<StoryResult>(redis, tp.prefix, {
    waitMs: 600_000,
    encode: encodeResult,
    decode: decodeResult,
  });
  let lookups = 0;
  const r = await within(
    flight.run('frozen', async () => {
      lookups += 1;
      return mine;
    }),
    25_000,
  );
  expect(r).toEqual({ value: mine, shared: false });
  expect(lookups).toBe(1);
  h.child.kill('SIGCONT');
}, 60_000);

it('a follower keeps waiting for a live leader slower than its lease, and shares its answer', async () => {
  // Lease 300 ms, the lookup held for many leases: only the heartbeat keeps the lock.
  const h = holder('slow', { LOCK_MS: '300' });
  await waitFor(() => h.stdout().includes('leading'), 'the holder to lead', 30_000);
  const flight = new SingleFlight<StoryResult>(redis, tp.prefix, {
    waitMs: 600_000,
    pollMs: 25,
    encode: encodeResult,
    decode: decodeResult,
  });
  let lookups = 0;
  const run = flight.run('slow', async () => {
    lookups += 1;
    return mine;
  });
  // Count instead of timing: 30 reads 200 ms apart (20 leases of 300 ms) all see the leader's
  // lock, and the follower has not looked up.
  const lockKey = `${tp.prefix}:cache:sf:{slow}`;
  const token = await redis.get(lockKey);
  expect(token).not.toBeNull();
  let reads = 0;
  await waitFor(
    async () => {
      expect(await redis.get(lockKey)).toBe(token);
      expect(lookups).toBe(0);
      reads += 1;
      return reads >= 30;
    },
    'many leases to pass',
    60_000,
    200,
  );
  expect(lookups).toBe(0);
  h.child.stdin!.write('go\n');
  const r = await run;
  expect(lookups).toBe(0);
  expect(r.shared).toBe(true);
  expect(r.value.userId).toBe('42');
  await waitFor(() => h.stdout().includes('done shared=false'), 'the holder to finish', 30_000);
}, 90_000);
