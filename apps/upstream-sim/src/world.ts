/**
 * The simulated world: a fixed population of Instagram users and their story items, generated
 * from a seed. Same seed + size + epoch → the same world, byte for byte (see {@link World.digest}),
 * so tests, demos and benchmarks can compare what a client reports with {@link World.truth}.
 */
import { createHash } from 'node:crypto';
import { displayName, uniqueUsername } from './names.js';
import { Rng } from './prng.js';

/** Seconds in a day: a story item expires this long after it was taken. */
export const STORY_LIFETIME_SECS = 86_400;

/**
 * Active items are taken 60 s … 22 h before the epoch, expired ones 25 h … 40 h before: both stay
 * at least 2 h away from the 24 h boundary, so a test running for minutes never sees one flip.
 */
export const ACTIVE_TAKEN_AGO_SECS = { min: 60, max: 22 * 3600 } as const;
/** See {@link ACTIVE_TAKEN_AGO_SECS}. */
export const EXPIRED_TAKEN_AGO_SECS = { min: 25 * 3600, max: 40 * 3600 } as const;

/** Options for {@link createWorld}. */
export interface WorldOptions {
  /** Seed of the PRNG; only its low 32 bits matter. */
  seed: number;
  /** Number of users, ≥ 0. */
  size: number;
  /** The world's "now" in epoch seconds: item times are computed back from it. */
  epochSecs: number;
}

/** One story item (a photo or a video in a user's reel). */
export interface StoryItem {
  /** Media pk: 19 decimal digits, above Number.MAX_SAFE_INTEGER, so kept as a string. */
  pk: string;
  /** "<pk>_<userId>", the form clients should key items by. */
  id: string;
  /** How long before the world's epoch the item was taken, in seconds. */
  takenAgoSecs: number;
  /** epochSecs − takenAgoSecs. */
  takenAtSecs: number;
  /** takenAtSecs + 86400. */
  expiringAtSecs: number;
  /** 1 image, 2 video. */
  mediaType: 1 | 2;
}

/** One simulated account. */
export interface SimUser {
  /** Digit string, 8–11 digits, unique in the world. */
  userId: string;
  /** Valid Instagram username, unique in the world. */
  username: string;
  /** Display name, possibly empty. */
  fullName: string;
  /** Private accounts hide their reel from our (logged-out / not following) client. */
  isPrivate: boolean;
  /** Verified badge; cosmetic. */
  isVerified: boolean;
  /** Follower / following / post counts; cosmetic. */
  followerCount: number;
  followingCount: number;
  mediaCount: number;
  /** Story items, oldest first (Instagram's order), expired ones included. */
  items: StoryItem[];
}

/** What a correct client should conclude about a username at a given time. */
export type TruthStatus = 'active' | 'none' | 'private' | 'not_found';

/**
 * The ground truth for one username, as a logged-out / not-following client can know it.
 * For private accounts the counts are 0/null: their reel is invisible to us.
 */
export interface Truth {
  exists: boolean;
  userId: string | null;
  isPrivate: boolean;
  status: TruthStatus;
  /** Unexpired items only. */
  storyCount: number;
  /** taken_at of the newest unexpired item, epoch seconds, or null. */
  latestStoryAt: number | null;
  /** expiring_at of the newest unexpired item, epoch seconds, or null. */
  expiresAt: number | null;
}

/** A generated world; read-only after creation. */
export interface World {
  readonly seed: number;
  readonly size: number;
  readonly epochSecs: number;
  /** All users, in generation order. */
  readonly users: readonly SimUser[];
  /** Usernames in generation order (a fresh array each call). */
  usernames(): string[];
  /** Looks a user up by username (case-insensitive, like Instagram). */
  byUsername(name: string): SimUser | undefined;
  /** Looks a user up by id (digit string). */
  byId(id: string): SimUser | undefined;
  /** Ground truth for a username at `nowSecs` (epoch seconds; default the world's epoch). */
  truth(username: string, nowSecs?: number): Truth;
  /** sha256 (hex) of the canonical JSON dump of the world. */
  digest(): string;
  /** The canonical JSON dump the digest is computed over. */
  dump(): string;
}

/** Items of `user` still unexpired at `nowSecs`. */
export function activeItems(user: SimUser, nowSecs: number): StoryItem[] {
  return user.items.filter((item) => item.expiringAtSecs > nowSecs);
}

/**
 * True when our client can see `user`'s reel at `nowSecs`: public and at least one unexpired
 * item. This is exactly when reels_media includes the reel.
 */
export function reelVisible(user: SimUser, nowSecs: number): boolean {
  return !user.isPrivate && user.items.some((item) => item.expiringAtSecs > nowSecs);
}

/** The truth for `user` (or an unknown name when undefined) at `nowSecs`. */
export function truthOf(user: SimUser | undefined, nowSecs: number): Truth {
  if (!user) {
    return {
      exists: false,
      userId: null,
      isPrivate: false,
      status: 'not_found',
      storyCount: 0,
      latestStoryAt: null,
      expiresAt: null,
    };
  }
  if (user.isPrivate) {
    return {
      exists: true,
      userId: user.userId,
      isPrivate: true,
      status: 'private',
      storyCount: 0,
      latestStoryAt: null,
      expiresAt: null,
    };
  }
  const active = activeItems(user, nowSecs);
  let newest: StoryItem | undefined;
  for (const item of active) if (!newest || item.takenAtSecs > newest.takenAtSecs) newest = item;
  return {
    exists: true,
    userId: user.userId,
    isPrivate: false,
    status: newest ? 'active' : 'none',
    storyCount: active.length,
    latestStoryAt: newest ? newest.takenAtSecs : null,
    expiresAt: newest ? newest.expiringAtSecs : null,
  };
}

