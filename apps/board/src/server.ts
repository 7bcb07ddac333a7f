import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { isIPv6, type AddressInfo } from 'node:net';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import type { Queue } from 'bullmq';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import type { Redis } from 'ioredis';
import type { Config } from '@storycheck/config';
import { listBatches, openDb, type BatchStatus } from '@storycheck/db';
import { coerceError, type Logger } from '@storycheck/logger';
import { createPool, createTraffic, type PoolSnapshot, type TrafficBucket } from '@storycheck/pool';
import { createRedis, openCheckQueue } from '@storycheck/queue';
import { boardLinks } from './board-links.js';
import { dbBatchDetail, mountBatchRoutes, type BatchDetailSource } from './batch-routes.js';
import { BoardMetrics } from './metrics.js';
import { renderBatchesPage, renderErrorPage, renderPoolPage } from './pages.js';
import { renderTraffic } from './pool-traffic.js';
import { answers, within } from './within.js';

/** Realm sent in `WWW-Authenticate`; browsers show it in the login prompt. */
const REALM = 'storycheck';

/** How long `/readyz` waits for Redis (PING) and Postgres (SELECT 1) before it reports 503 (ms). */
const READY_PING_TIMEOUT_MS = 1_000;

/** How long `/pool` and `/batches` wait for Redis / Postgres before answering 503 (ms). */
const PAGE_READ_TIMEOUT_MS = 5_000;

/** Minutes of upstream traffic the `/pool` page draws. */
const TRAFFIC_MINUTES = 10;

/** Batches shown by `/batches` unless `?limit=` (1–200) says otherwise. */
const DEFAULT_BATCH_LIMIT = 20;

/** How long `close()` lets open HTTP requests finish before it drops their sockets (ms). */
const HTTP_CLOSE_GRACE_MS = 2_000;

/** Body of every write refused by the read-only guard. */
const READONLY_ERROR = 'board is read-only (BOARD_READONLY=true)';

/** Options for {@link createBoardApp}. */
export interface BoardAppOptions {
  /** Queues shown on the board (one bull-board adapter each). */
  queues: Queue[];
  /** Refuse every write (retry, clean, promote, pause, add…) with 403, and hide the UI buttons. */
  readonly: boolean;
  /** Basic-auth user name. */
  user: string;
  /** Basic-auth password; undefined turns auth off (callers allow that on loopback only). */
  password?: string | undefined;
  /** Connection probed by `/readyz`. */
  redis: Redis;
  /** Where request errors go. */
  logger: Logger;
  /** Postgres probe for `/readyz` (resolves when it answers); undefined = not checked. */
  postgres?: (() => Promise<void>) | undefined;
  /** Source of `/pool`; undefined = the page says the pool is not configured. */
  poolSnapshot?: (() => Promise<PoolSnapshot>) | undefined;
  /** Source of `/batches` (newest first, at most `limit`); undefined = not configured. */
  listBatches?: ((limit: number) => Promise<BatchStatus[]>) | undefined;
  /** Source of `/batches/:id` and its result downloads; undefined = 404. */
  batchDetail?: BatchDetailSource | undefined;
  /** The workers' traffic buckets of the last `minutes` for `/pool`; undefined = no charts. */
  poolTraffic?: ((minutes: number) => Promise<TrafficBucket[]>) | undefined;
  /** GLOBAL_RATE in requests/s, caps the ceiling drawn on `/pool`; undefined = none. */
  globalPerS?: number | undefined;
  /** Served at `/metrics` (behind the same auth as the UI); undefined = 404. */
  metrics?: { render(): Promise<string>; readonly contentType: string } | undefined;
}

/** What {@link startBoard} returns. */
export interface RunningBoard {
  /** Base URL the board really listens on, e.g. `http://127.0.0.1:41234`. */
  url: string;
  /** Stops the HTTP server, then closes the queue and the Redis connection. Idempotent. */
  close(): Promise<void>;
}

