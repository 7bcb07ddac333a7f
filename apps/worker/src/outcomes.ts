import {
  ClientBugError,
  MalformedResponseError,
  ProxyError,
  SessionBlockedError,
  SessionDeadError,
  StoryCheckError,
  ThrottledError,
  UpstreamError,
} from '@storycheck/story-checker';
import { LeaseWaitError, NoSessionError } from './errors.js';
import { coerceError } from '@storycheck/logger';

/**
 * What the worker does with a failed check: the one table of DESIGN.md's error taxonomy, not
 * scattered `if`s.
 * - `delay`: put the job back for later without spending an attempt (throttling, shutdown);
 * - `retry`: spend an attempt; BullMQ retries with backoff; the last attempt records `failed`;
 * - `fail`: record `failed` now and fail the job loudly (our bug: retrying will not help).
 */
export type Action = 'delay' | 'retry' | 'fail';

/**
 * What the pool is told about the session and proxy that carried a failed request
 * (`Fleet.report` in session-fleet.ts). Anything but `none` also moves the request on to
 * another session.
 * - `throttled`: the session cools down (and its proxy, when its sessions are throttled in a row);
 * - `session_invalid` / `session_challenge` / `session_suspended`: the session is retired in that state;
 * - `proxy_broken`: the proxy's circuit opens;
 * - `none`: the answer is no verdict on the session (5xx, malformed): the lease was used, no report.
 */
export type PoolReport =
  | 'throttled'
  | 'session_invalid'
  | 'session_challenge'
  | 'session_suspended'
  | 'proxy_broken'
  | 'none';

/** One row of the table: an error class, its {@link Action} and what the pool is told. */
interface Row {
  cls: new (...a: never[]) => Error;
  action: Action;
  pool: PoolReport | ((e: Error) => PoolReport);
}

/** The table. The first row whose class matches wins (ProxyError before its parents). */
const TABLE: readonly Row[] = [
  { cls: ThrottledError, action: 'delay', pool: 'throttled' },
  { cls: SessionDeadError, action: 'retry', pool: 'session_invalid' },
  {
    cls: SessionBlockedError,
    action: 'retry',
    pool: (e) =>
      (e as SessionBlockedError).kind === 'suspended' ? 'session_suspended' : 'session_challenge',
  },
  { cls: ProxyError, action: 'retry', pool: 'proxy_broken' },
  { cls: UpstreamError, action: 'retry', pool: 'none' },
  { cls: MalformedResponseError, action: 'retry', pool: 'none' },
  { cls: ClientBugError, action: 'fail', pool: 'none' },
];

/** The table's row for `err`, if any. */
function rowOf(err: unknown): Row | undefined {
  return TABLE.find((r) => err instanceof r.cls);
}

/** A dependency of the worker whose failure is not the check's fault. */
export type Dependency = 'redis' | 'postgres';

/** What {@link infraDependencyOf} can tell: the dependency, or only "a socket to one of them". */
export type InfraKind = Dependency | 'network';

/** Redis error replies that mean "Redis cannot take this now", not "this command is wrong". */
const REDIS_REPLY =
  /^(OOM|READONLY|LOADING|MASTERDOWN|BUSY|TRYAGAIN|CLUSTERDOWN|NOREPLICAS|MISCONF)\b/;
/** ioredis / BullMQ messages of a connection that is gone or not there yet. */
const REDIS_CONN =
  /Connection is closed|Stream isn't writeable|max retries per request|Command timed out|Connection in subscriber mode|Missing lock for job|enableOfflineQueue/i;
/** Postgres SQLSTATE classes/codes of an unavailable server (not a bad query). */
const PG_CODES = new Set(['57P01', '57P02', '57P03', '53300', '53000', '58000', '58030']);
/** pg / pg-pool messages of a connection that is gone or cannot be made. */
const PG_CONN =
  /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|terminating connection|the database system is (starting up|shutting down|in recovery mode)|Client was closed and is not queryable|Cannot use a pool after calling end/i;
