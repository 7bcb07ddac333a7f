/**
 * Every answer variant of UPSTREAM.md's tables, over real loopback HTTP, each with its exact
 * status, content type and body shape.
 */
import { request as httpRequest } from 'node:http';
import { startSim } from '../src/index.js';
import type { SessionSpec, SessionState, SimServer, SimUser, ThrottleStyle } from '../src/index.js';
import { failureOf, get } from './http-helpers.js';
import type { Reply } from './http-helpers.js';

const PLEASE_WAIT = 'Please wait a few minutes before you try again.';
const JSON_TYPE = 'application/json; charset=utf-8';
const HTML_TYPE = 'text/html; charset=utf-8';

const STATES: Exclude<SessionState, 'ok'>[] = [
  'dead',
  'dead-302',
  'dead-302-root',
  'challenge',
  'suspended',
  'checkpoint',
  'checkpoint-logged-out',
  'feedback',
  'masked',
  'throttled',
];
const SESSIONS: SessionSpec[] = [
  { sessionid: 'cookie-ok', label: 'acct-ok' },
  ...STATES.map((state) => ({ sessionid: `cookie-${state}`, label: `acct-${state}`, state })),
];

const nowSecs = (): number => Math.floor(Date.now() / 1000);
const json = (reply: Reply): unknown => JSON.parse(reply.text);

let sim: SimServer;
let publicUser: SimUser;
let privateUser: SimUser;
let profilePath: string;

beforeAll(async () => {
  sim = await startSim({ seed: 42, size: 300, sessions: SESSIONS });
  const pub = sim.world.users.find(
    (u) => !u.isPrivate && u.items.some((i) => i.expiringAtSecs > nowSecs()),
  );
  const priv = sim.world.users.find((u) => u.isPrivate);
  if (!pub || !priv) throw new Error('world lacks a public active or a private user');
  publicUser = pub;
  privateUser = priv;
  profilePath = `/api/v1/users/web_profile_info/?username=${publicUser.username}`;
});
afterAll(async () => {
  await sim.close();
});

