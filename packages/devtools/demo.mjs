#!/usr/bin/env node
// The README's demo command (`npm run demo`): installs and builds, migrates, starts the
// simulator with two loopback proxies, imports six simulated sessions (one the simulator logs
// out, one it challenges, one it throttles early) and the two proxies, starts two workers and
// the board, enqueues the bundled sample of 200 names, shows progress, prints the counts and
// what the pool did (requests, throttled answers, cooldowns, sessions retired) and the board
// URL, then stops everything it started. The budgets are low on purpose, so the limiter, a
// throttle and a cooldown all happen within the 200 names.
// `npm run demo -- --keep` leaves it all running until Ctrl-C so you can browse the board.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
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
// Scenario and import files (fake cookies, proxy password): removed when the demo stops.
const scratch = mkdtempSync(join(tmpdir(), 'storycheck-demo-'));

/**
 * The demo's pool. Budgets (requests per second) are set so the 200 names take a few dozen
 * seconds: our SESSION_RATE 4/1s on each of 4 usable sessions and PROXY_RATE 6/1s on each of
 * 2 proxies make the proxies the limit (12/s), so requests wait for budget (the limiter); the
 * simulator allows acct4 only 1/1s, so it is throttled and cools down, then is tried again.
 */
const DEMO_SESSIONS = [
  { label: 'acct1', proxy: 'p1' },
  { label: 'acct2', proxy: 'p1' },
  { label: 'acct3', proxy: 'p2' },
  // The simulator's budget for it is below ours: throttled, cooled down, retried later.
  { label: 'acct4', proxy: 'p2', sim: { budget: { rate: '1/1s', burst: 2 } } },
  // Logged out on the simulator: retired (invalid) at its first answer.
  { label: 'acct5-logged-out', proxy: 'p1', sim: { state: 'dead' } },
  // Challenged on the simulator: retired (challenge) at its first answer.
  { label: 'acct6-challenged', proxy: 'p2', sim: { state: 'challenge' } },
];
const DEMO_BUDGETS = {
  SESSION_RATE: '4/1s',
  SESSION_BURST: '3',
  PROXY_RATE: '6/1s',
  PROXY_BURST: '4',
  // Short cooldowns, so a throttled session comes back within the demo.
  THROTTLE_BACKOFF_BASE: '3s',
  THROTTLE_BACKOFF_CAP: '15s',
};
const sessionId = (i) =>
  `${7_100_000 + i}%3A${randomBytes(8).toString('hex')}%3A${i}%3A${randomBytes(12).toString('hex')}`;

