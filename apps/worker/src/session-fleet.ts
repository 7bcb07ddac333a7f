import type { Config } from '@storycheck/config';
import {
  listProxies,
  listSessions,
  poolStoreOf,
  type Db,
  type ProxyRow,
  type SessionRow,
} from '@storycheck/db';
import { coerceError, type Logger } from '@storycheck/logger';
import {
  createTraffic,
  decryptSessionCookies,
  openPool,
  parseSecretKeys,
  proxyUrlWithPassword,
  type Lease,
  type Pool,
  type SecretKey,
  type Traffic,
  withTimeout,
} from '@storycheck/pool';
import { mirrorToStore, syncFromStore } from '@storycheck/pool/admin';
import {
  SessionBlockedError,
  type ProxyError,
  type ProxyTarget,
  type SessionCookies,
  type SessionDeadError,
  type ThrottledError,
} from '@storycheck/story-checker';
import type { Redis } from 'ioredis';
import { LeaseWaitError, MissingSecretKeyError, NoSessionError } from './errors.js';
import { poolReportFor } from './outcomes.js';
import { bestEffort } from './best-effort.js';

/** What a request is sent as. */
export interface Credentials {
  session?: SessionCookies;
  proxy?: ProxyTarget;
  /** Labels for logs and the batch log (never secrets). */
  sessionLabel: string | null;
  proxyLabel: string | null;
}

/** Options of {@link Fleet.start}. */
export interface FleetOptions {
  config: Config;
  db: Db;
  redis: Redis;
  logger: Logger;
  /** How long a request may wait in process for budget before its job is delayed (ms). Default 2 000. */
  maxInProcessWaitMs?: number;
  /** Store refresh and Postgres mirror period (ms). Default 30 000. */
  syncEveryMs?: number;
  /** Called with how long a request waited for budget (ms), once per granted lease. */
  onLeaseWait?: (ms: number) => void;
  /** Called when no session is usable (true) and when one is again (false). */
  onUsableChange?: (usable: boolean) => void;
  /**
   * The connections a request goes out on (the StoryChecker): whether one is open through a
   * proxy, and opening one without a request. Without it, connections are not checked.
   */
  connections?: Connections;
  /**
   * Send-by time of a lease, ms: a granted lease whose request cannot start within this long of
   * its admission (beyond the fastest grant seen) is given back and taken again. Default: half
   * of LEASE_SPREAD (the burst reserve absorbs the whole spread).
   */
  sendByMs?: number;
  /** Called once per request sent under a lease, just before it goes (for the lease trace). */
  onLeaseSent?: (lease: Lease, sentAtMs: number) => void;
  /** Called when a lease is given back unused: `cold` (no connection ready) or `late`. */
  onLeaseReturned?: (why: 'cold' | 'late') => void;
}

/** What {@link Fleet} needs of the HTTP client to hold a lease's arrival time. */
export interface Connections {
  /** True when a request through `proxy` would go out on an open connection (claims it). */
  connectionReady(proxy: ProxyTarget | undefined): boolean;
  /** Opens a connection through `proxy` without sending a request. */
  warmConnection(proxy: ProxyTarget | undefined): Promise<void>;
}

/** The pool state a retired session is put in, by the outcome table's report. */
const SESSION_STATE = {
  session_invalid: 'invalid',
  session_challenge: 'challenge',
  session_suspended: 'suspended',
} as const;

/** Sessions tried for one request before its job gives up for now. */
const MAX_TRIES = 4;
/** Leases given back for lateness in one request before its job is delayed instead. */
const MAX_LATE = 8;
/** Connections opened for one request before it goes out on a cold one anyway. */
const MAX_WARMS = 2;
/** Proxies whose first connection a starting worker opens at once. */
const PREWARM_PARALLEL = 16;
/** The longest a starting worker waits for its first connections, ms. */
const PREWARM_DEADLINE_MS = 5_000;

/**
 * How late a lease is, from its Redis admission time and the local clock: now − admission,
 * less the smallest such lag seen lately (which holds the clock offset between this machine and
 * Redis, and the fastest round trip). Only the excess matters: a constant delay moves every
 * arrival alike; a variable one bunches them.
 */
class LateClock {
  private cur = Infinity;
  private prev = Infinity;
  private n = 0;

