import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { chromium, type Browser } from 'playwright-core';
import { addItems, createBatch, migrate, openDb, recordResult, sealBatch } from '@storycheck/db';
import { createPool } from '@storycheck/pool';
import { CHECK_JOB, createRedis, openCheckQueue, type CheckQueue } from '@storycheck/queue';
import {
  createTestDatabase,
  createTestPrefix,
  type TestDatabase,
  type TestPrefix,
} from '@storycheck/testkit';
import { startBoard, type RunningBoard } from '../src/index.js';
import { REDIS_URL, boardConfig, silentLogger } from './helpers.js';

/**
 * The board in a real browser: Debian's chromium driven by playwright-core. It logs in with
 * Basic auth, sees the story-check queue and its counts in bull-board, opens /pool and
 * /batches, and saves screenshots to apps/board/test-artifacts/ (git-ignored).
 *
 * Needs Debian's /usr/bin/chromium (`apt-get install -y chromium`), or another Chromium build
 * named by CHROMIUM_PATH; without one the suite is skipped with that message rather than failed.
 */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const HAS_CHROMIUM = existsSync(CHROMIUM);
const ARTIFACTS = fileURLToPath(new URL('../test-artifacts/', import.meta.url));
const USER = 'ops';
const PASSWORD = 'browser-test-password';

if (!HAS_CHROMIUM) {
  process.stderr.write(
    `board browser test SKIPPED: ${CHROMIUM} not found; install Debian's chromium ` +
      '(apt-get install -y chromium) to run it\n',
  );
}

const describeBrowser = HAS_CHROMIUM ? describe : describe.skip;

