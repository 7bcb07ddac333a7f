import { z } from 'zod';
import { MalformedResponseError } from './errors.js';

/**
 * Parsers for success answers. They accept every success variant of UPSTREAM.md and reject
 * anything else as malformed — never as "no story". Ids are digit strings end to end: big
 * integers are quoted before JSON.parse, so a 19-digit `pk` never passes through a JS number.
 */

const BIG_INT_FIELD =
  /("(?:pk|id|pk_id|user_id|strong_id__|media_id)"\s*:\s*)(-?\d{16,})(?=\s*[,}\]])/g;

/** JSON.parse that keeps integers of 16+ digits in id-like fields as strings. */
export function parseJsonKeepingIds(text: string): unknown {
  return JSON.parse(text.replace(BIG_INT_FIELD, '$1"$2"'));
}

const digits = z
  .union([z.string().regex(/^\d+$/), z.number().int().nonnegative()])
  .transform(String);

const profileSchema = z.object({
  status: z.literal('ok'),
  data: z.object({
    user: z
      .object({ id: digits, username: z.string(), is_private: z.boolean() })
      .passthrough()
      .nullable(),
  }),
});

/** What a profile lookup tells us. */
export type Profile =
  { found: false } | { found: true; userId: string; username: string; isPrivate: boolean };

/** Parses a web_profile_info answer; `data.user: null` means not found. */
export function parseProfile(body: string): Profile {
  const v = validate(profileSchema, body, 'web_profile_info');
  const u = v.data.user;
  return u
    ? { found: true, userId: u.id, username: u.username.toLowerCase(), isPrivate: u.is_private }
    : { found: false };
}

const itemSchema = z
  .object({ taken_at: z.number().int(), expiring_at: z.number().int().optional() })
  .passthrough();
const reelSchema = z
  .object({
    id: digits,
    user: z.object({ pk: digits, username: z.string().optional() }).passthrough().optional(),
    items: z.array(itemSchema).optional(),
  })
  .passthrough();
const reelsMediaSchema = z
  .object({
    status: z.literal('ok'),
    reels: z.record(z.string(), reelSchema).optional(),
    reels_media: z.array(reelSchema).optional(),
  })
  .refine(
    (v) => v.reels !== undefined || v.reels_media !== undefined,
    'neither reels nor reels_media',
  );

/** The story state of one user at a moment. */
export interface StoryState {
  /** Items whose `expiring_at` is still in the future. */
  storyCount: number;
  /** `taken_at` of the newest active item (epoch seconds), or null. */
  latestTakenAtSecs: number | null;
  /** Latest `expiring_at` among active items (epoch seconds), or null. */
  expiresAtSecs: number | null;
  /** Username the reel carries (lower-case), when present. */
  username: string | null;
}

/**
 * Parses a reels_media answer into user id → story state, counting only items that expire
 * after `nowSecs`. Users without a visible reel are absent from the map. Reels are read from
 * `reels` and `reels_media` alike (either may be present).
 */
export function parseReelsMedia(body: string, nowSecs: number): Map<string, StoryState> {
  const v = validate(reelsMediaSchema, body, 'reels_media');
  const out = new Map<string, StoryState>();
  const reels = [...Object.values(v.reels ?? {}), ...(v.reels_media ?? [])];
  for (const reel of reels) {
    const userId = reel.user?.pk ?? reel.id;
    if (out.has(userId)) continue;
    let storyCount = 0;
    let latest: number | null = null;
    let expires: number | null = null;
    for (const item of reel.items ?? []) {
      const exp = item.expiring_at ?? item.taken_at + 86_400;
      if (exp <= nowSecs) continue;
      storyCount += 1;
      latest = latest === null ? item.taken_at : Math.max(latest, item.taken_at);
      expires = expires === null ? exp : Math.max(expires, exp);
    }
    out.set(userId, {
      storyCount,
      latestTakenAtSecs: latest,
      expiresAtSecs: expires,
      username: reel.user?.username?.toLowerCase() ?? null,
    });
  }
  return out;
}

function validate<T>(schema: z.ZodType<T>, body: string, what: string): T {
  let json: unknown;
  try {
    json = parseJsonKeepingIds(body);
  } catch (cause) {
    throw new MalformedResponseError(`${what}: body is not JSON`, { status: 200, body, cause });
  }
  const r = schema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    const where = issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'invalid';
    throw new MalformedResponseError(`${what}: unexpected shape (${where})`, {
      status: 200,
      body,
      cause: r.error,
    });
  }
  return r.data;
}

const currentUserSchema = z.object({
  status: z.literal('ok'),
  user: z.object({ username: z.string().optional() }).passthrough(),
});

/** Parses accounts/current_user: the logged-in account's username (null when not given). */
export function parseCurrentUser(body: string): string | null {
  return validate(currentUserSchema, body, 'current_user').user.username ?? null;
}
