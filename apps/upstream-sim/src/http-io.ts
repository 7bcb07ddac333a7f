/**
 * The HTTP side of an API request: what it asks (endpoint, ids, username), who asks (session
 * cookie, client address), and writing an {@link Answer} to the response.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Answer } from './answers.js';

/** Which endpoint a request was for; `other` is anything unknown. */
export type PathKind = 'profile' | 'reels_media' | 'user_story' | 'current_user' | 'other';

/** All path kinds, in a fixed order (for zeroed counters). */
export const PATH_KINDS: readonly PathKind[] = [
  'profile',
  'reels_media',
  'user_story',
  'current_user',
  'other',
];

/** What an API request asks, read from its path and query string. */
export interface Classified {
  kind: PathKind;
  ids: string[];
  username: string | null;
  userStoryId: string | undefined;
}

const CONTENT_TYPES = {
  json: 'application/json; charset=utf-8',
  html: 'text/html; charset=utf-8',
  text: 'text/plain; charset=utf-8',
} as const;
const PROFILE_PATH = /^\/api\/v1\/users\/web_profile_info\/?$/;
const REELS_MEDIA_PATH = /^\/api\/v1\/feed\/reels_media\/?$/;
const USER_STORY_PATH = /^\/api\/v1\/feed\/user\/(\d+)\/story\/?$/;
const CURRENT_USER_PATH = /^\/api\/v1\/accounts\/current_user\/?$/;

/** The `sessionid` cookie value, or null when absent or empty. */
export function sessionCookie(req: IncomingMessage): string | null {
  const header = req.headers.cookie;
  if (!header) return null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === 'sessionid') {
      const value = part.slice(eq + 1).trim();
      return value === '' ? null : value;
    }
  }
  return null;
}

/** The client address without the IPv4-mapped IPv6 prefix. */
export function clientAddress(req: IncomingMessage): string | null {
  const addr = req.socket.remoteAddress;
  if (addr === undefined) return null;
  return addr.startsWith('::ffff:') ? addr.slice(7) : addr;
}

/** The endpoint, the reel ids or user id and the username a request asks for. */
export function classifyPath(url: URL): Classified {
  const path = url.pathname;
  let kind: PathKind = 'other';
  let userStoryId: string | undefined;
  if (PROFILE_PATH.test(path)) kind = 'profile';
  else if (REELS_MEDIA_PATH.test(path)) kind = 'reels_media';
  else if (CURRENT_USER_PATH.test(path)) kind = 'current_user';
  else {
    const m = USER_STORY_PATH.exec(path);
    if (m) {
      kind = 'user_story';
      userStoryId = m[1];
    }
  }
  const username =
    kind === 'profile' ? (url.searchParams.get('username') ?? '').trim().toLowerCase() : '';
  const ids =
    kind === 'reels_media'
      ? url.searchParams
          .getAll('reel_ids')
          .flatMap((v) => v.split(','))
          .map((v) => v.trim())
          .filter((v) => v !== '')
      : userStoryId !== undefined
        ? [userStoryId]
        : [];
  return { kind, ids, username: username === '' ? null : username, userStoryId };
}

/** Writes a `send` answer: status, content type and length, no-cache, its extra headers, body. */
export function send(res: ServerResponse, answer: Answer, head: boolean): void {
  res.writeHead(answer.status, {
    'content-type': CONTENT_TYPES[answer.contentType],
    'content-length': Buffer.byteLength(answer.body),
    'cache-control': 'private, no-cache, no-store, must-revalidate',
    ...answer.headers,
  });
  res.end(head ? undefined : answer.body);
}