  /** Excess lag of a lease admitted at `atUs` (Redis µs), ms, at local time `nowMs`. */
  excessMs(atUs: number, nowMs: number): number {
    const lag = nowMs - atUs / 1000;
    this.cur = Math.min(this.cur, lag);
    // A window of the last 256..512 grants, so a clock step is forgotten.
    if (++this.n >= 256) {
      this.prev = this.cur;
      this.cur = Infinity;
      this.n = 0;
    }
    return lag - Math.min(this.cur, this.prev, lag);
  }
}

/**
 * The worker's side of the session and proxy pool: it loads sessions and proxies from Postgres
 * (decrypting cookies and proxy passwords into memory only), keeps the Redis pool in line with
 * them, and sends every upstream request under a lease — one (session, proxy) pair within its
 * budgets. Answers are reported back: success resets backoff, throttling cools the session
 * (and its proxy when several of its sessions are throttled), a dead or blocked session is
 * retired, a failing proxy opens its circuit; the request then moves to another session.
 * With no sessions imported, requests go out without one (anonymous) and unmetered.
 */
export class Fleet {
  private sessions = new Map<string, { cookies: SessionCookies; label: string }>();
  private proxies = new Map<string, ProxyTarget>();
  /** Proxies a lease may use: not disabled, with a session bound that is not disabled. */
  private leasable: ProxyTarget[] = [];
  private readonly throttledAtByProxy = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private usable = true;
  private ring: SecretKey[] | null;
  /** Requests and throttles per proxy in 10 s buckets, for the board's pool page. */
  private readonly traffic: Traffic;
  private readonly late = new LateClock();
  private readonly sendByMs: number;

  private constructor(
    private readonly opts: FleetOptions,
    readonly pool: Pool,
  ) {
    this.ring = opts.config.secretKey ? parseSecretKeys(opts.config.secretKey) : null;
    this.traffic = createTraffic(opts.redis, opts.config.prefix);
    this.sendByMs = opts.sendByMs ?? opts.config.leaseSpreadMs / 2;
  }

  /** Loads the store, syncs the pool and starts the periodic refresh + mirror. */
  static async start(opts: FleetOptions): Promise<Fleet> {
    const f = new Fleet(opts, openPool(opts.config, opts.redis));
    await f.refresh();
    await f.prewarm();
    if (f.anonymous)
      opts.logger.warn(
        'no sessions imported: requests go out without a session and without budgets',
      );
    else
      opts.logger.info('session pool loaded', {
        sessions: f.sessions.size,
        proxies: f.proxies.size,
      });
    const every = opts.syncEveryMs ?? 30_000;
    f.timer = setInterval(() => {
      f.refresh()
        .then(() => f.mirror())
        .catch((e: unknown) =>
          opts.logger.warn('pool sync failed', { error: coerceError(e).message }),
        );
    }, every);
    f.timer.unref();
    return f;
  }

  /** True when no session is imported: requests are sent without one. */
  get anonymous(): boolean {
    return this.sessions.size === 0;
  }

  /**
   * Re-reads sessions and proxies from Postgres (credentials into memory) and brings the pool in
   * line with them: settings only, live states kept (packages/pool `syncFromStore`).
   */
  async refresh(): Promise<void> {
    const [proxyRows, sessionRows] = await Promise.all([
      listProxies(this.opts.db),
      listSessions(this.opts.db),
    ]);
    if (sessionRows.length && !this.ring) {
      throw new MissingSecretKeyError(`${sessionRows.length} sessions are imported`);
    }
    const proxies = new Map<string, ProxyTarget>();
    for (const p of proxyRows) proxies.set(String(p.id), { label: p.label, url: this.proxyUrl(p) });
    const sessions = new Map<string, { cookies: SessionCookies; label: string }>();
    for (const s of sessionRows)
      sessions.set(String(s.id), { label: s.label, cookies: this.cookies(s) });
    await syncFromStore(this.pool, this.opts.config, poolStoreOf(proxyRows, sessionRows));
    const bound = new Set(
      sessionRows
        .filter((r) => r.status !== 'disabled' && r.proxyId !== null)
        .map((r) => r.proxyId),
    );
    this.leasable = proxyRows
      .filter((r) => r.status !== 'disabled' && bound.has(r.id))
      .map((r) => proxies.get(String(r.id))!);
    this.proxies = proxies;
    this.sessions = sessions;
  }

