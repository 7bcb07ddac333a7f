// Shared plumbing for the worker benchmarks (issue 10): a private Redis prefix and Postgres
// database per scenario, the CLI and worker processes, peak RSS from /proc, and cleanup.
// Nothing here asserts; it only runs things and measures.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Redis } from 'ioredis';
import { migrate } from '@storycheck/db';
// The worker's heap flags, as the image runs it (one list for the demo and the benches).
import { WORKER_HEAP_FLAGS } from '../../../packages/devtools/lib.mjs';

export const PG = process.env.BENCH_PG_SERVER ?? 'postgres://postgres@127.0.0.1:5432';
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
export const WORKER = fileURLToPath(new URL('../dist/main.js', import.meta.url));
export const CLI = fileURLToPath(new URL('../../producer/dist/main.js', import.meta.url));
export const quick = process.argv.includes('--quick');
/** Extra node flags for worker processes, e.g. BENCH_WORKER_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof'. */
const workerNodeArgs = [
  ...WORKER_HEAP_FLAGS,
  ...(process.env.BENCH_WORKER_NODE_ARGS ?? '').split(' ').filter(Boolean),
];
export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
export const fmt = (n, d = 0) =>
  n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });

// Workers are separate processes: if this bench is killed, stop them too (no orphans writing keys).
const allWorkers = new Set();
for (const sig of ['SIGINT', 'SIGTERM'])
  process.once(sig, () => {
    for (const w of allWorkers) if (w.exitCode === null) w.kill('SIGTERM');
    process.exit(130);
  });

/**
 * One machine-readable line for packages/devtools/bench.mjs, beside the human lines. `each`:
 * the goal must hold in each run (the runner reports the worst run, not the median).
 */
export function benchLine(name, value, unit, goal, { each = false } = {}) {
  console.log(
    `BENCH ${JSON.stringify({ name, value, unit, ...(goal ? { goal } : {}), ...(each ? { each } : {}) })}`,
  );
}

/** Deletes every Redis key under `prefix` (the prefix is unique to this bench process). */
export async function wipeRedis(prefix) {
  const redis = new Redis(REDIS_URL);
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await redis.del(...keys);
  } while (cursor !== '0');
  redis.disconnect();
}

export async function dropDb(name) {
  const admin = new pg.Client({ connectionString: `${PG}/postgres` });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
}

/**
 * A scenario: a fresh prefix + database (`tag`), migrated, with `env` for the worker and CLI.
 * `close()` stops the workers it started, then removes the keys and the database.
 */
export async function scenario(tag, extraEnv) {
  const env = {
    ...process.env,
    DATABASE_URL: `${PG}/${tag}`,
    REDIS_URL,
    STORYCHECK_PREFIX: tag,
    LOG_LEVEL: 'error',
    ...extraEnv,
  };
  const workers = [];
  let peakKb = 0;
  const poll = setInterval(async () => {
    for (const w of workers) {
      try {
        const m = /VmHWM:\s+(\d+)/.exec(await readFile(`/proc/${w.pid}/status`, 'utf8'));
        if (m) peakKb = Math.max(peakKb, Number(m[1]));
      } catch {
        // exited
      }
    }
  }, 100);
  const s = {
    env,
    tag,
    cli: (args, input = '') =>
      new Promise((resolve, reject) => {
        const p = spawn(process.execPath, [CLI, ...args], {
          env,
          stdio: ['pipe', 'ignore', 'inherit'],
        });
        p.on('exit', (c) =>
          c === 0 ? resolve() : reject(new Error(`${args.join(' ')} exited ${c}`)),
        );
        p.stdin.end(input);
      }),
    startWorkers(n, workerEnv = {}) {
      for (let i = 0; i < n; i++) {
        const w = spawn(process.execPath, [...workerNodeArgs, WORKER], {
          env: { ...env, ...workerEnv },
          stdio: ['ignore', 'ignore', 'inherit'],
        });
        workers.push(w);
        allWorkers.add(w);
      }
    },
    /**
     * Seconds the newest batch took from its first job's start to its last result (Postgres'
     * started_at → finished_at): the workers' time, without the CLI's start or its poll period.
     */
    async lastBatchSecs() {
      const c = new pg.Client({ connectionString: env.DATABASE_URL });
      await c.connect();
      try {
        const r = await c.query(
          'SELECT extract(epoch FROM finished_at - started_at)::float8 AS s FROM batches ORDER BY created_at DESC LIMIT 1',
        );
        return Number(r.rows[0]?.s);
      } finally {
        await c.end();
      }
    },
    /** Enqueues `names` and waits for every result; returns wall seconds (CLI start included). */
    async checks(names) {
      const t0 = performance.now();
      await s.cli(['enqueue', '-', '--wait'], names.join('\n'));
      return (performance.now() - t0) / 1000;
    },
    peakRssMb: () => peakKb / 1024,
    /** Process ids of the workers started so far. */
    pids: () => workers.map((w) => w.pid),
    async close() {
      clearInterval(poll);
      // A worker killed by a signal has exitCode null but signalCode set: it is gone too.
      const running = (w) => w.exitCode === null && w.signalCode === null;
      for (const w of workers) if (running(w)) w.kill('SIGTERM');
      await Promise.all(
        workers.map((w) => (running(w) ? new Promise((r) => w.on('exit', r)) : null)),
      );
      await wipeRedis(tag);
      await dropDb(tag);
    },
  };
  try {
    await migrate(env.DATABASE_URL);
  } catch (err) {
    await s.close();
    throw err;
  }
  return s;
}

