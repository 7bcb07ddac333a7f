#!/usr/bin/env node
// Budget utilization (issue 5/10): 4 sessions on 2 real loopback proxies, 2 worker processes, a
// simulator enforcing per-session and per-IP budgets equal to the configured ones. Prints the
// upstream requests achieved against the ceiling the budgets allow, and the 429 count (goal 0).
// Prints; never asserts.   node bench/pool.mjs [--quick]
import { spawn } from 'node:child_process';
import { migrate } from '@storycheck/db';
import { CLI, PG, REDIS_URL, WORKER, benchSeries, dropDb, wipeRedis } from './lib.mjs';
import { startProxies, startSim } from '@storycheck/upstream-sim';

const quick = process.argv.includes('--quick');
const N = quick ? 200 : 2000;
const SESSIONS = 4;
const RATE = quick ? 10 : 8; // requests per second per session; proxies get 2 sessions' worth
const tag = `scbenchpool_${process.pid}`;
const sid = (n) => `${2_000_000 + n}%3Abenchbenchbench%3A${n}`;
const proxies = await startProxies({ count: 2 });
const sim = await startSim({
  seed: 99,
  size: N + 10,
  latencyMs: 30,
  requireSession: true,
  sessions: Array.from({ length: SESSIONS }, (_, i) => ({ sessionid: sid(i), label: `s${i}` })),
  budgets: {
    session: { rate: `${RATE}/1s`, burst: 5 },
    ip: { rate: `${2 * RATE}/1s`, burst: 10 },
    penaltyMs: 10_000,
  },
});
const env = {
  ...process.env,
  DATABASE_URL: `${PG}/${tag}`,
  REDIS_URL,
  STORYCHECK_PREFIX: tag,
  IG_BASE_URL: sim.url,
  LOG_LEVEL: 'error',
  STORYCHECK_SECRET_KEY: Buffer.alloc(32, 3).toString('base64'),
  ALLOW_PRIVATE_PROXIES: 'true',
  SESSION_RATE: `${RATE}/1s`,
  SESSION_BURST: '5',
  PROXY_RATE: `${2 * RATE}/1s`,
  PROXY_BURST: '10',
};
const cli = (args, input = '') =>
  new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CLI, ...args], {
      env,
      stdio: ['pipe', 'ignore', 'inherit'],
    });
    p.on('exit', (c) => (c === 0 ? resolve() : reject(new Error(`${args.join(' ')} exited ${c}`))));
    p.stdin.end(input);
  });
const workers = [];
try {
  await migrate(env.DATABASE_URL);
  await cli(
    ['proxies', 'import', '-'],
    proxies.proxies.map((p) => `${p.label}=${p.url}`).join('\n'),
  );
  await cli(
    ['sessions', 'import', '-'],
    Array.from({ length: SESSIONS }, (_, i) =>
      JSON.stringify({
        label: `s${i}`,
        sessionid: sid(i),
        ds_user_id: String(2_000_000 + i),
        proxy: `p${(i % 2) + 1}`,
      }),
    ).join('\n'),
  );
  for (let i = 0; i < 2; i++)
    workers.push(
      spawn(process.execPath, [WORKER], { env, stdio: ['ignore', 'ignore', 'inherit'] }),
    );
  const t0 = Date.now();
  await cli(['enqueue', '-', '--wait'], sim.world.usernames().slice(0, N).join('\n'));
  const secs = (Date.now() - t0) / 1000;
  const log = sim.requestLog();
  const first = Math.min(...log.map((e) => e.timeMs));
  const last = Math.max(...log.map((e) => e.timeMs));
  const window = (last - first) / 1000;
  const ceiling = SESSIONS * (5 + RATE * window); // burst + rate·W per session (proxies allow the same)
  const throttled = log.filter(
    (e) => e.status === 429 || (e.status === 401 && e.kind !== 'current_user'),
  ).length;
  console.log(
    `pool: ${N} names in ${secs.toFixed(1)} s; ${log.length} upstream requests in ${window.toFixed(1)} s; ` +
      `ceiling ${Math.floor(ceiling)} (4 sessions × ${RATE}/s + burst); utilization ${(log.length / ceiling).toFixed(3)} ` +
      `(goal >= 0.95; BUDGET_MARGIN ${process.env.BUDGET_MARGIN || '0.03 (default)'} holds the rates that much under); throttled answers ${throttled} (goal 0)`,
  );
  for (const [name, value, unit, goal] of [
    ['pool checks/s', N / secs, 'checks/s'],
    ['pool upstream requests/s', log.length / window, 'requests/s'],
    ['pool ceiling requests/s', ceiling / window, 'requests/s'],
    ['pool utilization', log.length / ceiling, 'ratio', '>= 0.95'],
    ['pool throttled answers', throttled, 'count', '== 0'],
  ])
    console.log(`BENCH ${JSON.stringify({ name, value, unit, ...(goal ? { goal } : {}) })}`);
  benchSeries('pool', log, {
    title: `pool: ${SESSIONS} sessions on 2 proxies, 2 workers, ${N} names`,
    ceilings: [{ value: SESSIONS * RATE, label: `budgets allow ${SESSIONS} × ${RATE}/s` }],
  });
} finally {
  for (const w of workers) w.kill('SIGTERM');
  await Promise.all(workers.map((w) => new Promise((r) => w.on('exit', r))));
  await sim.close();
  await proxies.close();
  await wipeRedis(tag);
  await dropDb(tag);
}
