import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { chromium, type Browser } from 'playwright-core';
import {
  addItems,
  appendBatchLog,
  createBatch,
  migrate,
  openDb,
  recordResult,
  sealBatch,
} from '@storycheck/db';
import { createPool, createTraffic } from '@storycheck/pool';
import { CHECK_JOB, createRedis, openCheckQueue, type CheckQueue } from '@storycheck/queue';
import {
  createTestDatabase,
  createTestPrefix,
  runNode,
  type TestDatabase,
  type TestPrefix,
} from '@storycheck/testkit';
import { startBoard, type RunningBoard } from '../src/index.js';
import { REDIS_URL, boardConfig, silentLogger } from './helpers.js';

/**
 * The board in a real browser: Debian's chromium driven by playwright-core. It logs in with
 * Basic auth, sees the story-check queue and its counts in bull-board, follows bull-board's
 * header links to /pool and /batches and back, opens a batch, downloads its results as CSV and
 * NDJSON and compares them with `storycheck results`, and saves screenshots of every page to
 * apps/board/test-artifacts/ (git-ignored).
 *
 * Needs Debian's /usr/bin/chromium (`apt-get install -y chromium`), or another Chromium build
 * named by CHROMIUM_PATH; without one the suite is skipped with that message rather than failed.
 */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const HAS_CHROMIUM = existsSync(CHROMIUM);
