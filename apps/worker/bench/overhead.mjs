#!/usr/bin/env node
// Pipeline overhead (issue 10 §4): the simulator at zero latency, no sessions (anonymous,
// unbudgeted), one worker process → checks/s beside a bare BullMQ queue processing no-op jobs
// (same N, same concurrency, same Redis) in the same run, as a ratio. Ours is timed over the
// batch's own time in Postgres (first job started → last result), as the bare queue is timed
// from its first add; `enqueue --wait` wall time (CLI start and progress poll included) is
// printed apart. Two kinds of check per run: cold (fresh names: a profile request each, plus a
// share of a stories request) and warm user-id cache (the same names again — the steady state
// of monitoring the same accounts: a share of a stories request only). The result cache is off
// (STORY_CACHE_TTL=0s) so every check reaches the upstream. Median of RUNS triples. Also the
// worker's peak RSS. Prints; never asserts.
//   node bench/overhead.mjs [--quick]      5,000 names ×3 (--quick: 200 ×1)
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { startSim } from '@storycheck/upstream-sim';
import { REDIS_URL, benchLine, fmt, median, quick, scenario, wipeRedis } from './lib.mjs';

const N = quick ? 200 : 5000;
const RUNS = quick ? 1 : 3;
const CONCURRENCY = 50;
const WARM = 20;
const tag = `scbenchovh_${process.pid}`;

/** Bare BullMQ: addBulk N no-op jobs, one Worker at CONCURRENCY; seconds until all completed. */
async function bare(prefix) {
  const connection = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  const q = new Queue('bare', { connection, prefix });
  let done = 0;
  let finish;
  const all = new Promise((r) => (finish = r));
  const wconn = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  const w = new Worker('bare', async () => ({ ok: true }), {
    connection: wconn,
    prefix,
    concurrency: CONCURRENCY,
  });
  w.on('completed', () => ++done === N && finish());
  await w.waitUntilReady();
  const t0 = performance.now();
  for (let i = 0; i < N; i += 1000)
    await q.addBulk(
      Array.from({ length: Math.min(1000, N - i) }, (_, k) => ({
        name: 'noop',
        data: { username: `bare_${i + k}` },
      })),
    );
  await all;
  const secs = (performance.now() - t0) / 1000;
  await w.close();
  await q.close();
  connection.disconnect();
  wconn.disconnect();
  await wipeRedis(prefix);
  return secs;
}

const sim = await startSim({ seed: 11, size: WARM + RUNS * N + 10, latencyMs: 0 });
const names = sim.world.usernames();
const s = await scenario(tag, {
  IG_BASE_URL: sim.url,
  WORKER_CONCURRENCY: String(CONCURRENCY),
  STORY_CACHE_TTL: '0s',
});
try {
  s.startWorkers(1);
  await s.checks(names.slice(0, WARM)); // worker started and warm
  const cold = [];
  const warm = [];
  const wall = [];
  const bares = [];
  for (let r = 0; r < RUNS; r++) {
    const b = N / (await bare(`${tag}_bare${r}`));
    const start = WARM + r * N;
    const batch = names.slice(start, start + N);
    // checks/s over the batch's own time (first job started → last result, from Postgres), as
    // the bare queue is timed from its first add; the CLI's process start is reported apart.
    wall.push(N / (await s.checks(batch)));
    cold.push(N / (await s.lastBatchSecs()));
    await s.checks(batch);
    warm.push(N / (await s.lastBatchSecs()));
    bares.push(b);
  }
  const ratio = (xs) => median(xs.map((x, i) => x / bares[i]));
  const rss = s.peakRssMb();
  for (const [kind, xs] of [
    ['cold caches', cold],
    ['warm user-id cache', warm],
  ])
    console.log(
      `pipeline overhead, ${kind}: ${fmt(N)} names, 1 worker, concurrency ${CONCURRENCY}, zero latency, anonymous: ` +
        `${fmt(median(xs))} checks/s end to end vs bare BullMQ no-op ${fmt(median(bares))} jobs/s; ` +
        `ratio ${ratio(xs).toFixed(3)} (goal >= 0.25); median of ${RUNS}`,
    );
  console.log(
    `pipeline overhead: cold caches timed around \`enqueue --wait\` (CLI start and poll included): ${fmt(median(wall))} checks/s`,
  );
  console.log(`pipeline overhead: worker peak RSS ${fmt(rss)} MB (goal <= 150 MB)`);
  benchLine('overhead bare BullMQ jobs/s', median(bares), 'jobs/s');
  benchLine('overhead checks/s, cold caches', median(cold), 'checks/s');
  benchLine('overhead ratio, cold caches', ratio(cold), 'ratio', '>= 0.25');
  benchLine('overhead checks/s, warm user-id cache', median(warm), 'checks/s');
  benchLine('overhead ratio, warm user-id cache', ratio(warm), 'ratio', '>= 0.25');
  benchLine('worker peak RSS (overhead)', rss, 'MB', '<= 150');
} finally {
  await s.close();
  await sim.close();
}
