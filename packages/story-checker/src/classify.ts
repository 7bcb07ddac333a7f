import {
  ClientBugError,
  MalformedResponseError,
  ProxyError,
  SessionBlockedError,
  SessionDeadError,
  ThrottledError,
  UpstreamError,
  type StoryCheckError,
} from './errors.js';

/** What an upstream answer means when it is not a plain success. */
export type Classified =
  | { kind: 'ok' }
  | { kind: 'not_found' }
  | { kind: 'private' }
  | { kind: 'error'; error: StoryCheckError };

/** The parts of an answer that decide its class. */
export interface AnswerFacts {
  status: number;
  body: string;
  /** Location header of a redirect. */
  location?: string | undefined;
  /** Retry-After header, seconds or HTTP-date. */
  retryAfter?: string | undefined;
  /** Which request this answered, so a 404 on a profile lookup means "no such user". */
  endpoint: 'profile' | 'stories' | 'current_user';
  /** Time of the answer (ms since epoch) for HTTP-date Retry-After. */
  nowMs?: number;
}

/**
 * The one mapping from (status, body, redirect) to a class (UPSTREAM.md, "Answers that are not
 * success"). A 2xx answer is `ok` here; its shape is validated by the parsers, which raise
 * MalformedResponseError when `status` ≠ ok or keys are missing.
 */
export function classifyAnswer(a: AnswerFacts): Classified {
  const json = tryJson(a.body);
  const message = typeof json?.message === 'string' ? json.message : '';
  const info = { status: a.status, body: a.body };

  if (a.status >= 200 && a.status < 300) return { kind: 'ok' };
  if (a.status >= 300 && a.status < 400) return classifyRedirect(a, info);
  if (a.status === 429) {
    return {
      kind: 'error',
      error: new ThrottledError('throttled (429)', {
        ...info,
        retryAfterMs: retryAfterMs(a.retryAfter, a.nowMs),
      }),
    };
  }
  if (a.status === 401) return classify401(a, json, message, info);
  if (a.status === 403) {
    if (/login_required/i.test(message) || json?.require_login === true || !json) {
      return { kind: 'error', error: new SessionDeadError('login required (403)', info) };
    }
    return {
      kind: 'error',
      error: new SessionBlockedError('challenge', `forbidden: ${message}`, info),
    };
  }
  if (a.status === 407) {
    return {
      kind: 'error',
      error: new ProxyError('proxy authentication required (407)', info),
    };
  }
  if (a.status === 400) return classify400(json, message, info);
  if (a.status === 404) return classify404(a, json, message, info);
  if (a.status >= 500) {
    return { kind: 'error', error: new UpstreamError(`upstream error ${a.status}`, info) };
  }
  return {
    kind: 'error',
    error: new MalformedResponseError(`unexpected status ${a.status}`, info),
  };
}

/** What every error class is given: the answer's status and body. */
interface AnswerInfo {
  status: number;
  body: string;
}

/** A 3xx answer: a login redirect (dead session), a challenge or suspension, or unexpected. */
function classifyRedirect(a: AnswerFacts, info: AnswerInfo): Classified {
  const loc = a.location ?? '';
  if (/\/accounts\/login/.test(loc) || loc === '/' || /^https?:\/\/[^/]+\/?$/.test(loc)) {
    return {
      kind: 'error',
      error: new SessionDeadError(`redirected to login (${a.status})`, info),
    };
  }
  if (/challenge|checkpoint/.test(loc)) {
    return {
      kind: 'error',
      error: new SessionBlockedError('challenge', `redirected to a challenge (${a.status})`, info),
    };
  }
  if (/suspended/.test(loc)) {
    return {
      kind: 'error',
      error: new SessionBlockedError('suspended', `redirected: account suspended`, info),
    };
  }
  return {
    kind: 'error',
    error: new UpstreamError(`unexpected redirect ${a.status}`, {
      ...info,
      code: 'unexpected_redirect',
    }),
  };
}

/** A 401: "please wait" throttling, or a dead session. */
function classify401(
  a: AnswerFacts,
  json: Record<string, unknown> | null,
  message: string,
  info: AnswerInfo,
): Classified {
  // "Please wait a few minutes" with require_login: throttling, not a dead session.
  if (/wait a few minutes/i.test(message) || json?.require_login === true || message === '') {
    return {
      kind: 'error',
      error: new ThrottledError('throttled (401 please wait)', {
        ...info,
        retryAfterMs: retryAfterMs(a.retryAfter, a.nowMs),
      }),
    };
  }
  return { kind: 'error', error: new SessionDeadError(`unauthorized: ${message}`, info) };
}

/** A 400: private, not found, a blocked session, or a request the upstream refused. */
function classify400(
  json: Record<string, unknown> | null,
  message: string,
  info: AnswerInfo,
): Classified {
  if (/not authorized to view user/i.test(message)) return { kind: 'private' };
  if (/user not found/i.test(message)) return { kind: 'not_found' };
  if (message === 'challenge_required') {
    const url =
      typeof json?.challenge === 'object' && json.challenge
        ? String((json.challenge as Record<string, unknown>).url ?? '')
        : '';
    const kind = url.includes('/suspended/') ? 'suspended' : 'challenge';
    return {
      kind: 'error',
      error: new SessionBlockedError(
        kind,
        kind === 'suspended' ? 'account suspended' : 'challenge required',
        info,
      ),
    };
  }
  if (message === 'checkpoint_required' || message === 'checkpoint_logged_out') {
    return { kind: 'error', error: new SessionBlockedError('checkpoint', message, info) };
  }
  if (message === 'feedback_required' || json?.spam === true) {
    return {
      kind: 'error',
      error: new SessionBlockedError('feedback', 'feedback required (action blocked)', info),
    };
  }
  if (/too many reels/i.test(message)) {
    return {
      kind: 'error',
      error: new UpstreamError('too many reels requested', { ...info, code: 'too_many_reels' }),
    };
  }
  if (/useragent mismatch/i.test(message)) {
    return {
      kind: 'error',
      error: new ClientBugError('useragent mismatch: client headers rejected', info),
    };
  }
  return {
    kind: 'error',
    error: new UpstreamError(`bad request: ${message || 'no message'}`, {
      ...info,
      code: 'bad_request',
    }),
  };
}

/** A 404: no such user, or Instagram's masked challenge. */
function classify404(
  a: AnswerFacts,
  json: Record<string, unknown> | null,
  message: string,
  info: AnswerInfo,
): Classified {
  // A bare "Not Found" on an API path that must exist is Instagram's masked challenge; an
  // HTML page (or any other non-JSON body) on a profile lookup is "no such user".
  const bare = /^not found$/i.test(a.body.trim());
  if (a.endpoint === 'profile' && !json && !bare) return { kind: 'not_found' };
  if (/user not found/i.test(message)) return { kind: 'not_found' };
  return {
    kind: 'error',
    error: new SessionBlockedError('challenge', 'masked challenge (404 on an API path)', info),
  };
}

function tryJson(body: string): Record<string, unknown> | null {
  const t = body.trimStart();
  if (!t.startsWith('{')) return null;
  try {
    const v: unknown = JSON.parse(t);
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** Parses Retry-After (seconds or HTTP-date) into ms; undefined when absent or unreadable. */
export function retryAfterMs(header: string | undefined, nowMs = Date.now()): number | undefined {
  if (!header) return undefined;
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1_000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}
