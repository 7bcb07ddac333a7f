#!/usr/bin/env node
// Pipeline overhead (issue 10 §4): the simulator at zero latency, no sessions (anonymous,
// unbudgeted), one worker process → checks/s end to end (`enqueue - --wait`, CLI start included,
// cold caches: fresh names each run), beside a bare BullMQ queue processing no-op jobs — same N,
// same concurrency, same Redis — in the same run, as a ratio. Median of RUNS pairs. Also the
// worker's peak RSS. Prints; never asserts.
//   node bench/overhead.mjs [--quick]      2,000 names ×3 (--quick: 200 ×1)
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { startSim } from '@storycheck/upstream-sim';
import { REDIS_URL, benchLine, fmt, median, quick, scenario, wipeRedis } from './lib.mjs';

const N = quick ? 200 : 2000;
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
const s = await scenario(tag, { IG_BASE_URL: sim.url, WORKER_CONCURRENCY: String(CONCURRENCY) });
try {
  s.startWorkers(1);
  await s.checks(names.slice(0, WARM)); // worker started and warm
  const ours = [];
  const bares = [];
  const ratios = [];
  for (let r = 0; r < RUNS; r++) {
    const b = N / (await bare(`${tag}_bare${r}`));
    const start = WARM + r * N;
    const o = N / (await s.checks(names.slice(start, start + N)));
    bares.push(b);
    ours.push(o);
    ratios.push(o / b);
  }
  const ratio = median(ratios);
  const rss = s.peakRssMb();
  console.log(
    `pipeline overhead: ${fmt(N)} names, 1 worker, concurrency ${CONCURRENCY}, zero latency, anonymous: ` +
      `${fmt(median(ours))} checks/s end to end vs bare BullMQ no-op ${fmt(median(bares))} jobs/s; ` +
      `ratio ${ratio.toFixed(3)} (goal >= 0.25); median of ${RUNS}`,
  );
  console.log(`pipeline overhead: worker peak RSS ${fmt(rss)} MB (goal <= 150 MB)`);
  benchLine('overhead checks/s', median(ours), 'checks/s');
  benchLine('overhead bare BullMQ jobs/s', median(bares), 'jobs/s');
  benchLine('overhead ratio', ratio, 'ratio', '>= 0.25');
  benchLine('worker peak RSS (overhead)', rss, 'MB', '<= 150');
} finally {
  await s.close();
  await sim.close();
}
