/**
 * Every non-success answer the upstream gives (UPSTREAM.md, "Answers that are not success"),
 * shaped like the bodies in upstream-samples/. Each builder returns an {@link Answer}: what the
 * server writes, or that it resets / never answers the connection.
 */
import { stringifyJson } from './raw-json.js';
import { LOGIN_REQUIRED_BODY, NOT_FOUND_HTML, failBody } from './payloads.js';
import type { SessionState, ThrottleStyle } from './scenario.js';

/** Body type of an answer; `text` is text/plain. */
export type ContentKind = 'json' | 'html' | 'text';

/** What the server does with a request. */
export interface Answer {
  /** `send` writes status/headers/body; `reset` resets the TCP connection; `hang` never answers. */
  action: 'send' | 'reset' | 'hang';
  status: number;
  body: string;
  contentType: ContentKind;
  /** Extra response headers (Location, Retry-After). */
  headers?: Record<string, string>;
}

/** A JSON answer. */
export function jsonAnswer(status: number, body: string): Answer {
  return { action: 'send', status, body, contentType: 'json' };
}

/** The 404 HTML page (unknown path or, by default, unknown username). */
export function html404(): Answer {
  return { action: 'send', status: 404, body: NOT_FOUND_HTML, contentType: 'html' };
}

/** The message of every "please wait" answer. */
export const PLEASE_WAIT = 'Please wait a few minutes before you try again.';

/** 429 JSON, as in error.429.please_wait.json. */
export const THROTTLE_JSON_BODY = failBody(PLEASE_WAIT);
/** 429 with an empty message, as in error.429.empty_message.json. */
export const THROTTLE_EMPTY_MESSAGE_BODY = failBody('');
/** 401 throttling (not a dead session), as in error.401.please_wait.require_login.json. */
export const PLEASE_WAIT_401_BODY = failBody(PLEASE_WAIT, { require_login: true });
/** Its igweb_rollout variant, as in error.401.please_wait.igweb_rollout.json. */
export const PLEASE_WAIT_401_IGWEB_BODY = failBody(PLEASE_WAIT, {
  require_login: true,
  igweb_rollout: true,
});
/** The HTML page some 429s carry. */
export const THROTTLE_HTML =
  '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Instagram</title></head>' +
  '<body><main><h2>Please wait a few minutes before you try again.</h2></main></body></html>\n';

const THROTTLE_ROTATION: readonly Exclude<ThrottleStyle, 'mixed'>[] = [
  'json',
  'json-empty-message',
  'html',
  'empty',
  '401-please-wait',
  '401-igweb-rollout',
];

/**
 * The throttle answer in `style`. `mixed` takes the `turn`-th style of the rotation (json,
 * json-empty-message, html, empty, 401-please-wait, 401-igweb-rollout), so a run is reproducible.
 * `retryAfterSecs` adds a Retry-After header (Instagram itself never sends one).
 */
export function throttleAnswer(
  style: ThrottleStyle,
  turn: number,
  retryAfterSecs: number | null,
): Answer {
  const concrete =
    style === 'mixed' ? (THROTTLE_ROTATION[turn % THROTTLE_ROTATION.length] ?? 'json') : style;
  const headers = retryAfterSecs === null ? undefined : { 'retry-after': String(retryAfterSecs) };
  const answer = (status: number, body: string, contentType: ContentKind): Answer => ({
    action: 'send',
    status,
    body,
    contentType,
    headers,
  });
  switch (concrete) {
    case 'json':
      return answer(429, THROTTLE_JSON_BODY, 'json');
    case 'json-empty-message':
      return answer(429, THROTTLE_EMPTY_MESSAGE_BODY, 'json');
    case 'html':
      return answer(429, THROTTLE_HTML, 'html');
    case 'empty':
      return answer(429, '', 'html');
    case '401-please-wait':
      return answer(401, PLEASE_WAIT_401_BODY, 'json');
    case '401-igweb-rollout':
      return answer(401, PLEASE_WAIT_401_IGWEB_BODY, 'json');
  }
}

/** 403 login_required (logged-out session), as in error.403.login_required.json. */
export function loginRequired403(): Answer {
  return jsonAnswer(403, LOGIN_REQUIRED_BODY);
}

/**
 * 302 of a logged-out web session: to `/accounts/login/?next=<the path asked>` or, when `toRoot`,
 * to `/`. Empty body.
 */
export function loginRedirect302(pathAndQuery: string, toRoot: boolean): Answer {
  return {
    action: 'send',
    status: 302,
    body: '',
    contentType: 'html',
    headers: {
      location: toRoot ? '/' : `/accounts/login/?next=${encodeURIComponent(pathAndQuery)}`,
    },
  };
}

/** A short hex tag derived from a session label, for challenge urls that look per-account. */
function tagOf(label: string): string {
  return (label.replace(/[^0-9a-zA-Z]/g, '') || 'x').slice(0, 12);
}

/** 400 challenge_required, as in error.400.challenge_required.json. */
export function challengeBody(label: string): string {
  const path = `/challenge/AXF${tagOf(label)}/Afw${tagOf(label)}/`;
  return stringifyJson({
    message: 'challenge_required',
    challenge: {
      url: `https://i.instagram.com${path}`,
      api_path: path,
      hide_webview_header: true,
      lock: true,
      logout: false,
      native_flow: true,
      flow_render_type: 0,
    },
    status: 'fail',
    error_type: 'checkpoint_challenge_required',
  });
}

