import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Redis } from 'ioredis';
import { migrate } from '@storycheck/db';
import {
  freePort,
  runNode,
  sleep,
  spawnNode,
  startPrivatePostgres,
  waitFor,
  type PrivatePostgres,
  type Spawned,
} from '@storycheck/testkit';
import { startSim, type SimOptions, type SimServer } from '@storycheck/upstream-sim';

// The fault-injection suite's world (issue 14): a private redis-server and a private PostgreSQL
// on free ports (never the shared 6379/5432, which these tests kill, flush and restart), the
// simulator as the upstream, real `storycheck-worker` processes and the real CLI.

const WORKER = fileURLToPath(new URL('../../dist/main.js', import.meta.url));
const CLI = fileURLToPath(new URL('../../../producer/dist/main.js', import.meta.url));

/** Names per batch in the fault suite: FAULTS_NAMES, default 800 (CI time; 1,500 was issue 14's size). */
export const BATCH_NAMES = Number(process.env.FAULTS_NAMES ?? 800);

/** Error codes a `failed` row may carry when the upstream itself misbehaved. */
export const UPSTREAM_ERROR_CODES = [
  'upstream_error',
  'malformed_response',
  'network_error',
  'timeout',
  'throttled',
] as const;

/**
 * A redis-server of the test's own, with an append-only file (`appendfsync always`) so a
 * `kill -9` and a restart keep every acknowledged write; its folder survives restarts.
 */
