import { ReplyError } from 'ioredis';
import {
  MalformedResponseError,
  ProxyError,
  SessionBlockedError,
  SessionDeadError,
  ThrottledError,
  UpstreamError,
} from '@storycheck/story-checker';
import {
  DelayStreak,
  INFRA_PUT_BACK_BASE_MS,
  INFRA_PUT_BACK_JITTER_MS,
  LEASE_WAIT_JITTER_MS,
  NO_SESSION_DELAY_MS,
  actionFor,
  decide,
  infraDependencyOf,
  infraErrorOf,
  poolReportFor,
  type DecideContext,
} from '../src/outcomes.js';
import { LeaseWaitError, NoSessionError } from '../src/errors.js';

/**
 * Issue 14 item 1: failures of Redis or Postgres are transient (the job is put back, no attempt
 * spent, nothing final recorded), never `failed` / internal_error; the upstream's own errors keep
 * their table action whatever their cause.
 */
const pgError = (code: string, message: string) => Object.assign(new Error(message), { code });

it.each([
  ['OOM', new ReplyError("OOM command not allowed when used memory > 'maxmemory'.")],
  ['READONLY', new ReplyError("READONLY You can't write against a read only replica.")],
  ['LOADING', new ReplyError('LOADING Redis is loading the dataset in memory')],
  ['MASTERDOWN', new ReplyError('MASTERDOWN Link with MASTER is down')],
  ['closed', new Error('Connection is closed.')],
])('Redis %s is transient', (_, err) => {
  expect(infraDependencyOf(err)).toBe('redis');
  expect(actionFor(err)).toBe('delay');
});

it.each([
  ['57P01', pgError('57P01', 'terminating connection due to administrator command')],
  ['57P03', pgError('57P03', 'the database system is starting up')],
  ['53300', pgError('53300', 'sorry, too many clients already')],
  ['lost', new Error('Connection terminated unexpectedly')],
  ['timeout', new Error('timeout exceeded when trying to connect')],
])('Postgres %s is transient', (_, err) => {
  expect(infraDependencyOf(err)).toBe('postgres');
  expect(actionFor(err)).toBe('delay');
});

it('finds the cause under a wrapper (drizzle wraps pg errors)', () => {
  const err = new Error('Failed query: insert …', {
    cause: pgError('57P01', 'terminating connection due to administrator command'),
  });
  expect(infraErrorOf(err)).toBe('postgres');
  const refused = new Error('x', {
    cause: pgError('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5432'),
  });
  expect(infraErrorOf(refused)).toBe('network');
});

it('leaves upstream errors and budget waits to the table', () => {
  const refused = pgError('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:9');
  expect(
    infraErrorOf(new UpstreamError('profile request failed: ECONNREFUSED', { cause: refused })),
  ).toBeNull();
  expect(actionFor(new UpstreamError('x', { code: 'network_error', cause: refused }))).toBe(
    'retry',
  );
  expect(actionFor(new ProxyError('via proxy failed', { cause: refused }))).toBe('retry');
  expect(infraErrorOf(new LeaseWaitError(100))).toBeNull();
  expect(actionFor(new TypeError('x is undefined'))).toBe('fail');
  expect(actionFor(new ReplyError('ERR wrong number of arguments'))).toBe('fail');
});

describe('decide: the whole decision for an error', () => {
  const ctx = (over: Partial<DecideContext> = {}): DecideContext => ({
    aborted: false,
    attempt: 1,
    maxAttempts: 5,
    streak: new DelayStreak(),
    random: () => 0.5,
    ...over,
  });

  it('puts a Redis failure back without an attempt, unless shutting down', () => {
    const err = new ReplyError("OOM command not allowed when used memory > 'maxmemory'.");
    const d = decide(err, ctx());
    expect(d).toEqual({
      action: 'delay',
      job: 'put_back',
      delayMs: INFRA_PUT_BACK_BASE_MS + INFRA_PUT_BACK_JITTER_MS / 2,
      pool: 'none',
    });
    expect(decide(err, ctx({ aborted: true }))).toMatchObject({ job: 'delay', delayMs: 0 });
  });

  it('delays budget waits, no session and throttling by their own delays', () => {
    expect(decide(new LeaseWaitError(1_000), ctx())).toMatchObject({
      job: 'delay',
      delayMs: 1_000 + LEASE_WAIT_JITTER_MS / 2,
    });
    expect(decide(new NoSessionError(), ctx())).toMatchObject({
      job: 'delay',
      delayMs: NO_SESSION_DELAY_MS,
    });
    const throttled = new ThrottledError('429', { retryAfterMs: 60_000 });
    expect(decide(throttled, ctx())).toEqual({
      action: 'delay',
      job: 'delay',
      delayMs: 60_000,
      pool: 'throttled',
    });
  });

  it('lengthens the streak with every delay, and the backoff with it', () => {
    const streak = new DelayStreak();
    const delays = [1, 2, 3, 4].map(
      () => decide(new ThrottledError('429'), ctx({ streak, random: () => 0.99 })).delayMs,
    );
    expect(delays).toEqual([...delays].sort((a, b) => a - b));
    expect(delays[3]).toBeGreaterThan(delays[0]!);
    streak.reset();
    expect(streak.next()).toBe(1);
  });

  it('retries, records the last attempt, fails our bugs', () => {
    expect(decide(new UpstreamError('500'), ctx())).toMatchObject({ job: 'retry', pool: 'none' });
    expect(decide(new UpstreamError('500'), ctx({ attempt: 5 }))).toMatchObject({
      job: 'record_failed',
    });
    expect(decide(new TypeError('x'), ctx())).toMatchObject({ action: 'fail', job: 'fail' });
  });

  it('tells the pool what the fleet reports', () => {
    expect(poolReportFor(new SessionDeadError('logged out'))).toBe('session_invalid');
    expect(poolReportFor(new SessionBlockedError('suspended', 'x'))).toBe('session_suspended');
    expect(poolReportFor(new SessionBlockedError('challenge', 'x'))).toBe('session_challenge');
    expect(poolReportFor(new ProxyError('407'))).toBe('proxy_broken');
    expect(poolReportFor(new MalformedResponseError('x'))).toBe('none');
    expect(decide(new ProxyError('407'), ctx())).toMatchObject({
      job: 'retry',
      pool: 'proxy_broken',
    });
  });
});
