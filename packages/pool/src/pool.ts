import type { Redis } from 'ioredis';
import type { Rate } from '@storycheck/config';
import { poolKeys, type PoolKeys } from './keys.js';
import { defineScripts, type ScriptRunner } from './scripts.js';
import { resolveAdaptive, successArgs, throttleArgs, type AdaptiveOptions } from './adaptive.js';

export type { AdaptiveOptions } from './adaptive.js';

/** A session's stored state. `cooling` is not stored: it is `active` with a cooldown running. */
export type SessionState = 'active' | 'invalid' | 'challenge' | 'suspended' | 'disabled';
/** What a session dead/blocked answer turns it into (DESIGN.md error taxonomy). */
export type SessionDeadKind = 'invalid' | 'challenge' | 'suspended';
/** A session's state as shown to operators: its stored state, or `cooling`. */
export type SessionStatus = SessionState | 'cooling';
/** A proxy's stored state. `broken` = circuit open, recovers after a randomised backoff. */
export type ProxyState = 'active' | 'broken' | 'disabled';
/** A proxy's state as shown to operators: its stored state, or `cooling`. */
export type ProxyStatus = ProxyState | 'cooling';

const SESSION_STATES: readonly SessionState[] = [
  'active',
  'invalid',
  'challenge',
  'suspended',
  'disabled',
];
const ID = /^[A-Za-z0-9_.-]{1,128}$/;

