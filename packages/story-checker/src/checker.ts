import type https from 'node:https';
import got, { RequestError, type Got, type RequestFunction } from 'got';
import http2wrapper from 'http2-wrapper';
import { AgentPool } from './agents.js';
import { coerceError, type Logger } from '@storycheck/logger';
import type { StoryResult } from '@storycheck/model';
import { classifyAnswer, type AnswerFacts } from './classify.js';
import {
  MalformedResponseError,
  ProxyAddressError,
  ProxyError,
  SessionBlockedError,
  SessionDeadError,
  StoryCheckError,
  ThrottledError,
  UpstreamError,
} from './errors.js';
import {
  ALLOW_PRIVATE_HINT,
  guardedLookup,
  proxyUrlProblem,
  type LookupFunction,
} from './proxy-address.js';
import { parseCurrentUser, parseProfile, parseReelsMedia, type StoryState } from './parse.js';

/** Instagram's web app id; without it the upstream answers "useragent mismatch". */
export const IG_APP_ID = '936619743392459';

/** A desktop browser User-Agent, as the web client sends. */
export const DEFAULT_USER_AGENT =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

/** Cookies of a logged-in session (decrypted only in memory, never logged). */
export interface SessionCookies {
  sessionid: string;
  csrftoken?: string;
  dsUserId?: string;
}

/** Options of a {@link StoryChecker}. */
export interface StoryCheckerOptions {
  /** Origin of every request, e.g. https://www.instagram.com (IG_BASE_URL). */
  baseUrl: string;
  /** Timeout of one request in ms. Default 15 000. */
  requestTimeoutMs?: number;
  /** Logger; requests are logged at debug with secrets redacted. */
  logger?: Logger;
  /** User-Agent header. Default {@link DEFAULT_USER_AGENT}. */
  userAgent?: string;
  /**
   * HTTP/2 for https origins (also inside a proxy's CONNECT tunnel). Default true: the
   * upstream refuses HTTP/1.1 on its web API. Plain-http origins always use HTTP/1.1.
   */
  http2?: boolean;
  /** Deadline of one whole check (profile + stories) in ms. Default 60 000. */
  checkDeadlineMs?: number;
  /** Extra CA certificates (PEM) to trust, e.g. a TLS-intercepting corporate proxy's. */
  ca?: string;
  /**
   * Connect to proxies on loopback/private/link-local/… addresses (ALLOW_PRIVATE_PROXIES).
   * Default false: such a proxy, by literal address or by what its name resolves to at connect
   * time, fails with ProxyAddressError and nothing is sent.
   */
  allowPrivateProxies?: boolean;
  /** DNS lookup for proxy names (default node's dns.lookup); the guard wraps it. */
  lookup?: LookupFunction;
  /**
   * Called after every request with its endpoint and HTTP status (undefined: no answer) and
   * whether it was throttled — for metrics; it must not throw.
   */
  onAnswer?: (a: {
    endpoint: AnswerFacts['endpoint'];
    statusCode: number | undefined;
    throttled: boolean;
  }) => void;
}

/** A proxy to send through: its label (for logs) and URL (credentials included, never logged). */
export interface ProxyTarget {
  label: string;
  url: string;
}

/** Start, end and duration of one phase, in ms since epoch and ms. */
export interface PhaseTiming {
  startedAtMs: number;
  durationMs: number;
}

/** What one check cost: for metrics and the batch-log row, never stored with the result. */
export interface CheckCost {
  /** Upstream requests this check took part in (a shared stories request counts once). */
  requests: number;
  /** Cache hits this check used (user-id cache). */
  cacheHits: number;
  timings: { total: PhaseTiming; profile: PhaseTiming | null; stories: PhaseTiming | null };
}

/**
 * The answer for one username: the result record (packages/model) and what the check cost. The
 * cost is kept apart from the record because the cache and the item row store the record only.
 */
export interface CheckResult extends StoryResult, CheckCost {}

/** A result record before its time is set (the check stamps `checkedAt` when it ends). */
type Found = Omit<StoryResult, 'checkedAt'>;

/** What a profile lookup found; `userId` is null when the answer was "not authorized". */
export type ProfileLookup = (
  { found: false } | { found: true; userId: string | null; username: string; isPrivate: boolean }
) & {
  /** True when the answer came from the user-id cache (no request was made). */
  cached?: boolean;
};