/** SHA-256 of a string: equal-length buffers for `timingSafeEqual`, whatever the input length. */
function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/** Constant-time string equality (the length of neither side leaks through timing). */
function safeEqual(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

/**
 * Decodes an `Authorization: Basic …` header into user and password; undefined when the header
 * is missing or not Basic. The password may contain ':'; the user may not (RFC 7617).
 */
function parseBasicAuth(
  header: string | undefined,
): { user: string; password: string } | undefined {
  if (!header) return undefined;
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!match?.[1]) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** Express middleware requiring the given Basic credentials; 401 with a challenge otherwise. */
function basicAuth(user: string, password: string) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const given = parseBasicAuth(req.headers.authorization);
    // Compare both fields every time (no short circuit), so timing does not tell which was wrong.
    const userOk = safeEqual(given?.user ?? '', user);
    const passwordOk = safeEqual(given?.password ?? '', password);
    if (given && userOk && passwordOk) {
      next();
      return;
    }
    res
      .status(401)
      .set('WWW-Authenticate', `Basic realm="${REALM}", charset="UTF-8"`)
      .json({ error: 'authentication required' });
  };
}

/** Sends a server-rendered page, never cached (it may show operator data). */
function sendPage(res: Response, status: number, html: string): void {
  res.status(status).set('cache-control', 'no-store').type('html').send(html);
}

/** `GET /readyz`: 200 when Redis (and Postgres, when configured) answer, else 503. */
async function readyz(opts: BoardAppOptions, res: Response): Promise<void> {
  const postgres = opts.postgres;
  const [redisOk, postgresOk] = await Promise.all([
    answers(async () => {
      if ((await opts.redis.ping()) !== 'PONG') throw new Error('unexpected PING answer');
    }, READY_PING_TIMEOUT_MS),
    postgres ? answers(postgres, READY_PING_TIMEOUT_MS) : Promise.resolve(undefined),
  ]);
  const checks: Record<string, 'ok' | 'down'> = { redis: redisOk ? 'ok' : 'down' };
  if (postgresOk !== undefined) checks.postgres = postgresOk ? 'ok' : 'down';
  const down = Object.keys(checks).filter((k) => checks[k] !== 'ok');
  if (down.length === 0) res.status(200).json({ ok: true, checks });
  else res.status(503).json({ ok: false, error: `${down.join(', ')} unavailable`, checks });
}

/** `GET /pool`: the pool page, with its traffic charts when they can be read. */
async function poolPage(opts: BoardAppOptions, res: Response): Promise<void> {
  if (!opts.poolSnapshot) {
    sendPage(res, 404, renderErrorPage('/pool', 'The pool is not configured on this board.'));
    return;
  }
  let snap: PoolSnapshot;
  try {
    snap = await within(opts.poolSnapshot(), PAGE_READ_TIMEOUT_MS);
  } catch (err) {
    opts.logger.warn('pool page: cannot read the pool', { error: coerceError(err).message });
    sendPage(res, 503, renderErrorPage('/pool', 'Redis is unavailable: cannot read the pool.'));
    return;
  }
  // The charts are a bonus: without the traffic buckets the page still shows the pool.
  let traffic = '';
  if (opts.poolTraffic) {
    try {
      const buckets = await within(opts.poolTraffic(TRAFFIC_MINUTES), PAGE_READ_TIMEOUT_MS);
      traffic = renderTraffic(buckets, snap, {
        minutes: TRAFFIC_MINUTES,
        globalPerS: opts.globalPerS,
      });
    } catch (err) {
      opts.logger.warn('pool page: cannot read traffic', { error: coerceError(err).message });
    }
  }
  sendPage(res, 200, renderPoolPage(snap, traffic));
}

