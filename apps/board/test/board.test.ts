import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import { migrate } from '@storycheck/db';
import { createTestDatabase, type TestDatabase } from '@storycheck/testkit';
import {
  CHECK_JOB,
  STORY_CHECK_QUEUE,
  checkJobId,
  createRedis,
  openCheckQueue,
  type CheckQueue,
} from '@storycheck/queue';
import { createBoardApp, isLoopbackHost, startBoard, type RunningBoard } from '../src/index.js';
import { REDIS_URL, basic, boardConfig, eventually, silentLogger, tcpHandles } from './helpers.js';

const PREFIX = `sctest-board-${process.pid}`;
const USER = 'ops';
const PASSWORD = 'correct horse battery staple';
const AUTH = { authorization: basic(USER, PASSWORD) };
const logger = silentLogger();

let redis: Redis;
let queue: CheckQueue;
let readonlyBoard: RunningBoard;
let writableBoard: RunningBoard;
let baselineTcp = 0;
let tdb: TestDatabase;
const batchId = randomUUID();
const waitingIds = [checkJobId(batchId, 'alice'), checkJobId(batchId, 'bob')];
const delayedId = checkJobId(batchId, 'carol');

beforeAll(async () => {
  tdb = await createTestDatabase(migrate);
  redis = createRedis(REDIS_URL, { name: 'board-test' });
  queue = openCheckQueue(redis, PREFIX);
  await queue.waitUntilReady();
  baselineTcp = tcpHandles();
  await queue.add(CHECK_JOB, { batchId, username: 'alice' }, { jobId: waitingIds[0] });
  await queue.add(CHECK_JOB, { batchId, username: 'bob' }, { jobId: waitingIds[1] });
  await queue.add(
    CHECK_JOB,
    { batchId, username: 'carol' },
    { jobId: delayedId, delay: 3_600_000 },
  );
  const creds = { BOARD_USER: USER, BOARD_PASSWORD: PASSWORD, DATABASE_URL: tdb.url };
  readonlyBoard = await startBoard(boardConfig(PREFIX, creds), { logger });
  writableBoard = await startBoard(boardConfig(PREFIX, { ...creds, BOARD_READONLY: 'false' }), {
    logger,
  });
});

afterAll(async () => {
  await readonlyBoard?.close();
  await writableBoard?.close();
  await queue?.obliterate({ force: true });
  await queue?.close();
  await redis?.quit();
  await tdb?.drop();
});

describe('basic auth', () => {
  it('answers 401 with a challenge without credentials', async () => {
    const res = await fetch(`${readonlyBoard.url}/`);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Basic realm="storycheck"/);
    await res.arrayBuffer();
  });

  it.each([
    { label: 'wrong password', authorization: basic(USER, 'nope') },
    { label: 'wrong user', authorization: basic('root', PASSWORD) },
    { label: 'password prefix', authorization: basic(USER, PASSWORD.slice(0, 5)) },
    { label: 'not Basic', authorization: `Bearer ${PASSWORD}` },
    { label: 'garbage', authorization: 'Basic !!!' },
  ])('answers 401 for $label', async ({ authorization }) => {
    const res = await fetch(`${readonlyBoard.url}/api/queues`, { headers: { authorization } });
    expect(res.status).toBe(401);
    await res.arrayBuffer();
  });

  it('serves the bull-board page and its assets with the right credentials', async () => {
    const res = await fetch(`${readonlyBoard.url}/`, { headers: AUTH });
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain('<title>storycheck</title>');
    const script = /src="(static\/[^"]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    const asset = await fetch(`${readonlyBoard.url}/${script}`, { headers: AUTH });
    expect(asset.status).toBe(200);
    await asset.arrayBuffer();
    const noAuth = await fetch(`${readonlyBoard.url}/${script}`);
    expect(noAuth.status).toBe(401);
    await noAuth.arrayBuffer();
  });
});

