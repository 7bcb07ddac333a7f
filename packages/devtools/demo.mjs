#!/usr/bin/env node
// The README's demo command (`npm run demo`): installs and builds, migrates, starts the
// simulator, two workers and the board, enqueues the bundled sample of 200 names, shows
// progress, prints the counts and the board URL, then stops everything it started.
// `npm run demo -- --keep` leaves it all running until Ctrl-C so you can browse the board.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import {
  ROOT,
  bootstrap,
  freePort,
  portAnswers,
  requireServices,
  startChild,
  step,
  WORKER_HEAP_FLAGS,
} from './lib.mjs';

const keep = process.argv.includes('--keep');
const node = process.execPath;
const bin = (app) => join(ROOT, 'apps', app, 'dist', 'main.js');
const children = [];
let stopping = false;

async function stopAll(code) {
  if (stopping) return;
  stopping = true;
  step('stopping what the demo started');
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  const deadline = new Promise((r) => setTimeout(r, 25_000));
  await Promise.race([Promise.all(children.map((c) => c.exitPromise)), deadline]);
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  process.exit(code);
}
process.on('SIGINT', () => void stopAll(130));
process.on('SIGTERM', () => void stopAll(143));

async function waitForLine(child, pattern, what, timeoutMs = 20_000) {
  return new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(
      () => reject(new Error(`${what} did not start within ${timeoutMs} ms`)),
      timeoutMs,
    );
    child.stdout.on('data', (d) => {
      buf += d.toString();
      const m = pattern.exec(buf);
      if (m) {
        clearTimeout(t);
        resolve(m);
      }
    });
    child.exitPromise.then((code) => reject(new Error(`${what} exited early (${code})`)));
  });
}

try {
  bootstrap();
  const simPort = await freePort();
  const boardPort = (await portAnswers(3000)) ? await freePort() : 3000;
  // A throw-away password for this local demo, printed so you can log in; an operator's own
  // BOARD_PASSWORD is used but never printed.
  if (process.env.BOARD_PASSWORD) process.env.BOARD_PASSWORD_GIVEN = '1';
  const boardPassword = process.env.BOARD_PASSWORD ?? randomBytes(9).toString('base64url');
  const env = {
    DATABASE_URL: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/storycheck_demo',
    REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    STORYCHECK_PREFIX: process.env.STORYCHECK_PREFIX ?? 'storycheck-demo',
    IG_BASE_URL: `http://127.0.0.1:${simPort}`,
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    WORKER_CONCURRENCY: process.env.WORKER_CONCURRENCY ?? '5',
    BOARD_PORT: String(boardPort),
    BOARD_HOST: '127.0.0.1',
    BOARD_USER: process.env.BOARD_USER ?? 'admin',
    BOARD_PASSWORD: boardPassword,
  };
  Object.assign(process.env, env);
  await requireServices(env);

  step('migrating the database');
  const m = spawnSync(node, [bin('producer'), 'db', 'migrate'], {
    stdio: 'inherit',
    env: process.env,
  });
  if (m.status !== 0) throw new Error('db migrate failed');

  step(`starting the simulator, two workers and the board`);
  const sim = startChild(
    'sim',
    node,
    [
      bin('upstream-sim'),
      '--port',
      String(simPort),
      '--latency-ms',
      '60',
      '--latency-jitter-ms',
      '80',
    ],
    env,
    { quiet: true },
  );
  children.push(sim);
  await waitForLine(sim, /listening on (\S+)/, 'the simulator');
  children.push(startChild('worker-1', node, [...WORKER_HEAP_FLAGS, bin('worker')], env));
  children.push(startChild('worker-2', node, [...WORKER_HEAP_FLAGS, bin('worker')], env));
  const board = startChild('board', node, [bin('board')], env, { quiet: true });
  children.push(board);
  const [, boardUrl] = await waitForLine(board, /listening on (\S+)/, 'the board');

  step('enqueueing the sample batch (200 names) and following it');
  const sample = join(ROOT, 'packages', 'devtools', 'samples', 'demo-200.txt');
  const e = spawnSync(node, [bin('producer'), 'enqueue', sample, '--name', 'demo', '--wait'], {
    stdio: 'inherit',
    env: process.env,
  });
  if (e.status !== 0) throw new Error('enqueue failed');

  process.stdout.write(
    `\nbull-board: ${boardUrl}  (user ${env.BOARD_USER}, ` +
      `${process.env.BOARD_PASSWORD_GIVEN ? 'password from BOARD_PASSWORD' : `demo password ${boardPassword}`})\n` +
      `batches:    DATABASE_URL=${env.DATABASE_URL} node_modules/.bin/storycheck batches list\n`,
  );
  if (keep) {
    step('running until Ctrl-C (--keep)');
    await new Promise(() => {});
  }
  await stopAll(0);
} catch (err) {
  process.stderr.write(`demo: ${err.message}\n`);
  await stopAll(1);
}
