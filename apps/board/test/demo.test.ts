/**
 * `npm run demo -- --keep` end to end (node packages/devtools/demo.mjs), on a throw-away
 * database and Redis prefix: it must finish the 200-name batch through the real pool and say
 * so — at least one throttle handled, the two sessions the simulator logs out and challenges
 * retired, requests that waited for budget. While it keeps running, Chromium opens its pool page
 * (screenshot: apps/board/test-artifacts/demo-pool.png), which must show the same: the retired
 * sessions and throttled answers. Ctrl-C (SIGINT) then stops everything the demo started.
 * Lives with the board's tests for their Chromium; without one only the page part is skipped.
 */
import { existsSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import {
  createTestDatabase,
  createTestPrefix,
  freePort,
  spawnNode,
  waitFor,
  type Spawned,
  type TestDatabase,
  type TestPrefix,
} from '@storycheck/testkit';

const DEMO = fileURLToPath(new URL('../../../packages/devtools/demo.mjs', import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = fileURLToPath(new URL('../test-artifacts/', import.meta.url));
const PASSWORD = 'demo-test-password';

let tdb: TestDatabase;
let tp: TestPrefix;
let demo: Spawned | undefined;
beforeAll(async () => {
  tdb = await createTestDatabase();
  tp = createTestPrefix();
});
afterAll(async () => {
  await demo?.kill();
  await tp?.clean();
  await tdb?.drop();
});

const answers = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });

it('runs the real pool, shows it on the pool page, and stops everything on Ctrl-C', async () => {
  const boardPort = await freePort();
  demo = spawnNode(DEMO, ['--keep'], {
    DATABASE_URL: tdb.url,
    STORYCHECK_PREFIX: tp.prefix,
    BOARD_PORT: String(boardPort),
    BOARD_PASSWORD: PASSWORD,
  });
  demo.child.stdin!.end();
  const d = demo;
  await waitFor(
    () => d.stdout().includes('batches:    DATABASE_URL') || d.child.exitCode !== null,
    'the demo to finish its batch',
    480_000,
    500,
  );
  const out = d.stdout();
  if (d.child.exitCode !== null) process.stderr.write(`${out}\n${d.stderr()}`);
  expect(d.child.exitCode).toBeNull();
  expect(out).toMatch(/completed, 200\/200 done/);
  const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? NaN);
  expect(num(/^upstream requests: (\d+)/m)).toBeGreaterThanOrEqual(200);
  expect(num(/^throttles handled: (\d+)/m)).toBeGreaterThanOrEqual(1);
  expect(out).toMatch(
    /^sessions retired: 2 \(acct5-logged-out: invalid, acct6-challenged: challenge\)/m,
  );
  expect(num(/^limiter: (\d+) of \d+ leases waited/m)).toBeGreaterThanOrEqual(1);

  if (existsSync(CHROMIUM)) {
    mkdirSync(ARTIFACTS, { recursive: true });
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    try {
      const context = await browser.newContext({
        httpCredentials: { username: 'admin', password: PASSWORD },
        viewport: { width: 1280, height: 800 },
      });
      const page = await context.newPage();
      await page.goto(`http://127.0.0.1:${boardPort}/pool`);
      const sessions = page.locator('#sessions tbody tr');
      await expect(
        sessions.filter({ hasText: 'acct5-logged-out' }).locator('.badge').innerText(),
      ).resolves.toBe('invalid');
      await expect(
        sessions.filter({ hasText: 'acct6-challenged' }).locator('.badge').innerText(),
      ).resolves.toBe('challenge');
      await expect(sessions.filter({ hasText: 'acct4' }).locator('code').innerText()).resolves.toBe(
        'throttled',
      );
      // The traffic table counts the throttled answers (the last column of its total row).
      const total = page.locator('#traffic tbody tr').last().locator('th').last();
      expect(Number(await total.innerText())).toBeGreaterThanOrEqual(1);
      await page.screenshot({ path: `${ARTIFACTS}demo-pool.png`, fullPage: true });
    } finally {
      await browser.close();
    }
  } else {
    process.stderr.write(`demo test: pool page part SKIPPED: ${CHROMIUM} not found\n`);
  }

  d.child.kill('SIGINT');
  expect(await d.exited).toBe(130);
  expect(await answers(boardPort)).toBe(false);
}, 600_000);