async function stopAll(code) {
  if (stopping) return;
  stopping = true;
  step('stopping what the demo started');
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  const deadline = new Promise((r) => setTimeout(r, 25_000));
  await Promise.race([Promise.all(children.map((c) => c.exitPromise)), deadline]);
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(scratch, { recursive: true, force: true });
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
  const boardPort = process.env.BOARD_PORT ?? ((await portAnswers(3000)) ? await freePort() : 3000);
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
    // A fresh key per run: the demo re-imports every demo session and proxy, re-encrypting them.
    STORYCHECK_SECRET_KEY: randomBytes(32).toString('base64'),
    // The simulator's proxies listen on 127.0.0.1.
    ALLOW_PRIVATE_PROXIES: 'true',
    ...DEMO_BUDGETS,
  };
  Object.assign(process.env, env);
  await requireServices(env);
  const cli = (args, what) => {
    const r = spawnSync(node, [bin('producer'), ...args], { encoding: 'utf8', env: process.env });
    if (r.status !== 0) throw new Error(`${what} failed: ${r.stderr.trim() || `exit ${r.status}`}`);
    return r.stdout;
  };

  step('migrating the database');
  const m = spawnSync(node, [bin('producer'), 'db', 'migrate'], {
    stdio: 'inherit',
    env: process.env,
  });
  if (m.status !== 0) throw new Error('db migrate failed');

  step('starting the simulator (6 sessions it knows, 2 loopback proxies)');
  const sessions = DEMO_SESSIONS.map((s, i) => ({ ...s, sessionid: sessionId(i + 1) }));
  const scenarioFile = join(scratch, 'scenario.json');
  writeFileSync(
    scenarioFile,
    JSON.stringify({
      name: 'demo-pool',
      description: 'npm run demo: sessions required, one logged out, one challenged, one throttled',
      latencyMs: 60,
      latencyJitterMs: 80,
      requireSession: true,
      sessions: sessions.map((s) => ({ sessionid: s.sessionid, label: s.label, ...s.sim })),
      budgets: { penaltyMs: 4_000 },
    }),
  );
  const proxyPass = randomBytes(9).toString('hex');
  const sim = startChild(
    'sim',
    node,
    [
      bin('upstream-sim'),
      '--port',
      String(simPort),
      '--scenario',
      scenarioFile,
      '--proxies',
      '2',
      '--proxy-auth',
      `demo:${proxyPass}`,
      '--log-level',
      'error',
    ],
    env,
    { quiet: true },
  );
  children.push(sim);
  // One write carries the listening line and a line per proxy.
  const [, simUrl, p1Url, p2Url] = await waitForLine(
    sim,
    /listening on (\S+)[\s\S]*?proxy p1 (\S+)[\s\S]*?proxy p2 (\S+)/,
    'the simulator and its proxies',
  );
  const withAuth = (url) => {
    const u = new URL(url);
    u.username = 'demo';
    u.password = proxyPass;
    return u.toString().replace(/\/$/, '');
  };
  const proxyFile = join(scratch, 'proxies.txt');
  writeFileSync(proxyFile, `p1=${withAuth(p1Url)}\np2=${withAuth(p2Url)}\n`);
  const sessionFile = join(scratch, 'sessions.json');
  writeFileSync(
    sessionFile,
    JSON.stringify(
      sessions.map((s) => ({ label: s.label, sessionid: s.sessionid, proxy: s.proxy })),
    ),
  );
  step('importing 2 proxies and 6 sessions (storycheck proxies import / sessions import)');
  process.stdout.write(cli(['proxies', 'import', proxyFile], 'proxies import'));
  process.stdout.write(cli(['sessions', 'import', sessionFile], 'sessions import'));
  process.stdout.write(
    `budgets: SESSION_RATE ${env.SESSION_RATE} (burst ${env.SESSION_BURST}), PROXY_RATE ${env.PROXY_RATE} (burst ${env.PROXY_BURST}); ` +
      `the simulator allows acct4 only 1/1s\n`,
  );

  // A demo run before this one left its answers in the result and user-id caches: without
  // clearing them the batch would be answered from Redis and the pool would have nothing to do.
  process.stdout.write(cli(['cache', 'clear', '--user-ids', '--results'], 'cache clear'));
  // Usage counters live on across runs; the summary shows this run's share.
  const usageBefore = new Map(
    JSON.parse(cli(['sessions', 'list', '--json'], 'sessions list')).map((s) => [s.label, s.usage]),
  );

  step(`starting two workers and the board`);
  // Each worker serves /metrics on a port of its own: the summary reads the limiter's waits.
  const metricsUrls = [];
  for (const name of ['worker-1', 'worker-2']) {
    const port = await freePort();
    metricsUrls.push(`http://127.0.0.1:${port}/metrics`);
    children.push(
      startChild(name, node, [...WORKER_HEAP_FLAGS, bin('worker')], {
        ...env,
        WORKER_HTTP_PORT: String(port),
      }),
    );
  }
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

  step('what the pool did');
  process.stdout.write(await poolSummary(simUrl, metricsUrls, usageBefore, cli));

  process.stdout.write(
    `\nbull-board: ${boardUrl}  (user ${env.BOARD_USER}, ` +
      `${process.env.BOARD_PASSWORD_GIVEN ? 'password from BOARD_PASSWORD' : `demo password ${boardPassword}`})\n` +
      `pool:       ${boardUrl}/pool   batches: ${boardUrl}/batches\n` +
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

/**
 * The closing summary: the upstream's count of requests and throttled answers (the simulator's
 * own counters, this run only), the limiter's waits (the workers' metrics), then each session as
 * the pool left it (`storycheck sessions list --json`): requests this run, state, cooldown, last
 * error; sessions retired and cooldowns are counted.
 */
async function poolSummary(simUrl, metricsUrls, usageBefore, cli) {
  const stats = await (await globalThis.fetch(`${simUrl}/__sim/stats`)).json();
  // The limiter: leases granted, and those that waited for budget (over 10 ms), from the
  // workers' storycheck_limiter_wait_seconds histogram.
  let leases = 0;
  let waited = 0;
  let waitedS = 0;
  for (const url of metricsUrls) {
    const text = await globalThis
      .fetch(url)
      .then((r) => r.text())
      .catch(() => '');
    const value = (re) => Number(re.exec(text)?.[1] ?? 0);
    const count = value(/^storycheck_limiter_wait_seconds_count (\S+)$/m);
    leases += count;
    waited += count - value(/^storycheck_limiter_wait_seconds_bucket\{le="0.01"\} (\S+)$/m);
    waitedS += value(/^storycheck_limiter_wait_seconds_sum (\S+)$/m);
  }
  const sessions = JSON.parse(cli(['sessions', 'list', '--json'], 'sessions list'));
  const outcomes = stats.byOutcome ?? {};
  const throttled = (outcomes['throttled:session'] ?? 0) + (outcomes['throttled:ip'] ?? 0);
  const demo = sessions.filter((s) => DEMO_SESSIONS.some((d) => d.label === s.label));
  const retired = demo.filter((s) => ['invalid', 'challenge', 'suspended'].includes(s.status));
  const cooled = demo.filter((s) => s.cooldownLeftMs > 0 || /throttl/.test(s.lastError ?? ''));
  const lines = [
    `upstream requests: ${stats.totalRequests}  (throttled answers: ${throttled}, ` +
      `logged out / challenged answers: ${
        (outcomes['logged-out'] ?? 0) +
        Object.entries(outcomes)
          .filter(([k]) => k.startsWith('session:'))
          .reduce((a, [, v]) => a + v, 0)
      })`,
    `limiter: ${waited} of ${leases} leases waited for session/proxy budget (${waitedS.toFixed(1)} s in all)`,
    `throttles handled: ${throttled} (sessions cooled down: ${cooled.map((s) => s.label).join(', ') || 'none'})`,
    `sessions retired: ${retired.length}${retired.length ? ` (${retired.map((s) => `${s.label}: ${s.status}`).join(', ')})` : ''}`,
    ...demo.map(
      (s) =>
        `  ${s.label.padEnd(18)} ${s.status.padEnd(9)} ${String(s.usage - (usageBefore.get(s.label) ?? 0)).padStart(4)} requests` +
        `${s.cooldownLeftMs > 0 ? `  cooling ${Math.ceil(s.cooldownLeftMs / 1000)}s` : ''}` +
        `${s.lastError ? `  last error ${s.lastError}` : ''}`,
    ),
  ];
  return `${lines.join('\n')}\n`;
}
