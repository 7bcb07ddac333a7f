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
import type { Logger } from '@storycheck/logger';
import { createRedis, openCheckQueue } from '@storycheck/queue';

/** Realm sent in `WWW-Authenticate`; browsers show it in the login prompt. */
const REALM = 'storycheck';

/** How long `/readyz` waits for Redis to answer PING before it reports 503 (ms). */
const READY_PING_TIMEOUT_MS = 1_000;

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

/** Resolves true when Redis answers PING within `timeoutMs`, false on error or timeout. */
async function pingRedis(redis: Redis, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    return await Promise.race([redis.ping().then((r) => r === 'PONG'), timeout]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Builds the board's express app: `/healthz` and `/readyz` without auth, then Basic auth (when a
 * password is set), then the read-only guard, then bull-board mounted at `/`.
 */
export function createBoardApp(opts: BoardAppOptions): Express {
  const app = express();
  app.disable('x-powered-by');

  app.get('/healthz', (_req, res) => {
    res.status(200).json({ ok: true });
  });
  app.get('/readyz', async (_req, res) => {
    if (await pingRedis(opts.redis, READY_PING_TIMEOUT_MS)) res.status(200).json({ ok: true });
    else res.status(503).json({ ok: false, error: 'redis unavailable' });
  });

  if (opts.password !== undefined) app.use(basicAuth(opts.user, opts.password));

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

  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath('/');
  createBullBoard({
    queues: opts.queues.map((q) => new BullMQAdapter(q, { readOnlyMode: opts.readonly })),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'storycheck' } },
  });
  app.use('/', serverAdapter.getRouter() as express.Router);

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
 * opening anything), opens a Redis client and the check queue under the config's prefix, and
 * listens on `config.board.host:port` (port 0 picks a free port; the returned url has the real one).
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

  const app = createBoardApp({ queues: [queue], readonly, user, password, redis, logger });
  const server = createServer(app);
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      await closeServer(server);
      await queue.close().catch(() => undefined);
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