/**
 * The result for a user from its profile facts and its story state (undefined: no reel in
 * the answer). A private user without a visible reel is `private` (story count unknown: null);
 * with a reel it is read like anyone else (a followed private account).
 */
export function storyResult(
  userId: string,
  isPrivate: boolean,
  state: StoryState | undefined,
): Found {
  if (!state || state.storyCount === 0) {
    const hidden = isPrivate && !state;
    return {
      status: hidden ? 'private' : 'none',
      userId,
      storyCount: hidden ? null : 0,
      latestStoryAt: null,
      expiresAt: null,
    };
  }
  return {
    status: 'active',
    userId,
    storyCount: state.storyCount,
    latestStoryAt:
      state.latestTakenAtSecs === null ? null : new Date(state.latestTakenAtSecs * 1000),
    expiresAt: state.expiresAtSecs === null ? null : new Date(state.expiresAtSecs * 1000),
  };
}

/** Per-check options. */
export interface CheckOptions {
  /**
   * Loads the story state of one user id, e.g. through a coalescer that shares one request
   * among many jobs. Default: one reels_media request per check.
   */
  loadStories?: (userId: string) => Promise<StoryState | undefined>;
  /** Resolves username → user id, e.g. through the user-id cache. Default: one profile request. */
  lookupProfile?: (username: string) => Promise<ProfileLookup>;
  /**
   * Called when a cached user id turned out to carry another username now (a rename): the
   * caller drops the stale entry; the check then looks the username up afresh, once.
   */
  onStaleUserId?: (username: string, userId: string, nowNamed: string) => Promise<void>;
  /** Aborts in-flight requests (worker shutdown). */
  signal?: AbortSignal;
  /** Proxy of the session; none = direct. */
  proxy?: ProxyTarget;
  /** Session to send the requests as; none = logged out. */
  session?: SessionCookies;
}

/**
 * The StoryChecker: profile lookup (username → id, private flag) then the stories request, over
 * got with keep-alive, no automatic redirects (a redirect is an answer to classify) and no
 * retries of its own (the queue retries, with budgets in mind). Every answer goes through
 * {@link classifyAnswer}; success bodies through the strict parsers.
 */
export class StoryChecker {
  private readonly http: Got;
  private readonly baseUrl: string;
  private readonly logger: Logger | undefined;
  private readonly userAgent: string;
  private readonly agents: AgentPool;
  private readonly allowPrivateProxies: boolean;
  private readonly useHttp2: boolean;
  private readonly checkDeadlineMs: number;
  private readonly onAnswer: StoryCheckerOptions['onAnswer'];
  private readonly ca: string | undefined;
  private readonly requestTimeoutMs: number;

