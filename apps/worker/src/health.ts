import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { isIPv6, type AddressInfo } from 'node:net';

/**
 * The worker's health and metrics HTTP server (WORKER_HTTP_PORT): plain node:http, three GET
 * routes, no auth (it serves no secret; bind it to loopback or a private network).
 *
 * - `GET /healthz` — liveness: 200 while the event loop keeps up, 503 when a loop delay above
 *   `eventLoopStuckMs` was measured within the last `stuckWindowMs`.
 * - `GET /readyz` — readiness: 200 when Redis and Postgres both answer within
 *   {@link READY_CHECK_TIMEOUT_MS}; 503 naming the one(s) that did not.
 * - `GET /metrics` — Prometheus text format 0.0.4 from {@link HealthServerOptions.metrics}.
 */

/** How long `/readyz` waits for each dependency before calling it down (ms). */
export const READY_CHECK_TIMEOUT_MS = 1_000;

/** Default loop delay above which `/healthz` reports the loop stuck (ms). */
export const DEFAULT_EVENT_LOOP_STUCK_MS = 5_000;

/**
 * Default time a stuck loop keeps `/healthz` at 503 after it recovered (ms). Long enough for a
 * probe to see a loop that keeps getting stuck, short enough that one long GC or a burst of
 * work does not get the process restarted (a liveness probe restarts only after several 503s).
 */
export const DEFAULT_STUCK_WINDOW_MS = 10_000;

/** How often the loop-delay sampler runs (ms); its drift is the measured delay. */
const SAMPLE_EVERY_MS = 100;

/** How long `close()` lets open requests finish before it drops their sockets (ms). */
const CLOSE_GRACE_MS = 2_000;

/** Something that renders Prometheus text; {@link WorkerMetrics} is one. */
export interface MetricsSource {
  /** Prometheus text exposition. */
  render(): Promise<string>;
  /** Content-Type of the text; default `text/plain; version=0.0.4; charset=utf-8`. */
  readonly contentType?: string;
}

/** A readiness probe: resolves when the dependency answers, rejects (or hangs) otherwise. */
export type ReadyCheck = () => Promise<void>;

/** Options of {@link startHealthServer}. */
export interface HealthServerOptions {
  /** TCP port; 0 picks a free one (the returned url has it). */
  port: number;
  /** Bind address. Default `127.0.0.1`. */
  host?: string;
  /** Served at `/metrics`. */
  metrics: MetricsSource;
  /** Readiness probes, each bounded by {@link READY_CHECK_TIMEOUT_MS}. */
  checks: { redis: ReadyCheck; postgres: ReadyCheck };
  /** Loop delay that counts as stuck, ms. Default {@link DEFAULT_EVENT_LOOP_STUCK_MS}. */
  eventLoopStuckMs?: number;
  /** How long a stuck measurement keeps `/healthz` at 503, ms. Default {@link DEFAULT_STUCK_WINDOW_MS}. */
  stuckWindowMs?: number;
}

/** What {@link startHealthServer} returns. */
export interface HealthServer {
  /** Base URL it really listens on, e.g. `http://127.0.0.1:9464`. */
  url: string;
  /** Stops the loop sampler and the server. Idempotent. */
  close(): Promise<void>;
}

/** Readiness of one dependency as `/readyz` reports it (never an error message: it may leak). */
type CheckState = 'ok' | 'down' | 'timeout';

