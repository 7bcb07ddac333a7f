/**
 * Deciding the answer to an API request, in this order: per-IP budget → X-IG-App-ID → session
 * (logged out, state) → per-session budget → request validation → fault draw → the world's
 * answer. {@link Decider} holds what these steps read and change: the scenario in force, the
 * sessions and their runtime states, the budget books, the fault draws and the renamed accounts.
 */
import type { IncomingMessage } from 'node:http';
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
import type { Classified } from './http-io.js';
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
import { FAULT_KINDS, mergeScenario, parseScenario, resolveSettings } from './scenario.js';
import type {
  Budget,
  FaultKind,
  ResolvedSession,
  Scenario,
  SessionState,
  Settings,
} from './scenario.js';
import { formatRate } from './units.js';
import { reelVisible } from './world.js';
import type { SimUser, World } from './world.js';

/**
 * Why a request got its answer: `ok` (served from the world, not-found answers included),
 * `not-found-path`, `bad-request`, `useragent-mismatch`, `too-many-reels`, `logged-out`,
 * `throttled:ip`, `throttled:session`, `session:<state>` (a non-ok session state) or
 * `fault:<kind>` (an injected fault).
 */
export type Outcome = string;

/** The answer to a request and why it was given. */
export interface Decision {
  answer: Answer;
  outcome: Outcome;
  /** Which party's budget threw the request out, for the per-party `throttled` counters. */
  throttledBy?: 'ip' | 'session';
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

/** The settings in force (scenario resolved), sessions without their cookies. */
export type SettingsView = Omit<Settings, 'sessions'> & { sessions: SessionView[] };

/** What a {@link Decider} is built from. */
export interface DeciderOptions {
  world: World;
  /** The scenario in force at start, and its settings. */
  scenario: Scenario;
  settings: Settings;
  /** Seed of the fault draws (the world's seed). */
  seed: number;
  /** Clock deciding which items are expired, epoch seconds. */
  nowSecs: () => number;
  /** Clock of budgets and penalties, milliseconds. */
  clockMs: () => number;
}

/** A request's session: its label, and whether the scenario knows the cookie. */
interface Who {
  label: string;
  known: boolean;
}

/** Unknown-cookie → label cache size before it is cleared (a cheap bound on memory). */
const LABEL_CACHE_LIMIT = 10_000;

function describeBudget(budget: Budget | null): string | null {
  return budget ? `${formatRate(budget.rate)} burst ${budget.burst}` : null;
}

/** Decides the answer to each API request; see the module comment for the order of checks. */
export class Decider {
  /** The scenario in force and its settings; {@link updateScenario} replaces both. */
  scenario: Scenario;
  settings: Settings;
  readonly ipBook = new BudgetBook();
  readonly sessionBook = new BudgetBook();
  private readonly world: World;
  private readonly nowSecs: () => number;
  private readonly clockMs: () => number;
  // Each random decision has its own seeded stream, so the world stays independent of traffic
  // and switching one feature on does not shift the draws of another (latency: see server.ts).
  private readonly faultRng: Rng;
  private throttleTurn = 0;
  private loggedOutTurn = 0;
  // Sessions: scenario ones by cookie and by label; runtime state overrides by label.
  private byCookie = new Map<string, { spec: ResolvedSession; label: string }>();
  private byLabel = new Map<string, { spec: ResolvedSession; label: string }>();
  private readonly stateOverrides = new Map<string, SessionState>();
  private readonly labelCache = new Map<string, string>();
  // Renames (scenario "an account changed its username"): the id keeps its reel; the old name
  // is free (not found) and the new name answers with the same id.
  private readonly renamedTo = new Map<string, string>(); // old → new
  private readonly renamedFrom = new Map<string, string>(); // new → old

  constructor(opts: DeciderOptions) {
    this.world = opts.world;
    this.scenario = opts.scenario;
    this.settings = opts.settings;
    this.nowSecs = opts.nowSecs;
    this.clockMs = opts.clockMs;
    this.faultRng = new Rng(opts.seed ^ 0x0fa017ed);
    this.indexSessions();
  }

  /** The answer to an API request, and the label of its session (null without a cookie). */
  decide(
    req: IncomingMessage,
    url: URL,
    c: Classified,
    cookie: string | null,
    client: string | null,
  ): { decision: Decision; label: string | null } {
    const who = cookie === null ? null : this.labelOf(cookie);
    const label = who?.label ?? null;
    return { decision: this.decideFor(req, url, c, who, client), label };
  }

