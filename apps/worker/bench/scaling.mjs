#!/usr/bin/env node
// Worker scaling (issue 10 §5, §8): 1, 2, 4 worker processes, WORKER_CONCURRENCY 10 (so one
// worker is latency-bound), simulator at 100 ms latency, anonymous and unbudgeted → checks/s
// and the ratio to one worker, all in the same run; a fresh Redis prefix + database per worker
// count. N names per worker, so every count runs about as long; checks/s is over the batch's
// own time in Postgres (first job started → last result), so the CLI's start and its progress
// poll, the same for every count, do not flatten the ratios. Also the peak RSS (VmHWM) of any
// worker, the 4-worker run being the largest scenario. Prints; never asserts.
//   node bench/scaling.mjs [--quick]      400 names per worker (--quick: 20)
import { startSim } from '@storycheck/upstream-sim';
import { benchLine, fmt, quick, scenario } from './lib.mjs';

const N = quick ? 20 : 400;
const COUNTS = [1, 2, 4];
const CONCURRENCY = 10;
const WARM = 10;
const total = COUNTS.reduce((a, k) => a + k * N + WARM, 0);
const sim = await startSim({ seed: 12, size: total + 10, latencyMs: 100 });
const names = sim.world.usernames();
const rate = {};
let rss = 0;
try {
  let base = 0;
  for (const k of COUNTS) {
    const s = await scenario(`scbenchscale_${process.pid}_${k}`, {
      IG_BASE_URL: sim.url,
      WORKER_CONCURRENCY: String(CONCURRENCY),
    });
    try {
      s.startWorkers(k);
      await s.checks(names.slice(base, base + WARM)); // workers started
      await s.checks(names.slice(base + WARM, base + WARM + k * N));
      rate[k] = (k * N) / (await s.lastBatchSecs());
      base += WARM + k * N;
      rss = Math.max(rss, s.peakRssMb());
    } finally {
      await s.close();
    }
  }
  console.log(
    `worker scaling: ${fmt(N)} names per worker, 100 ms latency, concurrency ${CONCURRENCY} per worker: ` +
      COUNTS.map((k) => `${k} worker${k > 1 ? 's' : ''} ${fmt(rate[k], 1)} checks/s`).join(', ') +
      `; 2 workers ${(rate[2] / rate[1]).toFixed(2)}x, 4 workers ${(rate[4] / rate[1]).toFixed(2)}x (goal >= 3.5x)`,
  );
  console.log(`worker scaling: worker peak RSS ${fmt(rss)} MB (goal <= 150 MB)`);
  for (const k of COUNTS) benchLine(`scaling ${k} worker checks/s`, rate[k], 'checks/s');
  benchLine('scaling 2 workers ratio', rate[2] / rate[1], 'x');
  benchLine('scaling 4 workers ratio', rate[4] / rate[1], 'x', '>= 3.5');
  benchLine('worker peak RSS (scaling)', rss, 'MB', '<= 150');
} finally {
  await sim.close();
}
