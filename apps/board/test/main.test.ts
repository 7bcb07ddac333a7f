import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createRedis, openCheckQueue } from '@storycheck/queue';
import { REDIS_URL } from './helpers.js';

/** The built binary (tests run after `build`, as turbo's `test` task depends on it). */
const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const PREFIX = `sctest-board-main-${process.pid}`;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Starts `storycheck-board` with a clean environment plus `env`. */
function spawnBoard(env: Record<string, string>) {
  return spawn(process.execPath, [MAIN], {
    env: {
      PATH: process.env.PATH ?? '',
      REDIS_URL,
      STORYCHECK_PREFIX: PREFIX,
      LOG_FORMAT: 'json',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Runs the binary to its exit. */
function runBoard(env: Record<string, string>): Promise<Run> {
  const child = spawnBoard(env);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

describe('storycheck-board binary', () => {
  afterAll(async () => {
    // The board's queue writes its meta key under the prefix; leave nothing behind.
    const redis = createRedis(REDIS_URL, { name: 'board-main-test' });
    const queue = openCheckQueue(redis, PREFIX);
    await queue.obliterate({ force: true });
    await queue.close();
    await redis.quit();
  });

  it('prints its url, serves, and exits 0 on SIGTERM', async () => {
    const child = spawnBoard({ BOARD_PORT: '0', LOG_LEVEL: 'error' });
    const exited = new Promise<number | null>((resolve) =>
      child.on('close', (code) => resolve(code)),
    );
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /^storycheck-board listening on (http:\/\/\S+)\n/.exec(out);
        if (m?.[1]) resolve(m[1]);
      });
      child.on('close', (code) => reject(new Error(`exited ${String(code)} before listening`)));
    });
    const res = await fetch(`${url}/healthz`);
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });

  it('exits 2 with one line naming the variable on bad config', async () => {
    const run = await runBoard({ BOARD_PORT: 'abc' });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/^storycheck-board: invalid BOARD_PORT: [^\n]+\n$/);
    expect(run.stdout).toBe('');
  });

  it('exits 1 with one line when a public host has no password', async () => {
    const run = await runBoard({ BOARD_PORT: '0', BOARD_HOST: '0.0.0.0' });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^storycheck-board: [^\n]*BOARD_PASSWORD[^\n]*\n$/);
  });
});