  constructor(opts: StoryCheckerOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '');
    this.logger = opts.logger;
    this.userAgent = opts.userAgent ?? DEFAULT_USER_AGENT;
    this.useHttp2 = (opts.http2 ?? true) && this.baseUrl.startsWith('https:');
    this.checkDeadlineMs = opts.checkDeadlineMs ?? 60_000;
    this.onAnswer = opts.onAnswer;
    this.allowPrivateProxies = opts.allowPrivateProxies ?? false;
    this.agents = new AgentPool(
      this.allowPrivateProxies ? opts.lookup : guardedLookup(opts.lookup),
    );
    this.ca = opts.ca;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 15_000;
    this.http = got.extend({
      followRedirect: false,
      throwHttpErrors: false,
      retry: { limit: 0 },
      timeout: { request: opts.requestTimeoutMs ?? 15_000 },
      responseType: 'text',
      decompress: true,
      ...(opts.ca ? { https: { certificateAuthority: opts.ca } } : {}),
    });
  }

  /**
   * Looks a username up (one web_profile_info request): its user id and private flag, or that
   * it does not exist. "Not authorized" answers mean private.
   */
  async lookupProfile(username: string, opts: CheckOptions = {}): Promise<ProfileLookup> {
    const answer = await this.get(
      `/api/v1/users/web_profile_info/?username=${encodeURIComponent(username)}`,
      'profile',
      opts,
    );
    if (answer.kind === 'not_found') return { found: false };
    if (answer.kind === 'private') return { found: true, userId: null, username, isPrivate: true };
    const p = parseProfile(answer.body);
    return p.found
      ? { found: true, userId: p.userId, username: p.username, isPrivate: p.isPrivate }
      : { found: false };
  }

  /**
   * Checks one username: does it have an active story right now? Profile lookup, then the
   * stories phase through `opts.loadStories` when given (the worker's coalescer, which puts the
   * ids of many jobs into one request), else one reels_media request of its own. Both phases
   * and the whole check are timed.
   */
  async check(username: string, outer: CheckOptions = {}): Promise<CheckResult> {
    const deadline = AbortSignal.timeout(this.checkDeadlineMs);
    const signal = outer.signal ? AbortSignal.any([outer.signal, deadline]) : deadline;
    const opts: CheckOptions = { ...outer, signal };
    return this.checkOnce(username, opts, signal, false);
  }

  private async checkOnce(
    username: string,
    opts: CheckOptions,
    signal: AbortSignal,
    renamed: boolean,
  ): Promise<CheckResult> {
    const t0 = Date.now();
    const p0 = performance.now();
    const pp = performance.now();
    const profile = await (opts.lookupProfile ?? ((u: string) => this.lookupProfile(u, opts)))(
      username,
    );
    let requests = profile.cached ? 0 : 1;
    const cacheHits = profile.cached ? 1 : 0;
    const profileTiming: PhaseTiming = {
      startedAtMs: t0,
      durationMs: Math.round(performance.now() - pp),
    };
    let storiesTiming: PhaseTiming | null = null;
    const done = (r: Found): CheckResult => ({
      ...r,
      checkedAt: new Date(),
      requests,
      cacheHits,
      timings: {
        total: { startedAtMs: t0, durationMs: Math.round(performance.now() - p0) },
        profile: profileTiming,
        stories: storiesTiming,
      },
    });
    const empty = { userId: null, storyCount: null, latestStoryAt: null, expiresAt: null };
    if (!profile.found) return done({ status: 'not_found', ...empty });
    if (profile.userId === null) return done({ status: 'private', ...empty });

    const storiesStart = Date.now();
    const sp = performance.now();
    requests += 1;
    const state = opts.loadStories
      ? await untilAborted(opts.loadStories(profile.userId), signal)
      : (await this.fetchStories([profile.userId], opts)).get(profile.userId);
    storiesTiming = { startedAtMs: storiesStart, durationMs: Math.round(performance.now() - sp) };
    if (
      profile.cached &&
      !renamed &&
      state?.username &&
      state.username !== username.toLowerCase()
    ) {
      // The cached id now belongs to another username: drop it and ask afresh, once.
      await opts.onStaleUserId?.(username, profile.userId, state.username);
      return this.checkOnce(username, opts, signal, true);
    }
    return done(storyResult(profile.userId, profile.isPrivate, state));
  }

  /** One reels_media request for many user ids; returns the story state of those with a reel. */
  async fetchStories(userIds: string[], opts: CheckOptions = {}): Promise<Map<string, StoryState>> {
    const query = userIds.map((id) => `reel_ids=${encodeURIComponent(id)}`).join('&');
    const answer = await this.get(`/api/v1/feed/reels_media/?${query}`, 'stories', opts);
    if (answer.kind !== 'ok') {
      throw new MalformedResponseError(`reels_media answered ${answer.kind}`, {
        status: answer.status,
        body: answer.body,
      });
    }
    return parseReelsMedia(answer.body, Math.floor(Date.now() / 1000));
  }

  /**
   * Asks the upstream whether a session is still logged in (accounts/current_user). Answers
   * `alive` with the account's username, or `dead`/`blocked` with the error; throttling and
   * upstream trouble are thrown (ThrottledError, UpstreamError, ProxyError) — they say nothing
   * about the session and must never be read as "logged out".
   */
  async checkSession(
    opts: CheckOptions & { session: SessionCookies },
  ): Promise<
    | { state: 'alive'; username: string | null }
    | { state: 'dead' | 'blocked'; error: StoryCheckError }
  > {
    try {
      const answer = await this.get(
        '/api/v1/accounts/current_user/?edit=true',
        'current_user',
        opts,
      );
      const user = parseCurrentUser(answer.body);
      return { state: 'alive', username: user };
    } catch (e) {
      if (e instanceof SessionDeadError) return { state: 'dead', error: e };
      if (e instanceof SessionBlockedError) return { state: 'blocked', error: e };
      throw e;
    }
  }

  /**
   * True when a request through `proxy` would go out on a connection already open (an idle
   * keep-alive socket, a spare tunnel or an HTTP/2 session), so it reaches the upstream without
   * connection set-up; claims that connection for a request started now. Always true without a
   * proxy. The worker checks it right after a lease is granted (packages/pool README).
   */
  connectionReady(proxy: ProxyTarget | undefined): boolean {
    return this.agents.claimIdle(proxy?.url, new URL(this.baseUrl), this.useHttp2);
  }

  /**
   * Opens one connection to the upstream through `proxy` without sending any request (a
   * CONNECT tunnel, or an HTTP/2 session inside one), for a request to use later. Throws
   * ProxyError when the proxy fails.
   */
  async warmConnection(proxy: ProxyTarget | undefined): Promise<void> {
    this.guardProxy(proxy);
    try {
      // The TLS options got passes key the HTTP/2 session: only `ca` here.
      await this.agents.warm(
        proxy?.url,
        new URL(this.baseUrl),
        this.useHttp2,
        this.ca ? { ca: this.ca } : {},
        this.requestTimeoutMs,
      );
    } catch (e) {
      throw new ProxyError(
        `connect via proxy ${proxy?.label ?? '-'} failed: ${(e as { code?: string }).code ?? coerceError(e).message}`,
        { cause: e },
      );
    }
  }

  /**
   * Refuses a proxy whose address is special-purpose (loopback, private, metadata…) unless
   * allowPrivateProxies. IP literals are not looked up by net.connect, so the connect-time
   * lookup guard never sees them: they are checked here, before any connection.
   */
  private guardProxy(proxy: ProxyTarget | undefined): void {
    if (!proxy || this.allowPrivateProxies) return;
    const why = proxyUrlProblem(proxy.url);
    if (why)
      throw new ProxyAddressError(`proxy ${proxy.label} refused: ${why} (${ALLOW_PRIVATE_HINT})`);
  }

  /** Closes keep-alive sockets and HTTP/2 sessions. */
  close(): void {
    this.agents.destroy();
  }

  private async get(
    path: string,
    endpoint: AnswerFacts['endpoint'],
    opts: CheckOptions,
  ): Promise<{ kind: 'ok' | 'not_found' | 'private'; status: number; body: string }> {
    const headers: Record<string, string> = {
      'user-agent': this.userAgent,
      'x-ig-app-id': IG_APP_ID,
      'x-requested-with': 'XMLHttpRequest',
      referer: 'https://www.instagram.com/',
      accept: '*/*',
    };
    const s = opts.session;
    if (s) {
      const cookies = [`sessionid=${s.sessionid}`];
      if (s.csrftoken) {
        cookies.push(`csrftoken=${s.csrftoken}`);
        headers['x-csrftoken'] = s.csrftoken;
      }
      if (s.dsUserId) cookies.push(`ds_user_id=${s.dsUserId}`);
      headers.cookie = cookies.join('; ');
    }
    this.guardProxy(opts.proxy);
    const started = performance.now();
    const startedAtMs = Date.now();
    let res;
    try {
      const set = this.agents.get(opts.proxy?.url);
      res = await this.http.get(`${this.baseUrl}${path}`, {
        headers,
        signal: opts.signal,
        // HTTP/2 is forced (no ALPN probe that would bypass the proxy): http2-wrapper's request
        // with its agent in got's https slot.
        agent: {
          http: set.http,
          https: this.useHttp2 ? (set.http2 as unknown as https.Agent) : set.https,
        },
        ...(this.useHttp2 ? { request: http2wrapper.request as unknown as RequestFunction } : {}),
      });
    } catch (e) {
      this.onAnswer?.({ endpoint, statusCode: undefined, throttled: false });
      throw networkError(e, endpoint, opts);
    }
    const durationMs = Math.round(performance.now() - started);
    if (this.logger?.isDebugEnabled()) {
      // Headers and a body summary at debug only; the logger redacts cookies, CSRF tokens and
      // proxy credentials by key and by registered value.
      this.logger.debug('upstream request', {
        endpoint,
        path: path.split('?')[0],
        proxy: opts.proxy?.label,
        status: res.statusCode,
        httpVersion: res.httpVersion,
        startedAt: new Date(startedAtMs).toISOString(),
        durationMs,
        requestHeaders: headers,
        responseHeaders: pickHeaders(res.headers),
        body: summary(res.body),
      });
    }
    const c = classifyAnswer({
      status: res.statusCode,
      body: res.body,
      location: res.headers.location,
      retryAfter: res.headers['retry-after'],
      endpoint,
    });
    this.onAnswer?.({
      endpoint,
      statusCode: res.statusCode,
      throttled: c.kind === 'error' && c.error instanceof ThrottledError,
    });
    if (c.kind === 'error') throw c.error;
    return { kind: c.kind, status: res.statusCode, body: res.body };
  }
}