describe('sessions as the upstream sees them', () => {
  it('an ok session and anonymous requests are served', async () => {
    const ok = await get(`${sim.url}${profilePath}`, { session: 'cookie-ok' });
    expect(ok.status).toBe(200);
    expect(json(ok)).toMatchObject({ data: { user: { id: publicUser.userId } }, status: 'ok' });
    const anon = await get(`${sim.url}${profilePath}`);
    expect(anon.status).toBe(200);
    const me = await get(`${sim.url}/api/v1/accounts/current_user/?edit=true`, {
      session: 'cookie-ok',
    });
    expect(me.status).toBe(200);
    expect(json(me)).toEqual({
      user: {
        pk: expect.any(Number),
        username: 'checker.acct_ok',
        full_name: '',
        is_private: true,
        is_verified: false,
        profile_pic_url: expect.stringMatching(/^https:\/\//),
      },
      status: 'ok',
    });
  });

  it.each([
    {
      state: 'dead',
      status: 403,
      type: JSON_TYPE,
      body: {
        message: 'login_required',
        error_title: "You've Been Logged Out",
        error_body: 'Please log back in.',
        logout_reason: 8,
        status: 'fail',
      },
    },
    {
      state: 'challenge',
      status: 400,
      type: JSON_TYPE,
      body: {
        message: 'challenge_required',
        challenge: {
          url: expect.stringMatching(/^https:\/\/i\.instagram\.com\/challenge\/[^/]+\/[^/]+\/$/),
          api_path: expect.stringMatching(/^\/challenge\//),
          hide_webview_header: true,
          lock: true,
          logout: false,
          native_flow: true,
          flow_render_type: 0,
        },
        status: 'fail',
        error_type: 'checkpoint_challenge_required',
      },
    },
    {
      state: 'suspended',
      status: 400,
      type: JSON_TYPE,
      body: {
        message: 'challenge_required',
        challenge: {
          url: expect.stringContaining('/suspended/'),
          api_path: '/accounts/suspended/',
          hide_webview_header: true,
          lock: true,
          logout: false,
          native_flow: false,
          flow_render_type: 0,
        },
        status: 'fail',
        error_type: 'checkpoint_challenge_required',
      },
    },
    {
      state: 'checkpoint',
      status: 400,
      type: JSON_TYPE,
      body: {
        message: 'checkpoint_required',
        checkpoint_url: expect.stringMatching(/^\/challenge\/\d+\/\w+\/$/),
        lock: false,
        flow_render_type: 0,
        status: 'fail',
      },
    },
    {
      state: 'checkpoint-logged-out',
      status: 400,
      type: JSON_TYPE,
      body: {
        message: 'checkpoint_required',
        checkpoint_url:
          'https://i.instagram.com/integrity/checkpoint/?next=instagram%3A%2F%2Fcheckpoint%2Fdismiss',
        lock: true,
        status: 'fail',
        error_type: 'checkpoint_logged_out',
      },
    },
    {
      state: 'feedback',
      status: 400,
      type: JSON_TYPE,
      body: {
        message: 'feedback_required',
        spam: true,
        feedback_title: 'Action Blocked',
        feedback_message: expect.stringContaining('This action was blocked.'),
        feedback_url: 'repute/report_problem/instagram_like_add/',
        feedback_appeal_label: 'Tell us',
        feedback_ignore_label: 'OK',
        feedback_action: 'report_problem',
        status: 'fail',
      },
    },
    {
      state: 'throttled',
      status: 429,
      type: JSON_TYPE,
      body: { message: PLEASE_WAIT, status: 'fail' },
    },
  ])('a $state session gets $status on every API path', async ({ state, status, type, body }) => {
    const paths = [
      profilePath,
      `/api/v1/feed/reels_media/?reel_ids=${publicUser.userId}`,
      `/api/v1/feed/user/${publicUser.userId}/story/`,
      '/api/v1/accounts/current_user/?edit=true',
    ];
    for (const path of paths) {
      const reply = await get(`${sim.url}${path}`, { session: `cookie-${state}` });
      expect(reply.status).toBe(status);
      expect(reply.headers['content-type']).toBe(type);
      expect(json(reply)).toEqual(body);
      expect(reply.headers['retry-after']).toBeUndefined();
    }
  });

  it('a dead-302 session is redirected to the login page with next=<path>', async () => {
    const reply = await get(`${sim.url}${profilePath}`, { session: 'cookie-dead-302' });
    expect(reply.status).toBe(302);
    expect(reply.headers.location).toBe(`/accounts/login/?next=${encodeURIComponent(profilePath)}`);
    expect(reply.text).toBe('');
    const root = await get(`${sim.url}${profilePath}`, { session: 'cookie-dead-302-root' });
    expect(root.status).toBe(302);
    expect(root.headers.location).toBe('/');
    expect(root.text).toBe('');
  });

  it('a masked challenge is a bare Not Found on a path that exists', async () => {
    const reply = await get(`${sim.url}/api/v1/feed/reels_media/?reel_ids=${publicUser.userId}`, {
      session: 'cookie-masked',
    });
    expect(reply.status).toBe(404);
    expect(reply.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(reply.text).toBe('Not Found');
  });

  it('a session can be marked dead at runtime (library call and admin route)', async () => {
    const before = await get(`${sim.url}${profilePath}`, { session: 'cookie-runtime' });
    expect(before.status).toBe(200);
    const label = sim.requestLog().at(-1)?.session ?? '';
    expect(label).toMatch(/^s:[0-9a-f]{6}$/);
    sim.setSessionState(label, 'dead');
    expect((await get(`${sim.url}${profilePath}`, { session: 'cookie-runtime' })).status).toBe(403);
    const admin = await get(`${sim.url}/__sim/sessions/${label}?state=challenge`, {
      method: 'POST',
      appId: false,
    });
    expect(admin.status).toBe(200);
    const after = await get(`${sim.url}${profilePath}`, { session: 'cookie-runtime' });
    expect(after.status).toBe(400);
    expect(json(after)).toMatchObject({ message: 'challenge_required' });
    const bad = await get(`${sim.url}/__sim/sessions/${label}?state=zombie`, {
      method: 'POST',
      appId: false,
    });
    expect(bad.status).toBe(400);
    const list = json(await get(`${sim.url}/__sim/sessions`, { appId: false })) as {
      label: string;
      state: string;
    }[];
    expect(list).toEqual(
      expect.arrayContaining([expect.objectContaining({ label, state: 'challenge' })]),
    );
    expect(JSON.stringify(list)).not.toContain('cookie-');
  });

  it('requireSession: missing and unknown cookies are logged out, known ones served', async () => {
    const strict = await startSim({
      size: 50,
      requireSession: true,
      sessions: [{ sessionid: 'known-1', label: 'k1' }],
    });
    try {
      const user = strict.world.users[0] as SimUser;
      const path = `/api/v1/users/web_profile_info/?username=${user.username}`;
      for (const session of [undefined, 'unknown-cookie']) {
        const reply = await get(`${strict.url}${path}`, { session });
        expect(reply.status).toBe(403);
        expect(json(reply)).toMatchObject({ message: 'login_required', status: 'fail' });
      }
      expect((await get(`${strict.url}${path}`, { session: 'known-1' })).status).toBe(200);
      // URL-encoded cookie values match too.
      expect((await get(`${strict.url}${path}`, { session: 'known%2D1' })).status).toBe(200);
      strict.updateScenario({ loggedOutStyle: '302' });
      const redirected = await get(`${strict.url}${path}`);
      expect(redirected.status).toBe(302);
      expect(redirected.headers.location).toMatch(/^\/accounts\/login\/\?next=/);
      expect(strict.stats().byOutcome).toMatchObject({ 'logged-out': 3, ok: 2 });
    } finally {
      await strict.close();
    }
  });
});

describe('throttle answers', () => {
  it.each([
    {
      style: 'json',
      status: 429,
      type: JSON_TYPE,
      text: `{"message":"${PLEASE_WAIT}","status":"fail"}`,
    },
    {
      style: 'json-empty-message',
      status: 429,
      type: JSON_TYPE,
      text: '{"message":"","status":"fail"}',
    },
    { style: 'empty', status: 429, type: HTML_TYPE, text: '' },
    {
      style: '401-please-wait',
      status: 401,
      type: JSON_TYPE,
      text: `{"message":"${PLEASE_WAIT}","require_login":true,"status":"fail"}`,
    },
    {
      style: '401-igweb-rollout',
      status: 401,
      type: JSON_TYPE,
      text: `{"message":"${PLEASE_WAIT}","require_login":true,"igweb_rollout":true,"status":"fail"}`,
    },
  ] as { style: ThrottleStyle; status: number; type: string; text: string }[])(
    'style $style → $status',
    async ({ style, status, type, text }) => {
      sim.updateScenario({ budgets: { throttleStyle: style } });
      const reply = await get(`${sim.url}${profilePath}`, { session: 'cookie-throttled' });
      expect(reply.status).toBe(status);
      expect(reply.headers['content-type']).toBe(type);
      expect(reply.text).toBe(text);
      expect(reply.headers['retry-after']).toBeUndefined();
    },
  );

  it('style html → 429 with an HTML page', async () => {
    sim.updateScenario({ budgets: { throttleStyle: 'html' } });
    const reply = await get(`${sim.url}${profilePath}`, { session: 'cookie-throttled' });
    expect(reply.status).toBe(429);
    expect(reply.headers['content-type']).toBe(HTML_TYPE);
    expect(reply.text).toMatch(/^<!DOCTYPE html>.*Please wait a few minutes/);
  });

  it('style mixed rotates through every style deterministically', async () => {
    sim.updateScenario({ budgets: { throttleStyle: 'mixed' } });
    const seen: string[] = [];
    for (let i = 0; i < 12; i++) {
      const r = await get(`${sim.url}${profilePath}`, { session: 'cookie-throttled' });
      seen.push(`${r.status}:${r.text}`);
    }
    expect(new Set(seen).size).toBe(6);
    expect(seen.slice(6)).toEqual(seen.slice(0, 6));
  });

  it('sends Retry-After only when the scenario asks for it', async () => {
    sim.updateScenario({ budgets: { throttleStyle: 'json', retryAfterSecs: 30 } });
    const reply = await get(`${sim.url}${profilePath}`, { session: 'cookie-throttled' });
    expect(reply.headers['retry-after']).toBe('30');
    sim.updateScenario({ budgets: { retryAfterSecs: null } });
    const without = await get(`${sim.url}${profilePath}`, { session: 'cookie-throttled' });
    expect(without.headers['retry-after']).toBeUndefined();
  });
});

describe('not found, private, wrong headers, too many reels', () => {
  it('unknown user: 404 HTML, 200 data.user null, or 400 "User not found"', async () => {
    const path = '/api/v1/users/web_profile_info/?username=surely.not.here_123';
    sim.updateScenario({ notFoundStyle: '404' });
    const html = await get(`${sim.url}${path}`);
    expect(html.status).toBe(404);
    expect(html.headers['content-type']).toBe(HTML_TYPE);
    expect(() => JSON.parse(html.text)).toThrow();
    sim.updateScenario({ notFoundStyle: 'null' });
    const nullUser = await get(`${sim.url}${path}`);
    expect(nullUser.status).toBe(200);
    expect(nullUser.text).toBe('{"data":{"user":null},"status":"ok"}');
    sim.updateScenario({ notFoundStyle: '400' });
    const notFound = await get(`${sim.url}${path}`);
    expect(notFound.status).toBe(400);
    expect(notFound.text).toBe('{"message":"User not found","status":"fail"}');
    const story = await get(`${sim.url}/api/v1/feed/user/99999999999/story/`);
    expect(story.status).toBe(400);
    expect(story.text).toBe('{"message":"User not found","status":"fail"}');
    sim.updateScenario({ notFoundStyle: '404' });
  });

  it('private user: profile says is_private, reels_media omits it, story is null or 400', async () => {
    const profile = await get(
      `${sim.url}/api/v1/users/web_profile_info/?username=${privateUser.username}`,
    );
    expect(json(profile)).toMatchObject({ data: { user: { is_private: true } }, status: 'ok' });
    const reels = await get(`${sim.url}/api/v1/feed/reels_media/?reel_ids=${privateUser.userId}`);
    expect(reels.text).toBe('{"reels":{},"reels_media":[],"status":"ok"}');
    const story = await get(`${sim.url}/api/v1/feed/user/${privateUser.userId}/story/`);
    expect(story.text).toBe('{"broadcast":null,"reel":null,"status":"ok"}');
    sim.updateScenario({ privateStyle: 'not-authorized' });
    const refused = await get(`${sim.url}/api/v1/feed/user/${privateUser.userId}/story/`);
    expect(refused.status).toBe(400);
    expect(refused.text).toBe('{"message":"Not authorized to view user","status":"fail"}');
    sim.updateScenario({ privateStyle: 'no-reel' });
  });

  it('missing X-IG-App-ID → 400 useragent mismatch', async () => {
    const reply = await get(`${sim.url}${profilePath}`, { appId: false });
    expect(reply.status).toBe(400);
    expect(reply.text).toBe('{"message":"useragent mismatch","status":"fail"}');
  });

  it('more reel ids than maxReelIds → 400 Too many reels requested', async () => {
    sim.updateScenario({ maxReelIds: 3 });
    const ids = sim.world.users.slice(0, 4).map((u) => `reel_ids=${u.userId}`);
    const reply = await get(`${sim.url}/api/v1/feed/reels_media/?${ids.join('&')}`);
    expect(reply.status).toBe(400);
    expect(reply.text).toBe('{"message":"Too many reels requested","status":"fail"}');
    const ok = await get(`${sim.url}/api/v1/feed/reels_media/?${ids.slice(0, 3).join('&')}`);
    expect(ok.status).toBe(200);
    sim.updateScenario({ maxReelIds: 50 });
  });
});

describe('faults', () => {
  let faulty: SimServer;
  beforeAll(async () => {
    faulty = await startSim({ seed: 42, size: 300 });
  });
  afterAll(async () => {
    await faulty.close();
  });
  const reelsPath = (): string => `/api/v1/feed/reels_media/?reel_ids=${publicUser.userId}`;

  it('5xx: 500 HTML, 502 HTML and 560 JSON', async () => {
    faulty.updateScenario({ faults: { error5xx: 1 } });
    const seen = new Map<number, Reply>();
    for (let i = 0; i < 40 && seen.size < 3; i++) {
      const reply = await get(`${faulty.url}${reelsPath()}`);
      seen.set(reply.status, reply);
    }
    expect([...seen.keys()].sort()).toEqual([500, 502, 560]);
    expect(seen.get(500)?.headers['content-type']).toBe(HTML_TYPE);
    expect(seen.get(500)?.text).toContain('Oops, an error occurred.');
    expect(seen.get(502)?.text).toContain('502 Bad Gateway');
    expect(seen.get(560)?.text).toBe('{"message":"","status":"fail"}');
  });

  it('200 with status "fail", 200 with the keys missing, 200 with malformed JSON', async () => {
    faulty.updateScenario({ faults: { error5xx: 0, fail200: 1 } });
    const fail = await get(`${faulty.url}${reelsPath()}`);
    expect(fail.status).toBe(200);
    expect(fail.text).toBe('{"message":"execution error","status":"fail"}');

    faulty.updateScenario({ faults: { fail200: 0, missingKeys: 1 } });
    const missing = await get(`${faulty.url}${reelsPath()}`);
    expect(missing.status).toBe(200);
    expect(missing.text).toBe('{"status":"ok"}');

    faulty.updateScenario({ faults: { missingKeys: 0, malformedJson: 1 } });
    const broken = await get(`${faulty.url}${reelsPath()}`);
    expect(broken.status).toBe(200);
    expect(broken.headers['content-type']).toBe(JSON_TYPE);
    expect(() => JSON.parse(broken.text)).toThrow();
    faulty.updateScenario({ faults: { malformedJson: 0 } });
    const real = await get(`${faulty.url}${reelsPath()}`);
    expect(real.text.startsWith(broken.text)).toBe(true);
    expect(broken.text.length).toBeLessThan(real.text.length);
  });

  it('connection reset', async () => {
    faulty.updateScenario({ faults: { reset: 1 } });
    expect(await failureOf(get(`${faulty.url}${reelsPath()}`))).toBe('ECONNRESET');
    faulty.updateScenario({ faults: { reset: 0 } });
    expect(faulty.requestLog().at(-1)).toMatchObject({ status: 0, outcome: 'fault:reset' });
  });

  it('a never-answering request stays open until close()', async () => {
    const hanging = await startSim({ size: 20, faults: { hang: 1 } });
    const req = httpRequest(`${hanging.url}/api/v1/feed/reels_media/?reel_ids=1`, {
      headers: { 'X-IG-App-ID': '936619743392459' },
      agent: false,
    });
    const outcome = new Promise<string>((resolve) => {
      req.on('response', () => resolve('answered'));
      req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    });
    req.end();
    const early = await Promise.race([
      outcome,
      new Promise<string>((r) => setTimeout(() => r('pending'), 300)),
    ]);
    expect(early).toBe('pending');
    const started = performance.now();
    await hanging.close();
    expect(performance.now() - started).toBeLessThan(1000);
    expect(await outcome).toBe('ECONNRESET');
    expect(hanging.requestLog()).toEqual([
      expect.objectContaining({ status: 0, outcome: 'fault:hang', kind: 'reels_media' }),
    ]);
  });

  it('fault draws are reproducible: same seed, same sequence', async () => {
    const run = async (): Promise<number[]> => {
      const s = await startSim({
        seed: 9,
        size: 50,
        faults: { error5xx: 0.2, fail200: 0.1, missingKeys: 0.1, malformedJson: 0.1 },
      });
      try {
        const statuses: number[] = [];
        for (let i = 0; i < 40; i++) {
          const r = await get(`${s.url}/api/v1/feed/reels_media/?reel_ids=1`);
          statuses.push(r.status * 1000 + r.text.length);
        }
        return statuses;
      } finally {
        await s.close();
      }
    };
    const a = await run();
    expect(await run()).toEqual(a);
    expect(new Set(a).size).toBeGreaterThan(3);
  });
});

describe('scenario admin route', () => {
  it('GET shows the settings without cookies; POST patches; bad patches are refused', async () => {
    const view = json(await get(`${sim.url}/__sim/scenario`, { appId: false })) as Record<
      string,
      unknown
    >;
    expect(view).toMatchObject({ requireSession: false, maxReelIds: 50 });
    expect(JSON.stringify(view)).not.toContain('cookie-');
    const patched = await get(`${sim.url}/__sim/scenario`, {
      method: 'POST',
      appId: false,
      body: JSON.stringify({ latencyMs: 1, faults: { fail200: 0 } }),
    });
    expect(patched.status).toBe(200);
    expect(json(patched)).toMatchObject({ latencyMs: 1 });
    const bad = await get(`${sim.url}/__sim/scenario`, {
      method: 'POST',
      appId: false,
      body: JSON.stringify({ latencyMss: 1 }),
    });
    expect(bad.status).toBe(400);
    expect(json(bad)).toMatchObject({
      message: expect.stringContaining('latencyMss'),
      status: 'fail',
    });
    const world = await get(`${sim.url}/__sim/scenario`, {
      method: 'POST',
      appId: false,
      body: JSON.stringify({ seed: 1 }),
    });
    expect(world.status).toBe(400);
    sim.updateScenario({ latencyMs: 0 });
  });
});
