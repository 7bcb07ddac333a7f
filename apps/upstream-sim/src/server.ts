/**
 * The simulated Instagram web API over node:http: the four endpoints a story checker uses, at
 * Instagram's paths and with bodies shaped like the real ones, answered from a deterministic
 * {@link World}. A scenario (see scenario.ts) switches on realism: sessions and their states,
 * per-session and per-IP budgets with penalties, faults and latency. Admin routes under
 * `/__sim/` expose the truth, counters, the request log and runtime controls; every non-admin
 * request is kept in a request log (in memory, optionally NDJSON on disk).
 *
 * Order of checks for an API request: per-IP budget → X-IG-App-ID → session (logged out, state)
 * → per-session budget → request validation → fault draw → the world's answer.
 */
import { createWriteStream } from 'node:fs';
import type { WriteStream } from 'node:fs';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { coerceError, type Logger } from '@storycheck/logger';
import {
  MISSING_KEYS_BODY,
  FAIL_200_BODY,
  NOT_AUTHORIZED_BODY,
  TOO_MANY_REELS_BODY,
  USERAGENT_MISMATCH_BODY,
  USER_NOT_FOUND_BODY,
  html404,
  jsonAnswer,
  loginRedirect302,
  loginRequired403,
  malformedAnswer,
  serverErrorAnswer,
  sessionStateAnswer,
  throttleAnswer,
} from './answers.js';
import type { Answer } from './answers.js';
import { BudgetBook } from './budget.js';
import {
  PROFILE_NULL_BODY,
  currentUserBody,
  failBody,
  profileBody,
  reelsMediaBody,
  sessionLabel,
  userStoryBody,
} from './payloads.js';
import { Rng } from './prng.js';
import { PROXY_BROKEN_MODES, startProxies } from './proxy.js';
import type {
  ProxyBrokenMode,
  ProxyInfo,
  ProxyPool,
  ProxyPoolOptions,
  ProxyStats,
} from './proxy.js';
import {
  FAULT_KINDS,
  SCENARIOS,
  SCENARIO_KEYS,
  SESSION_STATES,
  mergeScenario,
  parseScenario,
  resolveSettings,
} from './scenario.js';
import type {
  Budget,
  FaultKind,
  ResolvedSession,
  Scenario,
  ScenarioName,
  SessionState,
  Settings,
} from './scenario.js';
import { formatRate } from './units.js';
import { createWorld, reelVisible } from './world.js';
import type { SimUser, World } from './world.js';

/** Which endpoint a request was for; `other` is anything unknown. */
export type PathKind = 'profile' | 'reels_media' | 'user_story' | 'current_user' | 'other';

/** All path kinds, in a fixed order (for zeroed counters). */
export const PATH_KINDS: readonly PathKind[] = [
  'profile',
  'reels_media',
  'user_story',
  'current_user',
  'other',
];

/**
 * Why a request got its answer: `ok` (served from the world, not-found answers included),
 * `not-found-path`, `bad-request`, `useragent-mismatch`, `too-many-reels`, `logged-out`,
 * `throttled:ip`, `throttled:session`, `session:<state>` (a non-ok session state) or
 * `fault:<kind>` (an injected fault).
 */
export type Outcome = string;

/** One non-admin request. No secrets: the session cookie appears only as a label. */
export interface RequestLogEntry {
  /** When the request arrived, epoch milliseconds. */
  timeMs: number;
  /** Client IP as the simulator sees it (a proxy's egress address), `::ffff:` stripped. */
  client: string | null;
  /** The session's label (scenario label, or `s:` + 6 hex of sha256(cookie)); null without cookie. */
  session: string | null;
  kind: PathKind;
  /** The path asked, without the query string. */
  path: string;
  /** Reel ids asked (reels_media) or the user id (user_story); [] otherwise. */
  ids: string[];
  /** Username asked (profile), lowercased; null otherwise. */
  username: string | null;
  /** HTTP status answered; 0 when none was (connection reset, never answered, client gone). */
  status: number;
  /** See {@link Outcome}. */
  outcome: Outcome;
  /** From arrival to the end of the answer, injected latency included, milliseconds. */
  latencyMs: number;
}

/** Counters of one session or one client IP. */
export interface PartyStats {
  requests: number;
  /** Requests answered with the throttle answer because of this party's own budget/penalty. */
  throttled: number;
  /** Keyed by status code as a string ("0" = no answer). */
  byStatus: Record<string, number>;
}

