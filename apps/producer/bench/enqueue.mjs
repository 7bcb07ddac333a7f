#!/usr/bin/env node
// Enqueue benchmark (issue 7/10): `storycheck enqueue` of N names beside bare BullMQ addBulk of
// the same N jobs in the same run (a ratio, because this machine is shared and noisy), and the
// peak memory of enqueueing a 1,000,000-line file. Prints numbers; never asserts.
//   node bench/enqueue.mjs            100,000 names ×3 (median) + the 1M-line memory run
//   node bench/enqueue.mjs --quick    10,000 names ×1, no 1M run (CI keeps it working)
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';
import { migrate } from '@storycheck/db';
import { CHECK_JOB, CHECK_JOB_OPTIONS, checkJobId } from '@storycheck/queue';

const quick = process.argv.includes('--quick');
const N = quick ? 10_000 : 100_000;
const RUNS = quick ? 1 : 3;
const CHUNK = 1_000;
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const PG = process.env.BENCH_PG_SERVER ?? 'postgres://postgres@127.0.0.1:5432';
const CLI = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const tag = `scbench_${process.pid}`;
const dbUrl = `${PG}/${tag}`;
const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
const fmt = (n) => Math.round(n).toLocaleString('en-US');
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function wipe(prefix) {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 5000);
    cursor = next;
    if (keys.length) await redis.del(...keys);
  } while (cursor !== '0');
}

async function bareAddBulk(names) {
  const prefix = `${tag}-bare-${randomUUID().slice(0, 8)}`;
  const q = new Queue('story-check', {
    connection: redis,
    prefix,
    defaultJobOptions: CHECK_JOB_OPTIONS,
  });
  const batchId = randomUUID();
  const t0 = performance.now();
  for (let i = 0; i < names.length; i += CHUNK) {
    await q.addBulk(
      names.slice(i, i + CHUNK).map((username) => ({
        name: CHECK_JOB,
        data: { batchId, username },
        opts: { jobId: checkJobId(batchId, username) },
      })),
    );
  }
  const ms = performance.now() - t0;
  await q.close();
  await wipe(prefix);
  return ms;
}

/** Runs the CLI; returns wall ms and the peak RSS (VmHWM) read from /proc while it ran. */
function enqueueCli(file, prefix) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [CLI, 'enqueue', file, '--json'], {
      env: {
        ...process.env,
        DATABASE_URL: dbUrl,
        REDIS_URL,
        STORYCHECK_PREFIX: prefix,
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    let peakKb = 0;
    child.stdout.on('data', (d) => (out += d));
    const poll = setInterval(async () => {
      try {
        const st = await readFile(`/proc/${child.pid}/status`, 'utf8');
        const m = /VmHWM:\s+(\d+)/.exec(st);
        if (m) peakKb = Math.max(peakKb, Number(m[1]));
      } catch {
        // exited
      }
    }, 50);
    child.on('exit', (code) => {
      clearInterval(poll);
      if (code !== 0) return reject(new Error(`enqueue exited ${code}`));
      resolve({
        ms: performance.now() - t0,
        peakMb: peakKb / 1024,
        accepted: JSON.parse(out).accepted,
      });
    });
  });
}

const dir = await mkdtemp(join(tmpdir(), 'scbench-'));
try {
  await migrate(dbUrl);
  const names = Array.from({ length: N }, (_, i) => `bench_${i.toString(36)}.x`);
  const file = join(dir, 'names.txt');
  await writeFile(file, names.join('\n'));
  const bare = [];
  const ours = [];
  for (let r = 0; r < RUNS; r++) {
    bare.push(await bareAddBulk(names));
    const prefix = `${tag}-cli-${r}`;
    const res = await enqueueCli(file, prefix);
    if (res.accepted !== N) throw new Error(`accepted ${res.accepted} of ${N}`);
    ours.push(res.ms);
    await wipe(prefix);
  }
  const b = median(bare);
  const o = median(ours);
  console.log(
    `enqueue: ${fmt(N)} names ${(o / 1000).toFixed(1)} s (${fmt(N / (o / 1000))}/s, process start included); ` +
      `bare addBulk ${(b / 1000).toFixed(1)} s (${fmt(N / (b / 1000))}/s); ratio ${(b / o).toFixed(2)} (goal >= 0.5); median of ${RUNS}`,
  );
  console.log(
    `BENCH ${JSON.stringify({ name: 'enqueue names/s', value: N / (o / 1000), unit: 'names/s' })}`,
  );
  console.log(
    `BENCH ${JSON.stringify({ name: 'enqueue ratio to bare addBulk', value: b / o, unit: 'ratio', goal: '>= 0.5' })}`,
  );
  if (!quick) {
    const big = join(dir, '1m.txt');
    const lines = [];
    for (let i = 0; i < 1_000_000; i++) lines.push(`m_${i.toString(36)}.y`);
    await writeFile(big, lines.join('\n'));
    lines.length = 0;
    const prefix = `${tag}-1m`;
    const res = await enqueueCli(big, prefix);
    console.log(
      `enqueue: 1,000,000-line file peak RSS ${fmt(res.peakMb)} MB (goal < 300 MB) in ${(res.ms / 1000).toFixed(0)} s`,
    );
    console.log(
      `BENCH ${JSON.stringify({ name: 'enqueue 1M-line peak RSS', value: res.peakMb, unit: 'MB', goal: '< 300' })}`,
    );
    await wipe(prefix);
  }
} finally {
  await rm(dir, { recursive: true, force: true });
  redis.disconnect();
  const admin = new pg.Client({ connectionString: `${PG}/postgres` });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${tag} WITH (FORCE)`);
  await admin.end();
}
