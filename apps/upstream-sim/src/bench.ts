#!/usr/bin/env node
/**
 * Benchmark: how many requests per second the simulator serves on this machine. The simulator
 * runs as its own process (the shipped CLI, so one core), the clients here in this process over
 * loopback keep-alive connections. Each phase sends up to `--requests` requests or stops after
 * `--max-secs`, whichever comes first, after a short warm-up. No assertions: it prints one line,
 *   sim: 6,200 req/s (profile), 5,100 req/s (reels_media, 20 ids), 3,900 req/s (profile via proxy)
 * and per-phase details on stderr.
 */
import { spawn } from 'node:child_process';
import { Agent, request } from 'node:http';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { coerceError } from '@storycheck/logger';

const APP_ID = '936619743392459';
const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

interface Phase {
  name: string;
  /** Where the requests go (origin of the simulator, or a proxy). */
  via: { host: string; port: number; absolute: boolean };
  /** The n-th request's path (origin-form). */
  path: (n: number) => string;
}

interface PhaseResult {
  done: number;
  failed: number;
  elapsedMs: number;
}

function argInt(raw: string | undefined, fallback: number, name: string): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    process.stderr.write(`bench: --${name} must be a positive integer\n`);
    process.exit(2);
  }
  return n;
}

/** Runs one phase with `concurrency` workers until `total` requests or `maxMs` elapse. */
async function runPhase(
  phase: Phase,
  target: string,
  total: number,
  maxMs: number,
  concurrency: number,
): Promise<PhaseResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  let next = 0;
  let done = 0;
  let failed = 0;
  const started = performance.now();
  const deadline = started + maxMs;
  const one = (n: number): Promise<void> =>
    new Promise((resolve) => {
      const path = phase.path(n);
      const req = request(
        {
          host: phase.via.host,
          port: phase.via.port,
          path: phase.via.absolute ? `${target}${path}` : path,
          headers: { 'X-IG-App-ID': APP_ID, Host: new URL(target).host },
          agent,
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            if (res.statusCode === 200) done++;
            else failed++;
            resolve();
          });
        },
      );
      req.on('error', () => {
        failed++;
        resolve();
      });
      req.end();
    });
  const worker = async (): Promise<void> => {
    while (next < total && performance.now() < deadline) await one(next++);
  };
  await Promise.all(Array.from({ length: concurrency }, () => worker()));
  const elapsedMs = performance.now() - started;
  agent.destroy();
  return { done, failed, elapsedMs };
}

/** The benchmark's phases, asking `sim` (directly or through `proxy`) about real users. */
async function benchPhases(sim: URL, proxy: URL, size: number): Promise<Phase[]> {
  // The same world the child built (seed 42), so requests ask for real users.
  const { createWorld } = await import('./world.js');
  const world = createWorld({ seed: 42, size, epochSecs: 0 });
  const names = world.usernames();
  const ids = world.users.map((u) => u.userId);
  const pick = <T>(list: readonly T[], n: number): T => list[(n * 7919) % list.length] as T;
  const direct = { host: sim.hostname, port: Number(sim.port), absolute: false };
  return [
    {
      name: 'profile',
      via: direct,
      path: (n) => `/api/v1/users/web_profile_info/?username=${pick(names, n)}`,
    },
    {
      name: 'reels_media, 20 ids',
      via: direct,
      path: (n) =>
        `/api/v1/feed/reels_media/?${Array.from({ length: 20 }, (_, k) => `reel_ids=${pick(ids, n * 20 + k)}`).join('&')}`,
    },
    {
      name: 'profile via proxy',
      via: { host: proxy.hostname, port: Number(proxy.port), absolute: true },
      path: (n) => `/api/v1/users/web_profile_info/?username=${pick(names, n)}`,
    },
  ];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      requests: { type: 'string' },
      'max-secs': { type: 'string' },
      concurrency: { type: 'string' },
      size: { type: 'string' },
    },
  });
  const total = argInt(values.requests, 20_000, 'requests');
  const maxMs = argInt(values['max-secs'], 6, 'max-secs') * 1000;
  const concurrency = argInt(values.concurrency, 32, 'concurrency');
  const size = argInt(values.size, 10_000, 'size');

  const child = spawn(
    process.execPath,
    [MAIN, '--port', '0', '--size', String(size), '--proxies', '1', '--log-level', 'error'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    let stdout = '';
    child.stdout.setEncoding('utf8');
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (chunk: string) => {
        stdout += chunk;
        if (stdout.split('\n').length >= 3) resolve();
      });
      child.once('exit', (code) => reject(new Error(`storycheck-sim exited with ${code}`)));
    });
    const simUrl = /listening on (http:\/\/[^\s]+)/.exec(stdout)?.[1];
    const proxyUrl = /proxy p1 (http:\/\/[^\s]+)/.exec(stdout)?.[1];
    if (!simUrl || !proxyUrl) throw new Error(`unexpected simulator output: ${stdout}`);
    const sim = new URL(simUrl);
    const proxy = new URL(proxyUrl);

    const phases = await benchPhases(sim, proxy, size);
    const parts: string[] = [];
    for (const phase of phases) {
      await runPhase(phase, simUrl, 1000, 2000, concurrency); // warm-up: JIT, caches, sockets
      const r = await runPhase(phase, simUrl, total, maxMs, concurrency);
      const rps = Math.round((r.done / r.elapsedMs) * 1000);
      process.stderr.write(
        `bench: ${phase.name}: ${r.done} ok, ${r.failed} failed in ${Math.round(r.elapsedMs)} ms ` +
          `(concurrency ${concurrency})\n`,
      );
      parts.push(`${rps.toLocaleString('en-US')} req/s (${phase.name})`);
      process.stdout.write(
        `BENCH ${JSON.stringify({ name: `sim ${phase.name} req/s`, value: rps, unit: 'req/s' })}\n`,
      );
    }
    process.stderr.write(
      `bench: ${cpus().length} CPUs, ${cpus()[0]?.model ?? 'unknown CPU'}, node ${process.version}\n`,
    );
    process.stdout.write(`sim: ${parts.join(', ')}\n`);
  } finally {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${coerceError(err).message}\n`);
  process.exitCode = 1;
});
