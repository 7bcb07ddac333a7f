/**
 * Scenarios: how realistic (or hostile) the simulated upstream is. A scenario is plain JSON — a
 * file, a named preset ({@link SCENARIOS}) or the same fields given to startSim / as CLI flags —
 * and is resolved once into {@link Settings}, the fully defaulted form the server runs on.
 *
 * The defaults are the friendly upstream the rest of the repo was built against: anonymous
 * requests work, no budgets, no faults, no latency.
 */
import { readFileSync } from 'node:fs';
import { parseRate } from './units.js';
import type { Rate } from './units.js';
import { coerceError } from '@storycheck/logger';

/**
 * What the upstream thinks of a session (keyed by its label):
 * - `ok` — logged in;
 * - `dead` — 403 login_required; `dead-302` — 302 to /accounts/login/?next=…; `dead-302-root` — 302 to /;
 * - `challenge` — 400 challenge_required; `suspended` — the same with a `/suspended/` challenge url;
 * - `checkpoint` — 400 checkpoint_required; `checkpoint-logged-out` — its logged-out variant;
 * - `feedback` — 400 feedback_required (action blocked);
 * - `masked` — 404 bare "Not Found" on every API path (a masked challenge);
 * - `throttled` — every request gets the throttle answer (as if punished forever).
 */
export type SessionState =
  | 'ok'
  | 'dead'
  | 'dead-302'
  | 'dead-302-root'
  | 'challenge'
  | 'suspended'
  | 'checkpoint'
  | 'checkpoint-logged-out'
  | 'feedback'
  | 'masked'
  | 'throttled';

/** All session states, for validation and docs. */
export const SESSION_STATES: readonly SessionState[] = [
  'ok',
  'dead',
  'dead-302',
  'dead-302-root',
  'challenge',
  'suspended',
  'checkpoint',
  'checkpoint-logged-out',
  'feedback',
  'masked',
  'throttled',
];

/**
 * How a throttled request is answered: 429 JSON "Please wait a few minutes…" (`json`), 429
 * `{"message":"","status":"fail"}` (`json-empty-message`), 429 HTML page (`html`), 429 empty body
 * (`empty`), 401 "Please wait…" with `require_login` (`401-please-wait`), its `igweb_rollout`
 * variant (`401-igweb-rollout`), or `mixed`: all of those in turn, deterministically.
 */
export type ThrottleStyle =
  | 'json'
  | 'json-empty-message'
  | 'html'
  | 'empty'
  | '401-please-wait'
  | '401-igweb-rollout'
  | 'mixed';

/** All throttle styles, `mixed` last; `mixed` rotates through the others in this order. */
export const THROTTLE_STYLES: readonly ThrottleStyle[] = [
  'json',
  'json-empty-message',
  'html',
  'empty',
  '401-please-wait',
  '401-igweb-rollout',
  'mixed',
];

/** Logged-out answer: 403 login_required, 302 to the login page, 302 to `/`, or those in turn. */
export type LoggedOutStyle = '403' | '302' | '302-root' | 'mixed';
/** Unknown username on web_profile_info: 404 HTML page, 200 `data.user: null`, or 400 "User not found". */
export type NotFoundStyle = '404' | 'null' | '400';
/** A private user's story on feed/user/<id>/story: `reel: null`, or 400 "Not authorized to view user". */
export type PrivateStyle = 'no-reel' | 'not-authorized';

/**
 * Per-request faults, each drawn with its own probability (0…1) from a seeded PRNG:
 * `error5xx` 500/502/560; `malformedJson` 200 with a truncated body; `fail200` 200 with
 * `status:"fail"`; `missingKeys` 200 `{"status":"ok"}` without the expected keys; `reset` the
 * connection is reset; `hang` the request is never answered (until close()).
 */
export type FaultKind = 'error5xx' | 'malformedJson' | 'fail200' | 'missingKeys' | 'reset' | 'hang';

/** All fault kinds, in the order their probabilities are stacked on one draw. */
export const FAULT_KINDS: readonly FaultKind[] = [
  'error5xx',
  'malformedJson',
  'fail200',
  'missingKeys',
  'reset',
  'hang',
];

/** A budget as written in a scenario: `rate` "N/duration" (or parsed) and `burst` (default 1). */
export interface BudgetSpec {
  rate: string | Rate;
  /** Requests that may arrive back to back from idle, ≥ 1. Default 1. */
  burst?: number;
}

