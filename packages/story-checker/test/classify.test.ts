import { readFileSync } from 'node:fs';
import {
  ClientBugError,
  MalformedResponseError,
  ProxyError,
  SessionBlockedError,
  SessionDeadError,
  ThrottledError,
  UpstreamError,
  classifyAnswer,
  parseProfile,
  parseReelsMedia,
  type AnswerFacts,
} from '../src/index.js';

const sample = (name: string) =>
  readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');

type Expect = 'ok' | 'not_found' | 'private' | (new (...a: never[]) => Error);

const table: Array<
  [string, Omit<AnswerFacts, 'endpoint'> & { endpoint?: AnswerFacts['endpoint'] }, Expect, string?]
> = [
  [
    '429 JSON please wait',
    { status: 429, body: sample('error.429.please_wait.json') },
    ThrottledError,
  ],
  [
    '429 empty message',
    { status: 429, body: sample('error.429.empty_message.json') },
    ThrottledError,
  ],
  [
    '429 HTML',
    { status: 429, body: '<!DOCTYPE html><html><body>Too many requests</body></html>' },
    ThrottledError,
  ],
  ['429 empty body', { status: 429, body: '' }, ThrottledError],
  [
    '401 please wait (throttled, not dead)',
    { status: 401, body: sample('error.401.please_wait.require_login.json') },
    ThrottledError,
  ],
  [
    '401 igweb rollout',
    { status: 401, body: sample('error.401.please_wait.igweb_rollout.json') },
    ThrottledError,
  ],
  [
    '403 login_required',
    { status: 403, body: sample('error.403.login_required.json') },
    SessionDeadError,
  ],
  [
    '302 to login',
    { status: 302, body: '', location: '/accounts/login/?next=/api/v1/' },
    SessionDeadError,
  ],
  ['302 to /', { status: 302, body: '', location: '/' }, SessionDeadError],
  [
    '400 challenge_required',
    { status: 400, body: sample('error.400.challenge_required.json') },
    SessionBlockedError,
    'challenge',
  ],
  [
    '400 checkpoint_required',
    { status: 400, body: sample('error.400.checkpoint_required.json') },
    SessionBlockedError,
    'checkpoint',
  ],
  [
    '400 checkpoint_logged_out',
    { status: 400, body: sample('error.400.checkpoint_logged_out.json') },
    SessionBlockedError,
    'checkpoint',
  ],
  [
    '400 feedback_required',
    { status: 400, body: sample('error.400.feedback_required.json') },
    SessionBlockedError,
    'feedback',
  ],
  [
    '400 suspended challenge',
    {
      status: 400,
      body: '{"message":"challenge_required","challenge":{"url":"https://www.instagram.com/accounts/suspended/?next=x"},"status":"fail"}',
    },
    SessionBlockedError,
    'suspended',
  ],
  [
    '404 masked challenge on stories',
    { status: 404, body: 'Not Found', endpoint: 'stories' },
    SessionBlockedError,
    'challenge',
  ],
  [
    '404 bare Not Found on profile is masked too',
    { status: 404, body: 'Not Found' },
    SessionBlockedError,
    'challenge',
  ],
  [
    '404 HTML on profile = not found',
    { status: 404, body: '<!DOCTYPE html><html><title>Page Not Found</title></html>' },
    'not_found',
  ],
  [
    '400 user not found',
    { status: 400, body: sample('error.400.user_not_found.json') },
    'not_found',
  ],
  [
    '400 not authorized = private',
    { status: 400, body: sample('error.400.not_authorized_to_view_user.json') },
    'private',
  ],
  [
    '400 useragent mismatch = our bug',
    { status: 400, body: sample('error.400.useragent_mismatch.json') },
    ClientBugError,
  ],
  [
    '400 too many reels',
    { status: 400, body: '{"message":"Too many reels requested","status":"fail"}' },
    UpstreamError,
    'too_many_reels',
  ],
  ['407 from a proxy', { status: 407, body: '' }, ProxyError],
  ['500', { status: 500, body: 'oops' }, UpstreamError],
  ['502', { status: 502, body: '<html>bad gateway</html>' }, UpstreamError],
  ['560', { status: 560, body: '' }, UpstreamError],
  ['200', { status: 200, body: sample('web_profile_info.public.200.json') }, 'ok'],
];

describe('classifyAnswer', () => {
  // Rows as objects: jest passes `done` to a callback with more parameters than the row has.
  it.each(table.map(([name, facts, expected, detail]) => ({ name, facts, expected, detail })))(
    '$name',
    ({ facts, expected, detail }) => {
      const c = classifyAnswer({ endpoint: 'profile', ...facts });
      if (typeof expected === 'string') {
        expect(c.kind).toBe(expected);
        return;
      }
      expect(c.kind).toBe('error');
      if (c.kind !== 'error') return;
      expect(c.error).toBeInstanceOf(expected);
      expect(c.error.status).toBe(facts.status);
      if (detail && c.error instanceof SessionBlockedError) expect(c.error.kind).toBe(detail);
      if (detail && c.error instanceof UpstreamError) expect(c.error.code).toBe(detail);
    },
  );

  it('honours Retry-After in seconds and as an HTTP-date', () => {
    const s = classifyAnswer({ endpoint: 'stories', status: 429, body: '', retryAfter: '30' });
    expect(s.kind === 'error' && s.error instanceof ThrottledError && s.error.retryAfterMs).toBe(
      30_000,
    );
    const now = Date.parse('2026-01-01T00:00:00Z');
    const d = classifyAnswer({
      endpoint: 'stories',
      status: 429,
      body: '',
      retryAfter: 'Thu, 01 Jan 2026 00:01:00 GMT',
      nowMs: now,
    });
    expect(d.kind === 'error' && d.error instanceof ThrottledError && d.error.retryAfterMs).toBe(
      60_000,
    );
  });
});

describe('parsers', () => {
  it('reads a public and a private profile, ids as digit strings', () => {
    const p = parseProfile(sample('web_profile_info.public.200.json'));
    expect(p.found && typeof p.userId).toBe('string');
    expect(p.found && /^\d+$/.test(p.userId)).toBe(true);
    const q = parseProfile(sample('web_profile_info.private_not_followed.200.json'));
    expect(q.found && q.isPrivate).toBe(true);
    expect(parseProfile(sample('web_profile_info.not_found.200.json'))).toEqual({ found: false });
  });

  it('counts only unexpired items and keeps 19-digit pks out of JS numbers', () => {
    const body = sample('reels_media.active.200.json');
    expect(body).toMatch(/"pk":\s*\d{19}/);
    const states = parseReelsMedia(body, 0);
    expect(states.size).toBeGreaterThan(0);
    for (const [id, s] of states) {
      expect(id).toMatch(/^\d+$/);
      expect(s.storyCount).toBeGreaterThan(0);
    }
    // Far in the future every item has expired: present reel, zero active items.
    const later = parseReelsMedia(body, 4_000_000_000);
    for (const s of later.values()) expect(s.storyCount).toBe(0);
    expect(parseReelsMedia(sample('reels_media.no_active_story.200.json'), 0).size).toBe(0);
  });

  it('rejects a 200 that is not a success as malformed, never as "no story"', () => {
    expect(() => parseReelsMedia('{"status":"fail","message":"x"}', 0)).toThrow(
      MalformedResponseError,
    );
    expect(() => parseReelsMedia('{"status":"ok"}', 0)).toThrow(MalformedResponseError);
    expect(() => parseReelsMedia('not json', 0)).toThrow(MalformedResponseError);
    expect(() => parseProfile('{"status":"ok","data":{}}')).toThrow(MalformedResponseError);
  });
});