/** Thrown for misuse (bad id, bad budget) and refused operations; `code` is stable. */
export class PoolError extends Error {
  override name = 'PoolError';
  /** bad_input | no_such_session | no_such_proxy | proxy_disabled | proxy_alive. */
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/**
 * One admission: the right to send one request now through `sessionId` over `proxyId`. It is
 * not a lock — nothing needs releasing — but its outcome should be reported (reportSuccess,
 * reportThrottled, reportSessionDead, reportProxyBroken) so backoff and circuits work.
 */
export interface Lease {
  /** Unique within the pool (a counter). */
  leaseId: string;
  sessionId: string;
  sessionLabel: string;
  /** null: the session sends without a proxy. */
  proxyId: string | null;
  proxyLabel: string | null;
  /** Redis time of the admission, integer µs since the epoch. */
  atUs: number;
  /**
   * What {@link Pool.release} needs to undo the admission exactly: the session's, the proxy's
   * and the global budget's TAT before and after it (µs as decimal strings, "" = none).
   * Opaque to callers; never a secret.
   */
  undo: readonly string[];
}

/** Result of {@link Pool.acquire}. */
export type AcquireResult =
  | { ok: true; lease: Lease }
  /** Budget exhausted (session, proxy, global, cooldown or open circuit): retry in waitMs. */
  | { ok: false; reason: 'budget'; waitMs: number; waitUs: number }
  /** No session can ever be leased without an operator (all invalid/disabled/proxy gone). */
  | { ok: false; reason: 'no_usable_session' };

/** Budgets applied when a session or proxy does not override them. */
export interface PoolDefaults {
  /** SESSION_RATE, e.g. 200/11m. */
  sessionRate: Rate;
  /** SESSION_BURST: requests a session may send back to back. */
  sessionBurst: number;
  /** PROXY_RATE. */
  proxyRate: Rate;
  /** PROXY_BURST. */
  proxyBurst: number;
  /** GLOBAL_RATE; undefined = no global budget. */
  globalRate?: Rate | undefined;
  /** GLOBAL_BURST. Default 10. */
  globalBurst?: number;
}

/**
 * Throttle backoff: cooldown = max(Retry-After, random(0, min(capMs, baseMs·2^k))), k = the
 * session's consecutive throttles (reset by a success). THROTTLE_BACKOFF_BASE / _CAP.
 */
export interface BackoffOptions {
  /** ms, at least 1. Default 60 000 (1 min; gallery-dl waits 60 s after a 429). */
  baseMs: number;
  /** ms, at least baseMs. Default 1 800 000 (30 min; instaloader waits ~30 min after a 429). */
  capMs: number;
}

/** Circuit of a broken proxy: closed again after d/2 + random(0, d/2), d = min(cap, base·2^k). */
export interface CircuitOptions {
  /** Default 5 000. */
  baseMs: number;
  /** Default 300 000 (5 min). */
  capMs: number;
  /** How long one probe lease holds a half-open proxy before another may try, ms. Default 30 000. */
  probeMs: number;
}

/** Options of {@link createPool}. */
export interface PoolOptions {
  /** A connection from `createRedis` (the caller owns and closes it). */
  redis: Redis;
  /** STORYCHECK_PREFIX. */
  prefix: string;
  defaults: PoolDefaults;
  /** Throttle backoff; defaults in {@link BackoffOptions}. */
  backoff?: Partial<BackoffOptions>;
  /** Broken-proxy circuit; defaults in {@link CircuitOptions}. */
  circuit?: Partial<CircuitOptions>;
  /** Adaptive session rates (adaptive.ts): false (default), true (defaults) or tuned. */
  adaptive?: boolean | Partial<AdaptiveOptions>;
  /**
   * Ready sessions (earliest next-send first) an acquire looks at to pick the least recently
   * used one. Default 8; the cost grows only a little with it (one HMGET).
   */
  window?: number;
  /** Uniform [0, 1) source for jitter. Default Math.random. */
  random?: () => number;
}

/** A session as {@link Pool.upsertSession} takes it: ids and budget, never a cookie. */
export interface SessionInput {
  id: string;
  label: string;
  /** The proxy it is bound to; null = no proxy. */
  proxyId: string | null;
  /** Budget override; default `defaults.sessionRate`. */
  rate?: Rate | undefined;
  /** Burst override; default `defaults.sessionBurst`. */
  burst?: number | undefined;
}

/** A proxy as {@link Pool.upsertProxy} takes it: id and budget, never its URL or password. */
export interface ProxyInput {
  id: string;
  label: string;
  rate?: Rate | undefined;
  burst?: number | undefined;
}

/** Options of the upserts. */
export interface UpsertOptions {
  /**
   * Keep an existing member's state (a rebuild or sync must not revive an invalid session).
   * Default false: upserting is a re-import and resets the state to active.
   */
  keepState?: boolean;
}

/** One session in a {@link PoolSnapshot}. Times are epoch ms from Redis time. */
export interface SessionInfo {
  id: string;
  label: string;
  proxyId: string | null;
  status: SessionStatus;
  /** In the ready set: it will be leased once its time comes. */
  leasable: boolean;
  /** ms until it may send (its proxy included); null when not leasable. */
  nextSendInMs: number | null;
  usageCount: number;
  lastUsedAt: number | null;
  /** End of the latest cooldown (may be past); null if it never cooled down. */
  cooldownUntil: number | null;
  /** ms of cooldown left, 0 when none. */
  cooldownLeftMs: number;
  lastError: string | null;
  lastErrorAt: number | null;
  /** Consecutive throttles (the backoff exponent). */
  throttleStreak: number;
  /** Effective rate / configured rate (adaptive mode), 1 = configured. */
  rateFactor: number;
  /** Adaptive mode: the rate factor at which the session was last throttled; null = never. */
  throttledRateFactor: number | null;
  /** Adaptive mode: how long the upstream's penalty lasts as learned, ms; null = not learned. */
  learnedPenaltyMs: number | null;
  /** Effective emission interval, ms. */
  intervalMs: number;
  burst: number;
}

/** One proxy in a {@link PoolSnapshot}. Times are epoch ms from Redis time. */
export interface ProxyInfo {
  id: string;
  label: string;
  status: ProxyStatus;
  /** Not disabled. */
  leasable: boolean;
  /** ms until it may send; null when disabled. */
  nextSendInMs: number | null;
  usageCount: number;
  lastUsedAt: number | null;
  cooldownUntil: number | null;
  cooldownLeftMs: number;
  /** Broken: when the next probe may go; null otherwise. */
  recoverAt: number | null;
  lastError: string | null;
  lastErrorAt: number | null;
  throttleStreak: number;
  /** Consecutive breaks (the circuit's backoff exponent). */
  breakStreak: number;
  intervalMs: number;
  burst: number;
}

/** Every session and proxy, read in one script at one Redis instant. */
export interface PoolSnapshot {
  /** Redis time of the snapshot, epoch ms. */
  at: number;
  sessions: SessionInfo[];
  proxies: ProxyInfo[];
}

/** What {@link Pool.reportThrottled} did, in Redis time (epoch µs). */
export interface ThrottleResult {
  nowUs: number;
  /** End of the session's cooldown; null if the session no longer exists. */
  sessionCooldownUntilUs: number | null;
  /** End of the proxy's cooldown; null when the proxy was not cooled. */
  proxyCooldownUntilUs: number | null;
}

/** The fleet-wide session and proxy pool. Every method is one atomic Lua script. */
export interface Pool {
  /** The key layout (for tooling and tests). */
  readonly keys: PoolKeys;
  /** Creates or updates a session; returns true when created. */
  upsertSession(session: SessionInput, opts?: UpsertOptions): Promise<boolean>;
  /** Creates or updates a proxy; returns true when created. */
  upsertProxy(proxy: ProxyInput, opts?: UpsertOptions): Promise<boolean>;
  /**
   * Picks the least recently used (session, proxy) pair that may send now, within budget. With
   * `sessionId`, leases that session only (in any stored state, for `storycheck sessions
   * check`), or says how long until it may send; `no_usable_session` when it does not exist or
   * its proxy is disabled or gone.
   */
  acquire(sessionId?: string): Promise<AcquireResult>;
  /**
   * Gives a lease back unused: its request was not sent (no connection ready, or past its
   * send-by time). The budget it took returns to the session, its proxy and the global key
   * where that is exact (the key's TAT is still what this admission wrote: it goes back to what
   * it was before), so a retaken lease costs nothing; a key leased again or cooled since keeps
   * its TAT, and this lease's budget on it is lost rather than given back early (release.lua).
   * Never call it for a lease whose request may have reached the upstream.
   */
  release(lease: Lease): Promise<void>;
  /**
   * The request got a real answer: resets backoff, closes a probed circuit, AIMD raise. In
   * adaptive mode a success of a request leased before the session's latest throttle streak
   * began changes nothing on the session (it was sent before the penalty).
   */
  reportSuccess(lease: Lease): Promise<void>;
  /** The request was throttled; cools the session (and with ipPattern the proxy) down. */
  reportThrottled(
    lease: Lease,
    opts?: { retryAfterMs?: number | undefined; ipPattern?: boolean; code?: string },
  ): Promise<ThrottleResult>;
  /** The session is logged out / challenged / suspended: never leased until enabled. */
  reportSessionDead(lease: Lease, kind: SessionDeadKind, code?: string): Promise<void>;
  /**
   * The proxy failed: opens its circuit. Returns Redis now and when it may be probed (epoch
   * µs), or null when the lease had no proxy or the proxy is gone.
   */
  reportProxyBroken(
    lease: Lease,
    code: string,
  ): Promise<{ nowUs: number; recoverAtUs: number } | null>;
  /** Sets a session's state; returns the previous one, or null when it does not exist. */
  markSession(id: string, state: SessionState, code?: string): Promise<SessionState | null>;
  /** markSession(id, 'active'). */
  enableSession(id: string): Promise<SessionState | null>;
  /** markSession(id, 'disabled'). */
  disableSession(id: string): Promise<SessionState | null>;
  /** Enables (closing a broken circuit) or disables a proxy; previous state or null. */
  markProxy(id: string, state: 'active' | 'disabled'): Promise<ProxyState | null>;
  /**
   * Moves a session to another proxy (null = none). Refused with PoolError `proxy_alive`
   * while its current proxy is active, unless `force`; returns the old proxy id.
   */
  rebind(
    sessionId: string,
    proxyId: string | null,
    opts?: { force?: boolean },
  ): Promise<string | null>;
  /** Deletes a session; true when it existed. */
  removeSession(id: string): Promise<boolean>;
  /** Deletes a proxy; its sessions stay bound and are not leased until it returns or a rebind. */
  removeProxy(id: string): Promise<boolean>;
  /** Every session and proxy with status, usage, last use, cooldown and last error. */
  snapshot(): Promise<PoolSnapshot>;
}

/** Emission interval of a rate in integer µs, rounded up (rounding never admits more). */
export function intervalUs(rate: Rate): number {
  if (!Number.isInteger(rate.count) || rate.count < 1 || !(rate.periodMs >= 1))
    throw new PoolError('bad_input', `rate ${rate.count}/${rate.periodMs}ms is not a budget`);
  return Math.ceil((rate.periodMs * 1000) / rate.count);
}

function checkBurst(burst: number): number {
  if (!Number.isInteger(burst) || burst < 1)
    throw new PoolError('bad_input', `burst ${burst} must be a positive integer`);
  return burst;
}

function checkId(kind: string, id: string): string {
  if (!ID.test(id))
    throw new PoolError('bad_input', `${kind} id "${id}" must be 1–128 of A-Z a-z 0-9 _ . -`);
  return id;
}

const toMs = (us: number) => Math.floor(us / 1000);
const leftMs = (untilUs: number, nowUs: number) =>
  untilUs > nowUs ? Math.ceil((untilUs - nowUs) / 1000) : 0;

function fields(row: unknown[]): { id: string; score: string; h: Map<string, string> } {
  const h = new Map<string, string>();
  for (let i = 2; i + 1 < row.length; i += 2) h.set(String(row[i]), String(row[i + 1]));
  return { id: String(row[0]), score: String(row[1]), h };
}

/**
 * Creates a pool over a Redis connection. Cheap: it registers the scripts on the connection
 * and holds no state of its own, so any number of processes may share one pool.
 *
 * Longer than 80 lines, on purpose for now: it is the Pool object literal, each method a few
 * lines over the same closure (the script runner, the keys, the defaults, the backoff and
 * adaptive settings); a split moves those ten shared values into a class, which is the next
 * step (docs/development.md, "Known long functions").
 */
// eslint-disable-next-line max-lines-per-function -- the reason is in the comment above
export function createPool(options: PoolOptions): Pool {
  const { redis, defaults } = options;
  const keys = poolKeys(options.prefix);
  const run: ScriptRunner = defineScripts(redis);
  const B = keys.base;
  const backoff: BackoffOptions = { baseMs: 60_000, capMs: 1_800_000, ...options.backoff };
  if (!(backoff.baseMs >= 1 && backoff.capMs >= backoff.baseMs && Number.isFinite(backoff.capMs)))
    throw new PoolError(
      'bad_input',
      `backoff base ${backoff.baseMs} ms and cap ${backoff.capMs} ms: need 1 <= base <= cap`,
    );
  const circuit: CircuitOptions = {
    baseMs: 5_000,
    capMs: 300_000,
    probeMs: 30_000,
    ...options.circuit,
  };
  const adaptive = resolveAdaptive(options.adaptive, (m) => new PoolError('bad_input', m));
  const window = options.window ?? 8;
  if (!Number.isInteger(window) || window < 1 || window > 1000)
    throw new PoolError('bad_input', `window ${window} must be an integer from 1 to 1000`);
  const random = () => {
    const r = (options.random ?? Math.random)();
    return Number.isFinite(r) ? Math.min(Math.max(r, 0), 0.999999) : 0;
  };
  const sessionIv = intervalUs(defaults.sessionRate);
  const proxyIv = intervalUs(defaults.proxyRate);
  const globalIv = defaults.globalRate ? intervalUs(defaults.globalRate) : 0;
  const globalBurst = checkBurst(defaults.globalBurst ?? 10);
  checkBurst(defaults.sessionBurst);
  checkBurst(defaults.proxyBurst);

  async function markSession(id: string, state: SessionState, code = '') {
    if (!SESSION_STATES.includes(state))
      throw new PoolError('bad_input', `session state "${state}" is not one of ${SESSION_STATES}`);
    const [found, prev] = (await run(
      'setSessionState',
      [keys.ready],
      [B, checkId('session', id), state, code],
    )) as [number, string];
    return found ? (prev as SessionState) : null;
  }

  return {
    keys,

    async upsertSession(s, opts = {}) {
      const created = await run(
        'upsertSession',
        [keys.ready, keys.sessions, keys.lru],
        [
          B,
          checkId('session', s.id),
          s.label,
          s.proxyId === null ? '' : checkId('proxy', s.proxyId),
          s.rate ? intervalUs(s.rate) : sessionIv,
          checkBurst(s.burst ?? defaults.sessionBurst),
          opts.keepState ? 1 : 0,
        ],
      );
      return created === 1;
    },

    async upsertProxy(p, opts = {}) {
      const created = await run(
        'upsertProxy',
        [keys.proxyReady, keys.proxies],
        [
          B,
          checkId('proxy', p.id),
          p.label,
          p.rate ? intervalUs(p.rate) : proxyIv,
          checkBurst(p.burst ?? defaults.proxyBurst),
          opts.keepState ? 1 : 0,
        ],
      );
      return created === 1;
    },

    async acquire(sessionId) {
      const r = (await run(
        'acquire',
        [keys.ready, keys.global, keys.seq, keys.lru],
        [
          B,
          window,
          globalIv,
          globalBurst,
          circuit.probeMs * 1000,
          ...(sessionId === undefined ? [] : [checkId('session', sessionId)]),
        ],
      )) as unknown[];
      if (r[0] === 1) {
        const [, sessionId, sessionLabel, proxyId, proxyLabel, seq, atUs, ...undo] = r as [
          number,
          string,
          string,
          string,
          string,
          number,
          number,
          ...string[],
        ];
        return {
          ok: true,
          lease: {
            leaseId: String(seq),
            sessionId,
            sessionLabel,
            proxyId: proxyId === '' ? null : proxyId,
            proxyLabel: proxyId === '' ? null : proxyLabel,
            atUs,
            undo,
          },
        };
      }
      if (r[2] === 'none') return { ok: false, reason: 'no_usable_session' };
      const waitUs = Math.max(1, Number(r[1]));
      return { ok: false, reason: 'budget', waitUs, waitMs: Math.ceil(waitUs / 1000) };
    },

    async release(lease) {
      await run(
        'release',
        [keys.ready, keys.proxyReady, keys.global],
        [B, lease.sessionId, lease.proxyId ?? '', globalIv, lease.atUs, ...lease.undo],
      );
    },

    async reportSuccess(lease) {
      await run(
        'reportSuccess',
        [keys.ready, keys.proxyReady],
        [
          B,
          lease.sessionId,
          lease.proxyId ?? '',
          ...successArgs(adaptive).before,
          lease.atUs,
          successArgs(adaptive).burst,
        ],
      );
    },

    async reportThrottled(lease, opts = {}) {
      const retryAfterMs = Math.max(0, Math.ceil(opts.retryAfterMs ?? 0));
      const [nowUs, s, p] = (await run(
        'reportThrottled',
        [keys.ready, keys.proxyReady],
        [
          B,
          lease.sessionId,
          lease.proxyId ?? '',
          random(),
          retryAfterMs * 1000,
          opts.ipPattern ? 1 : 0,
          backoff.baseMs * 1000,
          backoff.capMs * 1000,
          opts.code ?? 'throttled',
          ...throttleArgs(adaptive).before,
          lease.atUs,
          throttleArgs(adaptive).burst,
        ],
      )) as [number, number, number];
      return {
        nowUs,
        sessionCooldownUntilUs: s < 0 ? null : s,
        proxyCooldownUntilUs: p < 0 ? null : p,
      };
    },

    async reportSessionDead(lease, kind, code) {
      await markSession(lease.sessionId, kind, code ?? kind);
    },

    async reportProxyBroken(lease, code) {
      if (lease.proxyId === null) return null;
      const [nowUs, ra] = (await run(
        'reportProxyBroken',
        [keys.ready, keys.proxyReady],
        [B, lease.proxyId, random(), circuit.baseMs * 1000, circuit.capMs * 1000, code],
      )) as [number, number];
      return ra < 0 ? null : { nowUs, recoverAtUs: ra };
    },

    markSession: (id, state, code) => markSession(id, state, code),
    enableSession: (id) => markSession(id, 'active'),
    disableSession: (id) => markSession(id, 'disabled', 'disabled'),

    async markProxy(id, state) {
      if (state !== 'active' && state !== 'disabled')
        throw new PoolError('bad_input', `proxy state "${String(state)}" is not active|disabled`);
      const [found, prev] = (await run(
        'setProxyState',
        [keys.ready, keys.proxyReady],
        [B, checkId('proxy', id), state],
      )) as [number, string];
      return found ? (prev as ProxyState) : null;
    },

    async rebind(sessionId, proxyId, opts = {}) {
      const [ok, detail] = (await run(
        'rebind',
        [keys.ready],
        [
          B,
          checkId('session', sessionId),
          proxyId === null ? '' : checkId('proxy', proxyId),
          opts.force ? 1 : 0,
        ],
      )) as [number, string];
      if (!ok) {
        const why: Record<string, string> = {
          no_such_session: `no session ${sessionId}`,
          no_such_proxy: `no proxy ${String(proxyId)}`,
          proxy_disabled: `proxy ${String(proxyId)} is disabled`,
          proxy_alive: `session ${sessionId} keeps its proxy while it is active (force to move it)`,
        };
        throw new PoolError(detail, why[detail] ?? detail);
      }
      return detail === '' ? null : detail;
    },

    async removeSession(id) {
      const n = await run(
        'remove',
        [keys.ready, keys.proxyReady, keys.sessions, keys.proxies, keys.lru],
        [B, 'session', checkId('session', id)],
      );
      return n === 1;
    },

    async removeProxy(id) {
      const n = await run(
        'remove',
        [keys.ready, keys.proxyReady, keys.sessions, keys.proxies, keys.lru],
        [B, 'proxy', checkId('proxy', id)],
      );
      return n === 1;
    },

    async snapshot() {
      const [nowUs, sessions, proxies] = (await run(
        'snapshot',
        [keys.ready, keys.proxyReady, keys.sessions, keys.proxies],
        [B],
      )) as [number, unknown[][], unknown[][]];
      const n = (h: Map<string, string>, k: string) => Number(h.get(k) ?? 0);
      const at = (h: Map<string, string>, k: string) => (n(h, k) > 0 ? toMs(n(h, k)) : null);
      const next = (score: string) => (score === '' ? null : leftMs(Number(score), nowUs));
      return {
        at: toMs(nowUs),
        sessions: sessions.map((row): SessionInfo => {
          const { id, score, h } = fields(row);
          const st = (h.get('st') ?? 'active') as SessionState;
          const cu = n(h, 'cu');
          return {
            id,
            label: h.get('label') ?? '',
            proxyId: h.get('proxy') ? h.get('proxy')! : null,
            status: st === 'active' && cu > nowUs ? 'cooling' : st,
            leasable: score !== '',
            nextSendInMs: next(score),
            usageCount: n(h, 'n'),
            lastUsedAt: at(h, 'lu'),
            cooldownUntil: at(h, 'cu'),
            cooldownLeftMs: leftMs(cu, nowUs),
            lastError: h.get('err') ?? null,
            lastErrorAt: at(h, 'ea'),
            throttleStreak: n(h, 'bk'),
            rateFactor: (n(h, 'rf') || 1000) / 1000,
            throttledRateFactor: n(h, 'rt') > 0 ? n(h, 'rt') / 1000 : null,
            learnedPenaltyMs: n(h, 'pw') > 0 ? n(h, 'pw') / 1000 : null,
            intervalMs: n(h, 'iv') / 1000,
            burst: n(h, 'b'),
          };
        }),
        proxies: proxies.map((row): ProxyInfo => {
          const { id, score, h } = fields(row);
          const st = (h.get('st') ?? 'active') as ProxyState;
          const cu = n(h, 'cu');
          return {
            id,
            label: h.get('label') ?? '',
            status: st === 'active' && cu > nowUs ? 'cooling' : st,
            leasable: score !== '',
            nextSendInMs: next(score),
            usageCount: n(h, 'n'),
            lastUsedAt: at(h, 'lu'),
            cooldownUntil: at(h, 'cu'),
            cooldownLeftMs: leftMs(cu, nowUs),
            recoverAt: st === 'broken' ? at(h, 'ra') : null,
            lastError: h.get('err') ?? null,
            lastErrorAt: at(h, 'ea'),
            throttleStreak: n(h, 'bk'),
            breakStreak: n(h, 'cb'),
            intervalMs: n(h, 'iv') / 1000,
            burst: n(h, 'b'),
          };
        }),
      };
    },
  };
}