/** A session the upstream knows: its cookie value, the label logs use, its state and budget. */
export interface SessionSpec {
  /** The `sessionid` cookie value (compared raw and URL-decoded). */
  sessionid: string;
  /** Name in logs, stats and admin routes. Default: `s:` + 6 hex of sha256(sessionid). */
  label?: string;
  /** Default `ok`. */
  state?: SessionState;
  /** Overrides `budgets.session` for this session; null = unlimited. */
  budget?: BudgetSpec | null;
}

/** Budgets section of a scenario. Budgets apply only when configured. */
export interface BudgetSettings {
  /** Default budget of every session (requests carrying a sessionid cookie). null = none. */
  session?: BudgetSpec | null;
  /** Default budget of every client IP (the proxy's egress address). null = none. */
  ip?: BudgetSpec | null;
  /** Per-session overrides keyed by label; null = unlimited. */
  sessions?: Record<string, BudgetSpec | null>;
  /** Per-IP overrides keyed by address ("127.0.0.2"); null = unlimited. */
  ips?: Record<string, BudgetSpec | null>;
  /** After a violation the key stays punished this long, milliseconds. Default 60 000. */
  penaltyMs?: number;
  /** Whether each request during the penalty restarts it. Default false. */
  penaltyExtends?: boolean;
  /** Default `json`. */
  throttleStyle?: ThrottleStyle;
  /** Send `Retry-After: N` (seconds) on throttled answers. Default null: Instagram never does. */
  retryAfterSecs?: number | null;
}

/** A scenario, as JSON. Every field is optional; missing ones keep the friendly defaults. */
export interface Scenario {
  /** Shown by the CLI and the admin route. */
  name?: string;
  description?: string;
  /** World seed (default 42), size (default 1000) and epoch seconds (default now). */
  seed?: number;
  size?: number;
  epochSecs?: number;
  /** Fixed delay before every answer, milliseconds. Default 0. */
  latencyMs?: number;
  /** Extra uniform delay in [0, latencyJitterMs), milliseconds. Default 0. */
  latencyJitterMs?: number;
  /** Probability (0…1) that a request also gets `latencySlowMs` (a slow tail). Default 0. */
  latencySlowRate?: number;
  /** Extra delay of slow requests, milliseconds. Default 0. */
  latencySlowMs?: number;
  /** Answer 400 "useragent mismatch" when `X-IG-App-ID` is missing. Default true. */
  requireAppId?: boolean;
  /** reels_media with more ids gets 400 "Too many reels requested". Default 50. */
  maxReelIds?: number;
  /** Default `404`. */
  notFoundStyle?: NotFoundStyle;
  /** Default `no-reel`. */
  privateStyle?: PrivateStyle;
  /** Default `403`. */
  loggedOutStyle?: LoggedOutStyle;
  /**
   * When true, requests without a sessionid cookie, or with one not listed in `sessions`, are
   * logged out. Default false: anonymous and unknown cookies are served (unknown ones as `ok`
   * sessions labelled by hash); current_user still wants some cookie.
   */
  requireSession?: boolean;
  /** Sessions the upstream knows. */
  sessions?: SessionSpec[];
  budgets?: BudgetSettings;
  faults?: Partial<Record<FaultKind, number>>;
}

/** A parsed budget: sustained rate plus burst. */
export interface Budget {
  rate: Rate;
  /** ≥ 1. */
  burst: number;
}

/** A {@link SessionSpec} with defaults applied. */
export interface ResolvedSession {
  sessionid: string;
  /** Undefined when the scenario gave none (the hash label is used). */
  label: string | undefined;
  state: SessionState;
  /** undefined: use the default; null: unlimited. */
  budget: Budget | null | undefined;
}

/** A scenario with every default applied and every rate parsed. */
export interface Settings {
  name: string;
  latencyMs: number;
  latencyJitterMs: number;
  latencySlowRate: number;
  latencySlowMs: number;
  requireAppId: boolean;
  maxReelIds: number;
  notFoundStyle: NotFoundStyle;
  privateStyle: PrivateStyle;
  loggedOutStyle: LoggedOutStyle;
  requireSession: boolean;
  sessions: ResolvedSession[];
  sessionBudget: Budget | null;
  ipBudget: Budget | null;
  sessionBudgets: Record<string, Budget | null>;
  ipBudgets: Record<string, Budget | null>;
  penaltyMs: number;
  penaltyExtends: boolean;
  throttleStyle: ThrottleStyle;
  retryAfterSecs: number | null;
  faults: Record<FaultKind, number>;
}