describe('health', () => {
  it('/healthz is 200 without auth', async () => {
    const res = await fetch(`${readonlyBoard.url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true });
  });

  it('/readyz is 200 without auth when Redis and Postgres answer', async () => {
    const res = await fetch(`${readonlyBoard.url}/readyz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true, checks: { redis: 'ok', postgres: 'ok' } });
  });

  it('/readyz is 503 naming Postgres when its database does not answer', async () => {
    const board = await startBoard(
      boardConfig(PREFIX, { DATABASE_URL: `${tdb.url}_missing`, BOARD_HOST: 'localhost' }),
      { logger },
    );
    try {
      const res = await fetch(`${board.url}/readyz`);
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({
        ok: false,
        error: 'postgres unavailable',
        checks: { redis: 'ok', postgres: 'down' },
      });
    } finally {
      await board.close();
    }
  });

  it('/readyz is 503 within about 1 s when Redis does not answer', async () => {
    // A black hole: accepts the TCP connection and never replies, so PING has to time out.
    const sockets = new Set<Socket>();
    const blackHole = createNetServer((s) => sockets.add(s));
    await new Promise<void>((resolve) => blackHole.listen(0, '127.0.0.1', resolve));
    const holePort = (blackHole.address() as AddressInfo).port;
    // A plain ioredis client without ready check (createRedis enables it): a ready check that
    // fails on disconnect makes ioredis arm a 2 s timer that would outlive the test.
    const dead = new Redis(holePort, '127.0.0.1', {
      enableReadyCheck: false,
      retryStrategy: () => null,
    });
    dead.on('error', () => undefined);
    await new Promise((resolve) => dead.once('connect', resolve));
    const app = createBoardApp({
      queues: [],
      readonly: true,
      user: USER,
      password: PASSWORD,
      redis: dead,
      logger,
    });
    const server = createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const started = Date.now();
      const res = await fetch(`http://127.0.0.1:${port}/readyz`);
      const elapsedMs = Date.now() - started;
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({
        ok: false,
        error: 'redis unavailable',
        checks: { redis: 'down' },
      });
      expect(elapsedMs).toBeGreaterThanOrEqual(900);
      expect(elapsedMs).toBeLessThan(3_000);
    } finally {
      const ended = new Promise((resolve) => dead.once('end', resolve));
      dead.disconnect();
      await ended;
      for (const s of sockets) s.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await new Promise((resolve) => blackHole.close(resolve));
    }
  });

  it('/readyz is 503 at once when the Redis client is closed', async () => {
    const closed = createRedis(REDIS_URL, { name: 'board-test-closed', onError: () => undefined });
    await closed.quit();
    const app = createBoardApp({
      queues: [],
      readonly: true,
      user: USER,
      password: PASSWORD,
      redis: closed,
      logger,
    });
    const server = createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const res = await fetch(`http://127.0.0.1:${port}/readyz`);
      expect(res.status).toBe(503);
      await res.arrayBuffer();
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('queues API', () => {
  it('lists the story-check queue with its counts', async () => {
    const res = await fetch(`${readonlyBoard.url}/api/queues`, { headers: AUTH });
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      queues: { name: string; readOnlyMode: boolean; counts: Record<string, number> }[];
    };
    const q = body.queues.find((x) => x.name === STORY_CHECK_QUEUE);
    expect(q).toBeDefined();
    expect(q?.readOnlyMode).toBe(true);
    expect(q?.counts.waiting).toBe(2);
    expect(q?.counts.delayed).toBe(1);
  });
});

describe('read-only enforcement', () => {
  const name = STORY_CHECK_QUEUE;
  const writes: { method: string; path: string }[] = [
    { method: 'PUT', path: `/api/queues/${name}/${waitingIds[0]}/clean` },
    { method: 'PUT', path: `/api/queues/${name}/${delayedId}/promote` },
    { method: 'PUT', path: `/api/queues/${name}/${waitingIds[0]}/retry` },
    { method: 'PUT', path: `/api/queues/${name}/retry/failed` },
    { method: 'PUT', path: `/api/queues/${name}/clean/waiting` },
    { method: 'PUT', path: `/api/queues/${name}/empty` },
    { method: 'PUT', path: `/api/queues/${name}/obliterate` },
    { method: 'PUT', path: `/api/queues/${name}/pause` },
    { method: 'PUT', path: '/api/queues/pause' },
    { method: 'POST', path: `/api/queues/${name}/add` },
    { method: 'PATCH', path: `/api/queues/${name}/${delayedId}/delay` },
    { method: 'DELETE', path: `/api/queues/${name}/${waitingIds[0]}` },
    { method: 'PUT', path: `/API/queues/${name}/${waitingIds[0]}/clean` },
    { method: 'PUT', path: `//api/queues/${name}/${waitingIds[0]}/clean` },
  ];

  it.each(writes)(
    'refuses $method $path with 403 and leaves the jobs alone',
    async ({ method, path }) => {
      const res = await fetch(`${readonlyBoard.url}${path}`, {
        method,
        headers: { ...AUTH, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'check', data: {}, delay: 1, force: true }),
      });
      expect(res.status).toBe(403);
      expect(await res.json()).toEqual({ error: 'board is read-only (BOARD_READONLY=true)' });
      expect(await queue.getJobState(waitingIds[0]!)).toBe('waiting');
      expect(await queue.getJobState(waitingIds[1]!)).toBe('waiting');
      expect(await queue.getJobState(delayedId)).toBe('delayed');
      expect(await queue.isPaused()).toBe(false);
      expect(await queue.count()).toBe(3);
    },
  );

  it('asks for credentials before saying read-only', async () => {
    const res = await fetch(`${readonlyBoard.url}/api/queues/pause`, { method: 'PUT' });
    expect(res.status).toBe(401);
    await res.arrayBuffer();
  });

  it('lets the same writes through when BOARD_READONLY=false', async () => {
    const promote = await fetch(`${writableBoard.url}/api/queues/${name}/${delayedId}/promote`, {
      method: 'PUT',
      headers: AUTH,
    });
    expect(promote.status).toBe(204);
    await promote.arrayBuffer();
    expect(await queue.getJobState(delayedId)).toBe('waiting');

    const clean = await fetch(`${writableBoard.url}/api/queues/${name}/${waitingIds[0]}/clean`, {
      method: 'PUT',
      headers: AUTH,
    });
    expect(clean.status).toBe(204);
    expect(await queue.getJobState(waitingIds[0]!)).toBe('unknown');
  });
});