/**
 * `BENCH_SERIES {json}` lines for the runner's throughput chart (docs/benchmarks-throughput.svg):
 * the simulator's request `log` counted in `binSecs`-second bins from its first request, as
 * requests per second, one line for the answered requests and one for the throttled ones (429,
 * or 401 other than the `current_user` probe; never-answered requests count in neither). The
 * bins cover `spanSecs` (default: first to last request; pass the run's length to show idle time
 * too); a trailing partial bin is left out, except that there is always at least one bin.
 * `chart` groups lines into one panel; `ceilings` are `[{ value (requests/s), label }]`, the
 * first being what the budgets allow.
 */
export function benchSeries(
  chart,
  log,
  { title, group = chart, ceilings = [], binSecs = 1, spanSecs = 0 },
) {
  if (log.length === 0) return;
  const binMs = binSecs * 1000;
  const first = log.reduce((a, e) => Math.min(a, e.timeMs), Infinity);
  const last = log.reduce((a, e) => Math.max(a, e.timeMs), -Infinity);
  const bins = Math.max(1, Math.floor(Math.max(last - first, spanSecs * 1000) / binMs));
  const answered = new Array(bins).fill(0);
  const throttled = new Array(bins).fill(0);
  for (const e of log) {
    const i = Math.floor((e.timeMs - first) / binMs);
    if (i >= bins || e.status === 0) continue; // 0: never answered
    if (e.status === 429 || (e.status === 401 && e.kind !== 'current_user')) throttled[i]++;
    else answered[i]++;
  }
  const rate = (xs) => xs.map((n) => Number((n / binSecs).toFixed(2)));
  for (const [kind, xs] of [
    ['answered', answered],
    ['throttled', throttled],
  ])
    console.log(
      `BENCH_SERIES ${JSON.stringify({ chart, title, group, label: `${group}: ${kind}`, kind, unit: 'requests/s', binSecs, ceilings, values: rate(xs) })}`,
    );
}

/**
 * Lease → arrival spread: the workers' lease trace (LEASE_TRACE_FILE: one JSON line per request
 * sent under a lease, with its Redis admission µs and session label) against the simulator's
 * request log, matched per session in order (the k-th lease of a session ↔ its k-th arrival).
 * Returns the arrival − admission delays in ms, sorted. Both clocks are this machine's (Redis
 * runs here), so the delay is absolute; what bunches requests is its spread.
 */
export function leaseSpread(traceText, log) {
  const leases = new Map();
  for (const line of traceText.split('\n')) {
    if (!line) continue;
    const t = JSON.parse(line);
    if (!leases.has(t.session)) leases.set(t.session, []);
    leases.get(t.session).push(t.atUs / 1000);
  }
  const arrivals = new Map();
  for (const e of log) {
    if (!e.session || e.kind === 'current_user') continue;
    if (!arrivals.has(e.session)) arrivals.set(e.session, []);
    arrivals.get(e.session).push(e.timeMs);
  }
  const d = [];
  for (const [s, ls] of leases) {
    ls.sort((a, b) => a - b);
    const as = (arrivals.get(s) ?? []).sort((a, b) => a - b);
    for (let i = 0; i < Math.min(ls.length, as.length); i++) d.push(as[i] - ls[i]);
  }
  return d.sort((a, b) => a - b);
}

/** The q-quantile of sorted numbers (nearest rank); NaN when empty. */
export const quantile = (sorted, q) =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : NaN;

/**
 * The most requests over budget in any window, per key, as the upstream counted them: for
 * every pair of arrivals i ≤ j of one key (`keyOf(entry)`, null = skip), the j − i + 1 requests
 * within W = t_j − t_i against what a GCRA budget of `rate`/s and `burst` admits in W, burst +
 * floor(W / interval). Returns { over, key, count, windowMs } of the worst window (over ≤ 0:
 * the budget held in every window). Every arrival counts, throttled ones too: this is what was
 * sent, against what the budget allows.
 */
export function worstWindow(log, keyOf, rate, burst) {
  const iv = 1000 / rate;
  const by = new Map();
  for (const e of log) {
    const k = keyOf(e);
    if (k === null) continue;
    if (!by.has(k)) by.set(k, []);
    by.get(k).push(e.timeMs);
  }
  let worst = { over: -Infinity, key: null, count: 0, windowMs: 0 };
  for (const [key, ts] of by) {
    ts.sort((a, b) => a - b);
    for (let i = 0; i < ts.length; i++)
      for (let j = i; j < ts.length; j++) {
        const w = ts[j] - ts[i];
        if (w > iv * (burst + 200)) break;
        const over = j - i + 1 - (burst + Math.floor(w / iv + 1e-9));
        if (over > worst.over) worst = { over, key, count: j - i + 1, windowMs: w };
      }
  }
  return worst;
}
