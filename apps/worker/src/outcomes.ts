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
import { LeaseWaitError, NoSessionError } from './fleet.js';
import { coerceError } from '@storycheck/logger';

/**
 * What the worker does with a failed check: the one table of DESIGN.md's error taxonomy, not
 * scattered `if`s.
 * - `delay`: put the job back for later without spending an attempt (throttling, shutdown);
 * - `retry`: spend an attempt; BullMQ retries with backoff; the last attempt records `failed`;
 * - `fail`: record `failed` now and fail the job loudly (our bug: retrying will not help).
 */
export type Action = 'delay' | 'retry' | 'fail';

const TABLE: Array<[new (...a: never[]) => Error, Action]> = [
  [ThrottledError, 'delay'],
  [SessionDeadError, 'retry'],
  [SessionBlockedError, 'retry'],
  [ProxyError, 'retry'],
  [UpstreamError, 'retry'],
  [MalformedResponseError, 'retry'],
  [ClientBugError, 'fail'],
];

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
  for (const [cls, action] of TABLE) if (err instanceof cls) return action;
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
