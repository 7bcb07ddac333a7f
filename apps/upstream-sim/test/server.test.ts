import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { Agent, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSim } from '../src/index.js';
import type { SimServer, SimUser, World } from '../src/index.js';

const APP_ID = '936619743392459';

interface Reply {
  status: number;
  contentType: string;
  text: string;
}

async function get(
  sim: SimServer,
  path: string,
  opts: { appId?: boolean; cookie?: string; method?: string } = {},
): Promise<Reply> {
  const headers: Record<string, string> = {};
  if (opts.appId !== false) headers['X-IG-App-ID'] = APP_ID;
  if (opts.cookie) headers.Cookie = opts.cookie;
  const res = await fetch(`${sim.url}${path}`, {
    method: opts.method ?? 'GET',
    headers,
    redirect: 'manual',
  });
  return {
    status: res.status,
    contentType: res.headers.get('content-type') ?? '',
    text: await res.text(),
  };
}

const nowSecs = (): number => Math.floor(Date.now() / 1000);
const hasActive = (u: SimUser): boolean => u.items.some((i) => i.expiringAtSecs > nowSecs());

/** One user of each interesting kind, picked from the world. */
function cast(world: World) {
  const find = (what: string, pred: (u: SimUser) => boolean): SimUser => {
    const user = world.users.find(pred);
    if (!user) throw new Error(`no ${what} user in the world`);
    return user;
  };
  return {
    active: find(
      'active',
      (u) =>
        !u.isPrivate && u.items.length > 0 && u.items.every((i) => i.expiringAtSecs > nowSecs()),
    ),
    mixed: find(
      'mixed',
      (u) => !u.isPrivate && hasActive(u) && u.items.some((i) => !(i.expiringAtSecs > nowSecs())),
    ),
    expiredOnly: find('expired-only', (u) => !u.isPrivate && u.items.length > 0 && !hasActive(u)),
    none: find('no-items', (u) => !u.isPrivate && u.items.length === 0),
    privateActive: find('private-with-story', (u) => u.isPrivate && hasActive(u)),
  };
}

