export * as schema from './schema.js';
export { openDb, type Db, type DbHandle } from './client.js';
export { migrate, MIGRATIONS_FOLDER, type MigrateResult } from './migrate.js';
export * from './batches.js';
export * from './pool-store.js';
export * from './recorder.js';
export * from './result-format.js';
export * from './batch-detail.js';
