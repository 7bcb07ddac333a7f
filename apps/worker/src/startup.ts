import type { Config } from '@storycheck/config';
import { redactString, type Logger } from '@storycheck/logger';
import { openDb } from '@storycheck/db';
import { createRedis } from '@storycheck/queue';
import { firstLine } from './dependencies.js';
import { infraDependencyOf } from './outcomes.js';

/** Longest pause between two start attempts, ms. */
export const START_RETRY_MAX_MS = 30_000;

/** Delay before start attempt `n + 1` (n ≥ 1), ms: 1, 2, 4, 8, 16, 30, 30 … s. */
export function startRetryDelayMs(n: number): number {
  return Math.min(START_RETRY_MAX_MS, 1_000 * 2 ** Math.min(n - 1, 10));
}

/** What stops the worker from starting now, or null when Redis and Postgres can do its work. */
export async function dependencyProblem(config: Config): Promise<string | null> {
  const [redis, postgres] = await Promise.all([probeRedis(config), probePostgres(config)]);
  const problems = [redis && `redis: ${redis}`, postgres && `postgres: ${postgres}`].filter(
    (p): p is string => !!p,
  );
  return problems.length ? problems.join('; ') : null;
}

/** A write under the prefix, as the worker does (a PING still answers when Redis is full). */
async function probeRedis(config: Config): Promise<string | null> {
  const r = createRedis(config.redisUrl, { role: 'client', name: 'storycheck-worker-start' });
  // The connection's own error says why (ECONNREFUSED …); the command's only "max retries".
  let connError: string | null = null;
  r.on('error', (e: Error) => (connError ??= firstLine(e)));
  try {
    await withDeadline(
      r.set(`${config.prefix}:health:starting-${process.pid}`, '1', 'PX', 10_000),
      5_000,
    );
    return null;
  } catch (e) {
    return redactString(connError ?? firstLine(e));
  } finally {
    r.disconnect();
  }
}

/** SELECT on the batches table: the server answers and this database has our schema. */
async function probePostgres(config: Config): Promise<string | null> {
  const h = openDb(config.databaseUrl, { max: 1 });
  try {
    await withDeadline(h.pool.query('SELECT 1 FROM batches LIMIT 0'), 10_000);
    return null;
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === '42P01')
      return 'this database has no storycheck tables (run `storycheck db migrate`, or DATABASE_URL points elsewhere?)';
    if (code === '3D000')
      return 'the database does not exist (run `storycheck db migrate`, or DATABASE_URL points elsewhere?)';
    return redactString(firstLine(e));
  } finally {
    await h.close().catch(() => undefined);
  }
}

async function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        t = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(t);
  }
}

/**
 * Starts the worker once Redis and Postgres can do its work: a worker started while Redis is
 * full or down, or Postgres down (or not migrated yet), waits and retries instead of exiting,
 * so a supervisor does not crash-loop it. One log line per attempt, with the reason and the
 * next delay (1 s doubling up to {@link START_RETRY_MAX_MS}). A start that fails half-way on
 * an infrastructure error is retried the same way; any other error is thrown. `stopped()`
 * returning true (a signal arrived) ends the waiting with null.
 */
export async function startWhenReady<T>(
  config: Config,
  logger: Logger,
  start: () => Promise<T>,
  stopped: () => boolean = () => false,
): Promise<T | null> {
  for (let attempt = 1; ; attempt++) {
    if (stopped()) return null;
    let problem = await dependencyProblem(config);
    if (problem === null) {
      try {
        return await start();
      } catch (e) {
        if (!infraDependencyOf(e)) throw e;
        problem = redactString(firstLine(e));
      }
    }
    if (stopped()) return null;
    const retryInMs = startRetryDelayMs(attempt);
    logger.warn(`cannot start yet: ${problem}; retrying`, { attempt, retryInMs });
    const deadline = Date.now() + retryInMs;
    while (Date.now() < deadline && !stopped())
      await new Promise((r) => setTimeout(r, Math.min(200, deadline - Date.now())));
  }
}