/** Counters since start or the last reset. */
export interface SimStats {
  /** When counting started, epoch milliseconds. */
  sinceMs: number;
  /** Non-admin requests answered. */
  totalRequests: number;
  byKind: Record<PathKind, number>;
  /** Keyed by status code as a string, e.g. "200" ("0" = no answer). */
  byStatus: Record<string, number>;
  /** Sum over reels_media requests of the reel ids asked (duplicates included). */
  reelIdsAsked: number;
  /** Profile lookups per (lowercased) username. */
  profileLookups: Record<string, number>;
  /** Per {@link Outcome}. */
  byOutcome: Record<string, number>;
  /** Per session label; requests without a cookie under "anonymous". */
  bySession: Record<string, PartyStats>;
  /** Per client IP. */
  byClient: Record<string, PartyStats>;
  /** Requests that asked about each world username (profile by name, reels/story by id). */
  byUsername: Record<string, number>;
}

/** Options for {@link startSim}: the scenario fields (flat) plus server-only settings. */
export interface SimOptions extends Omit<Scenario, 'name' | 'description'> {
  /**
   * A named scenario (`demo`, `strict-budgets`, `hostile`) or a scenario object; the flat fields
   * of these options are laid over it. Default: none (friendly defaults).
   */
  scenario?: ScenarioName | Scenario;
  /** TCP port; 0 (default) picks a free one. */
  port?: number;
  /** Interface to bind. Default `127.0.0.1`; `0.0.0.0` for all. */
  host?: string;
  /** Clock deciding which items are expired, epoch seconds. Default: the wall clock. */
  nowSecs?: () => number;
  /** Clock of budgets and penalties, milliseconds. Default `Date.now`. Tests may drive it. */
  clockMs?: () => number;
  /** Append every request log entry as one JSON line to this file. Default: none. */
  requestLogFile?: string;
  /** In-memory request log cap; the oldest entries are dropped beyond it. Default 100 000. */
  requestLogLimit?: number;
  /** Also start loopback forward proxies (see startProxies); exposed as `proxies`. */
  proxies?: ProxyPoolOptions;
  /** Logger for startup and per-request debug records. Default: silent. */
  logger?: Logger;
}

/** A session as the admin route shows it: label, state, budget and penalty; never the cookie. */
export interface SessionView {
  label: string;
  state: SessionState;
  /** "N/duration burst B", or null when unlimited. */
  budget: string | null;
  /** Epoch ms (on the budget clock) until which it is punished; 0 when never. */
  penaltyUntilMs: number;
}

/** A running simulator. */
export interface SimServer {
  /** Base URL, e.g. `http://127.0.0.1:41234` (no trailing slash). */
  url: string;
  port: number;
  world: World;
  /** The proxies started with `proxies` (empty without). */
  proxies: ProxyInfo[];
  /** Stops proxies and listening, drops keep-alive, in-flight and never-answered connections, flushes the log file. Idempotent. */
  close(): Promise<void>;
  /** A snapshot of the counters. */
  stats(): SimStats;
  /** Zeroes the counters (the request log is kept). */
  resetStats(): void;
  /** A copy of the in-memory request log, oldest first. */
  requestLog(): RequestLogEntry[];
  /** The settings in force (scenario resolved), sessions without their cookies. */
  settings(): Omit<Settings, 'sessions'> & { sessions: SessionView[] };
  /** Lays `patch` over the running scenario (see mergeScenario); budget state is kept. Throws RangeError on invalid input. */
  updateScenario(patch: Scenario): void;
  /** Sets a session's state by label (scenario label or hash label), overriding the scenario. */
  setSessionState(label: string, state: SessionState): void;
  /** Forgets all budget state: every bucket full, every penalty lifted. */
  resetBudgets(): void;
  /**
   * Renames an account: `newName` now answers with `oldName`'s id and reel (reels carry the
   * new name), and `oldName` is not found. Throws RangeError for an unknown or taken name.
   */
  renameUser(oldName: string, newName: string): void;
  /** Breaks (mode) or heals (null) one of `proxies` at runtime. */
  setProxyBroken(label: string, mode: ProxyBrokenMode | null): Promise<void>;
  /** Counters of `proxies` by label. */
  proxyStats(): Record<string, ProxyStats>;
}

interface Classified {
  kind: PathKind;
  ids: string[];
  username: string | null;
  userStoryId: string | undefined;
}

interface Decision {
  answer: Answer;
  outcome: Outcome;
  /** Which party's budget threw the request out, for the per-party `throttled` counters. */
  throttledBy?: 'ip' | 'session';
}