/** 400 challenge_required whose `challenge.url` contains `/suspended/`: the account is suspended. */
export function suspendedBody(): string {
  return stringifyJson({
    message: 'challenge_required',
    challenge: {
      url: 'https://www.instagram.com/accounts/suspended/?next=%2F',
      api_path: '/accounts/suspended/',
      hide_webview_header: true,
      lock: true,
      logout: false,
      native_flow: false,
      flow_render_type: 0,
    },
    status: 'fail',
    error_type: 'checkpoint_challenge_required',
  });
}

/** 400 checkpoint_required, as in error.400.checkpoint_required.json. */
export function checkpointBody(label: string): string {
  const digits = String(parseInt(label.replace(/[^0-9a-f]/g, '').slice(0, 8) || '1', 16));
  return stringifyJson({
    message: 'checkpoint_required',
    checkpoint_url: `/challenge/${digits}/${tagOf(label)}/`,
    lock: false,
    flow_render_type: 0,
    status: 'fail',
  });
}

/** 400 checkpoint_required, logged-out variant, as in error.400.checkpoint_logged_out.json. */
export const CHECKPOINT_LOGGED_OUT_BODY = stringifyJson({
  message: 'checkpoint_required',
  checkpoint_url:
    'https://i.instagram.com/integrity/checkpoint/?next=instagram%3A%2F%2Fcheckpoint%2Fdismiss',
  lock: true,
  status: 'fail',
  error_type: 'checkpoint_logged_out',
});

/** 400 feedback_required (action blocked), as in error.400.feedback_required.json. */
export const FEEDBACK_REQUIRED_BODY = stringifyJson({
  message: 'feedback_required',
  spam: true,
  feedback_title: 'Action Blocked',
  feedback_message:
    'This action was blocked. Please try again later. We restrict certain content and actions to protect our community. Tell us if you think we made a mistake.',
  feedback_url: 'repute/report_problem/instagram_like_add/',
  feedback_appeal_label: 'Tell us',
  feedback_ignore_label: 'OK',
  feedback_action: 'report_problem',
  status: 'fail',
});

/** The masked challenge: a bare `Not Found` on an API path that exists. */
export function maskedNotFound(): Answer {
  return { action: 'send', status: 404, body: 'Not Found', contentType: 'text' };
}

/**
 * The answer for a session in a non-`ok` state, or null for `ok`. `throttled` is not handled
 * here (it needs the throttle style); dead styles other than 403 need the path.
 */
export function sessionStateAnswer(
  state: Exclude<SessionState, 'ok' | 'throttled'>,
  label: string,
  pathAndQuery: string,
): Answer {
  switch (state) {
    case 'dead':
      return loginRequired403();
    case 'dead-302':
      return loginRedirect302(pathAndQuery, false);
    case 'dead-302-root':
      return loginRedirect302(pathAndQuery, true);
    case 'challenge':
      return jsonAnswer(400, challengeBody(label));
    case 'suspended':
      return jsonAnswer(400, suspendedBody());
    case 'checkpoint':
      return jsonAnswer(400, checkpointBody(label));
    case 'checkpoint-logged-out':
      return jsonAnswer(400, CHECKPOINT_LOGGED_OUT_BODY);
    case 'feedback':
      return jsonAnswer(400, FEEDBACK_REQUIRED_BODY);
    case 'masked':
      return maskedNotFound();
  }
}

/** 400 "Not authorized to view user" (private, not followed). */
export const NOT_AUTHORIZED_BODY = failBody('Not authorized to view user');
/** 400 "User not found". */
export const USER_NOT_FOUND_BODY = failBody('User not found');
/** 400 "useragent mismatch" (X-IG-App-ID missing). */
export const USERAGENT_MISMATCH_BODY = failBody('useragent mismatch');
/** 400 "Too many reels requested" (more reel_ids than the upstream takes). */
export const TOO_MANY_REELS_BODY = failBody('Too many reels requested');

/** The 500 page: Instagram's generic HTML error. */
export const ERROR_500_HTML =
  '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Error &bull; Instagram</title>' +
  '</head><body><main><h2>Oops, an error occurred.</h2></main></body></html>\n';
/** The 502 page of the edge in front of the API. */
export const ERROR_502_HTML =
  '<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1>' +
  '</center></body></html>\n';
/** 560 (Instagram's own code for a backend error) carries a fail JSON with an empty message. */
export const ERROR_560_BODY = failBody('');

/** A 5xx answer: `pick` 0 → 500 HTML, 1 → 502 HTML, 2 → 560 JSON. */
export function serverErrorAnswer(pick: number): Answer {
  if (pick === 0) return { action: 'send', status: 500, body: ERROR_500_HTML, contentType: 'html' };
  if (pick === 1) return { action: 'send', status: 502, body: ERROR_502_HTML, contentType: 'html' };
  return jsonAnswer(560, ERROR_560_BODY);
}

/** 200 whose `status` is not "ok". */
export const FAIL_200_BODY = failBody('execution error');
/** 200 "ok" without any of the keys the endpoint promises (no data/user/reels/reel). */
export const MISSING_KEYS_BODY = '{"status":"ok"}';

/** 200 with `body` cut in half: not parseable JSON, but the content type still says JSON. */
export function malformedAnswer(body: string): Answer {
  return jsonAnswer(200, body.slice(0, Math.max(1, Math.floor(body.length / 2))));
}
