/**
 * Scenarios (named, files, validation), determinism of what is served, and the request log /
 * counters as the admin routes return them.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SCENARIOS, loadScenario, parseScenario, resolveSettings, startSim } from '../src/index.js';
import type { RequestLogEntry, SimServer } from '../src/index.js';
import { get } from './http-helpers.js';

const EPOCH_SECS = 1_767_225_600;

describe('scenarios', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'storycheck-sim-scenario-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('ships demo, strict-budgets and hostile, all valid', () => {
    expect(Object.keys(SCENARIOS)).toEqual(['demo', 'strict-budgets', 'hostile']);
    for (const [name, scenario] of Object.entries(SCENARIOS)) {
      const settings = resolveSettings(scenario);
      expect(settings.name).toBe(name);
      expect(loadScenario(name)).toBe(scenario);
    }
    const hostile = resolveSettings(SCENARIOS.hostile);
    expect(Object.values(hostile.faults).every((p) => p > 0)).toBe(true);
    expect(hostile.sessionBudget).toEqual({ rate: { count: 60, periodMs: 60_000 }, burst: 3 });
    const strict = resolveSettings(SCENARIOS['strict-budgets']);
    expect(strict.ipBudget).toEqual({ rate: { count: 300, periodMs: 3_600_000 }, burst: 10 });
  });

  it('defaults are the friendly upstream: no budgets, no faults, no session needed', () => {
    const s = resolveSettings({});
    expect(s).toMatchObject({
      requireSession: false,
      sessionBudget: null,
      ipBudget: null,
      latencyMs: 0,
      retryAfterSecs: null,
      throttleStyle: 'json',
    });
    expect(Object.values(s.faults).every((p) => p === 0)).toBe(true);
  });

  it('demo stays friendly to anonymous clients: 120 parallel requests, all 200', async () => {
    const sim = await startSim({ scenario: 'demo', seed: 42, size: 200 });
    try {
      const names = sim.world.usernames().slice(0, 120);
      const replies = await Promise.all(
        names.map((n) => get(`${sim.url}/api/v1/users/web_profile_info/?username=${n}`)),
      );
      expect(replies.map((r) => r.status)).toEqual(names.map(() => 200));
      expect(sim.settings().name).toBe('demo');
    } finally {
      await sim.close();
    }
  });

  it('loads a scenario file; explicit options override it', async () => {
    const file = join(dir, 'custom.json');
    await writeFile(
      file,
      JSON.stringify({
        name: 'custom',
        maxReelIds: 7,
        sessions: [{ sessionid: 'abc', label: 'acct1', state: 'dead' }],
        budgets: { session: { rate: '5/1s', burst: 2 }, throttleStyle: 'mixed' },
        faults: { error5xx: 0.1 },
      }),
    );
    const scenario = loadScenario(file);
    const sim = await startSim({ scenario, size: 20, maxReelIds: 9, faults: { error5xx: 0 } });
    try {
      const s = sim.settings();
      expect(s).toMatchObject({ name: 'custom', maxReelIds: 9, throttleStyle: 'mixed' });
      expect(s.faults.error5xx).toBe(0);
      expect(s.sessions).toEqual([
        { label: 'acct1', state: 'dead', budget: '5/1s burst 2', penaltyUntilMs: 0 },
      ]);
    } finally {
      await sim.close();
    }
  });

  it.each([
    { what: 'unknown field', input: { latencyMss: 3 }, message: /unknown field "latencyMss"/ },
    {
      what: 'bad rate',
      input: { budgets: { ip: { rate: '5 per s' } } },
      message: /budgets\.ip\.rate/,
    },
    {
      what: 'zero burst',
      input: { budgets: { session: { rate: '1/1s', burst: 0 } } },
      message: /burst/,
    },
    { what: 'fault sum', input: { faults: { reset: 0.6, hang: 0.6 } }, message: /at most 1/ },
    { what: 'bad probability', input: { faults: { reset: 2 } }, message: /faults\.reset/ },
    {
      what: 'duplicate cookie',
      input: { sessions: [{ sessionid: 'x' }, { sessionid: 'x' }] },
      message: /listed twice/,
    },
    {
      what: 'bad state',
      input: { sessions: [{ sessionid: 'x', state: 'zombie' }] },
      message: /state/,
    },
    { what: 'bad style', input: { budgets: { throttleStyle: 'loud' } }, message: /throttleStyle/ },
    { what: 'not an object', input: [1], message: /JSON object/ },
  ])('rejects $what with a message naming the field', ({ input, message }) => {
    expect(() => parseScenario(input)).toThrow(message);
  });

  it('rejects unknown names and unreadable files', async () => {
    expect(() => loadScenario('no-such-scenario')).toThrow(/demo, strict-budgets, hostile/);
    const bad = join(dir, 'bad.json');
    await writeFile(bad, '{"latencyMs": ');
    expect(() => loadScenario(bad)).toThrow(/bad\.json/);
    await expect(startSim({ scenario: 'nope' as 'demo' })).rejects.toThrow(/unknown scenario/);
  });
});

describe('determinism', () => {
  it('same seed, size and epoch → the same bytes on every endpoint', async () => {
    const a = await startSim({
      seed: 77,
      size: 300,
      epochSecs: EPOCH_SECS,
      nowSecs: () => EPOCH_SECS,
    });
    const b = await startSim({
      seed: 77,
      size: 300,
      epochSecs: EPOCH_SECS,
      nowSecs: () => EPOCH_SECS,
    });
    try {
      expect(a.world.digest()).toBe(b.world.digest());
      const users = a.world.users.slice(0, 40);
      const paths = [
        ...users.map((u) => `/api/v1/users/web_profile_info/?username=${u.username}`),
        ...users.map((u) => `/api/v1/feed/user/${u.userId}/story/`),
        `/api/v1/feed/reels_media/?${users.map((u) => `reel_ids=${u.userId}`).join('&')}`,
        '/__sim/health',
      ];
      for (const path of paths) {
        const [ra, rb] = await Promise.all([get(`${a.url}${path}`), get(`${b.url}${path}`)]);
        expect(ra.status).toBe(200);
        expect(ra.text).toBe(rb.text);
      }
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});

describe('request log and counters', () => {
  let sim: SimServer;
  beforeAll(async () => {
    sim = await startSim({ seed: 42, size: 200, sessions: [{ sessionid: 'c1', label: 'acct1' }] });
  });
  afterAll(async () => {
    await sim.close();
  });

  it('counts requests per username, per session and per client; NDJSON on /__sim/requests', async () => {
    const [u1, u2] = sim.world.users;
    if (!u1 || !u2) throw new Error('world too small');
    await get(`${sim.url}/api/v1/users/web_profile_info/?username=${u1.username}`, {
      session: 'c1',
    });
    await get(`${sim.url}/api/v1/feed/reels_media/?reel_ids=${u1.userId}&reel_ids=${u2.userId}`, {
      session: 'c1',
    });
    await get(`${sim.url}/api/v1/feed/user/${u2.userId}/story/`);
    await get(`${sim.url}/api/v1/users/web_profile_info/?username=ghost.user_x`);

    const stats = JSON.parse((await get(`${sim.url}/__sim/stats`, { appId: false })).text);
    expect(stats.byUsername).toEqual({ [u1.username]: 2, [u2.username]: 2 });
    expect(stats.bySession.acct1).toEqual({ requests: 2, throttled: 0, byStatus: { '200': 2 } });
    expect(stats.bySession.anonymous).toEqual({
      requests: 2,
      throttled: 0,
      byStatus: { '200': 1, '404': 1 },
    });
    expect(stats.byClient['127.0.0.1']).toMatchObject({ requests: 4, throttled: 0 });
    expect(stats.byOutcome).toEqual({ ok: 4 });

    const ndjson = await get(`${sim.url}/__sim/requests`, { appId: false });
    expect(ndjson.headers['content-type']).toMatch(/^application\/x-ndjson/);
    const entries = ndjson.text
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as RequestLogEntry);
    expect(entries).toEqual(sim.requestLog());
    expect(entries[1]).toMatchObject({
      session: 'acct1',
      client: '127.0.0.1',
      kind: 'reels_media',
      path: '/api/v1/feed/reels_media/',
      ids: [u1.userId, u2.userId],
      status: 200,
      outcome: 'ok',
      latencyMs: expect.any(Number),
      timeMs: expect.any(Number),
    });
    const last = await get(`${sim.url}/__sim/requests?limit=1`, { appId: false });
    expect(last.text.trim().split('\n')).toHaveLength(1);
  });

  it('keeps only the last requestLogLimit entries', async () => {
    const small = await startSim({ size: 10, requestLogLimit: 5 });
    try {
      for (let i = 0; i < 30; i++) await get(`${small.url}/api/v1/feed/user/${1000 + i}/story/`);
      const log = small.requestLog();
      expect(log.map((e) => e.ids[0])).toEqual(['1025', '1026', '1027', '1028', '1029']);
      const ndjson = await get(`${small.url}/__sim/requests`, { appId: false });
      expect(ndjson.text.trim().split('\n')).toHaveLength(5);
      expect(small.stats().totalRequests).toBe(30);
    } finally {
      await small.close();
    }
  });
});
