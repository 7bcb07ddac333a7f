import { createWorld, isValidUsername, STORY_LIFETIME_SECS } from '../src/index.js';

const EPOCH_SECS = 1_767_225_600; // 2026-01-01T00:00:00Z

describe('createWorld', () => {
  it('is deterministic: same seed, size and epoch give the same bytes', () => {
    const a = createWorld({ seed: 42, size: 1000, epochSecs: EPOCH_SECS });
    const b = createWorld({ seed: 42, size: 1000, epochSecs: EPOCH_SECS });
    expect(a.dump()).toBe(b.dump());
    expect(a.digest()).toBe(b.digest());
    expect(a.digest()).toMatch(/^[0-9a-f]{64}$/);
  });

  it('matches the pinned digest (demo-200.txt and other fixtures depend on this world)', () => {
    // Changing generation is allowed, but deliberately: update this digest and regenerate
    // packages/devtools/samples/demo-200.txt (storycheck-sim --print-demo-sample).
    expect(createWorld({ seed: 42, size: 1000, epochSecs: EPOCH_SECS }).digest()).toBe(
      'b8cde333cd885189c659d03ad53c593203c44c4b50c0a545aac2f2e85deb9c7a',
    );
  });

  it('differs with another seed, size or epoch', () => {
    const base = createWorld({ seed: 42, size: 1000, epochSecs: EPOCH_SECS }).digest();
    expect(createWorld({ seed: 43, size: 1000, epochSecs: EPOCH_SECS }).digest()).not.toBe(base);
    expect(createWorld({ seed: 42, size: 999, epochSecs: EPOCH_SECS }).digest()).not.toBe(base);
    expect(createWorld({ seed: 42, size: 1000, epochSecs: EPOCH_SECS + 1 }).digest()).not.toBe(
      base,
    );
  });

  it('keeps usernames and statuses independent of the epoch', () => {
    const a = createWorld({ seed: 7, size: 300, epochSecs: EPOCH_SECS });
    const b = createWorld({ seed: 7, size: 300, epochSecs: EPOCH_SECS + 12_345 });
    expect(b.usernames()).toEqual(a.usernames());
    for (const name of a.usernames()) {
      expect(b.truth(name, b.epochSecs).status).toBe(a.truth(name, a.epochSecs).status);
    }
  });

  it('generates valid unique usernames, ids and pks', () => {
    const world = createWorld({ seed: 42, size: 2000, epochSecs: EPOCH_SECS });
    const names = world.usernames();
    expect(names).toHaveLength(2000);
    expect(new Set(names).size).toBe(2000);
    for (const name of names) expect(isValidUsername(name)).toBe(true);
    const ids = world.users.map((u) => u.userId);
    expect(new Set(ids).size).toBe(2000);
    for (const id of ids) expect(id).toMatch(/^[1-9]\d{7,10}$/);
    const pks = world.users.flatMap((u) => u.items.map((i) => i.pk));
    expect(new Set(pks).size).toBe(pks.length);
    for (const user of world.users) {
      for (const item of user.items) {
        expect(item.pk).toMatch(/^[1-9]\d{18}$/);
        expect(item.id).toBe(`${item.pk}_${user.userId}`);
        expect(item.takenAtSecs).toBe(EPOCH_SECS - item.takenAgoSecs);
        expect(item.expiringAtSecs).toBe(item.takenAtSecs + STORY_LIFETIME_SECS);
        expect([1, 2]).toContain(item.mediaType);
        // 2 h away from the 24 h boundary on both sides.
        const inActive = item.takenAgoSecs >= 60 && item.takenAgoSecs <= 22 * 3600;
        const inExpired = item.takenAgoSecs >= 25 * 3600 && item.takenAgoSecs <= 40 * 3600;
        expect(inActive || inExpired).toBe(true);
      }
    }
  });

  it('has roughly the documented mix of accounts', () => {
    const world = createWorld({ seed: 42, size: 4000, epochSecs: EPOCH_SECS });
    const share = (pred: (u: (typeof world.users)[number]) => boolean): number =>
      world.users.filter(pred).length / world.users.length;
    const now = EPOCH_SECS;
    expect(share((u) => u.isPrivate)).toBeGreaterThan(0.12);
    expect(share((u) => u.isPrivate)).toBeLessThan(0.18);
    expect(share((u) => u.items.some((i) => i.expiringAtSecs > now))).toBeGreaterThan(0.36);
    expect(share((u) => u.items.some((i) => i.expiringAtSecs > now))).toBeLessThan(0.44);
    const expiredOnly = share(
      (u) => u.items.length > 0 && u.items.every((i) => i.expiringAtSecs <= now),
    );
    expect(expiredOnly).toBeGreaterThan(0.07);
    expect(expiredOnly).toBeLessThan(0.13);
  });

  it('answers lookups and truth', () => {
    const world = createWorld({ seed: 42, size: 1000, epochSecs: EPOCH_SECS });
    const now = EPOCH_SECS + 60; // a minute later: nothing flips
    for (const user of world.users) {
      expect(world.byUsername(user.username)).toBe(user);
      expect(world.byUsername(user.username.toUpperCase())).toBe(user);
      expect(world.byId(user.userId)).toBe(user);
      const t = world.truth(user.username, now);
      expect(t.exists).toBe(true);
      expect(t.userId).toBe(user.userId);
      expect(t.isPrivate).toBe(user.isPrivate);
      const active = user.items.filter((i) => i.expiringAtSecs > now);
      if (user.isPrivate) {
        expect(t).toMatchObject({
          status: 'private',
          storyCount: 0,
          latestStoryAt: null,
          expiresAt: null,
        });
      } else if (active.length > 0) {
        const newest = Math.max(...active.map((i) => i.takenAtSecs));
        expect(t).toMatchObject({
          status: 'active',
          storyCount: active.length,
          latestStoryAt: newest,
          expiresAt: newest + STORY_LIFETIME_SECS,
        });
      } else {
        expect(t).toMatchObject({
          status: 'none',
          storyCount: 0,
          latestStoryAt: null,
          expiresAt: null,
        });
      }
    }
    expect(world.truth('no.such.user_ever', now)).toEqual({
      exists: false,
      userId: null,
      isPrivate: false,
      status: 'not_found',
      storyCount: 0,
      latestStoryAt: null,
      expiresAt: null,
    });
    // A day and a half later every story has expired.
    for (const name of world.usernames()) {
      expect(['none', 'private']).toContain(world.truth(name, EPOCH_SECS + 36 * 3600).status);
    }
  });

  it('rejects nonsense options', () => {
    expect(() => createWorld({ seed: 1, size: -1, epochSecs: EPOCH_SECS })).toThrow(RangeError);
    expect(() => createWorld({ seed: 1.5, size: 1, epochSecs: EPOCH_SECS })).toThrow(RangeError);
    expect(() => createWorld({ seed: 1, size: 1, epochSecs: Number.NaN })).toThrow(RangeError);
  });
});