/** `GET /batches[?limit=N]`: the recent batches. */
async function batchesPage(opts: BoardAppOptions, req: Request, res: Response): Promise<void> {
  if (!opts.listBatches) {
    sendPage(res, 404, renderErrorPage('/batches', 'Batches are not configured on this board.'));
    return;
  }
  const asked = Number(typeof req.query.limit === 'string' ? req.query.limit : NaN);
  const limit = Number.isInteger(asked) && asked >= 1 && asked <= 200 ? asked : DEFAULT_BATCH_LIMIT;
  let rows: BatchStatus[];
  try {
    rows = await within(opts.listBatches(limit), PAGE_READ_TIMEOUT_MS);
  } catch (err) {
    opts.logger.warn('batches page: cannot read batches', { error: coerceError(err).message });
    sendPage(
      res,
      503,
      renderErrorPage('/batches', 'Postgres is unavailable: cannot read the batches.'),
    );
    return;
  }
  sendPage(res, 200, renderBatchesPage(rows, Date.now()));
}

/** bull-board at `/`, with links to the board's own pages. */
function mountBullBoard(app: Express, opts: BoardAppOptions): void {
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath('/');
  createBullBoard({
    queues: opts.queues.map((q) => new BullMQAdapter(q, { readOnlyMode: opts.readonly })),
    serverAdapter,
    options: {
      uiConfig: {
        boardTitle: 'storycheck',
        // Shown in bull-board's menu: the board's own pages, next to the queues.
        miscLinks: [
          { text: 'Pool (sessions, proxies)', url: '/pool' },
          { text: 'Batches', url: '/batches' },
        ],
      },
    },
  });
  // bull-board's header gets visible links to Pool and Batches (its miscLinks hide in a menu).
  app.use(boardLinks());
  app.use('/', serverAdapter.getRouter() as express.Router);
}

/**
 * Builds the board's express app: `/healthz` and `/readyz` without auth, then Basic auth (when a
 * password is set) in front of everything else — `/metrics`, `/pool`, `/batches` — then the
 * read-only guard, then bull-board mounted at `/`.
 */
export function createBoardApp(opts: BoardAppOptions): Express {
  const app = express();
  app.disable('x-powered-by');

  app.get('/healthz', (_req, res) => {
    res.status(200).json({ ok: true });
  });
  app.get('/readyz', async (_req, res) => readyz(opts, res));

  if (opts.password !== undefined) app.use(basicAuth(opts.user, opts.password));

  app.get('/metrics', async (_req, res) => {
    if (!opts.metrics) {
      res.status(404).json({ error: 'metrics not configured' });
      return;
    }
    const text = await opts.metrics.render();
    res.status(200).set('content-type', opts.metrics.contentType).send(text);
  });

  app.get('/pool', async (_req, res) => poolPage(opts, res));

  app.get('/batches', async (req, res) => batchesPage(opts, req, res));

  mountBatchRoutes(app, {
    source: opts.batchDetail,
    logger: opts.logger,
    timeoutMs: PAGE_READ_TIMEOUT_MS,
  });

  if (opts.readonly) {
    // bull-board's own readOnlyMode only hides buttons and answers 405 from inside each handler;
    // this guard refuses writes before any bull-board code runs. Every bull-board write route is
    // PUT/POST/PATCH under /api/, and nothing on this app writes through GET, so refusing every
    // method but GET/HEAD (not only under /api/) also covers path variants such as `//api/...`.
    app.use((req, res, next) => {
      if (req.method === 'GET' || req.method === 'HEAD') {
        next();
        return;
      }
      res.status(403).json({ error: READONLY_ERROR });
    });
  }

  mountBullBoard(app, opts);

  // Last resort: log without the request (headers may carry credentials) and answer 500.
  app.use((err: unknown, req: Request, res: Response, next: NextFunction) => {
    opts.logger.error('board request failed', {
      method: req.method,
      path: req.path,
      error: err instanceof Error ? err.message : String(err),
    });
    if (res.headersSent) {
      next(err);
      return;
    }
    res.status(500).json({ error: 'internal error' });
  });
  return app;
}

