import { sleep } from './sleep.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { Redis } from 'ioredis';

/** Redis the tests use: REDIS_URL or the local default. */
export const TEST_REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
/** Postgres server the tests use (a database name is appended per test file). */
export const TEST_PG_SERVER = process.env.TEST_PG_SERVER ?? 'postgres://postgres@127.0.0.1:5432';

/** A unique, short id for names of throw-away databases and key prefixes. */
export function uniqueId(): string {
  return `${process.pid}_${randomBytes(4).toString('hex')}`;
}

/** A throw-away database: its URL, and `drop()` to remove it after the tests. */
export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/**
 * Creates a fresh database `sctest_<pid>_<hex>` on the real Postgres server, so each
 * test file has its own and files can run in parallel; `migrate` (pass `migrate` from
 * @storycheck/db) creates and migrates it. Without it, nothing is created. `drop()` terminates leftover sessions
 * and drops it.
 */
export async function createTestDatabase(
  migrate?: (databaseUrl: string) => Promise<unknown>,
): Promise<TestDatabase> {
  const name = `sctest_${uniqueId()}`;
  const url = `${TEST_PG_SERVER}/${name}`;
  if (migrate) await migrate(url);
  return {
    url,
    name,
    async drop() {
      const admin = new pg.Client({ connectionString: `${TEST_PG_SERVER}/postgres` });
      await admin.connect();
      try {
        await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
      } finally {
        await admin.end();
      }
    },
  };
}

/** A unique Redis key prefix for one test file, and `clean()` to delete every key under it. */
export interface TestPrefix {
  prefix: string;
  clean(): Promise<void>;
}

/** Creates a unique STORYCHECK_PREFIX; `clean()` SCANs and deletes its keys. */
export function createTestPrefix(): TestPrefix {
  const prefix = `sctest-${uniqueId()}`;
  return {
    prefix,
    async clean() {
      const redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 2 });
      try {
        let cursor = '0';
        do {
          const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
          cursor = next;
          if (keys.length) await redis.del(...keys);
        } while (cursor !== '0');
      } finally {
        redis.disconnect();
      }
    },
  };
}

export { sleep } from './sleep.js';

/**
 * Polls `fn` every `intervalMs` (default 100) until it returns a truthy value or `timeoutMs`
 * (default 30 s) passes; then throws with `what` in the message.
 */
export async function waitFor<T>(
  fn: () => Promise<T> | T,
  what: string,
  timeoutMs = 30_000,
  intervalMs = 100,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** A spawned node process, with its output collected. */
export interface Spawned {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or the signal name) when the process ends. */
  exited: Promise<number | string>;
  /** Sends SIGKILL if still running and waits for the exit. */
  kill(): Promise<void>;
}

/**
 * Spawns `node <script> ...args` with `env` added to this process's environment. Output is
 * collected in memory; every spawned process must be killed in `afterAll`.
 */
export function spawnNode(script: string, args: string[], env: Record<string, string>): Spawned {
  const child = spawn(process.execPath, [script, ...args], {
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | string>((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)),
  );
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Runs `node <script> ...args` to completion, with optional stdin text; returns code and output. */
export async function runNode(
  script: string,
  args: string[],
  env: Record<string, string>,
  stdin?: string,
): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const p = spawnNode(script, args, env);
  if (stdin !== undefined) p.child.stdin!.end(stdin);
  else p.child.stdin!.end();
  const code = await p.exited;
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}
export { parsePrometheus, valueOf, type Sample } from './prom-text.js';
export {
  startPrivateRedis,
  freePort,
  type PrivateRedis,
  type PrivateRedisOptions,
} from './private-redis.js';
export { startPrivatePostgres, PG_BIN, type PrivatePostgres } from './private-postgres.js';
export {
  startRedisCluster,
  startRedisSentinel,
  rawCommand,
  type PrivateRedisSetup,
  type RedisProcess,
} from './cluster.js';
