import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import pg from 'pg';
import type { Redis } from 'ioredis';
import { createRedis, queuePrefix } from '@storycheck/queue';
import { migrate } from '@storycheck/db';
import {
  TEST_REDIS_URL,
  createTestDatabase,
  createTestPrefix,
  runNode,
  spawnNode,
  type Spawned,
  type TestDatabase,
  type TestPrefix,
} from '@storycheck/testkit';
import type { SimServer } from '@storycheck/upstream-sim';

const WORKER = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const CLI = fileURLToPath(new URL('../../producer/dist/main.js', import.meta.url));

/**
 * One test file's world: a throw-away database and Redis prefix, a pg client and the check
 * queue for assertions, and the worker/CLI processes it spawned (killed by `stopAll`).
 * `redisUrl` (default the shared test Redis) may name a private Cluster or Sentinel setup
 * (testkit cluster.ts); the workers and the CLI get it as REDIS_URL.
 */
export class Harness {
  constructor(
    readonly redisUrl: string = TEST_REDIS_URL,
    /** Variables every worker and CLI run of this harness gets (before per-call extras). */
    readonly baseEnv: Record<string, string> = {},
  ) {}

  tdb!: TestDatabase;
  tp!: TestPrefix;
  client!: pg.Client;
  redis!: Redis;
  queue!: Queue;
  readonly procs: Spawned[] = [];

  /** Creates the database and (unless given) the Redis prefix. */
  async setup(tp: TestPrefix = createTestPrefix()): Promise<void> {
    this.tdb = await createTestDatabase(migrate);
    this.tp = tp;
    this.client = new pg.Client({ connectionString: this.tdb.url });
    await this.client.connect();
    this.redis = createRedis(this.redisUrl, { role: 'worker', name: 'harness' });
    this.queue = new Queue('story-check', {
      connection: this.redis,
      prefix: queuePrefix(this.tp.prefix),
    });
    this.queue.on('error', () => undefined);
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.procs.splice(0).map((p) => p.kill()));
  }

  async teardown(): Promise<void> {
    await this.stopAll();
    await this.queue.close();
    this.redis.disconnect();
    await this.client.end();
    if (this.redisUrl === TEST_REDIS_URL) await this.tp.clean();
    await this.tdb.drop();
  }

  env(baseUrl: string, extra: Record<string, string> = {}): Record<string, string> {
    return {
      DATABASE_URL: this.tdb.url,
      REDIS_URL: this.redisUrl,
      STORYCHECK_PREFIX: this.tp.prefix,
      IG_BASE_URL: baseUrl,
      LOG_LEVEL: 'warn',
      LOG_FORMAT: 'json',
      WORKER_LOCK_DURATION: '2s',
      ...this.baseEnv,
      ...extra,
    };
  }

  startWorker(sim: SimServer | string, extra: Record<string, string> = {}): Spawned {
    const p = spawnNode(WORKER, [], this.env(typeof sim === 'string' ? sim : sim.url, extra));
    this.procs.push(p);
    return p;
  }

  async cli(args: string[], stdin?: string) {
    return runNode(CLI, args, this.env('http://127.0.0.1:9'), stdin);
  }

  async enqueue(names: string[]): Promise<string> {
    const r = await this.cli(['enqueue', '-', '--json'], names.join('\n'));
    if (r.code !== 0) throw new Error(`enqueue failed: ${r.stderr}`);
    return JSON.parse(r.stdout).batchId as string;
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  async batch(batchId: string): Promise<any> {
    return (await this.client.query('SELECT * FROM batches WHERE id = $1', [batchId])).rows[0];
  }

  /** Counters equal count(*) per status, nothing pending, done = total: checked from Postgres. */
  async expectCountersExact(batchId: string): Promise<void> {
    const b = await this.batch(batchId);
    const rows = (
      await this.client.query(
        'SELECT status, count(*)::int AS n FROM items WHERE batch_id = $1 GROUP BY status',
        [batchId],
      )
    ).rows as Array<{ status: string; n: number }>;
    const by = Object.fromEntries(rows.map((r) => [r.status, r.n]));
    expect(by.pending ?? 0).toBe(0);
    expect({
      active: b.count_active,
      none: b.count_none,
      private: b.count_private,
      not_found: b.count_not_found,
      failed: b.count_failed,
    }).toEqual({
      active: by.active ?? 0,
      none: by.none ?? 0,
      private: by.private ?? 0,
      not_found: by.not_found ?? 0,
      failed: by.failed ?? 0,
    });
    expect(b.done).toBe(b.total);
    const n = await this.client.query(
      'SELECT count(*)::int AS n, count(DISTINCT username)::int AS d FROM items WHERE batch_id = $1',
      [batchId],
    );
    expect(n.rows[0].n).toBe(b.total);
    expect(n.rows[0].d).toBe(b.total);
  }
}