describe('startBoard', () => {
  it('refuses a non-loopback host without a password, naming BOARD_PASSWORD', async () => {
    const before = tcpHandles();
    await expect(
      startBoard(boardConfig(PREFIX, { BOARD_HOST: '0.0.0.0' }), { logger }),
    ).rejects.toThrow(/BOARD_PASSWORD/);
    await expect(
      startBoard(boardConfig(PREFIX, { BOARD_HOST: '0.0.0.0' }), { logger }),
    ).rejects.toThrow(/^[^\n]+$/);
    expect(tcpHandles()).toBe(before);
  });

  it('starts without a password on loopback, with auth off', async () => {
    const board = await startBoard(
      boardConfig(PREFIX, { BOARD_HOST: 'localhost', DATABASE_URL: tdb.url }),
      { logger },
    );
    try {
      const res = await fetch(`${board.url}/api/queues`);
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    } finally {
      await board.close();
    }
  });

  it('reports the real port when BOARD_PORT=0', () => {
    expect(readonlyBoard.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(readonlyBoard.url).not.toMatch(/:0$/);
  });

  it('recognises loopback hosts', () => {
    for (const h of [
      '127.0.0.1',
      '127.1.2.3',
      '::1',
      '[::1]',
      'localhost',
      'LOCALHOST',
      '::ffff:127.0.0.1',
    ]) {
      expect(isLoopbackHost(h)).toBe(true);
    }
    for (const h of [
      '0.0.0.0',
      '::',
      '10.0.0.1',
      '128.0.0.1',
      'example.com',
      '127.0.0.1.example.com',
    ]) {
      expect(isLoopbackHost(h)).toBe(false);
    }
  });

  it('leaves no open handle after close', async () => {
    await readonlyBoard.close();
    await writableBoard.close();
    await readonlyBoard.close(); // idempotent
    expect(await eventually(() => tcpHandles() <= baselineTcp)).toBe(true);
    expect(process.getActiveResourcesInfo()).not.toContain('TCPServerWrap');
  });
});
