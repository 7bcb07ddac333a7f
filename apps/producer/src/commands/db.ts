import { migrate } from '@storycheck/db';
import type { Context } from '../context.js';

/** `storycheck db migrate`: creates the database if missing and applies migrations. */
export async function dbMigrate(ctx: Context): Promise<void> {
  const r = await migrate(ctx.config.databaseUrl);
  process.stdout.write(
    `${r.createdDatabase ? `created database ${r.database}; ` : ''}database ${r.database} is up to date\n`,
  );
}