function networkError(e: unknown, endpoint: string, opts: CheckOptions): StoryCheckError {
  if (e instanceof StoryCheckError) return e;
  const signal = opts.signal;
  if (signal?.aborted) {
    const reason = signal.reason as { name?: string } | undefined;
    return reason?.name === 'TimeoutError'
      ? new UpstreamError(`${endpoint}: check deadline passed`, { code: 'deadline', cause: e })
      : new UpstreamError(`${endpoint} request aborted`, { code: 'aborted', cause: e });
  }
  const code = (e as { code?: string }).code ?? '';
  for (let c: unknown = e; c instanceof Error; c = c.cause) {
    if (c instanceof ProxyAddressError) {
      return new ProxyAddressError(`proxy ${opts.proxy?.label ?? '?'} ${c.message}`, { cause: e });
    }
  }
  if (opts.proxy) {
    // Through a proxy we only ever connect to the proxy: failing to connect, a reset, a refused
    // tunnel (407, 5xx on CONNECT) are the proxy's. A slow answer inside a working tunnel is not.
    const slowAnswer =
      e instanceof RequestError && e.name === 'TimeoutError' && /response|read/.test(e.message);
    if (!slowAnswer) {
      return new ProxyError(
        `${endpoint} via proxy ${opts.proxy.label} failed: ${code || coerceError(e).message}`,
        {
          cause: e,
        },
      );
    }
  }
  if (e instanceof RequestError) {
    return new UpstreamError(`${endpoint} request failed: ${code}`, {
      code: code === 'ETIMEDOUT' ? 'timeout' : 'network_error',
      cause: e,
    });
  }
  return new UpstreamError(`${endpoint} request failed`, { cause: e });
}