describeBrowser(`board in a real browser (${CHROMIUM})`, () => {
  let tdb: TestDatabase;
  let tp: TestPrefix;
  let redis: Redis;
  let queue: CheckQueue;
  let board: RunningBoard;
  let browser: Browser;
  const batchId = randomUUID();

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    tdb = await createTestDatabase(migrate);
    tp = createTestPrefix();
    redis = createRedis(REDIS_URL, { name: 'board-browser-test' });
    queue = openCheckQueue(redis, tp.prefix);
    const config = boardConfig(tp.prefix, {
      BOARD_USER: USER,
      BOARD_PASSWORD: PASSWORD,
      DATABASE_URL: tdb.url,
    });

    // Two waiting jobs and one delayed: bull-board shows "3 Jobs" on the queue's card.
    for (const u of ['alice', 'bob'])
      await queue.add(CHECK_JOB, { batchId, username: u }, { jobId: `${batchId}.${u}` });
    await queue.add(
      CHECK_JOB,
      { batchId, username: 'carol' },
      { jobId: `${batchId}.carol`, delay: 3_600_000 },
    );

    const pool = createPool({
      redis,
      prefix: tp.prefix,
      defaults: {
        sessionRate: config.sessionRate,
        sessionBurst: config.sessionBurst,
        proxyRate: config.proxyRate,
        proxyBurst: config.proxyBurst,
      },
    });
    await pool.upsertProxy({ id: 'px-a', label: 'proxy-frankfurt' });
    await pool.upsertProxy({ id: 'px-b', label: 'proxy-paris' });
    await pool.markProxy('px-b', 'disabled');
    for (const [i, label] of ['ops-account-1', 'ops-account-2', 'ops-account-3'].entries())
      await pool.upsertSession({ id: `s${i}`, label, proxyId: 'px-a' });
    await pool.markSession('s1', 'invalid', 'login_required');
    await pool.markSession('s2', 'challenge', 'checkpoint_required');

    const dbh = openDb(tdb.url, { max: 1 });
    try {
      await createBatch(dbh.db, { id: batchId, name: 'browser demo' });
      await addItems(
        dbh.db,
        batchId,
        ['alice', 'bob', 'carol', 'dora'].map((username, seq) => ({ seq, username })),
      );
      await sealBatch(dbh.db, batchId, { duplicates: 0, rejected: 0 });
      await recordResult(dbh.db, batchId, 'dora', { status: 'none', attempts: 1 });
    } finally {
      await dbh.close();
    }

    board = await startBoard(config, { logger: silentLogger() });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-background-networking',
        '--disable-gpu',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
  });

  afterAll(async () => {
    await browser?.close();
    await board?.close();
    await queue?.obliterate({ force: true });
    await queue?.close();
    await redis?.quit();
    await tp?.clean();
    await tdb?.drop();
  });

  it('refuses a browser without credentials (401)', async () => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      // Headless Chromium either shows the 401 or, with no one to type a password, aborts the
      // navigation with ERR_INVALID_AUTH_CREDENTIALS: both mean the board asked for credentials.
      const outcome = await page.goto(`${board.url}/pool`).then(
        (res) => `status ${res?.status()}`,
        (e: unknown) => String((e as Error).message),
      );
      expect(outcome).toMatch(/^status 401$|ERR_INVALID_AUTH_CREDENTIALS/);
    } finally {
      await context.close();
    }
  });

  it('logs in, shows the story-check queue with its counts, then the pool and batches pages', async () => {
    const context = await browser.newContext({
      httpCredentials: { username: USER, password: PASSWORD },
      viewport: { width: 1280, height: 800 },
    });
    try {
      const page = await context.newPage();
      const queuesApi = page.waitForResponse(
        (r) => new URL(r.url()).pathname === '/api/queues' && r.status() === 200,
      );
      const res = await page.goto(`${board.url}/`);
      expect(res?.status()).toBe(200);
      const body = (await (await queuesApi).json()) as {
        queues: { name: string; counts: Record<string, number> }[];
      };
      const q = body.queues.find((x) => x.name === 'story-check');
      expect(q?.counts).toMatchObject({ waiting: 2, delayed: 1 });
      await page.getByText('story-check').first().waitFor({ timeout: 15_000 });
      await page.getByText('3 Jobs').first().waitFor({ timeout: 15_000 });
      await page.screenshot({ path: `${ARTIFACTS}bull-board.png`, fullPage: true });

      await page.goto(`${board.url}/queue/story-check`);
      await page.getByText('story-check').first().waitFor({ timeout: 15_000 });
      await page.screenshot({ path: `${ARTIFACTS}bull-board-queue.png`, fullPage: true });

      const pool = await page.goto(`${board.url}/pool`);
      expect(pool?.status()).toBe(200);
      const sessions = page.locator('#sessions tbody tr');
      expect(await sessions.count()).toBe(3);
      const invalid = sessions.filter({ hasText: 'ops-account-2' });
      await expect(invalid.locator('.badge').innerText()).resolves.toBe('invalid');
      await expect(invalid.locator('code').innerText()).resolves.toBe('login_required');
      // State colours are there for a glance: invalid is red, active green.
      await expect(
        invalid.locator('.badge').evaluate((el) => getComputedStyle(el).backgroundColor),
      ).resolves.toBe('rgb(207, 34, 46)');
      const proxies = page.locator('#proxies tbody tr');
      expect(await proxies.count()).toBe(2);
      await page.screenshot({ path: `${ARTIFACTS}pool.png`, fullPage: true });

      await page.getByRole('link', { name: 'Batches' }).click();
      await page.waitForURL(`${board.url}/batches`);
      const row = page.locator('#batches tbody tr', { hasText: batchId });
      await expect(row.locator('.pct').innerText()).resolves.toBe('25.0%');
      await expect(row.locator('.badge').innerText()).resolves.toBe('running');
      await page.screenshot({ path: `${ARTIFACTS}batches.png`, fullPage: true });

      // And back to bull-board through the header link.
      await page.getByRole('link', { name: 'Queues' }).click();
      await page.getByText('story-check').first().waitFor({ timeout: 15_000 });
    } finally {
      await context.close();
    }
  });
});