const ARTIFACTS = fileURLToPath(new URL('../test-artifacts/', import.meta.url));
const USER = 'ops';
const PASSWORD = 'browser-test-password';
const PRODUCER = fileURLToPath(new URL('../../producer/dist/main.js', import.meta.url));
/** An error message as the upstream may send it: HTML the page must show as text. */
const HOSTILE = '<img src=x onerror="window.__pwned=1">bad gateway';

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
    // Two minutes of traffic as workers record it: px-a sends, and is throttled now and then.
    const traffic = createTraffic(redis, tp.prefix);
    for (let i = 0; i < 60; i++) traffic.request('px-a');
    for (let i = 0; i < 4; i++) traffic.throttled('px-a');
    for (let i = 0; i < 10; i++) traffic.request(null);

    const dbh = openDb(tdb.url, { max: 1 });
    try {
      await createBatch(dbh.db, { id: batchId, name: 'browser demo' });
      const names = ['alice', 'bob', 'carol', 'dora', 'emil', 'fritz', 'greta', 'hanna'];
      await addItems(
        dbh.db,
        batchId,
        names.map((username, seq) => ({ seq, username })),
      );
      await sealBatch(dbh.db, batchId, { duplicates: 0, rejected: 0 });
      await recordResult(dbh.db, batchId, 'dora', { status: 'none', attempts: 1 });
      await recordResult(dbh.db, batchId, 'emil', {
        status: 'active',
        attempts: 1,
        storyCount: 3,
        userId: '1234567890123456789',
        latestStoryAt: new Date('2026-01-02T03:04:05Z'),
      });
      await recordResult(dbh.db, batchId, 'fritz', {
        status: 'failed',
        attempts: 3,
        error: 'upstream_error',
      });
      await recordResult(dbh.db, batchId, 'greta', {
        status: 'failed',
        attempts: 3,
        error: 'upstream_error',
      });
      await appendBatchLog(dbh.db, [
        {
          batchId,
          event: 'check',
          username: 'fritz',
          attempt: 3,
          outcome: 'failed',
          errorClass: 'UpstreamError',
          errorCode: 'upstream_error',
          errorMessage: HOSTILE,
          sessionLabel: 'ops-account-1',
          proxyLabel: 'proxy-frankfurt',
        },
      ]);
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
  }, 120_000);

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

  it('logs in; goes from bull-board to pool and batches and back; opens a batch; its CSV and NDJSON are `storycheck results`', async () => {
    const context = await browser.newContext({
      httpCredentials: { username: USER, password: PASSWORD },
      viewport: { width: 1280, height: 800 },
      acceptDownloads: true,
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

      // bull-board's header carries the links to the board's own pages.
      const nav = page.locator('#storycheck-nav');
      await nav.getByRole('link', { name: 'Pool' }).click();
      await page.waitForURL(`${board.url}/pool`);
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
      // The traffic written above sits in the running 10 s bucket, which the page leaves out
      // until it is complete: wait for it (the page refreshes itself every 10 s).
      const frankfurt = page.locator('#traffic tbody tr', { hasText: 'proxy-frankfurt' });
      await frankfurt.waitFor({ timeout: 30_000 });
      let throttled = '';
      for (let i = 0; i < 20 && throttled !== '4'; i++) {
        if (i > 0) {
          await new Promise((r) => setTimeout(r, 2_000));
          await page.reload();
        }
        throttled = await frankfurt.locator('td').nth(4).innerText();
      }
      expect(throttled).toBe('4');
      await expect(frankfurt.locator('td').nth(3).innerText()).resolves.toBe('60');
      expect(await page.locator('svg#traffic-total polyline').count()).toBe(3);
      await page.screenshot({ path: `${ARTIFACTS}pool.png`, fullPage: true });

      // Back to bull-board, then on to the batches.
      await page.locator('header').getByRole('link', { name: 'Queues' }).click();
      await page.getByText('story-check').first().waitFor({ timeout: 15_000 });
      await nav.getByRole('link', { name: 'Batches' }).click();
      await page.waitForURL(`${board.url}/batches`);
      const row = page.locator('#batches tbody tr', { hasText: batchId });
      await expect(row.locator('.pct').innerText()).resolves.toBe('50.0%');
      await expect(row.locator('.badge').innerText()).resolves.toBe('running');
      await page.screenshot({ path: `${ARTIFACTS}batches.png`, fullPage: true });

      // One batch: counts, chart, failures by code, log errors (hostile text shown as text).
      await row.getByRole('link', { name: batchId }).click();
      await page.waitForURL(`${board.url}/batches/${batchId}`);
      await expect(page.locator('#counts').innerText()).resolves.toContain('4 / 8');
      expect(await page.locator('svg#throughput polyline').count()).toBe(2);
      const failures = page.locator('#failures tbody tr');
      expect(await failures.count()).toBe(1);
      await expect(failures.first().innerText()).resolves.toContain('upstream_error');
      await expect(failures.first().innerText()).resolves.toContain('fritz, greta');
      await expect(page.locator('#log-errors tbody tr').first().innerText()).resolves.toContain(
        HOSTILE,
      );
      expect(await page.evaluate(() => (window as { __pwned?: number }).__pwned)).toBeUndefined();
      expect(await page.locator('#log-errors img').count()).toBe(0);
      await page.screenshot({ path: `${ARTIFACTS}batch.png`, fullPage: true });

      // Items filtered by status.
      await page.locator('.filters').getByRole('link', { name: 'failed' }).click();
      await page.waitForURL(/status=failed/);
      const items = page.locator('#items tbody tr');
      await expect(items.allInnerTexts()).resolves.toEqual([
        expect.stringContaining('fritz'),
        expect.stringContaining('greta'),
      ]);
      await page.locator('.filters').getByRole('link', { name: 'pending' }).click();
      await page.waitForURL(/status=pending/);
      expect(await page.locator('#items tbody tr').count()).toBe(4);
      await page.screenshot({ path: `${ARTIFACTS}batch-pending.png`, fullPage: true });

      // Downloads: the same bytes as `storycheck results`.
      const env = {
        DATABASE_URL: tdb.url,
        REDIS_URL,
        STORYCHECK_PREFIX: tp.prefix,
        LOG_LEVEL: 'warn',
      };
      for (const [link, format] of [
        ['CSV', 'csv'],
        ['NDJSON', 'ndjson'],
      ] as const) {
        const download = page.waitForEvent('download');
        await page.locator('.downloads').getByRole('link', { name: link, exact: true }).click();
        const file = await (await download).path();
        const cli = await runNode(PRODUCER, ['results', batchId, '--format', format], env);
        expect(cli.code).toBe(0);
        expect(readFileSync(file!, 'utf8')).toBe(cli.stdout);
        expect(cli.stdout.trim().split('\n')).toHaveLength(format === 'csv' ? 9 : 8);
      }

      // And back: batches, then bull-board.
      await page.locator('header').getByRole('link', { name: 'Batches' }).click();
      await page.waitForURL(`${board.url}/batches`);
      await page.locator('header').getByRole('link', { name: 'Queues' }).click();
      await page.waitForURL(`${board.url}/`);
      await page.getByText('story-check').first().waitFor({ timeout: 15_000 });
    } finally {
      await context.close();
    }
  }, 180_000);
});