  /** Lays `patch` over the running scenario (see mergeScenario); budget state is kept. */
  updateScenario(patch: Scenario): void {
    const parsed = parseScenario(patch);
    for (const key of ['seed', 'size', 'epochSecs'] as const) {
      if (parsed[key] !== undefined && parsed[key] !== this.scenario[key]) {
        throw new RangeError(`scenario ${key} cannot change at runtime (the world is built)`);
      }
    }
    const next = mergeScenario(this.scenario, parsed);
    const nextSettings = resolveSettings(next);
    this.scenario = next;
    this.settings = nextSettings;
    this.indexSessions();
  }

  /** Sets a session's state by label, overriding the scenario (no validation). */
  overrideState(label: string, state: SessionState): void {
    this.stateOverrides.set(label, state);
  }

  /** Forgets all budget state: every bucket full, every penalty lifted. */
  resetBudgets(): void {
    this.ipBook.clear();
    this.sessionBook.clear();
  }

  /** See SimServer.renameUser. */
  renameUser(oldName: string, newName: string): void {
    const { renamedFrom, renamedTo } = this;
    const o = oldName.toLowerCase();
    const n = newName.toLowerCase();
    if (!this.userByName(o)) throw new RangeError(`no user ${oldName}`);
    if (this.userByName(n)) throw new RangeError(`${newName} is taken`);
    const original = renamedFrom.get(o) ?? o;
    renamedFrom.delete(o);
    renamedTo.set(original, n);
    renamedFrom.set(n, original);
  }

  /** The settings in force, sessions as {@link SessionView}s. */
  settingsView(): SettingsView {
    const { sessions: _sessions, ...rest } = structuredClone(this.settings);
    return { ...rest, sessions: this.sessionViews() };
  }

  /** Every session the scenario names or the runtime overrides. */
  sessionViews(): SessionView[] {
    const labels = new Set<string>([...this.byLabel.keys(), ...this.stateOverrides.keys()]);
    return [...labels].map((label) => {
      const state = this.stateOf(label, this.byLabel.has(label));
      return {
        label,
        state: state === 'logged-out' ? 'dead' : state,
        budget: describeBudget(this.sessionBudgetOf(label)),
        penaltyUntilMs: this.sessionBook.penaltyUntilMs(label),
      };
    });
  }

  private decideFor(
    req: IncomingMessage,
    url: URL,
    c: Classified,
    who: Who | null,
    client: string | null,
  ): Decision {
    const isGet = req.method === 'GET' || req.method === 'HEAD';
    const settings = this.settings;
    if (c.kind === 'other' || !isGet) return { answer: html404(), outcome: 'not-found-path' };
    const pathAndQuery = `${url.pathname}${url.search}`;
    const nowMs = this.clockMs();
    const { penaltyMs, penaltyExtends } = settings;

    const ipKey = client ?? 'unknown';
    if (
      this.ipBook.take(ipKey, nowMs, this.ipBudgetOf(ipKey), penaltyMs, penaltyExtends) !== 'ok'
    ) {
      return this.throttled('throttled:ip', 'ip');
    }
    if (settings.requireAppId && !req.headers['x-ig-app-id']) {
      return { answer: jsonAnswer(400, USERAGENT_MISMATCH_BODY), outcome: 'useragent-mismatch' };
    }
    if (who === null) {
      if (settings.requireSession || c.kind === 'current_user') return this.loggedOut(pathAndQuery);
    } else {
      const refused = this.checkSession(who, pathAndQuery, nowMs);
      if (refused) return refused;
    }
    return this.checkRequest(c) ?? this.answerOrFault(c, who?.label ?? null);
  }

  /** The refusal a session's state or budget earns, or null when it may go on. */
  private checkSession(who: Who, pathAndQuery: string, nowMs: number): Decision | null {
    const { penaltyMs, penaltyExtends } = this.settings;
    const state = this.stateOf(who.label, who.known);
    if (state === 'logged-out') return this.loggedOut(pathAndQuery);
    if (state === 'throttled') return this.throttled('session:throttled');
    if (state !== 'ok') {
      return {
        answer: sessionStateAnswer(state, who.label, pathAndQuery),
        outcome: `session:${state}`,
      };
    }
    const budget = this.sessionBudgetOf(who.label);
    if (this.sessionBook.take(who.label, nowMs, budget, penaltyMs, penaltyExtends) !== 'ok') {
      return this.throttled('throttled:session', 'session');
    }
    return null;
  }

  /** The 400 an invalid request earns, or null when it is valid. */
  private checkRequest(c: Classified): Decision | null {
    if (c.kind === 'profile' && c.username === null) {
      return { answer: jsonAnswer(400, failBody('username is required')), outcome: 'bad-request' };
    }
    if (c.kind === 'reels_media') {
      if (c.ids.length === 0) {
        return {
          answer: jsonAnswer(400, failBody('reel_ids is required')),
          outcome: 'bad-request',
        };
      }
      if (c.ids.length > this.settings.maxReelIds) {
        return { answer: jsonAnswer(400, TOO_MANY_REELS_BODY), outcome: 'too-many-reels' };
      }
    }
    return null;
  }

