import { startSim, type SimServer } from '@storycheck/upstream-sim';
import { StoriesCoalescer, StoryChecker, UpstreamError, type StoryState } from '../src/index.js';

let sim: SimServer;
let checker: StoryChecker;

beforeAll(async () => {
  sim = await startSim({ seed: 5, size: 300, maxReelIds: 5 });
  checker = new StoryChecker({ baseUrl: sim.url });
});
afterAll(async () => {
  checker.close();
  await sim.close();
});

describe('StoryChecker against the simulator', () => {
  it('answers like the simulator’s truth for every kind of user', async () => {
    const now = Math.floor(Date.now() / 1000);
    const names = [...sim.world.usernames().slice(0, 60), 'no.such.user_zz'];
    const seen = new Set<string>();
    for (const u of names) {
      const r = await checker.check(u);
      const t = sim.world.truth(u, now);
      expect({ u, status: r.status }).toEqual({ u, status: t.status });
      seen.add(r.status);
      if (t.status === 'active') {
        expect(r.storyCount).toBe(t.storyCount);
        expect(r.latestStoryAt?.getTime()).toBe(t.latestStoryAt! * 1000);
        expect(r.userId).toBe(t.userId);
      }
      // The story count is decided here, once: 0 for none, unknown (null) without a visible reel.
      if (t.status === 'none') expect(r.storyCount).toBe(0);
      if (t.status === 'private' || t.status === 'not_found') expect(r.storyCount).toBeNull();
      expect(r.checkedAt.getTime()).toBeGreaterThanOrEqual(now * 1000);
      expect(r.timings.total.durationMs).toBeGreaterThanOrEqual(0);
      expect(r.requests).toBe(
        r.status === 'not_found' || (r.status === 'private' && !r.userId) ? 1 : 2,
      );
    }
    expect([...seen].sort()).toEqual(['active', 'none', 'not_found', 'private']);
  });
});

describe('StoriesCoalescer', () => {
  it('shares one request among concurrent lookups and halves the chunk on "too many reels"', async () => {
    const users = sim.world.users.filter((u) => !u.isPrivate).slice(0, 24);
    const shrinks: number[] = [];
    const sizes: number[] = [];
    const c = new StoriesCoalescer({
      fetch: (ids) => checker.fetchStories(ids),
      chunkSize: 20,
      maxWaitMs: 10,
      onShrink: (n) => shrinks.push(n),
      onRequest: (n) => sizes.push(n),
    });
    const before = sim.stats().byKind.reels_media ?? 0;
    const now = Math.floor(Date.now() / 1000);
    const states = await Promise.all(users.map((u) => c.load(u.userId)));
    for (let i = 0; i < users.length; i++) {
      const t = sim.world.truth(users[i]!.username, now);
      expect(states[i]?.storyCount ?? 0).toBe(t.storyCount);
    }
    // 24 ids, limit 5: the first 20-id request is refused, then halves until they fit.
    expect(shrinks.length).toBeGreaterThan(0);
    expect(c.chunkSize).toBeLessThanOrEqual(5);
    const requests = (sim.stats().byKind.reels_media ?? 0) - before;
    expect(requests).toBe(sizes.length);
    // Afterwards, requests go out at the learned size at once.
    sizes.length = 0;
    await Promise.all(users.slice(0, 10).map((u) => c.load(u.userId)));
    expect(sizes.every((n) => n <= c.chunkSize)).toBe(true);
    expect(sizes.length).toBe(Math.ceil(10 / c.chunkSize));
  });

  it('binds ids when the lease is granted: ids arriving while a request waits for budget ride along', async () => {
    const users = sim.world.users.filter((u) => !u.isPrivate).slice(0, 5); // the simulator takes at most 5 ids here
    const sizes: number[] = [];
    const c = new StoriesCoalescer<string>({
      // The "lease" takes 150 ms to be granted, as when budgets bind.
      withContext: async (fn) => {
        await new Promise((r) => setTimeout(r, 150));
        return fn('lease-1');
      },
      fetch: (ids, lease) => {
        expect(lease).toBe('lease-1');
        return checker.fetchStories(ids);
      },
      chunkSize: 20,
      maxWaitMs: 5,
      onRequest: (n) => sizes.push(n),
    });
    const first = c.load(users[0]!.userId);
    await new Promise((r) => setTimeout(r, 50)); // the first request is waiting for its lease
    const rest = users.slice(1).map((u) => c.load(u.userId));
    await Promise.all([first, ...rest]);
    expect(sizes).toEqual([5]);
  });

  it('fails only the callers of a failing request', async () => {
    const users = sim.world.users.filter((u) => !u.isPrivate).slice(0, 6);
    const poisoned = users[0]!.userId;
    const c = new StoriesCoalescer({
      // A real request, refused for one batch by its content: the other batch must not care.
      fetch: async (ids): Promise<Map<string, StoryState>> => {
        if (ids.includes(poisoned)) throw new UpstreamError('upstream error 502', { status: 502 });
        return checker.fetchStories(ids);
      },
      chunkSize: 3,
      maxWaitMs: 5,
    });
    const results = await Promise.allSettled(users.map((u) => c.load(u.userId)));
    expect(results.slice(0, 3).map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(results.slice(3).map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
  });

  it('sends at once when the callers waiting say nobody else can join', async () => {
    const users = sim.world.users.filter((u) => !u.isPrivate).slice(0, 6);
    const sizes: number[] = [];
    const seen: number[] = [];
    const c = new StoriesCoalescer({
      fetch: (ids) => checker.fetchStories(ids),
      chunkSize: 20,
      // Without the early send these loads would wait 10 minutes: the test would time out.
      maxWaitMs: 600_000,
      onRequest: (n) => sizes.push(n),
      // A "worker" with 3 job slots: once 3 callers wait, none can finish to make room.
      nothingMoreExpected: (waiting) => (seen.push(waiting), waiting >= 3),
    });
    const first = users.slice(0, 3).map((u) => c.load(u.userId));
    expect(sizes).toEqual([3]); // sent by the third load, not by a timer
    await Promise.all(first);
    // Waiting counts callers not yet in a request: a fresh set of three is needed again.
    const second = users.slice(3, 6).map((u) => c.load(u.userId));
    await Promise.all(second);
    expect(sizes).toEqual([3, 3]);
    expect(seen).toEqual([1, 2, 3, 1, 2, 3]);
  });
});
