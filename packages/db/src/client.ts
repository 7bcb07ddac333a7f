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
 * Opens a connection pool to `databaseUrl`. `max` connections (default 10). Every pool gets an
 * `error` listener: an idle client losing its server must not crash the process.
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
  const db = drizzle(pool, { schema });
  return { db, pool, close: () => pool.end() };
}