  /** The world's answer, or an injected fault when the draw picks one. */
  private answerOrFault(c: Classified, label: string | null): Decision {
    const fault = this.drawFault();
    const outcome = fault ? `fault:${fault}` : 'ok';
    switch (fault) {
      case null:
        return { answer: this.worldAnswer(c, label), outcome };
      case 'error5xx':
        return { answer: serverErrorAnswer(this.faultRng.int(0, 2)), outcome };
      case 'malformedJson': {
        const real = this.worldAnswer(c, label);
        const body =
          real.contentType === 'json' && real.body.length > 1 ? real.body : '{"status":"ok"}';
        return { answer: malformedAnswer(body), outcome };
      }
      case 'fail200':
        return { answer: jsonAnswer(200, FAIL_200_BODY), outcome };
      case 'missingKeys':
        return { answer: jsonAnswer(200, MISSING_KEYS_BODY), outcome };
      case 'reset':
        return { answer: { action: 'reset', status: 0, body: '', contentType: 'text' }, outcome };
      case 'hang':
        return { answer: { action: 'hang', status: 0, body: '', contentType: 'text' }, outcome };
    }
  }

  private indexSessions(): void {
    this.byCookie = new Map();
    this.byLabel = new Map();
    for (const spec of this.settings.sessions) {
      const entry = { spec, label: spec.label ?? sessionLabel(spec.sessionid) };
      this.byCookie.set(spec.sessionid, entry);
      this.byLabel.set(entry.label, entry);
    }
  }

  private labelOf(cookie: string): Who {
    const { byCookie, labelCache } = this;
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
  }

  private sessionBudgetOf(label: string): Budget | null {
    const settings = this.settings;
    if (label in settings.sessionBudgets) return settings.sessionBudgets[label] ?? null;
    const own = this.byLabel.get(label)?.spec.budget;
    return own !== undefined ? own : settings.sessionBudget;
  }

  private ipBudgetOf(client: string): Budget | null {
    const settings = this.settings;
    return client in settings.ipBudgets ? (settings.ipBudgets[client] ?? null) : settings.ipBudget;
  }

  private stateOf(label: string, known: boolean): SessionState | 'logged-out' {
    const override = this.stateOverrides.get(label);
    if (override) return override;
    if (known) return this.byLabel.get(label)?.spec.state ?? 'ok';
    return this.settings.requireSession ? 'logged-out' : 'ok';
  }

  private throttled(outcome: Outcome, by?: 'ip' | 'session'): Decision {
    const settings = this.settings;
    return {
      answer: throttleAnswer(settings.throttleStyle, this.throttleTurn++, settings.retryAfterSecs),
      outcome,
      throttledBy: by,
    };
  }

  private loggedOut(pathAndQuery: string): Decision {
    let style = this.settings.loggedOutStyle;
    if (style === 'mixed')
      style = (['403', '302', '302-root'] as const)[this.loggedOutTurn++ % 3] ?? '403';
    const answer =
      style === '403' ? loginRequired403() : loginRedirect302(pathAndQuery, style === '302-root');
    return { answer, outcome: 'logged-out' };
  }

  private drawFault(): FaultKind | null {
    const faults = this.settings.faults;
    let total = 0;
    for (const kind of FAULT_KINDS) total += faults[kind];
    if (total <= 0) return null;
    let r = this.faultRng.next();
    for (const kind of FAULT_KINDS) {
      r -= faults[kind];
      if (r < 0) return kind;
    }
    return null;
  }

  private view(u: SimUser | undefined): SimUser | undefined {
    const renamedTo = this.renamedTo;
    return u && renamedTo.has(u.username) ? { ...u, username: renamedTo.get(u.username)! } : u;
  }

  private userByName(name: string): SimUser | undefined {
    const n = name.toLowerCase();
    if (this.renamedFrom.has(n)) return this.view(this.world.byUsername(this.renamedFrom.get(n)!));
    if (this.renamedTo.has(n)) return undefined;
    return this.world.byUsername(n);
  }

  private userById(id: string): SimUser | undefined {
    return this.view(this.world.byId(id));
  }

  /** The world's own answer to a valid request (no faults, no budgets). */
  private worldAnswer(c: Classified, label: string | null): Answer {
    const now = this.nowSecs();
    const settings = this.settings;
    switch (c.kind) {
      case 'profile': {
        const user = this.userByName(c.username ?? '');
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
          const user = this.userById(id);
          if (user && reelVisible(user, now)) visible.push(user);
        }
        return jsonAnswer(200, reelsMediaBody(visible));
      }
      case 'user_story': {
        const user = this.userById(c.userStoryId ?? '');
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
  }
}
