import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate as drizzleMigrate } from 'drizzle-orm/node-postgres/migrator';

/** Folder of the committed SQL migrations (written by drizzle-kit, shipped with the package). */
export const MIGRATIONS_FOLDER = fileURLToPath(new URL('../drizzle', import.meta.url));

/** Arbitrary constant for pg_advisory_lock: two concurrent `db migrate` runs take turns. */
const MIGRATE_LOCK_KEY = 7_150_322;

/** What {@link migrate} did. */
export interface MigrateResult {
  /** True when the database did not exist and was created. */
  createdDatabase: boolean;
  /** Name of the database migrated. */
  database: string;
}

/**
 * Brings the database at `databaseUrl` to the latest schema. Creates the database first when it
 * is missing (connecting to the server's `postgres` database for that). Safe to run twice and
 * safe to run concurrently: migrations already applied are skipped and an advisory lock
 * serialises runners.
 */
export async function migrate(databaseUrl: string): Promise<MigrateResult> {
  const url = new URL(databaseUrl);
  const database = decodeURIComponent(url.pathname.replace(/^\//, '')) || 'postgres';
  const createdDatabase = await ensureDatabase(url, database);
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATE_LOCK_KEY]);
    await drizzleMigrate(drizzle(client), { migrationsFolder: MIGRATIONS_FOLDER });
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATE_LOCK_KEY]).catch(() => undefined);
    await client.end();
  }
  return { createdDatabase, database };
}

async function ensureDatabase(url: URL, database: string): Promise<boolean> {
  const admin = new URL(url.href);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.href });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (found.rowCount) return false;
    try {
      await client.query(`CREATE DATABASE ${pg.escapeIdentifier(database)}`);
    } catch (e) {
      // Another runner created it between our check and our CREATE: that is fine.
      if ((e as { code?: string }).code !== '42P04') throw e;
      return false;
    }
    return true;
  } finally {
    await client.end();
  }
}
