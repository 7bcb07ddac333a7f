#!/usr/bin/env node
// Requests per check (issues 4, 6): one worker process, the simulator on loopback, N names run
// three times — cold caches, warm user-id cache (results emptied), warm result cache — and the
// upstream requests each run cost, from the simulator's own counters. Prints; never asserts.
// The original design spent 2.0 requests per username (profile + stories).
//   node bench/requests.mjs [--quick]      1,000 names (--quick: 200)
import { spawn } from 'node:child_process';
import { migrate } from '@storycheck/db';
import { CLI, PG, REDIS_URL, WORKER, dropDb, wipeRedis } from './lib.mjs';
import { startSim } from '@storycheck/upstream-sim';

const quick = process.argv.includes('--quick');
const N = quick ? 200 : 1000;
const tag = `scbenchreq_${process.pid}`;
const sim = await startSim({ seed: 77, size: N + 100, latencyMs: 20 });
const env = {
  ...process.env,
  DATABASE_URL: `${PG}/${tag}`,
  REDIS_URL,
  STORYCHECK_PREFIX: tag,
  IG_BASE_URL: sim.url,
  LOG_LEVEL: 'warn',
};
const run = (args, input) =>
  new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CLI, ...args], { env, stdio: ['pipe', 'pipe', 'ignore'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${args[0]} exited ${code}`)),
    );
    p.stdin.end(input ?? '');
  });
await migrate(env.DATABASE_URL);
const worker = spawn(process.execPath, [WORKER], { env, stdio: ['ignore', 'ignore', 'inherit'] });
const names = sim.world.usernames().slice(0, N).join('\n');
const counts = () => ({ p: sim.stats().byKind.profile, s: sim.stats().byKind.reels_media });
try {
  for (const phase of ['cold caches', 'warm user-id cache', 'warm result cache']) {
    if (phase === 'warm user-id cache') await run(['cache', 'clear', '--results']);
    const c0 = counts();
    const t0 = performance.now();
    await run(['enqueue', '-', '--wait'], names);
    const c1 = counts();
    const req = c1.p - c0.p + (c1.s - c0.s);
    console.log(
      `requests per check, ${phase}: ${(req / N).toFixed(3)} (${c1.p - c0.p} profile + ${c1.s - c0.s} stories for ${N} names, ${((performance.now() - t0) / 1000).toFixed(1)} s; goal warm <= 0.15, original design 2.0)`,
    );
    console.log(
      `BENCH ${JSON.stringify({ name: `requests per check, ${phase}`, value: req / N, unit: 'requests/check', ...(phase === 'cold caches' ? {} : { goal: '<= 0.15' }) })}`,
    );
  }
} finally {
  worker.kill('SIGTERM');
  await new Promise((r) => worker.on('exit', r));
  await sim.close();
  await wipeRedis(tag);
  await dropDb(tag);
}