describe('startSim', () => {
  let sim: SimServer;
  let who: ReturnType<typeof cast>;

  beforeAll(async () => {
    sim = await startSim({ seed: 42, size: 1000 });
    who = cast(sim.world);
  });
  afterAll(async () => {
    await sim.close();
  });

  it('listens on loopback and reports health', async () => {
    expect(sim.url).toBe(`http://127.0.0.1:${sim.port}`);
    const reply = await get(sim, '/__sim/health', { appId: false });
    expect(reply.status).toBe(200);
    expect(JSON.parse(reply.text)).toMatchObject({
      status: 'ok',
      seed: 42,
      size: 1000,
      digest: sim.world.digest(),
    });
  });

  it('web_profile_info agrees with the truth', async () => {
    for (const user of Object.values(who)) {
      const truth = sim.world.truth(user.username, nowSecs());
      const reply = await get(sim, `/api/v1/users/web_profile_info/?username=${user.username}`);
      expect(reply.status).toBe(200);
      expect(reply.contentType).toMatch(/^application\/json/);
      const body = JSON.parse(reply.text) as {
        data: { user: Record<string, unknown> };
        status: string;
      };
      expect(body.status).toBe('ok');
      expect(body.data.user).toMatchObject({
        id: truth.userId,
        username: user.username,
        is_private: truth.isPrivate,
      });
      expect(typeof body.data.user.id).toBe('string');
      expect(body.data.user).not.toHaveProperty('reel');
      expect(reply.text).not.toMatch(/latest_reel_media/);
    }
    // Usernames are case-insensitive, as on Instagram.
    const upper = await get(
      sim,
      `/api/v1/users/web_profile_info/?username=${who.active.username.toUpperCase()}`,
    );
    expect(JSON.parse(upper.text).data.user.id).toBe(who.active.userId);
  });

  it('web_profile_info answers an unknown user with a 404 HTML page', async () => {
    const reply = await get(sim, '/api/v1/users/web_profile_info/?username=surely.not.here_123');
    expect(reply.status).toBe(404);
    expect(reply.contentType).toMatch(/^text\/html/);
    expect(reply.text).toMatch(/^<!DOCTYPE html>/);
    expect(reply.text).toContain('Page Not Found');
    expect(() => JSON.parse(reply.text)).toThrow();
  });

  it('reels_media returns exactly the visible reels, with all their items', async () => {
    const ids = [
      who.active.userId,
      '1234567', // unknown
      who.expiredOnly.userId,
      who.privateActive.userId,
      who.none.userId,
      who.mixed.userId,
    ];
    const reply = await get(
      sim,
      `/api/v1/feed/reels_media/?${ids.map((id) => `reel_ids=${id}`).join('&')}`,
    );
    expect(reply.status).toBe(200);
    const body = JSON.parse(reply.text) as {
      reels: Record<
        string,
        { id: number; strong_id__: string; items: { id: string; expiring_at: number }[] }
      >;
      reels_media: { strong_id__: string }[];
      status: string;
    };
    expect(body.status).toBe('ok');
    const visible = [who.active.userId, who.mixed.userId];
    expect(Object.keys(body.reels)).toEqual(visible);
    expect(body.reels_media.map((r) => r.strong_id__)).toEqual(visible);
    const now = nowSecs();
    for (const user of [who.active, who.mixed]) {
      const reel = body.reels[user.userId];
      if (!reel) throw new Error('reel missing');
      expect(reel.strong_id__).toBe(user.userId);
      expect(String(reel.id)).toBe(user.userId);
      // All items, expired ones included; the client counts the unexpired ones.
      expect(reel.items.map((i) => i.id)).toEqual(user.items.map((i) => i.id));
      const activeCount = reel.items.filter((i) => i.expiring_at > now).length;
      expect(activeCount).toBe(sim.world.truth(user.username, now).storyCount);
    }
    expect(body.reels[who.mixed.userId]?.items.some((i) => i.expiring_at <= now)).toBe(true);
  });

  it('writes item pks as bare 19-digit numbers and ids as strings', async () => {
    const reply = await get(sim, `/api/v1/feed/reels_media/?reel_ids=${who.mixed.userId}`);
    const text = reply.text;
    const bare = [...text.matchAll(/"pk":(\d+)[,}]/g)].map((m) => m[1] ?? '');
    const itemPks = bare.filter((digits) => digits.length === 19);
    // Each reel appears twice: under `reels` and in `reels_media`.
    const pks = who.mixed.items.map((i) => i.pk);
    expect(itemPks).toEqual([...pks, ...pks]);
    expect(text).not.toMatch(/"pk":"\d{19}"/);
    expect(text).toMatch(
      new RegExp(`"media_ids":\\[${who.mixed.items.map((i) => i.pk).join(',')}\\]`),
    );
    for (const item of who.mixed.items)
      expect(text).toContain(`"id":"${item.pk}_${who.mixed.userId}"`);
    expect(text).toContain(
      `"reels":{"${who.mixed.userId}":{"id":${who.mixed.userId},"strong_id__":"${who.mixed.userId}"`,
    );
    // user.pk stays a (safe) JSON number, as in the samples.
    expect(text).toContain(`"user":{"pk":${who.mixed.userId},"username":"${who.mixed.username}"`);
  });

  it('reels_media answers empty when nothing is visible', async () => {
    const reply = await get(
      sim,
      `/api/v1/feed/reels_media/?reel_ids=${who.none.userId}&reel_ids=${who.privateActive.userId}`,
    );
    expect(reply.status).toBe(200);
    expect(reply.text).toBe('{"reels":{},"reels_media":[],"status":"ok"}');
  });

  it('reels_media refuses too many ids and no ids', async () => {
    const ids = sim.world.users.slice(0, 51).map((u) => `reel_ids=${u.userId}`);
    const tooMany = await get(sim, `/api/v1/feed/reels_media/?${ids.join('&')}`);
    expect(tooMany.status).toBe(400);
    expect(JSON.parse(tooMany.text)).toEqual({
      message: 'Too many reels requested',
      status: 'fail',
    });
    const fifty = await get(sim, `/api/v1/feed/reels_media/?${ids.slice(0, 50).join('&')}`);
    expect(fifty.status).toBe(200);
    const none = await get(sim, '/api/v1/feed/reels_media/');
    expect(none.status).toBe(400);
    expect(JSON.parse(none.text)).toMatchObject({ status: 'fail' });
  });

  it('feed/user/<id>/story returns the reel or null', async () => {
    const active = await get(sim, `/api/v1/feed/user/${who.active.userId}/story/`);
    expect(active.status).toBe(200);
    const body = JSON.parse(active.text) as {
      broadcast: null;
      reel: { strong_id__: string } | null;
      status: string;
    };
    expect(body).toMatchObject({ broadcast: null, status: 'ok' });
    expect(body.reel?.strong_id__).toBe(who.active.userId);
    expect(active.text).toMatch(/"pk":\d{19},/);
    for (const id of [
      who.none.userId,
      who.expiredOnly.userId,
      who.privateActive.userId,
      '99999999999',
    ]) {
      const reply = await get(sim, `/api/v1/feed/user/${id}/story/`);
      expect(reply.status).toBe(200);
      expect(reply.text).toBe('{"broadcast":null,"reel":null,"status":"ok"}');
    }
  });

  it('refuses requests without X-IG-App-ID', async () => {
    const reply = await get(
      sim,
      `/api/v1/users/web_profile_info/?username=${who.active.username}`,
      { appId: false },
    );
    expect(reply.status).toBe(400);
    expect(JSON.parse(reply.text)).toEqual({ message: 'useragent mismatch', status: 'fail' });
  });

  it('current_user needs a sessionid cookie', async () => {
    const ok = await get(sim, '/api/v1/accounts/current_user/?edit=true', {
      cookie: 'csrftoken=x; sessionid=123%3Aabc%3A1',
    });
    expect(ok.status).toBe(200);
    const body = JSON.parse(ok.text) as { user: { pk: number; username: string }; status: string };
    expect(body.status).toBe('ok');
    expect(typeof body.user.pk).toBe('number');
    expect(body.user.username).toMatch(/^checker\.[0-9a-f]{6}$/);
    const out = await get(sim, '/api/v1/accounts/current_user/?edit=true', {
      cookie: 'csrftoken=x',
    });
    expect(out.status).toBe(403);
    expect(JSON.parse(out.text)).toMatchObject({ message: 'login_required', status: 'fail' });
  });

  it('answers unknown paths with a 404 HTML page', async () => {
    for (const path of ['/', '/explore/', '/api/v1/nothing/', '/api/v1/feed/user/abc/story/']) {
      const reply = await get(sim, path);
      expect(reply.status).toBe(404);
      expect(reply.contentType).toMatch(/^text\/html/);
      expect(reply.text).toContain('<!DOCTYPE html>');
    }
  });

  it('serves the truth on the admin route', async () => {
    const reply = await get(sim, `/__sim/truth?username=${who.mixed.username}`, { appId: false });
    expect(JSON.parse(reply.text)).toEqual({
      username: who.mixed.username,
      ...sim.world.truth(who.mixed.username, nowSecs()),
    });
    const missing = await get(sim, '/__sim/truth?username=not.a.user_x', { appId: false });
    expect(JSON.parse(missing.text)).toMatchObject({ exists: false, status: 'not_found' });
  });

  it('counts requests and logs them without raw cookies', async () => {
    await get(sim, '/__sim/reset-stats', { appId: false, method: 'POST' });
    const logBefore = sim.requestLog().length;
    await get(sim, `/api/v1/users/web_profile_info/?username=${who.active.username}`, {
      cookie: 'sessionid=secret-cookie-value',
    });
    await get(sim, `/api/v1/users/web_profile_info/?username=${who.active.username}`);
    await get(
      sim,
      `/api/v1/feed/reels_media/?reel_ids=${who.active.userId}&reel_ids=${who.none.userId}&reel_ids=5`,
    );
    await get(sim, `/api/v1/feed/user/${who.active.userId}/story/`);
    await get(sim, '/api/v1/accounts/current_user/?edit=true');
    await get(sim, '/nope');
    const stats = JSON.parse((await get(sim, '/__sim/stats', { appId: false })).text);
    expect(stats).toEqual(sim.stats());
    expect(stats).toMatchObject({
      totalRequests: 6,
      byKind: { profile: 2, reels_media: 1, user_story: 1, current_user: 1, other: 1 },
      byStatus: { '200': 4, '403': 1, '404': 1 },
      reelIdsAsked: 3,
      profileLookups: { [who.active.username]: 2 },
    });
    const entries = sim.requestLog().slice(logBefore);
    expect(entries).toHaveLength(6);
    expect(entries[0]).toMatchObject({
      kind: 'profile',
      username: who.active.username,
      status: 200,
      ids: [],
    });
    expect(entries[0]?.session).toMatch(/^s:[0-9a-f]{6}$/);
    expect(entries[1]?.session).toBeNull();
    expect(entries[2]).toMatchObject({
      kind: 'reels_media',
      ids: [who.active.userId, who.none.userId, '5'],
    });
    expect(entries[3]).toMatchObject({ kind: 'user_story', ids: [who.active.userId] });
    expect(entries[0]?.client).toMatch(/127\.0\.0\.1/);
    expect(JSON.stringify(sim.requestLog())).not.toContain('secret-cookie-value');
    sim.resetStats();
    expect(sim.stats().totalRequests).toBe(0);
  });
});