  /**
   * Opens one connection through every proxy a lease may use (not disabled, a session bound)
   * before the first lease (packages/pool README,
   * "Lease → arrival"): a worker that starts with none would take its first lease on each
   * proxy, find no connection, give the lease back and open one, and a lease given back while
   * other workers lease the same session or proxy is budget lost (release.lua). At most
   * {@link PREWARM_PARALLEL} at a time, and never longer than {@link PREWARM_DEADLINE_MS} in
   * all: a proxy that does not answer is left to the request path, whose error (ProxyError)
   * the outcome table acts on. Labels only in the log line.
   */
  private async prewarm(): Promise<void> {
    const conns = this.opts.connections;
    if (!conns || this.anonymous) return;
    const todo = [...this.leasable];
    let opened = 0;
    let failed = 0;
    const lane = async (): Promise<void> => {
      for (let p = todo.shift(); p; p = todo.shift()) {
        try {
          await conns.warmConnection(p);
          opened++;
        } catch {
          failed++;
        }
      }
    };
    const lanes = Promise.all(Array.from({ length: PREWARM_PARALLEL }, lane));
    // Past the deadline the worker starts anyway: the log line says how far it got.
    await withTimeout(lanes, PREWARM_DEADLINE_MS, 'opening proxy connections').catch(
      () => undefined,
    );
    todo.length = 0;
    this.opts.logger.info('proxy connections opened', {
      opened,
      failed,
      proxies: this.leasable.length,
    });
  }

  /** Mirrors the pool's live state into Postgres (packages/pool `mirrorToStore`). */
  async mirror(): Promise<void> {
    if (this.anonymous) return;
    await mirrorToStore(this.pool, this.opts.db);
  }

  /** True when at least one session could be leased now or after a cooldown. */
  async anyUsable(): Promise<boolean> {
    if (this.anonymous) return true;
    const snap = await this.pool.snapshot();
    return snap.sessions.some((s) => s.status === 'active' || s.status === 'cooling');
  }

  /**
   * Runs one upstream request under a lease, reporting its outcome to the pool. Throttled,
   * dead, blocked sessions and broken proxies make it move to another session (up to 4
   * tries). Waits up to `maxInProcessWaitMs` for budget, else throws LeaseWaitError; throws
   * NoSessionError when no session is usable at all.
   */
  async withLease<T>(signal: AbortSignal, fn: (c: Credentials) => Promise<T>): Promise<T> {
    if (this.anonymous) {
      this.traffic.request(null);
      return fn({ sessionLabel: null, proxyLabel: null });
    }
    const maxWait = this.opts.maxInProcessWaitMs ?? 2_000;
    const conns = this.opts.connections;
    let lastError: unknown;
    const asked = Date.now();
    let late = 0;
    let warms = 0;
    for (let tries = 0; tries < MAX_TRIES;) {
      if (signal.aborted) throw signal.reason;
      const r = await this.pool.acquire();
      if (!r.ok) {
        if (r.reason === 'no_usable_session') {
          this.setUsable(false);
          throw new NoSessionError();
        }
        if (r.waitMs > maxWait) {
          this.opts.onLeaseWait?.(r.waitMs);
          throw new LeaseWaitError(r.waitMs);
        }
        await sleep(r.waitMs, signal);
        continue;
      }
      this.setUsable(true);
      const lease = r.lease;
      const creds = this.credentials(lease);
      if (!creds) {
        // Imported after our last refresh: load it and try again.
        await this.pool.release(lease);
        await this.refresh();
        tries++;
        continue;
      }
      // A lease promises arrival now (packages/pool README, "Lease → arrival"): a request that
      // must first open a connection through its proxy would arrive late, bunched with the
      // requests leased after it. Give the lease back, open the connection, lease again.
      if (conns && warms < MAX_WARMS && !conns.connectionReady(creds.proxy)) {
        warms++;
        await this.pool.release(lease);
        this.opts.onLeaseReturned?.('cold');
        // A connection that cannot be opened: the request goes cold, and its own error (a
        // ProxyError) is what the outcome table acts on.
        await bestEffort(conns.warmConnection(creds.proxy), this.opts.logger, 'warm a connection');
        continue;
      }
      // Past its send-by time (event-loop lag, a slow reply): give it back and lease again.
      const sentAtMs = Date.now();
      if (this.late.excessMs(lease.atUs, sentAtMs) > this.sendByMs) {
        await this.pool.release(lease);
        this.opts.onLeaseReturned?.('late');
        if (++late >= MAX_LATE) throw new LeaseWaitError(Math.ceil(this.sendByMs));
        continue;
      }
      this.opts.onLeaseWait?.(sentAtMs - asked);
      this.opts.onLeaseSent?.(lease, sentAtMs);
      tries++;
      this.traffic.request(lease.proxyId);
      try {
        const v = await fn(creds);
        await this.pool.reportSuccess(lease);
        return v;
      } catch (e) {
        lastError = e;
        if (!(await this.report(lease, e))) throw e;
      }
    }
    throw lastError ?? new LeaseWaitError(1_000);
  }

