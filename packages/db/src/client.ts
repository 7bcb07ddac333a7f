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

/** How long a checked-out client whose connection died may stay out before it is reclaimed (ms). */
const RECLAIM_BROKEN_MS = 5_000;

/**
 * How long Postgres lets one of our sessions sit idle inside a transaction before it ends the
 * session (`idle_in_transaction_session_timeout`), ms. Our transactions send their statements
 * back to back; a session idle inside one is a process that stopped mid-transaction (SIGSTOP, a
 * paused VM, a stall of many seconds) while holding row locks — the batch row that every
 * worker's result commit updates. Without a limit every other worker's commit of that batch waits
 * until the stopped one resumes, however long that is. With it the transaction rolls back, the
 * locks go, and the stopped process gets an error on its next statement (its job goes back and
 * is retried; results apply once, so nothing doubles).
 */
const IDLE_IN_TRANSACTION_MS = 10_000;

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
  opts: {
    max?: number;
    onError?: (e: Error) => void;
    /** Postgres ends a session idle inside a transaction this long, ms. Default {@link IDLE_IN_TRANSACTION_MS}. */
    idleInTransactionMs?: number;
  } = {},
): DbHandle {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: opts.max ?? 10,
    connectionTimeoutMillis: 10_000,
    idleTimeoutMillis: 30_000,
    idle_in_transaction_session_timeout: opts.idleInTransactionMs ?? IDLE_IN_TRANSACTION_MS,
  });
  pool.on('error', (e) => opts.onError?.(e));
  // Clients checked out now. drizzle's transaction() sends BEGIN outside its try/finally: when
  // BEGIN fails on a connection that just died, the client is never released and its pool slot
  // leaks — a few terminated connections would wedge the pool for good ("timeout exceeded when
  // trying to connect"). So a client that lost its connection and is still checked out after
  // RECLAIM_BROKEN_MS is released (and destroyed) here.
  const checkedOut = new Set<pg.PoolClient>();
  pool.on('acquire', (c) => checkedOut.add(c));
  pool.on('release', (_e, c) => checkedOut.delete(c));
  pool.on('remove', (c) => checkedOut.delete(c as pg.PoolClient));
  pool.on('connect', (client) => {
    let reclaiming = false;
    client.on('error', (e) => {
      opts.onError?.(e);
      if (reclaiming) return;
      reclaiming = true;
      setTimeout(() => {
        if (!checkedOut.has(client)) return;
        checkedOut.delete(client);
        try {
          client.release(e);
        } catch {
          // released meanwhile by its holder: nothing leaked
        }
      }, RECLAIM_BROKEN_MS).unref();
    });
  });
  const db = drizzle(pool, { schema });
  return { db, pool, close: () => pool.end() };
}