const CONTENT_TYPES = {
  json: 'application/json; charset=utf-8',
  html: 'text/html; charset=utf-8',
  text: 'text/plain; charset=utf-8',
} as const;
const PROFILE_PATH = /^\/api\/v1\/users\/web_profile_info\/?$/;
const REELS_MEDIA_PATH = /^\/api\/v1\/feed\/reels_media\/?$/;
const USER_STORY_PATH = /^\/api\/v1\/feed\/user\/(\d+)\/story\/?$/;
const CURRENT_USER_PATH = /^\/api\/v1\/accounts\/current_user\/?$/;
/** Admin request bodies (scenario patches) larger than this are refused, bytes. */
const ADMIN_BODY_LIMIT_BYTES = 1_000_000;
/** Unknown-cookie → label cache size before it is cleared (a cheap bound on memory). */
const LABEL_CACHE_LIMIT = 10_000;

function emptyStats(): SimStats {
  const byKind = {} as Record<PathKind, number>;
  for (const kind of PATH_KINDS) byKind[kind] = 0;
  return {
    sinceMs: Date.now(),
    totalRequests: 0,
    byKind,
    byStatus: {},
    reelIdsAsked: 0,
    profileLookups: {},
    byOutcome: {},
    bySession: {},
    byClient: {},
    byUsername: {},
  };
}

function bump(map: Record<string, number>, key: string): void {
  map[key] = (map[key] ?? 0) + 1;
}

function bumpParty(
  map: Record<string, PartyStats>,
  key: string,
  status: string,
  throttled: boolean,
): void {
  let party = map[key];
  if (!party) {
    party = { requests: 0, throttled: 0, byStatus: {} };
    map[key] = party;
  }
  party.requests++;
  if (throttled) party.throttled++;
  bump(party.byStatus, status);
}

/** The `sessionid` cookie value, or null when absent or empty. */
function sessionCookie(req: IncomingMessage): string | null {
  const header = req.headers.cookie;
  if (!header) return null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === 'sessionid') {
      const value = part.slice(eq + 1).trim();
      return value === '' ? null : value;
    }
  }
  return null;
}

/** The client address without the IPv4-mapped IPv6 prefix. */
function clientAddress(req: IncomingMessage): string | null {
  const addr = req.socket.remoteAddress;
  if (addr === undefined) return null;
  return addr.startsWith('::ffff:') ? addr.slice(7) : addr;
}

function classifyPath(url: URL): Classified {
  const path = url.pathname;
  let kind: PathKind = 'other';
  let userStoryId: string | undefined;
  if (PROFILE_PATH.test(path)) kind = 'profile';
  else if (REELS_MEDIA_PATH.test(path)) kind = 'reels_media';
  else if (CURRENT_USER_PATH.test(path)) kind = 'current_user';
  else {
    const m = USER_STORY_PATH.exec(path);
    if (m) {
      kind = 'user_story';
      userStoryId = m[1];
    }
  }
  const username =
    kind === 'profile' ? (url.searchParams.get('username') ?? '').trim().toLowerCase() : '';
  const ids =
    kind === 'reels_media'
      ? url.searchParams
          .getAll('reel_ids')
          .flatMap((v) => v.split(','))
          .map((v) => v.trim())
          .filter((v) => v !== '')
      : userStoryId !== undefined
        ? [userStoryId]
        : [];
  return { kind, ids, username: username === '' ? null : username, userStoryId };
}