/** True for 127.0.0.0/8, ::1 (bracketed or not, or IPv4-mapped) and `localhost`. */
export function isLoopbackHost(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice('::ffff:'.length) : h;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

/** Listens on host:port; rejects on a listen error (EADDRINUSE, EADDRNOTAVAIL…). */
function listen(server: Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}

/** Closes the server: idle keep-alive sockets at once, busy ones after a short grace period. */
function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    const force = setTimeout(() => server.closeAllConnections(), HTTP_CLOSE_GRACE_MS);
    server.close(() => {
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections();
  });
}

/**
 * Starts the board from config: refuses a non-loopback host without BOARD_PASSWORD (throws before
 * opening anything), opens a Redis client, the check queue and the pool under the config's
 * prefix and a small Postgres pool (DATABASE_URL; connects lazily, so the board starts while
 * Postgres is down and `/readyz` says so), and listens on `config.board.host:port` (port 0
 * picks a free port; the returned url has the real one).
 */
export async function startBoard(config: Config, deps: { logger: Logger }): Promise<RunningBoard> {
  const { logger } = deps;
  const { host, port, user, password, readonly } = config.board;
  if (password === undefined && !isLoopbackHost(host)) {
    throw new Error(
      `refusing to start: BOARD_HOST=${host} is not a loopback address and BOARD_PASSWORD is not set`,
    );
  }
  if (password === undefined)
    logger.warn('board has no password (BOARD_PASSWORD unset); loopback only');

  const redis = createRedis(config.redisUrl, {
    role: 'client',
    name: 'storycheck-board',
    onError: (err) => logger.warn('redis connection error', { error: err.message }),
  });
  const queue = openCheckQueue(redis, config.prefix);
  // The queue re-emits connection errors; without a listener they would crash the process.
  queue.on('error', () => undefined);

  // Two connections are plenty: the board reads a page of batches and probes readiness.
  const db = openDb(config.databaseUrl, {
    max: 2,
    onError: (err) => logger.warn('postgres connection error', { error: err.message }),
  });
  const pool = createPool({
    redis,
    prefix: config.prefix,
    defaults: {
      sessionRate: config.sessionRate,
      sessionBurst: config.sessionBurst,
      proxyRate: config.proxyRate,
      proxyBurst: config.proxyBurst,
      globalRate: config.globalRate,
      globalBurst: config.globalBurst,
    },
  });
  const poolSnapshot = () => pool.snapshot();
  const traffic = createTraffic(redis, config.prefix);
  const metrics = new BoardMetrics({
    queues: [queue],
    poolSnapshot,
    redisInfo: () => redis.info('memory'),
    // Running batches are among the newest; 200 covers any realistic number at once.
    listBatches: () => listBatches(db.db, 200),
  });

  const app = createBoardApp({
    queues: [queue],
    readonly,
    user,
    password,
    redis,
    logger,
    postgres: async () => {
      await db.pool.query('SELECT 1');
    },
    poolSnapshot,
    listBatches: (limit) => listBatches(db.db, limit),
    batchDetail: dbBatchDetail(db.db),
    poolTraffic: (minutes) => traffic.read(minutes),
    globalPerS: config.globalRate
      ? (config.globalRate.count * 1_000) / config.globalRate.periodMs
      : undefined,
    metrics,
  });
  const server = createServer(app);
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      await closeServer(server);
      await queue.close().catch(() => undefined);
      await db.close().catch(() => undefined);
      // BullMQ leaves a connection it was given open; QUIT it, or drop it if Redis is away.
      await redis.quit().catch(() => redis.disconnect());
    })();
    return closing;
  };

  try {
    const address = await listen(server, host, port);
    const urlHost = isIPv6(address.address) ? `[${address.address}]` : address.address;
    return { url: `http://${urlHost}:${address.port}`, close };
  } catch (err) {
    await close();
    throw err;
  }
}
