import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import pg from 'pg';
import { Redis } from 'ioredis';
import { migrate } from '@storycheck/db';
import { STORY_CHECK_QUEUE, queuePrefix } from '@storycheck/queue';
import {
  TEST_REDIS_URL,
  createTestDatabase,
  createTestPrefix,
  type TestDatabase,
  type TestPrefix,
} from '@storycheck/testkit';

/** The built CLI, run as an operator runs it (build first). */
export const CLI = fileURLToPath(new URL('../dist/main.js', import.meta.url));

/** What the CLI tests share, set up in their beforeAll and removed in their afterAll. */
export interface CliWorld {
  /** A throw-away, migrated database. */
  tdb: TestDatabase;
  /** A private Redis key prefix. */
  tp: TestPrefix;
  /** The CLI's environment: that database and prefix, the test Redis, LOG_LEVEL=warn. */
  env: Record<string, string>;
  /** A temporary directory for input and output files. */
  dir: string;
  redis: Redis;
  /** The check queue under the private prefix. */
  queue: Queue;
  /** A Postgres client on the database. */
  client: pg.Client;
  /** Jobs in the check queue, in every state a job of ours can be in. */
  jobCount(): Promise<number>;
  /** Rows in `batches`. */
  batchCount(): Promise<number>;
}

/**
 * Registers beforeAll/afterAll hooks that set up and tear down a {@link CliWorld}; its fields
 * are filled once beforeAll has run. `dirPrefix` names the temporary directory.
 */
export function cliWorld(dirPrefix: string): CliWorld {
  const w = {} as CliWorld;
  w.jobCount = async () => {
    const c = await w.queue.getJobCounts(
      'waiting',
      'active',
      'delayed',
      'completed',
      'failed',
      'prioritized',
    );
    return Object.values(c).reduce((a, b) => a + b, 0);
  };
  w.batchCount = async () =>
    Number((await w.client.query('SELECT count(*) AS n FROM batches')).rows[0].n);
  beforeAll(async () => {
    w.tdb = await createTestDatabase(migrate);
    w.tp = createTestPrefix();
    w.env = {
      DATABASE_URL: w.tdb.url,
      STORYCHECK_PREFIX: w.tp.prefix,
      REDIS_URL: TEST_REDIS_URL,
      LOG_LEVEL: 'warn',
    };
    w.dir = await mkdtemp(join(tmpdir(), dirPrefix));
    w.redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
    w.queue = new Queue(STORY_CHECK_QUEUE, {
      connection: w.redis,
      prefix: queuePrefix(w.tp.prefix),
    });
    w.client = new pg.Client({ connectionString: w.tdb.url });
    await w.client.connect();
  });
  afterAll(async () => {
    await w.client.end();
    await w.queue.close();
    w.redis.disconnect();
    await w.tp.clean();
    await w.tdb.drop();
    await rm(w.dir, { recursive: true, force: true });
  });
  return w;
}