function describeBudget(budget: Budget | null): string | null {
  return budget ? `${formatRate(budget.rate)} burst ${budget.burst}` : null;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > ADMIN_BODY_LIMIT_BYTES) {
        reject(new RangeError(`body larger than ${ADMIN_BODY_LIMIT_BYTES} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** The scenario fields of `opts` (everything startSim does not consume itself). */
function scenarioFields(opts: SimOptions): Scenario {
  const out: Record<string, unknown> = {};
  for (const key of SCENARIO_KEYS) {
    const value = (opts as Record<string, unknown>)[key];
    if (value !== undefined) out[key] = value;
  }
  return out as Scenario;
}

/**
 * Starts the simulator and resolves once it listens. Keep-alive is on (node's default), and
 * `close()` also ends idle keep-alive sockets and never-answered requests, so that a test leaves
 * no open handle. With no scenario options it is the friendly upstream: anonymous requests work,
 * no budgets, no faults.
 */
export async function startSim(opts: SimOptions = {}): Promise<SimServer> {
  const host = opts.host ?? '127.0.0.1';
  let base: Scenario = {};
  if (typeof opts.scenario === 'string') {
    const named = (SCENARIOS as Record<string, Scenario | undefined>)[opts.scenario];
    if (!named) {
      throw new RangeError(
        `unknown scenario "${opts.scenario}" (known: ${Object.keys(SCENARIOS).join(', ')})`,
      );
    }
    base = named;
  } else if (opts.scenario) {
    base = parseScenario(opts.scenario);
  }
  let scenario = mergeScenario(base, scenarioFields(opts));
  let settings = resolveSettings(scenario);
  const seed = scenario.seed ?? 42;
  const world = createWorld({
    seed,
    size: scenario.size ?? 1000,
    epochSecs: scenario.epochSecs ?? Math.floor(Date.now() / 1000),
  });
  const nowSecs = opts.nowSecs ?? ((): number => Math.floor(Date.now() / 1000));
  const clockMs = opts.clockMs ?? Date.now;
  const requestLogLimit = opts.requestLogLimit ?? 100_000;
  if (!Number.isInteger(requestLogLimit) || requestLogLimit < 1) {
    throw new RangeError(`requestLogLimit must be an integer ≥ 1, got ${requestLogLimit}`);
  }
  const logger = opts.logger;
  // Each random decision has its own seeded stream, so the world stays independent of traffic
  // and switching one feature on does not shift the draws of another.
  const jitterRng = new Rng(seed ^ 0x5eed1e55);
  const slowRng = new Rng(seed ^ 0x51031a7e);
  const faultRng = new Rng(seed ^ 0x0fa017ed);
  let throttleTurn = 0;
  let loggedOutTurn = 0;

  // Sessions: scenario ones by cookie and by label; runtime state overrides by label.
  let byCookie = new Map<string, { spec: ResolvedSession; label: string }>();
  let byLabel = new Map<string, { spec: ResolvedSession; label: string }>();
  const stateOverrides = new Map<string, SessionState>();
  const labelCache = new Map<string, string>();
  const indexSessions = (): void => {
    byCookie = new Map();
    byLabel = new Map();
    for (const spec of settings.sessions) {
      const entry = { spec, label: spec.label ?? sessionLabel(spec.sessionid) };
      byCookie.set(spec.sessionid, entry);
      byLabel.set(entry.label, entry);
    }
  };
  indexSessions();
  const ipBook = new BudgetBook();
  const sessionBook = new BudgetBook();

  let stats = emptyStats();
  const log: RequestLogEntry[] = [];
  const pendingTimers = new Set<NodeJS.Timeout>();
  /** Non-admin requests not yet closed (answered or dropped). */
  let inFlight = 0;
  let logFile: WriteStream | undefined;
  if (opts.requestLogFile) {
    logFile = createWriteStream(opts.requestLogFile, { flags: 'a' });
    logFile.on('error', (err) => logger?.warn('request log file error', { error: err.message }));
  }

  const record = (entry: RequestLogEntry, throttledBy: Decision['throttledBy']): void => {
    stats.totalRequests++;
    stats.byKind[entry.kind]++;
    const code = String(entry.status);
    bump(stats.byStatus, code);
    bump(stats.byOutcome, entry.outcome);
    bumpParty(stats.bySession, entry.session ?? 'anonymous', code, throttledBy === 'session');
    bumpParty(stats.byClient, entry.client ?? 'unknown', code, throttledBy === 'ip');
    if (entry.kind === 'reels_media') stats.reelIdsAsked += entry.ids.length;
    if (entry.kind === 'profile' && entry.username !== null) {
      bump(stats.profileLookups, entry.username);
      if (world.byUsername(entry.username)) bump(stats.byUsername, entry.username);
    }
    for (const id of entry.ids) {
      const user = world.byId(id);
      if (user) bump(stats.byUsername, user.username);
    }
    log.push(entry);
    // Trim in batches (1/16 of the cap) so a full log does not cost an O(n) splice per request.
    if (log.length > requestLogLimit + Math.max(1, requestLogLimit >> 4)) {
      log.splice(0, log.length - requestLogLimit);
    }
    if (logFile && !logFile.writableEnded) logFile.write(`${JSON.stringify(entry)}\n`);
    logger?.debug('sim request', {
      kind: entry.kind,
      status: entry.status,
      outcome: entry.outcome,
      session: entry.session,
      client: entry.client,
      latencyMs: entry.latencyMs,
    });
  };

  const labelOf = (cookie: string): { label: string; known: boolean } => {
    let known = byCookie.get(cookie);
    if (!known && cookie.includes('%')) {
      try {
        known = byCookie.get(decodeURIComponent(cookie));
      } catch {
        // not URL-encoded after all
      }
    }
    if (known) return { label: known.label, known: true };
    let label = labelCache.get(cookie);
    if (label === undefined) {
      if (labelCache.size >= LABEL_CACHE_LIMIT) labelCache.clear();
      label = sessionLabel(cookie);
      labelCache.set(cookie, label);
    }
    return { label, known: false };
  };

  const sessionBudgetOf = (label: string): Budget | null => {
    if (label in settings.sessionBudgets) return settings.sessionBudgets[label] ?? null;
    const own = byLabel.get(label)?.spec.budget;
    return own !== undefined ? own : settings.sessionBudget;
  };
  const ipBudgetOf = (client: string): Budget | null =>
    client in settings.ipBudgets ? (settings.ipBudgets[client] ?? null) : settings.ipBudget;
  const stateOf = (label: string, known: boolean): SessionState | 'logged-out' => {
    const override = stateOverrides.get(label);
    if (override) return override;
    if (known) return byLabel.get(label)?.spec.state ?? 'ok';
    return settings.requireSession ? 'logged-out' : 'ok';
  };

  const throttled = (outcome: Outcome, by?: 'ip' | 'session'): Decision => ({
    answer: throttleAnswer(settings.throttleStyle, throttleTurn++, settings.retryAfterSecs),
    outcome,
    throttledBy: by,
  });
  const loggedOut = (pathAndQuery: string): Decision => {
    let style = settings.loggedOutStyle;
    if (style === 'mixed')
      style = (['403', '302', '302-root'] as const)[loggedOutTurn++ % 3] ?? '403';
    const answer =
      style === '403' ? loginRequired403() : loginRedirect302(pathAndQuery, style === '302-root');
    return { answer, outcome: 'logged-out' };
  };

  const drawFault = (): FaultKind | null => {
    let total = 0;
    for (const kind of FAULT_KINDS) total += settings.faults[kind];
    if (total <= 0) return null;
    let r = faultRng.next();
    for (const kind of FAULT_KINDS) {
      r -= settings.faults[kind];
      if (r < 0) return kind;
    }
    return null;
  };

  // Renames (scenario "an account changed its username"): the id keeps its reel; the old name
  // is free (not found) and the new name answers with the same id.
  const renamedTo = new Map<string, string>(); // old → new
  const renamedFrom = new Map<string, string>(); // new → old
  const view = (u: SimUser | undefined): SimUser | undefined =>
    u && renamedTo.has(u.username) ? { ...u, username: renamedTo.get(u.username)! } : u;
  const userByName = (name: string): SimUser | undefined => {
    const n = name.toLowerCase();
    if (renamedFrom.has(n)) return view(world.byUsername(renamedFrom.get(n)!));
    if (renamedTo.has(n)) return undefined;
    return world.byUsername(n);
  };
  const userById = (id: string): SimUser | undefined => view(world.byId(id));

  /** The world's own answer to a valid request (no faults, no budgets). */
  const worldAnswer = (c: Classified, label: string | null): Answer => {
    const now = nowSecs();
    switch (c.kind) {
      case 'profile': {
        const user = userByName(c.username ?? '');
        if (user) return jsonAnswer(200, profileBody(user));
        if (settings.notFoundStyle === 'null') return jsonAnswer(200, PROFILE_NULL_BODY);
        if (settings.notFoundStyle === '400') return jsonAnswer(400, USER_NOT_FOUND_BODY);
        return html404();
      }
      case 'reels_media': {
        const seen = new Set<string>();
        const visible: SimUser[] = [];
        for (const id of c.ids) {
          if (seen.has(id)) continue;
          seen.add(id);
          const user = userById(id);
          if (user && reelVisible(user, now)) visible.push(user);
        }
        return jsonAnswer(200, reelsMediaBody(visible));
      }
      case 'user_story': {
        const user = userById(c.userStoryId ?? '');
        if (!user && settings.notFoundStyle === '400') return jsonAnswer(400, USER_NOT_FOUND_BODY);
        if (user?.isPrivate && settings.privateStyle === 'not-authorized') {
          return jsonAnswer(400, NOT_AUTHORIZED_BODY);
        }
        return jsonAnswer(200, userStoryBody(user && reelVisible(user, now) ? user : null));
      }
      case 'current_user':
        return label ? jsonAnswer(200, currentUserBody(label)) : loginRequired403();
      case 'other':
        return html404();
    }
  };

  const decide = (
    req: IncomingMessage,
    url: URL,
    c: Classified,
    cookie: string | null,
    client: string | null,
  ): { decision: Decision; label: string | null } => {
    const isGet = req.method === 'GET' || req.method === 'HEAD';
    const who = cookie === null ? null : labelOf(cookie);
    const label = who?.label ?? null;
    const done = (decision: Decision): { decision: Decision; label: string | null } => ({
      decision,
      label,
    });
    if (c.kind === 'other' || !isGet) return done({ answer: html404(), outcome: 'not-found-path' });
    const pathAndQuery = `${url.pathname}${url.search}`;
    const nowMs = clockMs();
    const { penaltyMs, penaltyExtends } = settings;

    const ipKey = client ?? 'unknown';
    if (ipBook.take(ipKey, nowMs, ipBudgetOf(ipKey), penaltyMs, penaltyExtends) !== 'ok') {
      return done(throttled('throttled:ip', 'ip'));
    }
    if (settings.requireAppId && !req.headers['x-ig-app-id']) {
      return done({
        answer: jsonAnswer(400, USERAGENT_MISMATCH_BODY),
        outcome: 'useragent-mismatch',
      });
    }
    if (who === null) {
      if (settings.requireSession || c.kind === 'current_user')
        return done(loggedOut(pathAndQuery));
    } else {
      const state = stateOf(who.label, who.known);
      if (state === 'logged-out') return done(loggedOut(pathAndQuery));
      if (state === 'throttled') return done(throttled('session:throttled'));
      if (state !== 'ok') {
        return done({
          answer: sessionStateAnswer(state, who.label, pathAndQuery),
          outcome: `session:${state}`,
        });
      }
      const budget = sessionBudgetOf(who.label);
      if (sessionBook.take(who.label, nowMs, budget, penaltyMs, penaltyExtends) !== 'ok') {
        return done(throttled('throttled:session', 'session'));
      }
    }
    if (c.kind === 'profile' && c.username === null) {
      return done({
        answer: jsonAnswer(400, failBody('username is required')),
        outcome: 'bad-request',
      });
    }
    if (c.kind === 'reels_media') {
      if (c.ids.length === 0) {
        return done({
          answer: jsonAnswer(400, failBody('reel_ids is required')),
          outcome: 'bad-request',
        });
      }
      if (c.ids.length > settings.maxReelIds) {
        return done({ answer: jsonAnswer(400, TOO_MANY_REELS_BODY), outcome: 'too-many-reels' });
      }
    }
    const fault = drawFault();
    const outcome = fault ? `fault:${fault}` : 'ok';
    switch (fault) {
      case null:
        return done({ answer: worldAnswer(c, label), outcome });
      case 'error5xx':
        return done({ answer: serverErrorAnswer(faultRng.int(0, 2)), outcome });
      case 'malformedJson': {
        const real = worldAnswer(c, label);
        const body =
          real.contentType === 'json' && real.body.length > 1 ? real.body : '{"status":"ok"}';
        return done({ answer: malformedAnswer(body), outcome });
      }
      case 'fail200':
        return done({ answer: jsonAnswer(200, FAIL_200_BODY), outcome });
      case 'missingKeys':
        return done({ answer: jsonAnswer(200, MISSING_KEYS_BODY), outcome });
      case 'reset':
        return done({
          answer: { action: 'reset', status: 0, body: '', contentType: 'text' },
          outcome,
        });
      case 'hang':
        return done({
          answer: { action: 'hang', status: 0, body: '', contentType: 'text' },
          outcome,
        });
    }
  };

  const send = (res: ServerResponse, answer: Answer, head: boolean): void => {
    res.writeHead(answer.status, {
      'content-type': CONTENT_TYPES[answer.contentType],
      'content-length': Buffer.byteLength(answer.body),
      'cache-control': 'private, no-cache, no-store, must-revalidate',
      ...answer.headers,
    });
    res.end(head ? undefined : answer.body);
  };

  const adminJson = (res: ServerResponse, status: number, value: unknown): void =>
    send(res, jsonAnswer(status, JSON.stringify(value)), false);

  const settingsView = (): ReturnType<SimServer['settings']> => {
    const { sessions: _sessions, ...rest } = structuredClone(settings);
    return { ...rest, sessions: sessionViews() };
  };
  const sessionViews = (): SessionView[] => {
    const labels = new Set<string>([...byLabel.keys(), ...stateOverrides.keys()]);
    return [...labels].map((label) => {
      const state = stateOf(label, byLabel.has(label));
      return {
        label,
        state: state === 'logged-out' ? 'dead' : state,
        budget: describeBudget(sessionBudgetOf(label)),
        penaltyUntilMs: sessionBook.penaltyUntilMs(label),
      };
    });
  };

  let pool: ProxyPool | undefined;

  const handleAdmin = async (
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
  ): Promise<void> => {
    const path = url.pathname.replace(/\/+$/, '');
    const method = req.method ?? 'GET';
    const route = `${method} ${path}`;
    const body = method === 'POST' ? await readBody(req) : (req.resume(), '');
    const sessionMatch = /^POST \/__sim\/sessions\/([^/]+)$/.exec(route);
    const proxyMatch = /^POST \/__sim\/proxies\/([^/]+)$/.exec(route);
    if (sessionMatch) {
      const label = decodeURIComponent(sessionMatch[1] ?? '');
      const parsed: unknown = body.trim() === '' ? {} : JSON.parse(body);
      const state = url.searchParams.get('state') ?? (parsed as { state?: unknown }).state;
      if (typeof state !== 'string' || !(SESSION_STATES as readonly string[]).includes(state)) {
        return adminJson(res, 400, {
          message: `state must be one of ${SESSION_STATES.join(', ')}`,
          status: 'fail',
        });
      }
      stateOverrides.set(label, state as SessionState);
      return adminJson(res, 200, { label, state, status: 'ok' });
    }
    if (proxyMatch) {
      const label = decodeURIComponent(proxyMatch[1] ?? '');
      const raw = url.searchParams.get('broken') ?? 'none';
      if (!pool || !pool.proxies.some((p) => p.label === label)) {
        return adminJson(res, 404, { message: `no proxy "${label}"`, status: 'fail' });
      }
      if (raw !== 'none' && !(PROXY_BROKEN_MODES as readonly string[]).includes(raw)) {
        return adminJson(res, 400, {
          message: `broken must be none or one of ${PROXY_BROKEN_MODES.join(', ')}`,
          status: 'fail',
        });
      }
      await pool.setBroken(label, raw === 'none' ? null : (raw as ProxyBrokenMode));
      return adminJson(res, 200, { label, broken: raw === 'none' ? null : raw, status: 'ok' });
    }
    switch (route) {
      case 'GET /__sim/health':
        return adminJson(res, 200, {
          status: 'ok',
          seed: world.seed,
          size: world.size,
          epochSecs: world.epochSecs,
          digest: world.digest(),
          scenario: settings.name,
        });
      case 'GET /__sim/truth': {
        const username = (url.searchParams.get('username') ?? '').trim();
        if (!username) return send(res, jsonAnswer(400, failBody('username is required')), false);
        const at = url.searchParams.get('nowSecs');
        const atSecs = at !== null && /^\d+$/.test(at) ? Number(at) : nowSecs();
        return adminJson(res, 200, {
          username: username.toLowerCase(),
          ...world.truth(username, atSecs),
        });
      }
      case 'GET /__sim/stats':
        return adminJson(res, 200, stats);
      case 'POST /__sim/reset-stats':
        stats = emptyStats();
        return adminJson(res, 200, { status: 'ok' });
      case 'GET /__sim/requests': {
        const limitRaw = url.searchParams.get('limit');
        const limit = Math.min(
          requestLogLimit,
          limitRaw !== null && /^\d+$/.test(limitRaw) ? Number(limitRaw) : requestLogLimit,
        );
        const text = log
          .slice(Math.max(0, log.length - limit))
          .map((e) => `${JSON.stringify(e)}\n`)
          .join('');
        res.writeHead(200, {
          'content-type': 'application/x-ndjson; charset=utf-8',
          'content-length': Buffer.byteLength(text),
        });
        res.end(text);
        return;
      }
      case 'GET /__sim/scenario':
        return adminJson(res, 200, settingsView());
      case 'POST /__sim/scenario': {
        let patch: unknown;
        try {
          patch = JSON.parse(body);
          updateScenario(patch as Scenario);
        } catch (err) {
          return adminJson(res, 400, { message: coerceError(err).message, status: 'fail' });
        }
        return adminJson(res, 200, settingsView());
      }
      case 'GET /__sim/sessions':
        return adminJson(res, 200, sessionViews());
      case 'POST /__sim/reset-budgets':
        ipBook.clear();
        sessionBook.clear();
        return adminJson(res, 200, { status: 'ok' });
      case 'GET /__sim/proxies': {
        const proxyStats = pool?.stats() ?? {};
        return adminJson(
          res,
          200,
          (pool?.proxies ?? []).map((p) => ({ ...p, ...proxyStats[p.label] })),
        );
      }
      default:
        return adminJson(res, 404, { message: 'unknown admin route', status: 'fail' });
    }
  };

  const updateScenario = (patch: Scenario): void => {
    const parsed = parseScenario(patch);
    for (const key of ['seed', 'size', 'epochSecs'] as const) {
      if (parsed[key] !== undefined && parsed[key] !== scenario[key]) {
        throw new RangeError(`scenario ${key} cannot change at runtime (the world is built)`);
      }
    }
    const next = mergeScenario(scenario, parsed);
    const nextSettings = resolveSettings(next);
    scenario = next;
    settings = nextSettings;
    indexSessions();
  };

  const server = createServer((req, res) => {
    const arrivedMs = Date.now();
    const started = performance.now();
    const url = new URL(req.url ?? '/', 'http://sim.invalid');
    if (url.pathname.startsWith('/__sim/')) {
      handleAdmin(req, res, url).catch((err: unknown) => {
        if (!res.headersSent) {
          adminJson(res, 400, { message: coerceError(err).message, status: 'fail' });
        } else {
          res.destroy();
        }
      });
      return;
    }
    req.resume(); // bodies are never used; drain them so keep-alive sockets stay usable

    const cookie = sessionCookie(req);
    const client = clientAddress(req);
    const c = classifyPath(url);
    const { decision, label } = decide(req, url, c, cookie, client);
    const { answer } = decision;
    let timer: NodeJS.Timeout | undefined;
    inFlight++;
    res.once('close', () => {
      inFlight--;
      if (timer) {
        clearTimeout(timer);
        pendingTimers.delete(timer);
      }
      record(
        {
          timeMs: arrivedMs,
          client,
          session: label,
          kind: c.kind,
          path: url.pathname,
          ids: c.ids,
          username: c.username,
          status: res.headersSent ? answer.status : 0,
          outcome: decision.outcome,
          latencyMs: Math.round(performance.now() - started),
        },
        decision.throttledBy,
      );
    });
    const s = settings;
    const delayMs =
      s.latencyMs +
      (s.latencyJitterMs > 0 ? Math.floor(jitterRng.next() * s.latencyJitterMs) : 0) +
      (s.latencySlowRate > 0 && slowRng.next() < s.latencySlowRate ? s.latencySlowMs : 0);
    const deliver = (): void => {
      timer = undefined;
      if (answer.action === 'send') send(res, answer, req.method === 'HEAD');
      else if (answer.action === 'reset') req.socket.resetAndDestroy();
      // 'hang': never answered; close() destroys the connection.
    };
    if (delayMs <= 0 || answer.action === 'hang') return deliver();
    timer = setTimeout(() => {
      if (timer) pendingTimers.delete(timer);
      deliver();
    }, delayMs);
    pendingTimers.add(timer);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      await pool?.close();
      for (const timer of pendingTimers) clearTimeout(timer);
      pendingTimers.clear();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      // Let the 'close' events of just-destroyed requests (never answered ones) record first;
      // they arrive a few ticks after the sockets are destroyed. Bounded: 200 ms at most.
      for (let waitedMs = 0; inFlight > 0 && waitedMs < 200; waitedMs += 5) {
        await new Promise<void>((resolve) => setTimeout(resolve, 5));
      }
      if (logFile) {
        const file = logFile;
        await new Promise<void>((resolve) => file.end(() => resolve()));
      }
    })();
    return closing;
  };

  if (opts.proxies) {
    try {
      pool = await startProxies(opts.proxies);
    } catch (err) {
      await close();
      throw err;
    }
  }
  logger?.info('sim listening', {
    url,
    seed,
    size: world.size,
    epochSecs: world.epochSecs,
    scenario: settings.name,
  });

  return {
    url,
    port,
    world,
    proxies: pool ? pool.proxies.map((p) => ({ ...p })) : [],
    close,
    stats: () => structuredClone(stats),
    resetStats: () => {
      stats = emptyStats();
    },
    requestLog: () =>
      log
        .slice(Math.max(0, log.length - requestLogLimit))
        .map((entry) => ({ ...entry, ids: [...entry.ids] })),
    settings: settingsView,
    updateScenario,
    setSessionState: (label, state) => {
      if (!SESSION_STATES.includes(state)) throw new RangeError(`unknown session state "${state}"`);
      stateOverrides.set(label, state);
    },
    resetBudgets: () => {
      ipBook.clear();
      sessionBook.clear();
    },
    renameUser: (oldName: string, newName: string) => {
      const o = oldName.toLowerCase();
      const n = newName.toLowerCase();
      if (!userByName(o)) throw new RangeError(`no user ${oldName}`);
      if (userByName(n)) throw new RangeError(`${newName} is taken`);
      const original = renamedFrom.get(o) ?? o;
      renamedFrom.delete(o);
      renamedTo.set(original, n);
      renamedFrom.set(n, original);
    },
    setProxyBroken: async (label, mode) => {
      if (!pool) throw new RangeError('no proxies were started (startSim option `proxies`)');
      await pool.setBroken(label, mode);
    },
    proxyStats: () => pool?.stats() ?? {},
  };
}