/**
 * The shipped scenarios:
 * - `demo`: what `npm run demo` wants — some latency with a slow tail, a generous per-session
 *   budget; anonymous clients see no budget and no faults.
 * - `strict-budgets`: budgets the way operators report them (per session ~200/h, per IP less for
 *   proxies), punished for 30 minutes, throttle answers in every style; no faults.
 * - `hostile`: everything goes wrong a little: faults of every kind, slow tail, tight budgets
 *   with extending penalties, mixed throttle and logged-out styles, small reels_media chunks.
 */
export const SCENARIOS: Readonly<Record<'demo' | 'strict-budgets' | 'hostile', Scenario>> = {
  demo: {
    name: 'demo',
    description: 'friendly: latency with a slow tail, generous session budget, no faults',
    latencyMs: 60,
    latencyJitterMs: 80,
    latencySlowRate: 0.01,
    latencySlowMs: 600,
    budgets: { session: { rate: '600/1m', burst: 20 }, penaltyMs: 10_000 },
  },
  'strict-budgets': {
    name: 'strict-budgets',
    description:
      'observed budgets: ~200/h per session, 300/h per IP, 30 min penalty, mixed answers',
    latencyMs: 40,
    latencyJitterMs: 60,
    budgets: {
      session: { rate: '200/1h', burst: 5 },
      ip: { rate: '300/1h', burst: 10 },
      penaltyMs: 30 * 60_000,
      throttleStyle: 'mixed',
    },
  },
  hostile: {
    name: 'hostile',
    description: 'faults of every kind, slow tail, tight budgets, mixed styles, small chunks',
    latencyMs: 80,
    latencyJitterMs: 300,
    latencySlowRate: 0.03,
    latencySlowMs: 4_000,
    maxReelIds: 10,
    notFoundStyle: 'null',
    privateStyle: 'not-authorized',
    loggedOutStyle: 'mixed',
    budgets: {
      session: { rate: '60/1m', burst: 3 },
      ip: { rate: '120/1m', burst: 5 },
      penaltyMs: 120_000,
      penaltyExtends: true,
      throttleStyle: 'mixed',
    },
    faults: {
      error5xx: 0.03,
      malformedJson: 0.01,
      fail200: 0.01,
      missingKeys: 0.01,
      reset: 0.01,
      hang: 0.005,
    },
  },
};

/** Names of {@link SCENARIOS}. */
export type ScenarioName = keyof typeof SCENARIOS;

// ---------------------------------------------------------------------------------------------
// Validation: scenario files are hand-written, so every mistake names its field.

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function fail(path: string, what: string, got: unknown): never {
  throw new RangeError(`scenario ${path} ${what}, got ${JSON.stringify(got)}`);
}

function checkKeys(o: Obj, path: string, allowed: readonly string[]): void {
  for (const key of Object.keys(o)) {
    if (!allowed.includes(key)) {
      throw new RangeError(
        `scenario ${path}: unknown field "${key}" (known: ${allowed.join(', ')})`,
      );
    }
  }
}

function optInt(o: Obj, key: string, path: string, min: number, max: number): void {
  const v = o[key];
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    fail(`${path}${key}`, `must be an integer in ${min}..${max}`, v);
  }
}

function optProb(o: Obj, key: string, path: string): void {
  const v = o[key];
  if (v === undefined) return;
  if (typeof v !== 'number' || !(v >= 0 && v <= 1)) fail(`${path}${key}`, 'must be in 0..1', v);
}

function optBool(o: Obj, key: string, path: string): void {
  const v = o[key];
  if (v !== undefined && typeof v !== 'boolean') fail(`${path}${key}`, 'must be true or false', v);
}

function optEnum(o: Obj, key: string, path: string, values: readonly string[]): void {
  const v = o[key];
  if (v === undefined) return;
  if (typeof v !== 'string' || !values.includes(v)) {
    fail(`${path}${key}`, `must be one of ${values.join(', ')}`, v);
  }
}

function optString(o: Obj, key: string, path: string): void {
  const v = o[key];
  if (v !== undefined && typeof v !== 'string') fail(`${path}${key}`, 'must be a string', v);
}

function checkBudget(v: unknown, path: string, nullable: boolean): void {
  if (v === null && nullable) return;
  if (!isObj(v)) fail(path, 'must be {"rate":"N/duration","burst":N}', v);
  checkKeys(v, path, ['rate', 'burst']);
  const rate = v.rate;
  if (typeof rate === 'string') {
    try {
      parseRate(rate);
    } catch (err) {
      fail(`${path}.rate`, coerceError(err).message, rate);
    }
  } else if (
    !isObj(rate) ||
    typeof rate.count !== 'number' ||
    !Number.isInteger(rate.count) ||
    rate.count < 1 ||
    typeof rate.periodMs !== 'number' ||
    !Number.isInteger(rate.periodMs) ||
    rate.periodMs < 1
  ) {
    fail(`${path}.rate`, 'must be "N/duration" or {"count":N,"periodMs":N}', rate);
  }
  optInt(v, 'burst', `${path}.`, 1, 1_000_000);
}

