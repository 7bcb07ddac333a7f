import {
  ClientBugError,
  MalformedResponseError,
  ProxyError,
  SessionBlockedError,
  SessionDeadError,
  ThrottledError,
  UpstreamError,
} from '@storycheck/story-checker';
import { LeaseWaitError, NoSessionError } from './fleet.js';

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

/** The action for an error; anything unknown is our bug. */
export function actionFor(err: unknown): Action {
  if (err instanceof UpstreamError && err.code === 'aborted') return 'delay';
  if (err instanceof LeaseWaitError || err instanceof NoSessionError) return 'delay';
  if ((err as Error)?.name === 'AbortError') return 'delay'; // shutdown while waiting for budget
  for (const [cls, action] of TABLE) if (err instanceof cls) return action;
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
