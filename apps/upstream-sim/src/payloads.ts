/**
 * Response bodies shaped like Instagram's (see /work/shared/upstream-samples). Builders return
 * JSON text; media pks go out as bare 19-digit numbers via {@link RawNumber}.
 */
import { createHash } from 'node:crypto';
import { RawNumber, stringifyJson } from './raw-json.js';
import type { JsonValue } from './raw-json.js';
import type { SimUser, StoryItem } from './world.js';

const CDN = 'https://scontent.cdninstagram.com';
const SHORTCODE_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** Instagram's media shortcode: the pk written in base 64 with its URL alphabet. */
export function shortcodeOf(pk: string): string {
  let n = BigInt(pk);
  let out = '';
  while (n > 0n) {
    out = SHORTCODE_ALPHABET.charAt(Number(n % 64n)) + out;
    n /= 64n;
  }
  return out || 'A';
}

function profilePicUrl(user: SimUser, size: 150 | 320): string {
  return `${CDN}/v/t51.2885-19/${user.userId}_s${size}x${size}.jpg`;
}

const profileCache = new WeakMap<SimUser, string>();

/** `GET /api/v1/users/web_profile_info/` 200 body for an existing user (no story field, like the real one). Cached per user. */
export function profileBody(user: SimUser): string {
  let text = profileCache.get(user);
  if (text === undefined) {
    text = buildProfileBody(user);
    profileCache.set(user, text);
  }
  return text;
}

function buildProfileBody(user: SimUser): string {
  return stringifyJson({
    data: {
      user: {
        id: user.userId,
        fbid: `17841${user.userId.padStart(12, '0')}`,
        username: user.username,
        full_name: user.fullName,
        is_private: user.isPrivate,
        is_verified: user.isVerified,
        is_business_account: false,
        is_professional_account: false,
        profile_pic_url: profilePicUrl(user, 150),
        profile_pic_url_hd: profilePicUrl(user, 320),
        biography: '',
        external_url: null,
        edge_followed_by: { count: user.followerCount },
        edge_follow: { count: user.followingCount },
        edge_owner_to_timeline_media: {
          count: user.mediaCount,
          page_info: {
            has_next_page: user.mediaCount > 12,
            end_cursor: user.mediaCount > 12 ? 'QVFD_sim' : null,
          },
          edges: [],
        },
        highlight_reel_count: user.mediaCount % 7,
        followed_by_viewer: false,
        follows_viewer: false,
        requested_by_viewer: false,
        has_requested_viewer: false,
        blocked_by_viewer: false,
        has_blocked_viewer: false,
        restricted_by_viewer: false,
        country_block: false,
      },
    },
    status: 'ok',
  });
}

/** web_profile_info "not found" in its 200 form: `{"data":{"user":null},"status":"ok"}`. */
export const PROFILE_NULL_BODY = '{"data":{"user":null},"status":"ok"}';

function itemValue(user: SimUser, item: StoryItem): JsonValue {
  const isVideo = item.mediaType === 2;
  const image = (suffix: string): string => `${CDN}/v/t51.2885-15/${item.pk}_${suffix}.jpg`;
  return {
    taken_at: item.takenAtSecs,
    pk: new RawNumber(item.pk),
    id: item.id,
    device_timestamp: item.takenAtSecs * 1_000_000,
    media_type: item.mediaType,
    code: shortcodeOf(item.pk),
    client_cache_key: `${Buffer.from(item.pk).toString('base64')}.2`,
    filter_type: 0,
    image_versions2: {
      candidates: [
        { width: 1080, height: 1920, url: image('n') },
        { width: 640, height: 1137, url: image('s640') },
      ],
    },
    original_width: 1080,
    original_height: 1920,
    user: { pk: Number(user.userId), username: user.username, is_private: user.isPrivate },
    caption: null,
    caption_is_edited: false,
    is_reel_media: true,
    photo_of_you: false,
    can_viewer_save: true,
    organic_tracking_token: 'eyJ2ZXJzaW9uIjo1fQ==',
    expiring_at: item.expiringAtSecs,
    can_reshare: true,
    can_reply: true,
    supports_reel_reactions: true,
    has_shared_to_fb: 0,
    video_versions: isVideo
      ? [{ type: 101, width: 720, height: 1280, id: '1', url: `${CDN}/o1/v/t16/${item.pk}.mp4` }]
      : undefined,
    video_duration: isVideo ? 5 + (Number(item.pk.slice(-3)) % 100) / 10 : undefined,
    has_audio: isVideo ? true : undefined,
  };
}

/**
 * A reel as in reels_media / feed/user/<id>/story: every item of the user, expired ones too
 * (the client must filter by `expiring_at`). `id` and `user.pk` are JSON numbers (user ids
 * have ≤ 11 digits, so they are safe), `strong_id__` is the string form, item `pk`s are bare
 * 19-digit numbers.
 */