/** Resolves like `p`, or rejects with the signal's reason once it aborts. */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(abortError(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

function abortError(signal: AbortSignal): StoryCheckError {
  const reason = signal.reason as { name?: string } | undefined;
  return reason?.name === 'TimeoutError'
    ? new UpstreamError('stories: check deadline passed', {
        code: 'deadline',
        cause: signal.reason,
      })
    : new UpstreamError('stories request aborted', { code: 'aborted', cause: signal.reason });
}

const LOGGED_RESPONSE_HEADERS = [
  'content-type',
  'content-length',
  'location',
  'retry-after',
  'set-cookie',
  'x-ig-set-www-claim',
];

function pickHeaders(h: Record<string, string | string[] | undefined>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of LOGGED_RESPONSE_HEADERS) if (h[k] !== undefined) out[k] = h[k];
  return out;
}

function summary(body: string): string {
  const flat = body.replace(/\s+/g, ' ').trim();
  return flat.length > 200 ? `${flat.slice(0, 200)}… (${body.length} bytes)` : flat;
}

/** What the cheap, local look at a session's cookies says. */
export type LocalSessionVerdict = { ok: true } | { ok: false; reason: string };

/**
 * The cheap local check of a session, before it is ever sent: a real `sessionid` starts with
 * the account id (`<ds_user_id>%3A…` or `<ds_user_id>:…`) and is long; both must be present.
 */
export function checkSessionLocally(s: SessionCookies): LocalSessionVerdict {
  const sid = s.sessionid?.trim() ?? '';
  if (sid.length < 20) return { ok: false, reason: 'sessionid is too short to be real' };
  if (/\s/.test(sid)) return { ok: false, reason: 'sessionid contains whitespace' };
  const owner = /^(\d+)(?:%3A|:)/i.exec(sid)?.[1];
  if (!owner) return { ok: false, reason: 'sessionid does not start with an account id' };
  if (s.dsUserId && s.dsUserId !== owner)
    return { ok: false, reason: 'sessionid belongs to another account than ds_user_id' };
  return { ok: true };
}