function checkBudgetMap(v: unknown, path: string): void {
  if (v === undefined) return;
  if (!isObj(v)) fail(path, 'must be an object keyed by label/address', v);
  for (const [key, spec] of Object.entries(v)) checkBudget(spec, `${path}.${key}`, true);
}

/** The fields a scenario may have, in documentation order. */
export const SCENARIO_KEYS = [
  'name',
  'description',
  'seed',
  'size',
  'epochSecs',
  'latencyMs',
  'latencyJitterMs',
  'latencySlowRate',
  'latencySlowMs',
  'requireAppId',
  'maxReelIds',
  'notFoundStyle',
  'privateStyle',
  'loggedOutStyle',
  'requireSession',
  'sessions',
  'budgets',
  'faults',
] as const;

/**
 * Checks that `input` (parsed JSON) is a valid {@link Scenario} and returns it typed. Unknown
 * fields are errors (a typo must not silently mean "default"). Throws a one-line RangeError
 * naming the field.
 */
export function parseScenario(input: unknown): Scenario {
  if (!isObj(input)) fail('', 'must be a JSON object', input);
  checkKeys(input, '(top level)', SCENARIO_KEYS);
  optString(input, 'name', '');
  optString(input, 'description', '');
  optInt(input, 'seed', '', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  optInt(input, 'size', '', 0, 1_000_000);
  optInt(input, 'epochSecs', '', 0, 1e11);
  optInt(input, 'latencyMs', '', 0, 600_000);
  optInt(input, 'latencyJitterMs', '', 0, 600_000);
  optProb(input, 'latencySlowRate', '');
  optInt(input, 'latencySlowMs', '', 0, 600_000);
  optBool(input, 'requireAppId', '');
  optInt(input, 'maxReelIds', '', 1, 10_000);
  optEnum(input, 'notFoundStyle', '', ['404', 'null', '400']);
  optEnum(input, 'privateStyle', '', ['no-reel', 'not-authorized']);
  optEnum(input, 'loggedOutStyle', '', ['403', '302', '302-root', 'mixed']);
  optBool(input, 'requireSession', '');
  if (input.sessions !== undefined) {
    if (!Array.isArray(input.sessions)) fail('sessions', 'must be an array', input.sessions);
    const ids = new Set<string>();
    const labels = new Set<string>();
    input.sessions.forEach((s: unknown, i) => {
      const path = `sessions[${i}]`;
      if (!isObj(s)) fail(path, 'must be an object', s);
      checkKeys(s, path, ['sessionid', 'label', 'state', 'budget']);
      if (typeof s.sessionid !== 'string' || s.sessionid === '') {
        fail(`${path}.sessionid`, 'must be a non-empty string', s.sessionid);
      }
      if (ids.has(s.sessionid)) fail(`${path}.sessionid`, 'is listed twice', '…');
      ids.add(s.sessionid);
      optString(s, 'label', `${path}.`);
      if (typeof s.label === 'string') {
        if (s.label === '' || labels.has(s.label)) {
          fail(`${path}.label`, 'must be non-empty and unique', s.label);
        }
        labels.add(s.label);
      }
      optEnum(s, 'state', `${path}.`, SESSION_STATES);
      if (s.budget !== undefined) checkBudget(s.budget, `${path}.budget`, true);
    });
  }
  if (input.budgets !== undefined) {
    const b = input.budgets;
    if (!isObj(b)) fail('budgets', 'must be an object', b);
    checkKeys(b, 'budgets', [
      'session',
      'ip',
      'sessions',
      'ips',
      'penaltyMs',
      'penaltyExtends',
      'throttleStyle',
      'retryAfterSecs',
    ]);
    if (b.session !== undefined) checkBudget(b.session, 'budgets.session', true);
    if (b.ip !== undefined) checkBudget(b.ip, 'budgets.ip', true);
    checkBudgetMap(b.sessions, 'budgets.sessions');
    checkBudgetMap(b.ips, 'budgets.ips');
    optInt(b, 'penaltyMs', 'budgets.', 0, 7 * 86_400_000);
    optBool(b, 'penaltyExtends', 'budgets.');
    optEnum(b, 'throttleStyle', 'budgets.', THROTTLE_STYLES);
    if (b.retryAfterSecs !== null) optInt(b, 'retryAfterSecs', 'budgets.', 0, 86_400);
  }
  if (input.faults !== undefined) {
    const f = input.faults;
    if (!isObj(f)) fail('faults', 'must be an object of probabilities', f);
    checkKeys(f, 'faults', FAULT_KINDS);
    for (const kind of FAULT_KINDS) optProb(f, kind, 'faults.');
    const total = FAULT_KINDS.reduce(
      (sum, kind) => sum + ((f[kind] as number | undefined) ?? 0),
      0,
    );
    if (total > 1) fail('faults', 'must add up to at most 1', total);
  }
  return input as Scenario;
}

/**
 * A named scenario, or the JSON file at `nameOrPath` (validated). Throws a one-line error naming
 * the known names when it is neither.
 */
export function loadScenario(nameOrPath: string): Scenario {
  const named = (SCENARIOS as Record<string, Scenario | undefined>)[nameOrPath];
  if (named) return named;
  let text: string;
  try {
    text = readFileSync(nameOrPath, 'utf8');
  } catch (err) {
    throw new RangeError(
      `scenario "${nameOrPath}" is neither ${Object.keys(SCENARIOS).join(', ')} nor a readable file (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      { cause: err },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new RangeError(`scenario file ${nameOrPath}: ${coerceError(err).message}`, {
      cause: err,
    });
  }
  return parseScenario(json);
}

/**
 * `patch` laid over `base`: top-level fields replace, `budgets` and `faults` merge one level
 * deeper, `sessions` replaces the whole list. Fields that are `undefined` in the patch are kept.
 */
export function mergeScenario(base: Scenario, patch: Scenario): Scenario {
  const out: Scenario = { ...base };
  for (const [key, value] of Object.entries(patch)) {
    if (value === undefined) continue;
    if (key === 'budgets' || key === 'faults') {
      (out as Record<string, unknown>)[key] = {
        ...((base as Record<string, unknown>)[key] as object | undefined),
        ...(value as object),
      };
    } else {
      (out as Record<string, unknown>)[key] = value;
    }
  }
  return out;
}

function toBudget(spec: BudgetSpec | null | undefined): Budget | null {
  if (!spec) return null;
  return {
    rate: typeof spec.rate === 'string' ? parseRate(spec.rate) : spec.rate,
    burst: spec.burst ?? 1,
  };
}

function toBudgetMap(
  map: Record<string, BudgetSpec | null> | undefined,
): Record<string, Budget | null> {
  const out: Record<string, Budget | null> = {};
  for (const [key, spec] of Object.entries(map ?? {})) out[key] = toBudget(spec);
  return out;
}

/** The {@link Settings} a scenario means: defaults applied, rates parsed. Validates first. */
export function resolveSettings(scenario: Scenario): Settings {
  const s = parseScenario(scenario);
  const faults = {} as Record<FaultKind, number>;
  for (const kind of FAULT_KINDS) faults[kind] = s.faults?.[kind] ?? 0;
  return {
    name: s.name ?? 'custom',
    latencyMs: s.latencyMs ?? 0,
    latencyJitterMs: s.latencyJitterMs ?? 0,
    latencySlowRate: s.latencySlowRate ?? 0,
    latencySlowMs: s.latencySlowMs ?? 0,
    requireAppId: s.requireAppId ?? true,
    maxReelIds: s.maxReelIds ?? 50,
    notFoundStyle: s.notFoundStyle ?? '404',
    privateStyle: s.privateStyle ?? 'no-reel',
    loggedOutStyle: s.loggedOutStyle ?? '403',
    requireSession: s.requireSession ?? false,
    sessions: (s.sessions ?? []).map((spec) => ({
      sessionid: spec.sessionid,
      label: spec.label,
      state: spec.state ?? 'ok',
      budget: spec.budget === undefined ? undefined : toBudget(spec.budget),
    })),
    sessionBudget: toBudget(s.budgets?.session),
    ipBudget: toBudget(s.budgets?.ip),
    sessionBudgets: toBudgetMap(s.budgets?.sessions),
    ipBudgets: toBudgetMap(s.budgets?.ips),
    penaltyMs: s.budgets?.penaltyMs ?? 60_000,
    penaltyExtends: s.budgets?.penaltyExtends ?? false,
    throttleStyle: s.budgets?.throttleStyle ?? 'json',
    retryAfterSecs: s.budgets?.retryAfterSecs ?? null,
    faults,
  };
}
