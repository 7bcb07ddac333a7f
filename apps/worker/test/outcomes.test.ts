import { ReplyError } from 'ioredis';
import { ProxyError, UpstreamError } from '@storycheck/story-checker';
import { actionFor, infraDependencyOf, infraErrorOf } from '../src/outcomes.js';
import { LeaseWaitError } from '../src/errors.js';

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
