import { startSim, type SimServer } from '@storycheck/upstream-sim';
import {
  MalformedResponseError,
  SessionBlockedError,
  SessionDeadError,
  StoryChecker,
  ThrottledError,
  UpstreamError,
} from '../src/index.js';

/**
 * Every UPSTREAM.md variant produced by the simulator, read through the real client over
 * loopback: the result or the error class it must become.
 */
const STATES = [
  'ok',
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
] as const;
const sid = (state: string) =>
  `9${STATES.indexOf(state as (typeof STATES)[number])
    .toString()
    .padStart(9, '0')}%3Avariant%3A${state}`;

let sim: SimServer;
let checker: StoryChecker;
let user: string;

beforeAll(async () => {
  sim = await startSim({
    seed: 8,
    size: 200,
    requireSession: true,
    sessions: STATES.map((state) => ({ sessionid: sid(state), label: state, state })),
  });
  checker = new StoryChecker({ baseUrl: sim.url });
  const now = Math.floor(Date.now() / 1000);
  user = sim.world.users.find(
    (u) => sim.world.truth(u.username, now).status === 'active',
  )!.username;
});
afterAll(async () => {
  checker.close();
  await sim.close();
});

const as = (state: string) => ({ session: { sessionid: sid(state) } });

describe('session answers, as the simulator sends them', () => {
  it.each([
    { state: 'ok', expect: 'active' },
    { state: 'dead', expect: SessionDeadError },
    { state: 'dead-302', expect: SessionDeadError },
    { state: 'dead-302-root', expect: SessionDeadError },
    { state: 'challenge', expect: SessionBlockedError, kind: 'challenge' },
    { state: 'suspended', expect: SessionBlockedError, kind: 'suspended' },
    { state: 'checkpoint', expect: SessionBlockedError, kind: 'checkpoint' },
    { state: 'checkpoint-logged-out', expect: SessionBlockedError, kind: 'checkpoint' },
    { state: 'feedback', expect: SessionBlockedError, kind: 'feedback' },
    { state: 'masked', expect: SessionBlockedError, kind: 'challenge' },
    { state: 'throttled', expect: ThrottledError },
  ])('$state', async ({ state, expect: want, kind }) => {
    const r = await checker.check(user, as(state)).then(
      (v) => v,
      (e: unknown) => e,
    );
    if (typeof want === 'string') {
      expect((r as { status: string }).status).toBe(want);
      return;
    }
    expect(r).toBeInstanceOf(want);
    if (kind) expect((r as SessionBlockedError).kind).toBe(kind);
  });

  it('an unknown cookie is logged out', async () => {
    await expect(
      checker.check(user, { session: { sessionid: '1234567890%3Aunknown%3Axx' } }),
    ).rejects.toBeInstanceOf(SessionDeadError);
  });

  it('session checks: alive, dead, blocked — and throttling is not "logged out"', async () => {
    expect(await checker.checkSession(as('ok'))).toMatchObject({ state: 'alive' });
    expect(await checker.checkSession(as('dead'))).toMatchObject({ state: 'dead' });
    expect(await checker.checkSession(as('challenge'))).toMatchObject({ state: 'blocked' });
    await expect(checker.checkSession(as('throttled'))).rejects.toBeInstanceOf(ThrottledError);
  });
});

describe('throttling in every form', () => {
  it.each([
    { style: 'json' as const },
    { style: 'json-empty-message' as const },
    { style: 'html' as const },
    { style: 'empty' as const },
    { style: '401-please-wait' as const },
    { style: '401-igweb-rollout' as const },
  ])('$style is ThrottledError, never a dead session', async ({ style }) => {
    sim.updateScenario({ budgets: { throttleStyle: style } });
    const e = await checker.check(user, as('throttled')).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ThrottledError);
    expect(e).not.toBeInstanceOf(SessionDeadError);
  });
});

describe('not found, private, faults', () => {
  it.each([
    { notFoundStyle: '404' as const },
    { notFoundStyle: 'null' as const },
    { notFoundStyle: '400' as const },
  ])('an unknown username ($notFoundStyle) is not_found', async ({ notFoundStyle }) => {
    sim.updateScenario({ notFoundStyle });
    expect((await checker.check('no.such.user_42', as('ok'))).status).toBe('not_found');
  });

  it.each([
    { fault: 'fail200' as const, want: MalformedResponseError },
    { fault: 'missingKeys' as const, want: MalformedResponseError },
    { fault: 'malformedJson' as const, want: MalformedResponseError },
    { fault: 'error5xx' as const, want: UpstreamError },
  ])('$fault is $want.name, never "no story"', async ({ fault, want }) => {
    sim.updateScenario({ faults: { [fault]: 1 } });
    try {
      await expect(checker.check(user, as('ok'))).rejects.toBeInstanceOf(want);
    } finally {
      sim.updateScenario({ faults: { [fault]: 0 } });
    }
  });

  it('too many reels is an UpstreamError with its own code', async () => {
    sim.updateScenario({ maxReelIds: 2 });
    const ids = sim.world.users.slice(0, 5).map((u) => u.userId);
    const e = await checker.fetchStories(ids, as('ok')).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(UpstreamError);
    expect((e as UpstreamError).code).toBe('too_many_reels');
    sim.updateScenario({ maxReelIds: 50 });
  });
});