/** Runs a probe with a deadline; never rejects. */
async function probe(check: ReadyCheck, timeoutMs: number): Promise<CheckState> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<CheckState>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  try {
    return await Promise.race([
      Promise.resolve()
        .then(check)
        .then(
          (): CheckState => 'ok',
          (): CheckState => 'down',
        ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Measures event-loop delay by timer drift: a timer due every {@link SAMPLE_EVERY_MS} that runs
 * late by D ms means the loop was blocked for about D ms. A fully blocked loop cannot answer
 * `/healthz` at all (the probe times out, which a supervisor also reads as unhealthy); what this
 * catches is a loop that answers between long blocks. Timers run before I/O callbacks in each
 * loop turn, so the drift of a block is recorded before the request that waited on it is served.
 */
class LoopMonitor {
  private expectedAt = performance.now() + SAMPLE_EVERY_MS;
  private stuckAt = Number.NEGATIVE_INFINITY;
  private stuckDelayMs = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly stuckMs: number,
    private readonly windowMs: number,
  ) {
    this.timer = setInterval(() => this.sample(), SAMPLE_EVERY_MS);
    // The sampler must not keep a stopping process alive.
    this.timer.unref();
  }

  private sample(): void {
    const now = performance.now();
    const delayMs = Math.max(0, now - this.expectedAt);
    this.expectedAt = now + SAMPLE_EVERY_MS;
    if (delayMs > this.stuckMs) {
      this.stuckAt = now;
      this.stuckDelayMs = delayMs;
    }
  }

  /** The latest stuck delay (ms) if one was seen within the window, else null. */
  recentStuckDelayMs(): number | null {
    // A block still going on when the request arrives is caught too (the sampler is late now).
    this.sample();
    return performance.now() - this.stuckAt <= this.windowMs ? Math.round(this.stuckDelayMs) : null;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

/**
 * Starts the worker's health/metrics server on `host:port`. Rejects when it cannot listen
 * (EADDRINUSE…), leaving nothing open.
 */
export async function startHealthServer(opts: HealthServerOptions): Promise<HealthServer> {
  const host = opts.host ?? '127.0.0.1';
  const monitor = new LoopMonitor(
    opts.eventLoopStuckMs ?? DEFAULT_EVENT_LOOP_STUCK_MS,
    opts.stuckWindowMs ?? DEFAULT_STUCK_WINDOW_MS,
  );

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      send(res, 405, { error: 'method not allowed' });
      return;
    }
    if (path === '/healthz') {
      const stuckMs = monitor.recentStuckDelayMs();
      if (stuckMs === null) send(res, 200, { ok: true });
      else send(res, 503, { ok: false, error: 'event loop stuck', eventLoopDelayMs: stuckMs });
      return;
    }
    if (path === '/readyz') {
      const [redis, postgres] = await Promise.all([
        probe(opts.checks.redis, READY_CHECK_TIMEOUT_MS),
        probe(opts.checks.postgres, READY_CHECK_TIMEOUT_MS),
      ]);
      const failed = [redis === 'ok' ? null : 'redis', postgres === 'ok' ? null : 'postgres'];
      const down = failed.filter((x): x is string => x !== null);
      const checks = { redis, postgres };
      if (down.length === 0) send(res, 200, { ok: true, checks });
      else send(res, 503, { ok: false, error: `${down.join(', ')} unavailable`, checks });
      return;
    }
    if (path === '/metrics') {
      const text = await opts.metrics.render();
      res.writeHead(200, {
        'content-type': opts.metrics.contentType ?? 'text/plain; version=0.0.4; charset=utf-8',
        'cache-control': 'no-store',
      });
      res.end(text);
      return;
    }
    send(res, 404, { error: 'not found', routes: ['/healthz', '/readyz', '/metrics'] });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      // Only /metrics can throw (a bug in a collector); say so without details.
      if (!res.headersSent) send(res, 500, { error: 'internal error' });
      else res.destroy();
    });
  });

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      monitor.stop();
      if (!server.listening) {
        resolve();
        return;
      }
      const force = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
      server.close(() => {
        clearTimeout(force);
        resolve();
      });
      server.closeIdleConnections();
    });
    return closing;
  };

  try {
    const address = await new Promise<AddressInfo>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, host, () => {
        server.off('error', reject);
        resolve(server.address() as AddressInfo);
      });
    });
    const urlHost = isIPv6(address.address) ? `[${address.address}]` : address.address;
    return { url: `http://${urlHost}:${address.port}`, close };
  } catch (err) {
    await close();
    throw err;
  }
}