export function reelValue(user: SimUser): JsonValue {
  const newest = user.items[user.items.length - 1];
  return {
    id: Number(user.userId),
    strong_id__: user.userId,
    latest_reel_media: newest ? newest.takenAtSecs : 0,
    expiring_at: newest ? newest.expiringAtSecs : 0,
    seen: 0,
    can_reply: true,
    can_reshare: true,
    reel_type: 'user_reel',
    user: {
      pk: Number(user.userId),
      username: user.username,
      full_name: user.fullName,
      is_private: user.isPrivate,
      profile_pic_url: profilePicUrl(user, 150),
      profile_pic_id: `31${user.userId.padStart(17, '0')}_${user.userId}`,
      is_verified: user.isVerified,
      friendship_status: {
        following: false,
        followed_by: false,
        blocking: false,
        muting: false,
        is_private: user.isPrivate,
        incoming_request: false,
        outgoing_request: false,
        is_bestie: false,
        is_restricted: false,
      },
    },
    items: user.items.map((item) => itemValue(user, item)),
    prefetch_count: 0,
    has_besties_media: false,
    media_count: user.items.length,
    media_ids: user.items.map((item) => new RawNumber(item.pk)),
  };
}

// Reels never change once the world exists (visibility is decided by the caller), so their JSON
// text is built once per user: reels_media answers are then string concatenation.
const reelJsonCache = new WeakMap<SimUser, string>();

/** The JSON text of {@link reelValue}(user), cached per user. */
export function reelJson(user: SimUser): string {
  let text = reelJsonCache.get(user);
  if (text === undefined) {
    text = stringifyJson(reelValue(user));
    reelJsonCache.set(user, text);
  }
  return text;
}

/** `GET /api/v1/feed/reels_media/` 200 body: `reels` keyed by user id plus the `reels_media` list. */
export function reelsMediaBody(users: readonly SimUser[]): string {
  const keyed: string[] = [];
  const list: string[] = [];
  for (const user of users) {
    const reel = reelJson(user);
    keyed.push(`${JSON.stringify(user.userId)}:${reel}`);
    list.push(reel);
  }
  return `{"reels":{${keyed.join(',')}},"reels_media":[${list.join(',')}],"status":"ok"}`;
}

/** `GET /api/v1/feed/user/<id>/story/` 200 body; `reel` null when no visible story. */
export function userStoryBody(user: SimUser | null): string {
  return `{"broadcast":null,"reel":${user ? reelJson(user) : 'null'},"status":"ok"}`;
}

/**
 * `GET /api/v1/accounts/current_user/?edit=true` 200 body. The account is derived from the
 * session label, so each session looks like a different (stable) checker account.
 */
export function currentUserBody(sessionLabel: string): string {
  const tag = sessionLabel.replace(/^s:/, '');
  const hex = /^[0-9a-f]{1,12}$/.test(tag)
    ? tag
    : createHash('sha256').update(sessionLabel).digest('hex').slice(0, 6);
  const pk = 60_000_000_000 + (parseInt(hex, 16) % 1_000_000_000);
  const name =
    tag
      .toLowerCase()
      .replace(/[^a-z0-9_.]+/g, '_')
      .slice(0, 22) || hex;
  return stringifyJson({
    user: {
      pk,
      username: `checker.${name}`,
      full_name: '',
      is_private: true,
      is_verified: false,
      profile_pic_url: `${CDN}/v/t51.2885-19/own_s150x150.jpg`,
    },
    status: 'ok',
  });
}

/** A `{"message":…,"status":"fail"}` body, extra fields kept in order before `status`. */
export function failBody(message: string, extra: Record<string, JsonValue> = {}): string {
  return stringifyJson({ message, ...extra, status: 'fail' });
}

/** 403 body of a logged-out session, as in error.403.login_required.json. */
export const LOGIN_REQUIRED_BODY = failBody('login_required', {
  error_title: "You've Been Logged Out",
  error_body: 'Please log back in.',
  logout_reason: 8,
});

/** The HTML page Instagram serves for unknown pages and, on web_profile_info, unknown users. */
export const NOT_FOUND_HTML =
  '<!DOCTYPE html><html lang="en" class="no-js not-logged-in"><head><meta charset="utf-8">' +
  '<title>Page Not Found &bull; Instagram</title></head><body><main><h2>Sorry, this page isn&#39;t ' +
  'available.</h2><p>The link you followed may be broken, or the page may have been removed. ' +
  '<a href="/">Go back to Instagram.</a></p></main></body></html>\n';

/**
 * A short, stable, non-reversible label for a session cookie value: "s:" + 6 hex chars of its
 * sha256. Logs and stats carry this label, never the cookie.
 */
export function sessionLabel(sessionId: string): string {
  return `s:${createHash('sha256').update(sessionId).digest('hex').slice(0, 6)}`;
}
