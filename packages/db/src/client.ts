import pg from 'pg';
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import * as schema from './schema.js';

/** The drizzle database handle with our schema. */
export type Db = NodePgDatabase<typeof schema>;

/** A pool and its drizzle handle; `close()` ends the pool. */
export interface DbHandle {
  db: Db;
  pool: pg.Pool;
  close(): Promise<void>;
}

// int8 (bigint/count(*)) arrives as a string by default; our int8 columns (seq, usage counts)
// stay far below 2^53, so read them as numbers. Instagram ids are `text`, never int8.
pg.types.setTypeParser(20, (v) => Number(v));

/**
 * Opens a connection pool to `databaseUrl`. `max` connections (default 10). The pool and every
 * client it creates get an `error` listener for their whole life: pg emits 'error' on the pool
 * for an idle client losing its server, but on the client itself when the client is checked out
 * (a transaction in flight, pg_terminate_backend, a Postgres restart) — and pg-pool removes its
 * own listener while a client is checked out, so without ours that is an unhandled 'error' event
 * and the process dies. The query in flight still rejects; the pool discards the broken client.
 */
export function openDb(
  databaseUrl: string,
  opts: { max?: number; onError?: (e: Error) => void } = {},
): DbHandle {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: opts.max ?? 10,
    connectionTimeoutMillis: 10_000,
    idleTimeoutMillis: 30_000,
  });
  pool.on('error', (e) => opts.onError?.(e));
  pool.on('connect', (client) => {
    client.on('error', (e) => opts.onError?.(e));
  });
  const db = drizzle(pool, { schema });
  return { db, pool, close: () => pool.end() };
}
