#!/usr/bin/env node
// The Redis side of a check (issue 19, docs/deploy.md "Capacity"): a private redis-server (its
// counters are this run's alone), 8 sessions on 2 loopback proxies, 2 workers, a batch of fresh
// names (cold caches) against the simulator. After the imports the counters are reset
// (CONFIG RESETSTAT); after the batch, INFO gives commands, network bytes and the server's CPU
// time, divided here by the checks. Then the checks/s one Redis core could carry at that cost.
// Prints; never asserts.   node bench/capacity.mjs [--quick]
import { spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import { migrate } from '@storycheck/db';
import { startPrivateRedis } from '@storycheck/testkit';
import { startProxies, startSim } from '@storycheck/upstream-sim';
import { CLI, PG, WORKER, benchLine, dropDb, fmt } from './lib.mjs';

const quick = process.argv.includes('--quick');
const N = quick ? 300 : 2000;
const SESSIONS = 8;
const RATE = 50; // per session per second: high, so the run is short; the Redis work per check does not depend on it
const tag = `scbenchcap_${process.pid}`;
const sid = (n) => `${3_000_000 + n}%3Acapacitybench%3A${n}`;
const redisServer = await startPrivateRedis();
const proxies = await startProxies({ count: 2 });
const sim = await startSim({
  seed: 19,
  size: N + 10,
  latencyMs: 20,
  requireSession: true,
  sessions: Array.from({ length: SESSIONS }, (_, i) => ({ sessionid: sid(i), label: `s${i}` })),
});
const env = {
  ...process.env,
  DATABASE_URL: `${PG}/${tag}`,
  REDIS_URL: redisServer.url,
  STORYCHECK_PREFIX: tag,
  IG_BASE_URL: sim.url,
  LOG_LEVEL: 'error',
  STORYCHECK_SECRET_KEY: Buffer.alloc(32, 5).toString('base64'),
  ALLOW_PRIVATE_PROXIES: 'true',
  SESSION_RATE: `${RATE}/1s`,
  SESSION_BURST: '5',
  PROXY_RATE: `${RATE * SESSIONS}/1s`,
  PROXY_BURST: '10',
  WORKER_CONCURRENCY: '20',
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

/** INFO section as a map of field → string. */
async function info(redis, section) {
  const out = {};
  for (const line of (await redis.info(section)).split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

const workers = [];
const admin = new Redis(redisServer.url);
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
        ds_user_id: String(3_000_000 + i),
        proxy: `p${(i % 2) + 1}`,
      }),
    ).join('\n'),
  );
  for (let i = 0; i < 2; i++)
    workers.push(
      spawn(process.execPath, [WORKER], { env, stdio: ['ignore', 'ignore', 'inherit'] }),
    );
  // Let the workers connect and settle before counting.
  await new Promise((r) => setTimeout(r, 3_000));
  const mem0 = Number((await info(admin, 'memory')).used_memory);
  const cpu0 = await info(admin, 'cpu');
  await admin.config('RESETSTAT');
  const t0 = Date.now();
  await cli(['enqueue', '-', '--wait'], sim.world.usernames().slice(0, N).join('\n'));
  const secs = (Date.now() - t0) / 1000;
  const stats = await info(admin, 'stats');
  const cpu1 = await info(admin, 'cpu');
  const mem1 = Number((await info(admin, 'memory')).used_memory);
  const cmd = await info(admin, 'commandstats');
  const byCommand = Object.entries(cmd)
    .map(([k, v]) => {
      const m = /calls=(\d+),usec=(\d+)/.exec(v);
      return { name: k.replace('cmdstat_', ''), calls: Number(m?.[1]), usec: Number(m?.[2]) };
    })
    .sort((a, b) => b.usec - a.usec);
  const calls = byCommand.reduce((a, c) => a + c.calls, 0);
  const cmdUsec = byCommand.reduce((a, c) => a + c.usec, 0);
  const cpuSecs =
    Number(cpu1.used_cpu_user) +
    Number(cpu1.used_cpu_sys) -
    Number(cpu0.used_cpu_user) -
    Number(cpu0.used_cpu_sys);
  const bytesIn = Number(stats.total_net_input_bytes);
  const bytesOut = Number(stats.total_net_output_bytes);
  const requests = sim.requestLog().length;
  const cpuUsPerCheck = (cpuSecs * 1e6) / N;
  console.log(
    `capacity: ${N} names in ${secs.toFixed(1)} s (${fmt(N / secs, 1)} checks/s, ${requests} upstream requests); ` +
      `per check: ${fmt(calls / N, 1)} Redis commands (${fmt(cmdUsec / N)} µs inside commands), ` +
      `${fmt(bytesIn / N)} B in, ${fmt(bytesOut / N)} B out, ${fmt(cpuUsPerCheck)} µs Redis CPU (user+sys); ` +
      `memory +${fmt((mem1 - mem0) / 1024)} KB over the run`,
  );
  console.log(
    `  top commands by time: ${byCommand
      .slice(0, 8)
      .map((c) => `${c.name} ${fmt(c.calls / N, 2)}/check ${fmt(c.usec / c.calls, 1)} µs`)
      .join('; ')}`,
  );
  console.log(
    `  one Redis core at 100% would carry ≈ ${fmt(1e6 / cpuUsPerCheck)} checks/s at this cost ` +
      `(${fmt(1e6 / (cmdUsec / N))} counting only time inside commands)`,
  );
  benchLine('redis commands per check', calls / N, 'commands');
  benchLine('redis bytes in per check', bytesIn / N, 'bytes');
  benchLine('redis bytes out per check', bytesOut / N, 'bytes');
  benchLine('redis cpu per check', cpuUsPerCheck, 'µs');
  benchLine('redis checks/s per core (extrapolated)', 1e6 / cpuUsPerCheck, 'checks/s');
} finally {
  for (const w of workers) w.kill('SIGTERM');
  await Promise.all(workers.map((w) => new Promise((r) => w.on('exit', r))));
  admin.disconnect();
  await sim.close();
  await proxies.close();
  await redisServer.stop();
  await dropDb(tag);
}