export class PrivateRedis {
  readonly dir = mkdtempSync(join(tmpdir(), 'sc-faults-redis-'));
  port = 0;
  private child: ChildProcess | undefined;

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts it (first time: on a free port; later: the same port, replaying the AOF). */
  async start(): Promise<void> {
    this.port ||= await freePort();
    this.child = spawn(
      'redis-server',
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--dir',
        this.dir,
        '--save',
        '',
        '--appendonly',
        'yes',
        '--appendfsync',
        'always',
      ],
      { stdio: 'ignore' },
    );
    await waitFor(() => this.ping(), `redis-server on port ${this.port}`, 60_000, 100);
  }

  private async ping(): Promise<boolean> {
    const r = new Redis(this.url, {
      lazyConnect: true,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
    });
    r.on('error', () => undefined);
    try {
      await r.connect();
      return (await r.ping()) === 'PONG';
    } catch {
      return false;
    } finally {
      r.disconnect();
    }
  }

  /** SIGKILL, as in a crash; waits for the exit. */
  async kill9(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  }

  /** Kills it and removes its folder. */
  async stop(): Promise<void> {
    await this.kill9();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A worker process the world started, and whether the test meant it to stop. */
export interface WorkerProc extends Spawned {
  label: string;
  /** Set by the test before it stops the worker on purpose. */
  told: boolean;
}

/**
 * One test file's world: private Redis and Postgres, a migrated database `storycheck`, the
 * simulator, workers and the CLI. `check(batchId)` is the suite's one verdict.
 */
export class FaultWorld {
  readonly redis = new PrivateRedis();
  /** testkit's private PostgreSQL (initdb/pg_ctl as the postgres user, free port). */
  pg!: PrivatePostgres;
  sim!: SimServer;
  readonly workers: WorkerProc[] = [];
  readonly prefix = 'faults';
  private clientConn: pg.Client | undefined;

  get databaseUrl(): string {
    return this.pg.urlOf('storycheck');
  }

  async setup(sim: SimOptions): Promise<void> {
    [this.pg] = await Promise.all([startPrivatePostgres(), this.redis.start()]);
    await this.pg.createDatabase('storycheck', migrate);
    this.sim = await startSim(sim);
  }

  async teardown(): Promise<void> {
    for (const w of this.workers) {
      if (w.child.signalCode === null && w.child.exitCode === null) w.child.kill('SIGCONT');
    }
    await Promise.all(this.workers.map((w) => w.kill()));
    await this.clientConn?.end().catch(() => undefined);
    await this.sim?.close();
    await this.redis.stop();
    await this.pg?.destroy();
  }

  /** A fresh pg client per call sequence (the server may have restarted since the last one). */
  async query<T = Record<string, unknown>>(text: string, values: unknown[] = []): Promise<T[]> {
    for (let i = 0; ; i++) {
      try {
        if (!this.clientConn) {
          const c = new pg.Client({ connectionString: this.databaseUrl });
          c.on('error', () => undefined);
          await c.connect();
          this.clientConn = c;
        }
        return (await this.clientConn.query(text, values)).rows as T[];
      } catch (e) {
        await this.clientConn?.end().catch(() => undefined);
        this.clientConn = undefined;
        if (i >= 60) throw e;
        await sleep(500);
      }
    }
  }

  env(extra: Record<string, string> = {}): Record<string, string> {
    return {
      DATABASE_URL: this.databaseUrl,
      REDIS_URL: this.redis.url,
      STORYCHECK_PREFIX: this.prefix,
      IG_BASE_URL: this.sim.url,
      LOG_LEVEL: 'warn',
      LOG_FORMAT: 'json',
      WORKER_LOCK_DURATION: '2s',
      WORKER_CONCURRENCY: '10',
      ...extra,
    };
  }

  startWorker(label: string, extra: Record<string, string> = {}): WorkerProc {
    const p = spawnNode(WORKER, [], this.env(extra)) as WorkerProc;
    p.label = label;
    p.told = false;
    this.workers.push(p);
    return p;
  }

  cli(args: string[], stdin?: string, extra: Record<string, string> = {}) {
    return runNode(CLI, args, this.env(extra), stdin);
  }

  async enqueue(names: string[]): Promise<string> {
    const r = await this.cli(['enqueue', '-', '--json'], names.join('\n'));
    if (r.code !== 0) throw new Error(`enqueue failed (${r.code}): ${r.stderr}`);
    return JSON.parse(r.stdout).batchId as string;
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  async batch(batchId: string): Promise<any> {
    return (await this.query('SELECT * FROM batches WHERE id = $1', [batchId]))[0];
  }

  /** Waits until the batch has `atLeast` items done; fails at once if a worker died untold. */
  async waitDone(batchId: string, atLeast: number, what: string, timeoutMs = 120_000) {
    await waitFor(
      async () => {
        this.expectWorkersAlive();
        return (await this.batch(batchId)).done >= atLeast;
      },
      what,
      timeoutMs,
      250,
    ).catch(async (e: unknown) => {
      await this.explainStall();
      throw e;
    });
  }

  /**
   * Writes to stderr what a stalled batch waits on: Postgres sessions that are not idle (a
   * session idle inside a transaction, or one waiting for a lock) and each worker's last log.
   */
  private async explainStall(): Promise<void> {
    const sessions = await this.query(
      `SELECT pid, state, wait_event_type, wait_event, now() - state_change AS for,
              left(query, 120) AS query
         FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'`,
    ).catch((err: unknown) => [{ error: String(err) }]);
    process.stderr.write(
      `stalled: postgres sessions ${JSON.stringify(sessions)}\n` +
        this.workers.map((w, i) => `worker ${i}: ${w.stderr().slice(-1500)}`).join('\n---\n') +
        '\n',
    );
  }

  /** Waits until the batch is completed; fails at once if a worker died untold. */
  async waitCompleted(batchId: string, what = 'batch completion', timeoutMs = 240_000) {
    await waitFor(
      async () => {
        this.expectWorkersAlive();
        return (await this.batch(batchId)).state === 'completed';
      },
      what,
      timeoutMs,
      500,
    );
  }

  /** A fresh Redis client on the private server (for FLUSHALL, CONFIG SET, counts). */
  async redisClient(): Promise<Redis> {
    const r = new Redis(this.redis.url, { maxRetriesPerRequest: 3 });
    r.on('error', () => undefined);
    return r;
  }

  /**
   * The verdict of every fault: each of `names` has exactly one row, final, and right by the
   * simulator's truth (`failed` only with an upstream error code, and only when
   * `upstreamFaults`); the batch counters equal the rows; every worker the test did not stop is
   * still running. Returns the number of `failed` rows.
   */
  async check(
    batchId: string,
    names: readonly string[],
    opts: { upstreamFaults?: boolean } = {},
  ): Promise<{ failed: number }> {
    const rows = await this.query<{ username: string; status: string; error: string | null }>(
      'SELECT username, status, error FROM items WHERE batch_id = $1',
      [batchId],
    );
    expect(rows.length).toBe(names.length);
    expect(new Set(rows.map((r) => r.username)).size).toBe(names.length);
    const nowSecs = Math.floor(Date.now() / 1000);
    const wrong: Array<Record<string, unknown>> = [];
    let failed = 0;
    for (const r of rows) {
      const t = this.sim.world.truth(r.username, nowSecs);
      if (r.status === t.status) continue;
      if (
        r.status === 'failed' &&
        opts.upstreamFaults &&
        (UPSTREAM_ERROR_CODES as readonly string[]).includes(r.error ?? '')
      ) {
        failed++;
        continue;
      }
      wrong.push({ username: r.username, status: r.status, error: r.error, truth: t.status });
    }
    expect(wrong.slice(0, 10)).toEqual([]);
    expect(wrong.length).toBe(0);

    const b = await this.batch(batchId);
    const by = Object.fromEntries(
      (
        await this.query<{ status: string; n: number }>(
          'SELECT status, count(*)::int AS n FROM items WHERE batch_id = $1 GROUP BY status',
          [batchId],
        )
      ).map((r) => [r.status, r.n]),
    );
    expect(by.pending ?? 0).toBe(0);
    expect({
      active: b.count_active,
      none: b.count_none,
      private: b.count_private,
      not_found: b.count_not_found,
      failed: b.count_failed,
      done: b.done,
      total: b.total,
      state: b.state,
    }).toEqual({
      active: by.active ?? 0,
      none: by.none ?? 0,
      private: by.private ?? 0,
      not_found: by.not_found ?? 0,
      failed: by.failed ?? 0,
      done: names.length,
      total: names.length,
      state: 'completed',
    });
    this.expectWorkersAlive();
    return { failed };
  }

  /** Every worker the test did not stop on purpose is still running. */
  expectWorkersAlive(): void {
    const dead = this.workers
      .filter((w) => !w.told && (w.child.exitCode !== null || w.child.signalCode !== null))
      .map((w) => ({
        worker: w.label,
        exit: w.child.exitCode ?? w.child.signalCode,
        stderr: w.stderr().slice(-600),
      }));
    expect(dead).toEqual([]);
  }

  /** Stderr lines of a worker that are not JSON (issue 14 item 7: every log line is JSON). */
  nonJsonLines(w: WorkerProc): string[] {
    return w
      .stderr()
      .split('\n')
      .filter((l) => l.trim() !== '')
      .filter((l) => {
        try {
          JSON.parse(l);
          return false;
        } catch {
          return true;
        }
      });
  }

  /** Stops every worker still running (SIGTERM, told) and waits for them. */
  async stopWorkers(): Promise<void> {
    const live = this.workers.filter(
      (w) => w.child.exitCode === null && w.child.signalCode === null,
    );
    for (const w of live) {
      w.told = true;
      w.child.kill('SIGCONT');
      w.child.kill('SIGTERM');
    }
    await Promise.race([Promise.all(live.map((w) => w.exited)), sleep(30_000)]);
    await Promise.all(live.map((w) => w.kill()));
    // The next test judges only its own workers.
    for (const w of this.workers) w.told = true;
  }
}
