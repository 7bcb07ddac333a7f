import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { checkJobId } from '@storycheck/queue';
import {
  freePort,
  runNode,
  startPrivateRedis,
  waitFor,
  type PrivateRedis,
} from '@storycheck/testkit';
import { startSim, type SimServer } from '@storycheck/upstream-sim';
import { Harness } from './harness.js';

/**
 * The runbooks are real: each incident is reproduced against real services (a private Redis
 * for the Redis incidents, the shared Postgres, worker and CLI processes, the simulator), then
 * recovered with the commands written in its page under docs/runbooks/ — read from the page, so
 * a runbook whose command changes or stops working fails here.
 */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = fileURLToPath(new URL('../../producer/dist/main.js', import.meta.url));

/**
 * The `storycheck …` command of a runbook section that starts with `prefix`, as argv with
 * `<batchId>` filled in. Throws when the page's section has no such command.
 */
function runbookCommand(page: string, section: string, prefix: string, batchId: string): string[] {
  const text = readFileSync(join(ROOT, 'docs/runbooks', page), 'utf8');
  const start = text.indexOf(`\n## ${section}\n`);
  if (start < 0) throw new Error(`docs/runbooks/${page} has no section "## ${section}"`);
  const end = text.indexOf('\n## ', start + 4);
  const body = text.slice(start, end < 0 ? undefined : end);
  const blocks = [...body.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
  const line = blocks
    .flatMap((b) => b.split('\n'))
    .map((l) => l.trim())
    .find((l) => l.startsWith(prefix));
  if (!line) throw new Error(`docs/runbooks/${page} "## ${section}" has no command "${prefix}…"`);
  return line
    .replace(/\s+#.*$/, '')
    .split(/\s+/)
    .slice(1)
    .map((w) => (w === '<batchId>' ? batchId : w));
}

const h = new Harness();
let sim: SimServer;

beforeAll(async () => {
  await h.setup();
  sim = await startSim({ seed: 11, size: 300 });
});
afterEach(() => h.stopAll());
afterAll(async () => {
  await h.teardown();
  await sim.close();
});

/** The CLI against `redisUrl` (default: the harness's shared Redis and prefix). */
function cli(args: string[], redisUrl?: string, stdin?: string) {
  return runNode(
    CLI,
    args,
    { ...h.env(sim.url), ...(redisUrl ? { REDIS_URL: redisUrl } : {}) },
    stdin,
  );
}

async function enqueue(names: string[], redisUrl?: string): Promise<string> {
  const r = await cli(['enqueue', '-', '--json'], redisUrl, names.join('\n'));
  if (r.code !== 0) throw new Error(`enqueue failed: ${r.stderr}`);
  return JSON.parse(r.stdout).batchId as string;
}

async function pendingCount(batchId: string): Promise<number> {
  const r = await h.client.query(
    "SELECT count(*)::int AS n FROM items WHERE batch_id = $1 AND status = 'pending'",
    [batchId],
  );
  return r.rows[0].n as number;
}

/** Runs a runbook's verify step `storycheck status <batchId> --watch`: exits when complete. */
async function watchToCompletion(page: string, batchId: string, redisUrl?: string) {
  const watch = runbookCommand(page, 'Verify', 'storycheck status', batchId);
  expect(watch).toContain('--watch');
  const r = await cli(watch, redisUrl);
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
  expect(r.stdout).toMatch(/completed/);
  await h.expectCountersExact(batchId);
}

/** A redis-server with AOF (appendfsync always) in its own folder, restartable with its data. */
async function startAofRedis(): Promise<{
  url: string;
  start(): Promise<void>;
  kill(): Promise<void>;
  stop(): Promise<void>;
}> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sc-runbook-redis-'));
  let child: ChildProcess | undefined;
  const url = `redis://127.0.0.1:${port}`;
  const start = async () => {
    child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', ''].concat([
        '--appendonly',
        'yes',
        '--appendfsync',
        'always',
      ]),
      { stdio: 'ignore' },
    );
    await waitFor(
      async () => {
        const r = new Redis(url, {
          lazyConnect: true,
          maxRetriesPerRequest: 0,
          retryStrategy: () => null,
        });
        try {
          await r.connect();
          return (await r.ping()) === 'PONG';
        } catch {
          return false;
        } finally {
          r.disconnect();
        }
      },
      'the AOF redis-server to answer',
      20_000,
    );
  };
  const kill = async () => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  };
  await start();
  return {
    url,
    start,
    kill,
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('runbook: Redis down (docs/runbooks/redis-down.md)', () => {
  it('Redis killed with a batch queued: the CLI names the outage; Redis back with its AOF, the workers go on by themselves', async () => {
    const redis = await startAofRedis();
    try {
      const names = sim.world.usernames().slice(0, 60);
      const batchId = await enqueue(names, redis.url);
      await redis.kill();

      // Confirm, as the page says: no PONG, and the CLI fails with one line (exit 1).
      expect(runbookCommand('redis-down.md', 'Confirm', 'redis-cli', batchId)).toContain('PING');
      const down = await cli(
        runbookCommand('redis-down.md', 'Confirm', 'storycheck cache stats', batchId),
        redis.url,
      );
      expect(down.code).toBe(1);
      expect(down.stderr).toMatch(/^storycheck: (Reached the max retries|cannot connect to)/);
      const worker = h.startWorker(sim, { REDIS_URL: redis.url, LOG_LEVEL: 'warn' });
      // Started during the outage, the worker waits to start (the page's "cannot start yet").
      await waitFor(
        () => /redis connection error|cannot start yet: redis/.test(worker.stderr()),
        'the worker to log the outage',
      );
      expect(await pendingCount(batchId)).toBe(names.length);

      // Fix: start Redis. Nothing else: the worker reconnects and finds the jobs in the AOF.
      await redis.start();
      // Verify, with the page's own commands.
      const list = await cli(
        runbookCommand('redis-down.md', 'Verify', 'storycheck batches list', batchId),
        redis.url,
      );
      expect(list.code).toBe(0);
      expect(list.stdout).toContain(batchId);
      await watchToCompletion('redis-down.md', batchId, redis.url);
    } finally {
      await h.stopAll();
      await redis.stop();
    }
  });
});

describe('runbook: Redis lost its data (docs/runbooks/redis-data-lost.md)', () => {
  let redis: PrivateRedis;
  beforeAll(async () => {
    redis = await startPrivateRedis();
  });
  afterAll(async () => {
    await redis.stop();
  });

  it('Redis restarted empty: the batch cannot finish until reconcile re-creates its jobs', async () => {
    const names = sim.world.usernames().slice(60, 140);
    const batchId = await enqueue(names, redis.url);
    await redis.restart(); // empty: no persistence

    // Symptom: the items are pending in Postgres and no job exists for them.
    const q = new Queue('story-check', {
      connection: new Redis(redis.url, { maxRetriesPerRequest: null }),
      prefix: h.tp.prefix,
    });
    try {
      const counts = await q.getJobCounts('waiting', 'delayed', 'active', 'prioritized');
      expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(0);
    } finally {
      await q.close();
      await q.disconnect();
    }
    h.startWorker(sim, { REDIS_URL: redis.url });
    expect(await pendingCount(batchId)).toBe(names.length);

    // Fix, step by step as the page says.
    const sessions = await cli(
      runbookCommand('redis-data-lost.md', 'Fix', 'storycheck sessions list', batchId),
      redis.url,
    );
    expect(sessions.code).toBe(0);
    const list = await cli(
      runbookCommand('redis-data-lost.md', 'Fix', 'storycheck batches list', batchId),
      redis.url,
    );
    expect(list.code).toBe(0);
    const unfinished = (JSON.parse(list.stdout) as Array<{ batchId: string; state: string }>)
      .filter((b) => b.state !== 'completed')
      .map((b) => b.batchId);
    expect(unfinished).toContain(batchId);
    const rec = await cli(
      runbookCommand('redis-data-lost.md', 'Fix', 'storycheck batches reconcile', batchId),
      redis.url,
    );
    expect(rec.code).toBe(0);
    expect(rec.stdout).toContain(`${names.length} jobs re-created`);

    // Verify: a second reconcile re-creates nothing; the batch completes.
    const again = await cli(
      runbookCommand('redis-data-lost.md', 'Verify', 'storycheck batches reconcile', batchId),
      redis.url,
    );
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(' 0 jobs re-created');
    await watchToCompletion('redis-data-lost.md', batchId, redis.url);
  });
});

describe('runbook: a batch stuck in running (docs/runbooks/batch-stuck.md)', () => {
  it('half of its jobs removed from Redis: confirm with the page, reconcile, the batch completes', async () => {
    const names = sim.world.usernames().slice(140, 200);
    const batchId = await enqueue(names);
    const removed = names.filter((_, i) => i % 2 === 0);
    for (const u of removed) await h.queue.remove(checkJobId(batchId, u));
    h.startWorker(sim);
    // The jobs that exist finish; the batch stays running with the rest pending.
    await waitFor(
      async () => (await pendingCount(batchId)) === removed.length,
      'the remaining jobs to finish',
      60_000,
    );
    const st = await cli(runbookCommand('batch-stuck.md', 'Confirm', 'storycheck status', batchId));
    expect(st.code).toBe(0);
    expect(JSON.parse(st.stdout)).toMatchObject({
      state: 'running',
      done: names.length - removed.length,
    });
    const log = await cli(
      runbookCommand('batch-stuck.md', 'Confirm', 'storycheck batches log', batchId),
    );
    expect(log.code).toBe(0);
    // Confirm cause 1: reconcile reports re-created jobs (and so already fixed it).
    const rec = await cli(
      runbookCommand('batch-stuck.md', 'Confirm', 'storycheck batches reconcile', batchId),
    );
    expect(rec.code).toBe(0);
    expect(JSON.parse(rec.stdout)).toMatchObject({
      pending: removed.length,
      recreated: removed.length,
      sealed: true,
    });
    await watchToCompletion('batch-stuck.md', batchId);
  });
});

describe('runbook: every session throttled (docs/runbooks/all-sessions-throttled.md)', () => {
  const KEY = Buffer.alloc(32, 9).toString('base64');
  const sid = (n: number) => `${2_000_000 + n}%3AabcdefghijklMNOP%3A${n}%3Asecret${n}`;
  // The upstream's real limit per session; the workers start far above it.
  const REAL_RATE = '3/1s';
  let tsim: SimServer;
  beforeAll(async () => {
    tsim = await startSim({
      seed: 43,
      size: 300,
      requireSession: true,
      sessions: [1, 2, 3].map((n) => ({ sessionid: sid(n), label: `acct${n}` })),
      budgets: {
        session: { rate: REAL_RATE, burst: 3 },
        ip: { rate: '1000/1s', burst: 100 },
        penaltyMs: 1_000,
      },
    });
  });
  afterAll(async () => {
    await tsim.close();
  });

  const env = (extra: Record<string, string>) => ({
    STORYCHECK_SECRET_KEY: KEY,
    THROTTLE_BACKOFF_BASE: '1s',
    THROTTLE_BACKOFF_CAP: '2s',
    // The storm the page is for: fixed rates (adaptive mode would learn the real limit by itself
    // and finish most of the batch before the fix — the page's step 4).
    ADAPTIVE_RATES: 'false',
    ...extra,
  });
  const tcli = (args: string[], stdin?: string) =>
    runNode(CLI, args, { ...h.env(tsim.url), ...env({}) }, stdin);
  const throttled = (e: { status: number; kind: string }) =>
    e.status === 429 || (e.status === 401 && e.kind !== 'current_user');

  it('budgets above the real limit: sessions cool; the page fix (lower SESSION_RATE, restart) stops the 429s and the batch completes', async () => {
    const imp = await tcli(
      ['sessions', 'import', '-'],
      [1, 2, 3]
        .map((n) =>
          JSON.stringify({
            label: `acct${n}`,
            sessionid: sid(n),
            ds_user_id: String(2_000_000 + n),
          }),
        )
        .join('\n'),
    );
    expect(imp.code).toBe(0);
    const names = tsim.world.usernames().slice(0, 90);
    const batchId = (
      JSON.parse((await tcli(['enqueue', '-', '--json'], names.join('\n'))).stdout) as {
        batchId: string;
      }
    ).batchId;
    const hot = h.startWorker(
      tsim,
      env({ SESSION_RATE: '60/1s', SESSION_BURST: '10', BUDGET_MARGIN: '0' }),
    );

    // Symptom and confirm: 429s at the upstream; `sessions list` shows the sessions throttled.
    const confirm = runbookCommand(
      'all-sessions-throttled.md',
      'Confirm',
      'storycheck sessions list',
      batchId,
    );
    await waitFor(
      async () => {
        const r = await tcli([...confirm, '--json']);
        const rows = JSON.parse(r.stdout) as Array<{ status: string; lastError: string | null }>;
        return rows.some((x) => x.status === 'cooling' || x.lastError === 'throttled');
      },
      'a session throttled and cooling',
      60_000,
    );
    expect(tsim.requestLog().filter(throttled).length).toBeGreaterThan(0);

    // Fix, steps 2 and 3: lower SESSION_RATE to the real limit, restart every worker (SIGTERM).
    const page = readFileSync(join(ROOT, 'docs/runbooks/all-sessions-throttled.md'), 'utf8');
    expect(page).toMatch(/Lower `SESSION_RATE`/);
    expect(page).toMatch(/Restart every worker/);
    hot.child.kill('SIGTERM');
    expect(await hot.exited).toBe(0);
    const restartedAt = Date.now();
    h.startWorker(
      tsim,
      env({ SESSION_RATE: REAL_RATE, SESSION_BURST: '3', BUDGET_MARGIN: '0.25' }),
    );

    // Fix, step 6: promote the jobs delayed during the storm — what the board's "promote all"
    // does (bull-board calls BullMQ's promoteJobs) — instead of waiting up to 5 minutes.
    expect(page).toMatch(/promote all jobs/);
    await h.queue.promoteJobs();

    // Verify with the page's commands: the batch completes, sessions back to active.
    await watchToCompletion('all-sessions-throttled.md', batchId);
    const verify = runbookCommand(
      'all-sessions-throttled.md',
      'Verify',
      'storycheck sessions list',
      batchId,
    );
    await waitFor(
      async () => {
        const r = await tcli([...verify, '--json']);
        return (JSON.parse(r.stdout) as Array<{ status: string }>).every(
          (x) => x.status === 'active',
        );
      },
      'every session active again',
      30_000,
    );
    // The 429s stop: the upstream may still refuse the first requests after the restart (its
    // own penalty for the storm), but the second half of the requests sent since gets none.
    const post = tsim
      .requestLog()
      .filter((e) => e.timeMs > restartedAt)
      .sort((x, y) => x.timeMs - y.timeMs);
    const tail = post.slice(Math.floor(post.length / 2));
    expect(tail.length).toBeGreaterThan(20);
    expect(tail.filter(throttled)).toEqual([]);
  }, 180_000);
});
