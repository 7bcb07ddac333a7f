import type pg from 'pg';
import { Redis } from 'ioredis';
import { redactString } from '@storycheck/logger';

/** How long `enqueue` keeps trying to reach Redis and Postgres before giving up. 10 s. */
export const CONNECT_DEADLINE_MS = 10_000;

/**
 * Redis or Postgres did not answer within the connection deadline. The message is one line
 * ("cannot reach Redis at redis://127.0.0.1:1: connection refused"); the URL carries no password.
 */
export class ServiceUnreachableError extends Error {
  override name = 'ServiceUnreachableError';
}

/** `url` without its password (and with an unparseable URL reduced to a placeholder). */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return redactString(u.toString().replace(/\/$/, ''));
  } catch {
    return '(unparseable URL)';
  }
}

/** Errors worth another try: the service is down, restarting, loading or out of slots. */
function transient(e: unknown): boolean {
  const err = e as { code?: string; message?: string };
  const code = err.code ?? '';
  return (
    [
      'ECONNREFUSED',
      'ECONNRESET',
      'ETIMEDOUT',
      'EHOSTUNREACH',
      'ENETUNREACH',
      'EAI_AGAIN',
      'EPIPE',
      'ENOANSWER',
      // Postgres: starting up / shutting down, too many connections
      '57P03',
      '57P01',
      '53300',
    ].includes(code) ||
    /^LOADING|connection terminated|timeout|Connection is closed/i.test(err.message ?? '')
  );
}

/** A short reason for a connection failure: "connection refused", "host not found", … */
export function reason(e: unknown): string {
  const err = e as { code?: string; message?: string };
  switch (err.code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host not found';
    case 'ETIMEDOUT':
      return 'connection timed out';
    case 'ENOANSWER':
      return 'no answer';
    case 'ECONNRESET':
      return 'connection reset';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'host unreachable';
    case '57P03':
      return 'the database is starting up';
    case '53300':
      return 'too many connections';
    default:
      return (err.message ?? String(e)).split('\n')[0]!;
  }
}

/** One attempt: connects a throw-away ioredis client (no retries of its own) and PINGs. */
async function pingRedis(url: string, timeoutMs: number): Promise<void> {
  const r = new Redis(url, {
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    connectTimeout: timeoutMs,
  });
  // connect() rejects with a bare "Connection is closed"; the socket's own error says why.
  let socketError: Error | undefined;
  r.on('error', (e: Error) => (socketError ??= e));
  // A server that accepts the connection but never answers would hold connect() for ever.
  let timer: NodeJS.Timeout | undefined;
  const silent = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(Object.assign(new Error('no answer'), { code: 'ENOANSWER' })),
      timeoutMs,
    );
  });
  const attempt = (async () => {
    await r.connect();
    await r.ping();
  })();
  attempt.catch(() => undefined); // a late rejection after the timeout won the race
  try {
    await Promise.race([attempt, silent]);
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOANSWER') throw e;
    throw socketError ?? e;
  } finally {
    clearTimeout(timer);
    r.disconnect();
  }
}

/** One attempt: `SELECT 1` through the command's own pool (the connection stays for later). */
function pingPostgres(pool: pg.Pool) {
  return async (): Promise<void> => {
    await pool.query('SELECT 1');
  };
}

async function untilReachable(
  what: string,
  url: string,
  ping: (url: string, timeoutMs: number) => Promise<void>,
  deadline: number,
): Promise<void> {
  let wait = 250;
  for (;;) {
    const left = deadline - Date.now();
    try {
      await ping(url, Math.max(1_000, Math.min(5_000, left)));
      return;
    } catch (e) {
      // Not a connection problem (bad password, missing database …): no use retrying; the
      // caller's error reporting names it.
      if (!transient(e)) throw e;
      if (Date.now() + wait >= deadline) {
        throw new ServiceUnreachableError(`cannot reach ${what} at ${safeUrl(url)}: ${reason(e)}`, {
          cause: e,
        });
      }
    }
    await new Promise((res) => setTimeout(res, wait));
    wait = Math.min(2_000, wait * 2);
  }
}

/**
 * Waits until both Redis and Postgres answer, retrying each with backoff (250 ms doubling to
 * 2 s) for at most `deadlineMs` (default {@link CONNECT_DEADLINE_MS}). Throws a
 * {@link ServiceUnreachableError} naming the first service that never answered; errors that a
 * retry cannot fix (authentication, a missing database) are thrown at once, as they are.
 * `enqueue` calls it before writing anything, so an outage leaves no half-written batch.
 */
export async function waitForServices(
  urls: { redisUrl: string; databaseUrl: string; pool: pg.Pool },
  deadlineMs = CONNECT_DEADLINE_MS,
): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  const results = await Promise.allSettled([
    untilReachable('Redis', urls.redisUrl, pingRedis, deadline),
    untilReachable('Postgres', urls.databaseUrl, pingPostgres(urls.pool), deadline),
  ]);
  for (const r of results) if (r.status === 'rejected') throw r.reason;
}
