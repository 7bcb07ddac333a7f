import { redactString } from '@storycheck/logger';

/**
 * Error taxonomy (DESIGN.md): one class per kind of answer, each deciding what the worker does
 * next. Every error carries a stable `code`, the HTTP status (when there was one), a redacted
 * excerpt of the body, and the original `cause`.
 */

/** Fields common to every classified upstream error. */
export interface StoryCheckErrorInfo {
  /** HTTP status of the answer, if any. */
  status?: number;
  /** First 200 characters of the body, redacted. */
  body?: string;
  /** The underlying error (network error, parse error), kept for the logs. */
  cause?: unknown;
}

/** Base class of every classified upstream error. */
export abstract class StoryCheckError extends Error {
  /** Stable machine-readable code (stored in results and the batch log). */
  abstract readonly code: string;
  /** HTTP status of the answer, if any. */
  readonly status: number | undefined;
  /** Redacted body excerpt. */
  readonly bodyExcerpt: string | undefined;
  constructor(message: string, info: StoryCheckErrorInfo = {}) {
    super(redactString(message), info.cause === undefined ? undefined : { cause: info.cause });
    this.status = info.status;
    this.bodyExcerpt = info.body === undefined ? undefined : excerpt(info.body);
  }
}

/** 429 or 401 "Please wait a few minutes": back off; the job waits without spending an attempt. */
export class ThrottledError extends StoryCheckError {
  override name = 'ThrottledError';
  readonly code = 'throttled';
  /** Retry-After in ms when the upstream sent one (it usually does not). */
  readonly retryAfterMs: number | undefined;
  constructor(message: string, info: StoryCheckErrorInfo & { retryAfterMs?: number } = {}) {
    super(message, info);
    this.retryAfterMs = info.retryAfterMs;
  }
}

/** 403 login_required or a redirect to the login page: the session is logged out. */
export class SessionDeadError extends StoryCheckError {
  override name = 'SessionDeadError';
  readonly code = 'session_dead';
}

/** Why a session is blocked. */
export type BlockKind = 'challenge' | 'checkpoint' | 'feedback' | 'suspended';

/** 400 checkpoint/challenge/feedback_required, suspended, masked challenge: stop using it. */
export class SessionBlockedError extends StoryCheckError {
  override name = 'SessionBlockedError';
  readonly code = 'session_blocked';
  readonly kind: BlockKind;
  constructor(kind: BlockKind, message: string, info: StoryCheckErrorInfo = {}) {
    super(message, info);
    this.kind = kind;
  }
}

/** Connection refused/reset/timeout through a proxy, or 407: the proxy, not the session. */
export class ProxyError extends StoryCheckError {
  override name = 'ProxyError';
  readonly code: string = 'proxy_error';
}

/**
 * The proxy's address is not a public Internet address (loopback, private, link-local, cloud
 * metadata…, by literal or by what its name resolves to) and ALLOW_PRIVATE_PROXIES is off:
 * nothing was sent. A ProxyError, so the worker opens the proxy's circuit.
 */
export class ProxyAddressError extends ProxyError {
  override name = 'ProxyAddressError';
  override readonly code: string = 'proxy_address_refused';
}

/** 5xx, network trouble reaching the upstream, "Too many reels requested": retry with backoff. */
export class UpstreamError extends StoryCheckError {
  override name = 'UpstreamError';
  readonly code: string;
  constructor(message: string, info: StoryCheckErrorInfo & { code?: string } = {}) {
    super(message, info);
    this.code = info.code ?? 'upstream_error';
  }
}

/** 200 with `status` ≠ ok, missing keys, bad JSON: never read as "no story". */
export class MalformedResponseError extends StoryCheckError {
  override name = 'MalformedResponseError';
  readonly code = 'malformed_response';
}

/** Wrong client headers ("useragent mismatch") or an answer we do not understand: our bug. */
export class ClientBugError extends StoryCheckError {
  override name = 'ClientBugError';
  readonly code = 'client_bug';
}

function excerpt(body: string): string {
  const flat = body.replace(/\s+/g, ' ').trim();
  return redactString(flat.length > 200 ? `${flat.slice(0, 200)}…` : flat);
}
