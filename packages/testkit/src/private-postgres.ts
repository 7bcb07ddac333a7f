import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './private-redis.js';
import { sleep } from './sleep.js';

const run = promisify(execFile);

/** Where PostgreSQL 15's server binaries live (Debian layout); PG_BIN overrides. */
export const PG_BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';

/**
 * A PostgreSQL server of the test's own, for what must never touch the shared 5432: stopping
 * Postgres, restarting it, terminating every backend. Created with `initdb` into a temporary
 * folder (trust auth, superuser `postgres`, fsync off), listening on 127.0.0.1 at a free port,
 * started and stopped with `pg_ctl`. When the tests run as root the server runs as the
 * `postgres` OS user (`runuser -u postgres --`), as initdb refuses root.
 *
 * Data survives `stop()`/`start()` (it is a real restart, not a fresh server); `destroy()`
 * removes it. Typical use:
 * ```ts
 * const pgp = await startPrivatePostgres();
 * const url = await pgp.createDatabase('t1', migrate); // postgres://postgres@127.0.0.1:<port>/t1
 * await pgp.stop();  // fast shutdown: every connection drops
 * await pgp.start(); // same port, same data
 * await pgp.destroy();
 * ```
 */
export interface PrivatePostgres {
  /** Server URL without a database, e.g. `postgres://postgres@127.0.0.1:54123`. */
  serverUrl: string;
  port: number;
  /** URL of database `name` on this server. */
  urlOf(name: string): string;
  /** Creates database `name` (and migrates it when `migrate` is given); returns its URL. */
  createDatabase(name: string, migrate?: (url: string) => Promise<unknown>): Promise<string>;
  /** Starts the server (again); resolves once it accepts connections. */
  start(): Promise<void>;
  /** `pg_ctl stop -m fast`: clients are disconnected (57P01), the server exits. */
  stop(): Promise<void>;
  /** `pg_ctl stop -m immediate`: abrupt, as in a crash (recovery on the next start). */
  kill(): Promise<void>;
  /** Terminates every client backend of database `name`; resolves with how many. */
  terminateBackends(name: string): Promise<number>;
  /** Stops the server (immediate) and removes its folder. Idempotent. */
  destroy(): Promise<void>;
}

const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** Runs a PG binary, as the postgres OS user when we are root. */
async function pgRun(bin: string, args: string[]): Promise<string> {
  const file = asRoot ? 'runuser' : join(PG_BIN, bin);
  const argv = asRoot ? ['-u', 'postgres', '--', join(PG_BIN, bin), ...args] : args;
  const { stdout } = await run(file, argv, { maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

/** Whether the server at `serverUrl` answers a query. */
async function pgReady(serverUrl: string): Promise<boolean> {
  const c = new pg.Client({
    connectionString: `${serverUrl}/postgres`,
    connectionTimeoutMillis: 1_000,
  });
  c.on('error', () => undefined);
  try {
    await c.connect();
    await c.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** Runs `fn` with a client connected to the `postgres` database of `serverUrl`. */
async function pgAdmin<T>(serverUrl: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: `${serverUrl}/postgres` });
  c.on('error', () => undefined);
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** Creates a cluster in `data`: superuser postgres, trust auth, UTF8, C locale, no fsync. */
async function initDb(data: string): Promise<void> {
  await pgRun('initdb', [
    '-D',
    data,
    '-U',
    'postgres',
    '--auth=trust',
    '--no-sync',
    '-E',
    'UTF8',
    '--locale=C',
  ]);
}

/** Starts a fresh private PostgreSQL 15 (see {@link PrivatePostgres}). Takes a few seconds. */
export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sc-pg-'));
  // The postgres OS user must own the folder (initdb as non-root into a root-made temp dir).
  chmodSync(dir, 0o777);
  const data = join(dir, 'data');
  await initDb(data);
  const serverUrl = `postgres://postgres@127.0.0.1:${port}`;
  const opts = [
    `-p ${port}`,
    `-k ${dir}`,
    `-c listen_addresses=127.0.0.1`,
    `-c fsync=off`,
    `-c synchronous_commit=off`,
    `-c full_page_writes=off`,
    `-c max_connections=100`,
  ].join(' ');
  let running = false;

  const start = async (): Promise<void> => {
    await pgRun('pg_ctl', [
      '-D',
      data,
      '-l',
      join(dir, 'log'),
      '-o',
      opts,
      '-w',
      '-t',
      '60',
      'start',
    ]);
    running = true;
    for (let i = 0; i < 200; i++) {
      if (await pgReady(serverUrl)) return;
      await sleep(100);
    }
    throw new Error(`private postgres on port ${port} did not start`);
  };
  const stopWith = async (mode: 'fast' | 'immediate'): Promise<void> => {
    if (!running) return;
    await pgRun('pg_ctl', ['-D', data, '-m', mode, '-w', '-t', '60', 'stop']).catch(() => '');
    running = false;
  };
  const admin = <T>(fn: (c: pg.Client) => Promise<T>): Promise<T> => pgAdmin(serverUrl, fn);
  await start();
  return {
    serverUrl,
    port,
    urlOf: (name) => `${serverUrl}/${name}`,
    async createDatabase(name, migrate) {
      await admin((c) => c.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`));
      const url = `${serverUrl}/${name}`;
      if (migrate) await migrate(url);
      return url;
    },
    start,
    stop: () => stopWith('fast'),
    kill: () => stopWith('immediate'),
    terminateBackends: (name) =>
      admin(async (c) => {
        const r = await c.query(
          'SELECT count(*)::int AS n FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()) t',
          [name],
        );
        return (r.rows[0] as { n: number }).n;
      }),
    async destroy() {
      await stopWith('immediate');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