  /**
   * Reports a failed request to the pool as the outcome table says ({@link poolReportFor});
   * true when another session should be tried.
   */
  private async report(lease: Lease, e: unknown): Promise<boolean> {
    const report = poolReportFor(e);
    switch (report) {
      case 'throttled':
        await this.reportThrottled(lease, e as ThrottledError);
        return true;
      case 'session_invalid':
      case 'session_challenge':
      case 'session_suspended':
        await this.retireSession(lease, e as SessionDeadError | SessionBlockedError, report);
        return true;
      case 'proxy_broken': {
        const r = await this.pool.reportProxyBroken(lease, (e as ProxyError).code);
        this.opts.logger.warn('proxy broken; circuit open', {
          proxy: lease.proxyLabel,
          recoverInMs: r ? Math.round((r.recoverAtUs - r.nowUs) / 1000) : null,
        });
        return true;
      }
      case 'none':
        // An answer that is no verdict on the session (5xx, malformed): the lease was used.
        return false;
    }
  }

  /** The session cools down; two throttles on one proxy within IP_THROTTLE_WINDOW cool the IP. */
  private async reportThrottled(lease: Lease, e: ThrottledError): Promise<void> {
    this.traffic.throttled(lease.proxyId);
    const now = Date.now();
    const last = lease.proxyId ? this.throttledAtByProxy.get(lease.proxyId) : undefined;
    const win = this.opts.config.ipThrottleWindowMs;
    const ipPattern = win > 0 && last !== undefined && now - last < win;
    if (lease.proxyId) this.throttledAtByProxy.set(lease.proxyId, now);
    const t = await this.pool.reportThrottled(lease, {
      retryAfterMs: e.retryAfterMs,
      ipPattern,
      code: e.code,
    });
    this.opts.logger.warn('session throttled; cooling down', {
      session: lease.sessionLabel,
      proxy: lease.proxyLabel,
      ipPattern,
      cooldownMs:
        t.sessionCooldownUntilUs === null
          ? null
          : Math.round((t.sessionCooldownUntilUs - t.nowUs) / 1000),
    });
  }

  /** A logged-out or blocked session leaves the pool in its state; Postgres sees it at once. */
  private async retireSession(
    lease: Lease,
    e: SessionDeadError | SessionBlockedError,
    report: 'session_invalid' | 'session_challenge' | 'session_suspended',
  ): Promise<void> {
    const kind = SESSION_STATE[report];
    await this.pool.reportSessionDead(
      lease,
      kind,
      e instanceof SessionBlockedError ? `${e.code}:${e.kind}` : e.code,
    );
    this.opts.logger.warn('session retired', {
      session: lease.sessionLabel,
      state: kind,
      errorCode: e.code,
    });
    // The periodic mirror writes it again within FleetOptions.syncEveryMs.
    await bestEffort(this.mirror(), this.opts.logger, 'mirror a retired session');
  }

  private setUsable(usable: boolean): void {
    if (usable === this.usable) return;
    this.usable = usable;
    this.opts.onUsableChange?.(usable);
  }

  private credentials(lease: Lease): Credentials | null {
    const s = this.sessions.get(lease.sessionId);
    if (!s) return null;
    const p = lease.proxyId ? this.proxies.get(lease.proxyId) : undefined;
    if (lease.proxyId && !p) return null;
    return {
      session: s.cookies,
      ...(p ? { proxy: p } : {}),
      sessionLabel: lease.sessionLabel,
      proxyLabel: lease.proxyLabel,
    };
  }

  private cookies(row: SessionRow): SessionCookies {
    return decryptSessionCookies(row.cookiesEnc, row.label, this.ring!);
  }

  private proxyUrl(row: ProxyRow): string {
    if (row.passwordEnc && !this.ring) {
      throw new MissingSecretKeyError(`proxy ${row.label} has a stored password`);
    }
    return proxyUrlWithPassword(row.url, row.passwordEnc, row.label, this.ring ?? []);
  }

  /** Stops the periodic sync. */
  close(): void {
    clearInterval(this.timer);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
