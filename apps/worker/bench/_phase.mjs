import pg from 'pg';
import { startSim } from '@storycheck/upstream-sim';
import { scenario } from '/work/main/apps/worker/bench/lib.mjs';
const N = Number(process.env.N ?? 2000);
const sim = await startSim({ seed: 11, size: N + 30, latencyMs: 0 });
const names = sim.world.usernames();
const s = await scenario(`scbenchphase_${process.pid}`, {
  IG_BASE_URL: sim.url,
  WORKER_CONCURRENCY: '50',
  ...JSON.parse(process.env.EXTRA ?? '{}'),
});
try {
  s.startWorkers(1);
  await s.checks(names.slice(0, 20));
  const t = await s.checks(names.slice(20, 20 + N));
  console.log('checks/s', (N / t).toFixed(0), 'secs', t.toFixed(2));
  const c = new pg.Client({ connectionString: s.env.DATABASE_URL });
  await c.connect();
  const r = await c.query(
    `select percentile_cont(array[0.5,0.9]) within group (order by total_ms) t, percentile_cont(array[0.5,0.9]) within group (order by profile_ms) p, percentile_cont(array[0.5,0.9]) within group (order by stories_ms) s, percentile_cont(array[0.5,0.9]) within group (order by extract(epoch from (at - finished_at))*1000) commitlag, percentile_cont(array[0.5,0.9]) within group (order by extract(epoch from (finished_at - started_at))*1000) job, avg(requests) req from batch_log where event='check'`,
  );
  console.log(r.rows[0]);
  await c.end();
} finally {
  await s.close();
  await sim.close();
}