function makeItems(
  rng: Rng,
  userId: string,
  epochSecs: number,
  count: number,
  range: { min: number; max: number },
  takenPks: Set<string>,
): StoryItem[] {
  const items: StoryItem[] = [];
  for (let i = 0; i < count; i++) {
    let pk: string;
    // Recent Instagram media pks are 19 digits starting with 3; leading digit 2–3 keeps that look.
    do pk = String(rng.int(2, 3)) + rng.digits(18);
    while (takenPks.has(pk));
    takenPks.add(pk);
    const takenAgoSecs = rng.int(range.min, range.max);
    const takenAtSecs = epochSecs - takenAgoSecs;
    items.push({
      pk,
      id: `${pk}_${userId}`,
      takenAgoSecs,
      takenAtSecs,
      expiringAtSecs: takenAtSecs + STORY_LIFETIME_SECS,
      mediaType: rng.chance(0.35) ? 2 : 1,
    });
  }
  return items;
}

/** One generated user; the draws from `rng` come in a fixed order. */
function generateUser(
  rng: Rng,
  epochSecs: number,
  takenNames: Set<string>,
  takenIds: Set<string>,
  takenPks: Set<string>,
): SimUser {
  const username = uniqueUsername(rng, takenNames);
  let userId: string;
  do userId = rng.digits(rng.int(8, 11));
  while (takenIds.has(userId));
  takenIds.add(userId);
  const fullName = displayName(rng, username);
  const isPrivate = rng.chance(0.15);
  const isVerified = rng.chance(0.02);
  const followerCount = Math.floor(Math.exp(rng.next() * 12));
  const followingCount = rng.int(0, 2500);
  const mediaCount = rng.int(0, 1200);
  const kind = rng.next();
  let items: StoryItem[] = [];
  if (kind < 0.4) {
    items = makeItems(rng, userId, epochSecs, rng.int(1, 5), ACTIVE_TAKEN_AGO_SECS, takenPks);
    if (rng.chance(0.25)) {
      items.push(
        ...makeItems(rng, userId, epochSecs, rng.int(1, 2), EXPIRED_TAKEN_AGO_SECS, takenPks),
      );
    }
  } else if (kind < 0.5) {
    items = makeItems(rng, userId, epochSecs, rng.int(1, 4), EXPIRED_TAKEN_AGO_SECS, takenPks);
  }
  items.sort((a, b) => a.takenAtSecs - b.takenAtSecs || (a.pk < b.pk ? -1 : 1));
  return {
    userId,
    username,
    fullName,
    isPrivate,
    isVerified,
    followerCount,
    followingCount,
    mediaCount,
    items,
  };
}

/** The canonical JSON of a world: field order is fixed by this literal. */
function dumpWorld(seed: number, size: number, epochSecs: number, users: SimUser[]): string {
  return JSON.stringify({
    seed,
    size,
    epochSecs,
    users: users.map((u) => ({
      userId: u.userId,
      username: u.username,
      fullName: u.fullName,
      isPrivate: u.isPrivate,
      isVerified: u.isVerified,
      followerCount: u.followerCount,
      followingCount: u.followingCount,
      mediaCount: u.mediaCount,
      items: u.items.map((it) => ({
        pk: it.pk,
        id: it.id,
        takenAgoSecs: it.takenAgoSecs,
        takenAtSecs: it.takenAtSecs,
        expiringAtSecs: it.expiringAtSecs,
        mediaType: it.mediaType,
      })),
    })),
  });
}

/**
 * Generates a world. Per user: ~15% private (independently of stories); ~40% have 1–5 active
 * items (a quarter of those also 1–2 expired ones), ~10% only expired items, the rest none.
 * Draw order is fixed, so the output depends on seed, size and epoch only.
 */
export function createWorld(opts: WorldOptions): World {
  const { seed, size, epochSecs } = opts;
  if (!Number.isInteger(size) || size < 0)
    throw new RangeError(`size must be an integer ≥ 0, got ${size}`);
  if (!Number.isInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`);
  if (!Number.isInteger(epochSecs) || epochSecs < 0) {
    throw new RangeError(`epochSecs must be an integer ≥ 0, got ${epochSecs}`);
  }
  const rng = new Rng(seed);
  const takenNames = new Set<string>();
  const takenIds = new Set<string>();
  const takenPks = new Set<string>();
  const users: SimUser[] = [];
  for (let i = 0; i < size; i++) {
    users.push(generateUser(rng, epochSecs, takenNames, takenIds, takenPks));
  }

  const byName = new Map(users.map((u) => [u.username, u]));
  const byIdMap = new Map(users.map((u) => [u.userId, u]));
  let dumped: string | undefined;
  const dump = (): string => {
    // Field order is fixed by dumpWorld's literal, so the dump is canonical.
    dumped ??= dumpWorld(seed, size, epochSecs, users);
    return dumped;
  };

  return {
    seed,
    size,
    epochSecs,
    users,
    usernames: () => users.map((u) => u.username),
    byUsername: (name) => byName.get(name.toLowerCase()),
    byId: (id) => byIdMap.get(id),
    truth: (username, nowSecs = epochSecs) => truthOf(byName.get(username.toLowerCase()), nowSecs),
    dump,
    digest: () => createHash('sha256').update(dump()).digest('hex'),
  };
}