/** Socket-level codes: the peer is unreachable. */
const NET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * Is `err` (or anything in its cause chain, or an AggregateError's parts) a failure of Redis or
 * Postgres rather than of the check: Redis refused/OOM/READONLY/LOADING/MASTERDOWN/connection
 * lost/timed out; Postgres connection lost, admin shutdown (57P01–57P03), too many connections
 * (53300), refused. Such an error is transient: the job is delayed without spending an attempt
 * and never recorded final (DESIGN.md: a result is only ever the upstream's verdict). Returns
 * which dependency failed (`network` for a bare refused/reset socket), or null. Upstream (got) errors are never infrastructure: they are
 * classified by the checker first (UpstreamError/ProxyError), so this is asked only for errors
 * the table above does not know.
 */
export function infraDependencyOf(err: unknown): InfraKind | null {
  const seen = new Set<unknown>();
  const stack: unknown[] = [err];
  while (stack.length) {
    const e = stack.pop();
    if (!e || typeof e !== 'object' || seen.has(e) || seen.size > 10) continue;
    seen.add(e);
    const { name, message, code } = e as { name?: unknown; message?: unknown; code?: unknown };
    const msg = typeof message === 'string' ? message : '';
    const c = typeof code === 'string' ? code : '';
    if (name === 'ReplyError' && REDIS_REPLY.test(msg)) return 'redis';
    if (REDIS_REPLY.test(msg) && /command not allowed|can't write|loading the dataset/i.test(msg))
      return 'redis';
    if (REDIS_CONN.test(msg) || name === 'MaxRetriesPerRequestError') return 'redis';
    if (PG_CODES.has(c) || c.startsWith('08') || PG_CONN.test(msg)) return 'postgres';
    // A refused/reset socket: Redis or Postgres (which one the dependency probes tell).
    if (NET_CODES.has(c) || /\b(ECONNREFUSED|ECONNRESET|ETIMEDOUT)\b/.test(msg)) return 'network';
    if (e instanceof AggregateError) stack.push(...e.errors);
    stack.push((e as { cause?: unknown }).cause);
  }
  return null;
}

/**
 * {@link infraDependencyOf} for an error a job threw: null for the upstream's own errors (a
 * StoryCheckError, whatever its cause — an ECONNREFUSED from the upstream or a proxy is the
 * upstream's, and spends attempts as the table says) and for budget waits; else which
 * dependency failed. The worker puts the job back without an attempt when this is non-null.
 */
export function infraErrorOf(err: unknown): InfraKind | null {
  if (err instanceof StoryCheckError) return null;
  if (err instanceof LeaseWaitError || err instanceof NoSessionError) return null;
  return infraDependencyOf(err);
}

/** The action for an error; infrastructure errors are delayed; anything unknown is our bug. */
export function actionFor(err: unknown): Action {
  if (err instanceof UpstreamError && err.code === 'aborted') return 'delay';
  if (err instanceof LeaseWaitError || err instanceof NoSessionError) return 'delay';
  if (coerceError(err).name === 'AbortError') return 'delay'; // shutdown while waiting for budget
  const row = rowOf(err);
  if (row) return row.action;
  if (infraErrorOf(err)) return 'delay';
  return 'fail';
}

/** The stable error code stored with a `failed` result. */
export function errorCode(err: unknown): string {
  const code = (err as { code?: unknown })?.code;
  if (err instanceof Error && 'code' in err && typeof code === 'string' && /^[a-z_]+$/.test(code))
    return code;
  return 'internal_error';
}

/** Redacted cause chain for the batch log: [{ name, message, code }], at most 5 deep. */
export function causeChain(err: unknown): Array<{ name: string; message: string; code?: string }> {
  const out: Array<{ name: string; message: string; code?: string }> = [];
  let cur: unknown = err;
  while (cur instanceof Error && out.length < 5) {
    const code = (cur as { code?: unknown }).code;
    out.push({
      name: cur.name,
      message: cur.message,
      ...(typeof code === 'string' ? { code } : {}),
    });
    cur = cur.cause;
  }
  return out;
}

/**
 * Delay before a throttled job is tried again, in ms: Retry-After when the upstream sent one,
 * else full jitter random(0, min(capMs, baseMs·2^k)) with a floor of `floorMs`.
 * Defaults: base 5 s, cap 5 min, floor 1 s.
 */
export function throttleDelayMs(
  k: number,
  retryAfterMs: number | undefined,
  opts: { baseMs?: number; capMs?: number; floorMs?: number } = {},
  random: () => number = Math.random,
): number {
  const base = opts.baseMs ?? 5_000;
  const cap = opts.capMs ?? 300_000;
  const floor = opts.floorMs ?? 1_000;
  const jitter = Math.floor(random() * Math.min(cap, base * 2 ** Math.min(k, 30)));
  return Math.max(retryAfterMs ?? 0, floor, jitter);
}

/** What the pool is told about the session and proxy of a request that failed with `err`. */
export function poolReportFor(err: unknown): PoolReport {
  const row = rowOf(err);
  if (!row) return 'none';
  return typeof row.pool === 'function' ? row.pool(coerceError(err)) : row.pool;
}

/*
 * Delays. Every "put back for N ms" of the worker is decided here, nowhere else.
 */

/** Random extra added to a budget wait (ms), so jobs told to wait alike do not return at once. */
export const LEASE_WAIT_JITTER_MS = 250;
/**
 * How long a job is put back when no session is usable at all (ms). The worker pauses fetching
 * meanwhile (it polls every {@link NO_SESSION_POLL_MS}); the jobs already taken come back
 * after this.
 */
export const NO_SESSION_DELAY_MS = 10_000;
/** How often a worker paused for `no_session` looks for a usable session again (ms). */
export const NO_SESSION_POLL_MS = 5_000;
/**
 * A job put back after a Redis or Postgres failure returns after
 * {@link INFRA_PUT_BACK_BASE_MS} + random(0, {@link INFRA_PUT_BACK_JITTER_MS}) ms: long
 * enough for the dependency probes to pause the worker, spread so the jobs do not return
 * together.
 */
export const INFRA_PUT_BACK_BASE_MS = 2_000;
/** See {@link INFRA_PUT_BACK_BASE_MS}. */
export const INFRA_PUT_BACK_JITTER_MS = 3_000;
/**
 * A job of a batch this database does not have (DATABASE_URL points elsewhere) is put back for
 * {@link UNKNOWN_BATCH_DELAY_MS} + random(0, {@link UNKNOWN_BATCH_JITTER_MS}) ms: another
 * worker, on the right database, may take it meanwhile.
 */
export const UNKNOWN_BATCH_DELAY_MS = 30_000;
/** See {@link UNKNOWN_BATCH_DELAY_MS}. */
export const UNKNOWN_BATCH_JITTER_MS = 5_000;
/** An unknown batch is looked up in Postgres again at most this often (ms). */
export const UNKNOWN_BATCH_RECHECK_MS = 10_000;

/**
 * Checks delayed in a row by this process, any success resetting it: the `k` of
 * {@link throttleDelayMs}. Process-wide on purpose: the upstream throttles the deployment, not
 * one username, so every delayed job backs off further until one check succeeds again.
 */
export class DelayStreak {
  private n = 0;
  /** One more delayed check; returns the new length. */
  next(): number {
    this.n += 1;
    return this.n;
  }
  /** A check succeeded. */
  reset(): void {
    this.n = 0;
  }
}

/** Delay of a job put back after a Redis or Postgres failure (0 while shutting down), ms. */
export function putBackDelayMs(aborted: boolean, random: () => number = Math.random): number {
  return aborted ? 0 : INFRA_PUT_BACK_BASE_MS + Math.floor(random() * INFRA_PUT_BACK_JITTER_MS);
}

/** Delay of a job whose batch is not in this database, ms. */
export function unknownBatchDelayMs(random: () => number = Math.random): number {
  return UNKNOWN_BATCH_DELAY_MS + Math.floor(random() * UNKNOWN_BATCH_JITTER_MS);
}

/**
 * What happens to the job:
 * - `put_back`: Redis or Postgres failed, not the check: back to the queue after `delayMs`
 *   without an attempt, nothing recorded, the dependencies probed;
 * - `delay`: back to the queue after `delayMs` without an attempt; the batch log gets a
 *   `delayed` row;
 * - `retry`: spend an attempt (BullMQ retries with backoff); the batch log gets a `retry` row;
 * - `record_failed`: the last attempt: record `failed` and complete the job;
 * - `fail`: record `failed` and fail the job loudly (our bug: retrying will not help).
 */
export type JobAction = 'put_back' | 'delay' | 'retry' | 'record_failed' | 'fail';

/** The whole decision for an error of a check: see {@link decide}. */
export interface Decision {
  /** The table's action (docs/errors.md). */
  action: Action;
  /** What the worker does with the job now. */
  job: JobAction;
  /** For `put_back` and `delay`: ms until the job may be taken again; else 0. */
  delayMs: number;
  /** What the pool was told of the request's session and proxy (Fleet.report). */
  pool: PoolReport;
}

/** What {@link decide} needs to know besides the error. */
export interface DecideContext {
  /** The worker is shutting down: jobs go back at once (delay 0). */
  aborted: boolean;
  /** This attempt (1-based) and the job's attempts. */
  attempt: number;
  maxAttempts: number;
  /** The process's streak of delayed checks; a `delay` lengthens it. */
  streak: DelayStreak;
  /** For the jitters; default Math.random. */
  random?: () => number;
}

/**
 * The whole decision for an error a check threw: the job's fate, its delay and what the pool
 * is told. A Redis or Postgres failure is put back (while shutting down it is delayed by 0
 * like any other, so it is logged). Delays: 0 while shutting down; a budget wait's own wait
 * plus up to {@link LEASE_WAIT_JITTER_MS}; {@link NO_SESSION_DELAY_MS} when no session is
 * usable; else the throttle backoff of the streak ({@link throttleDelayMs}, Retry-After first).
 */
export function decide(err: unknown, ctx: DecideContext): Decision {
  const random = ctx.random ?? Math.random;
  const pool = poolReportFor(err);
  if (infraErrorOf(err) && !ctx.aborted)
    return { action: 'delay', job: 'put_back', delayMs: putBackDelayMs(false, random), pool };
  const action = actionFor(err);
  if (action === 'delay') {
    const k = ctx.streak.next();
    const delayMs = ctx.aborted
      ? 0
      : err instanceof LeaseWaitError
        ? err.waitMs + Math.floor(random() * LEASE_WAIT_JITTER_MS)
        : err instanceof NoSessionError
          ? NO_SESSION_DELAY_MS
          : throttleDelayMs(
              k,
              err instanceof ThrottledError ? err.retryAfterMs : undefined,
              {},
              random,
            );
    return { action, job: 'delay', delayMs, pool };
  }
  const job: JobAction =
    action === 'fail' ? 'fail' : ctx.attempt >= ctx.maxAttempts ? 'record_failed' : 'retry';
  return { action, job, delayMs: 0, pool };
}
