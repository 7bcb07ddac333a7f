#!/usr/bin/env node
// Worker scaling (issue 10 §5, §8): 1, 2, 4 worker processes, WORKER_CONCURRENCY 10 (so one
// worker is latency-bound), simulator at 100 ms latency, anonymous and unbudgeted → checks/s
// end to end and the ratio to one worker, all in the same run; a fresh Redis prefix + database
// per worker count. Also the peak RSS (VmHWM) of any worker, the 4-worker run being the largest
// scenario. Prints; never asserts.
//   node bench/scaling.mjs [--quick]      400 names per worker count (--quick: 20)
import { startSim } from '@storycheck/upstream-sim';
import { benchLine, fmt, quick, scenario } from './lib.mjs';

const N = quick ? 20 : 400;
const COUNTS = [1, 2, 4];
const CONCURRENCY = 10;
const WARM = 10;
const sim = await startSim({ seed: 12, size: COUNTS.length * (N + WARM) + 10, latencyMs: 100 });
const names = sim.world.usernames();
const rate = {};
let rss = 0;
try {
  for (const [i, k] of COUNTS.entries()) {
    const s = await scenario(`scbenchscale_${process.pid}_${k}`, {
      IG_BASE_URL: sim.url,
      WORKER_CONCURRENCY: String(CONCURRENCY),
    });
    try {
      s.startWorkers(k);
      const base = i * (N + WARM);
      await s.checks(names.slice(base, base + WARM)); // workers started
      rate[k] = N / (await s.checks(names.slice(base + WARM, base + WARM + N)));
      rss = Math.max(rss, s.peakRssMb());
    } finally {
      await s.close();
    }
  }
  console.log(
    `worker scaling: ${fmt(N)} names, 100 ms latency, concurrency ${CONCURRENCY} per worker: ` +
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