describe('startSim options', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'storycheck-sim-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("notFoundStyle 'null' answers 200 with data.user null", async () => {
    const sim = await startSim({ size: 50, notFoundStyle: 'null' });
    try {
      const reply = await get(sim, '/api/v1/users/web_profile_info/?username=ghost.user');
      expect(reply.status).toBe(200);
      expect(JSON.parse(reply.text)).toEqual({ data: { user: null }, status: 'ok' });
    } finally {
      await sim.close();
    }
  });

  it('requireAppId false, maxReelIds and latency are honoured', async () => {
    const sim = await startSim({
      size: 50,
      requireAppId: false,
      maxReelIds: 2,
      latencyMs: 120,
      latencyJitterMs: 30,
    });
    try {
      const started = performance.now();
      const ok = await get(sim, '/api/v1/feed/reels_media/?reel_ids=1&reel_ids=2', {
        appId: false,
      });
      expect(performance.now() - started).toBeGreaterThanOrEqual(115);
      expect(ok.status).toBe(200);
      const tooMany = await get(sim, '/api/v1/feed/reels_media/?reel_ids=1,2,3', { appId: false });
      expect(tooMany.status).toBe(400);
      expect(sim.requestLog()[0]?.latencyMs).toBeGreaterThanOrEqual(115);
    } finally {
      await sim.close();
    }
  });

  it('expiry follows the clock: a day and a half later nothing is visible', async () => {
    const epochSecs = 1_767_225_600;
    let clockSecs = epochSecs;
    const sim = await startSim({ size: 200, epochSecs, nowSecs: () => clockSecs });
    try {
      const user = sim.world.users.find(
        (u) => !u.isPrivate && u.items.some((i) => i.expiringAtSecs > epochSecs),
      );
      if (!user) throw new Error('no active user');
      const before = await get(sim, `/api/v1/feed/reels_media/?reel_ids=${user.userId}`);
      expect(Object.keys(JSON.parse(before.text).reels)).toEqual([user.userId]);
      clockSecs = epochSecs + 36 * 3600;
      const after = await get(sim, `/api/v1/feed/reels_media/?reel_ids=${user.userId}`);
      expect(JSON.parse(after.text).reels).toEqual({});
    } finally {
      await sim.close();
    }
  });

  it('appends the request log as NDJSON', async () => {
    const file = join(dir, 'requests.ndjson');
    const sim = await startSim({ size: 20, requestLogFile: file });
    await get(sim, '/api/v1/accounts/current_user/?edit=true', { cookie: 'sessionid=abc' });
    await get(sim, '/missing');
    await get(sim, '/__sim/stats', { appId: false }); // admin: not logged
    await sim.close();
    const lines = (await readFile(file, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({
      kind: 'current_user',
      status: 200,
      session: expect.stringMatching(/^s:/),
    });
    expect(lines[1]).toMatchObject({ kind: 'other', status: 404, session: null });
  });

  it('close() ends idle keep-alive sockets and pending delayed answers promptly', async () => {
    const sim = await startSim({ size: 10, latencyMs: 10_000 });
    const agent = new Agent({ keepAlive: true });
    try {
      // 1) an idle keep-alive socket left over from an answered admin request
      await new Promise<void>((resolve, reject) => {
        httpRequest(`${sim.url}/__sim/health`, { agent }, (res) => {
          res.resume();
          res.on('end', resolve);
        })
          .on('error', reject)
          .end();
      });
      // 2) a request waiting for its 10 s latency
      const pending = fetch(`${sim.url}/api/v1/accounts/current_user/`, {
        headers: { 'X-IG-App-ID': APP_ID },
      }).then(
        () => 'answered',
        () => 'aborted',
      );
      await new Promise((r) => setTimeout(r, 50));
      const started = performance.now();
      await sim.close();
      expect(performance.now() - started).toBeLessThan(1000);
      expect(await pending).toBe('aborted');
      await sim.close(); // idempotent
      await expect(fetch(`${sim.url}/__sim/health`)).rejects.toThrow();
    } finally {
      agent.destroy();
    }
  });
});
