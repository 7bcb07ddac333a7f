import { z } from 'zod';
import { parseDurationMs, parseRate, type Rate } from './units.js';
import { clusterPrefixProblem, parseRedisUrl } from './redis.js';

export { parseDurationMs, parseRate, formatRate, type Rate } from './units.js';
export {
  parseRedisUrl,
  slotTag,
  clusterPrefixProblem,
  type RedisTarget,
  type RedisHostPort,
} from './redis.js';

/**
 * Thrown by {@link loadConfig} when a variable has a bad value. Its message is one line that
 * names the variable and what is wrong, ready to print before exiting with code 2.
 */
export class ConfigError extends Error {
  override name = 'ConfigError';
  /** The environment variable at fault. */
  readonly variable: string;
  constructor(variable: string, problem: string) {
    super(`invalid ${variable}: ${problem}`);
    this.variable = variable;
  }
}

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => ['true', '1', 'yes'].includes(v));
const port = z.coerce.number().int().min(0).max(65535);
const posInt = z.coerce.number().int().min(1);
const url = (schemes: string[]) =>
  z.string().refine(
    (v) => {
      try {
        return schemes.includes(new URL(v).protocol.replace(':', ''));
      } catch {
        return false;
      }
    },
    { message: `must be a URL with scheme ${schemes.join(' or ')}` },
  );
const duration = z.string().transform((v, ctx) => {
  try {
    return parseDurationMs(v);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
    return z.NEVER;
  }
});
const rate = z.string().transform((v, ctx): Rate => {
  try {
    return parseRate(v);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
    return z.NEVER;
  }
});

/**
 * Every variable of CONTRACT.md, with its default. One line per variable: meaning, unit,
 * default. Names are the environment names so a failing variable is reported as written.
 */
export const envSchema = z.object({
  /**
   * Redis for queues, limiter and caches: one node (redis://), a Redis Cluster
   * (redis+cluster://host:port,host:port) or Sentinel (redis+sentinel://host:port,…/name).
   */
  REDIS_URL: z
    .string()
    .superRefine((v, ctx) => {
      try {
        parseRedisUrl(v);
      } catch (e) {
        ctx.addIssue({ code: 'custom', message: (e as Error).message });
      }
    })
    .default('redis://127.0.0.1:6379'),
  /** Postgres, the source of truth; `db migrate` creates the database if missing. */
  DATABASE_URL: url(['postgres', 'postgresql']).default(
    'postgres://postgres@127.0.0.1:5432/storycheck',
  ),
  /** Prefix of every Redis key; two prefixes never see each other. */
  STORYCHECK_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1–64 of A-Z a-z 0-9 _ . -')
    .default('storycheck'),
  /** Origin of every upstream request. */
  IG_BASE_URL: url(['http', 'https']).default('https://www.instagram.com'),
  /** 32-byte key, base64: encrypts cookies and proxy passwords at rest. */
  STORYCHECK_SECRET_KEY: z.string().optional(),
  /** Default budget per session (requests per period); instaloader's careful 200/11m. */
  SESSION_RATE: rate.default(parseRate('200/11m')),
  /** Requests a session may send back to back before the rate applies. */
  SESSION_BURST: z.coerce.number().int().min(1).default(5),
  /** Default budget per proxy (egress IP). */
  PROXY_RATE: rate.default(parseRate('600/11m')),
  /** Burst per proxy. */
  PROXY_BURST: z.coerce.number().int().min(1).default(10),
  /**
   * Fraction shaved off every configured rate (rates × (1 − m)), and bursts − 1: the burst
   * reserve absorbs network jitter, the small rate margin clock-rate differences
   * (packages/pool/src/defaults.ts). 0 disables both.
   */
  BUDGET_MARGIN: z.coerce.number().min(0).max(0.5).default(0.03),
  /**
   * Adaptive budgets: a 429 lowers a session's rate to what the requests admitted before it
   * show the upstream allows, sustained success raises it back toward the configured one,
   * slowly above the rate learned too high; what one session learns (rate, penalty) reaches
   * every session with the same budget. Never above the configured rates. Off by default: it
   * also lengthens a streak's first cooldown while the upstream's penalty is unknown (base × 4–6
   * instead of THROTTLE_BACKOFF's random(0, base)), which the documented cooldown does not
   * allow; where measured it is no worse than fixed rates when the budgets are known
   * (docs/benchmarks.md, "Adaptive budgets").
   */
  ADAPTIVE_RATES: bool.default(false),
  /**
   * How far a request's arrival at the upstream may shift against its lease (beyond the
   * fastest), ms: every burst keeps ceil(spread / interval) requests in reserve (at least one)
   * to absorb it, and a worker gives back a lease it cannot send within half of it. Only with
   * BUDGET_MARGIN > 0.
   */
  LEASE_SPREAD: duration.default(parseDurationMs('300ms')),
  /**
   * Throttle backoff: a throttled session cools down for max(Retry-After, random(0,
   * min(cap, base·2^k))), k = its consecutive throttles (ms). Base: gallery-dl waits 60 s after
   * a 429; cap: instaloader waits ~30 min.
   */
  THROTTLE_BACKOFF_BASE: duration.default(parseDurationMs('60s')),
  /** Longest throttle cooldown (ms); at least THROTTLE_BACKOFF_BASE. */
  THROTTLE_BACKOFF_CAP: duration.default(parseDurationMs('30m')),
  /**
   * Two throttled answers on one proxy within this long (ms) mean the limit is the proxy's IP,
   * not the session: the proxy cools down too. 0 = never.
   */
  IP_THROTTLE_WINDOW: duration.default(parseDurationMs('60s')),
  /**
   * Append one JSON line per request sent under a lease (lease admission µs, session and proxy
   * labels, local send ms) to this file — for measuring lease → arrival spread (the pool bench).
   * Unset = off. Labels only, never a secret.
   */
  LEASE_TRACE_FILE: z.string().min(1).optional(),
  /** Optional budget for all traffic together; unset = no global budget. */
  GLOBAL_RATE: rate.optional(),
  /** Burst of the global budget. */
  GLOBAL_BURST: z.coerce.number().int().min(1).default(10),
  /** Jobs in flight per worker process. */
  WORKER_CONCURRENCY: posInt.max(1000).default(50),
  /** Health/metrics port of a worker process; unset = off. */
  WORKER_HTTP_PORT: port.optional(),
  /** Bind address of that port (it has no auth: keep it private). */
  WORKER_HTTP_HOST: z.string().min(1).default('127.0.0.1'),
  /** A worker with jobs waiting that takes or finishes none for this long exits 1 (ms); 0 = off. */
  WORKER_WATCHDOG_IDLE: duration.default(parseDurationMs('5m')),
  /** How long a stopping worker waits for in-flight jobs before it forces the exit (ms). */
  WORKER_SHUTDOWN_TIMEOUT: duration.default(parseDurationMs('20s')),
  /**
   * Lock of an active job (ms); a worker that dies (kill -9) loses its jobs' locks after this
   * and another worker takes them within one more such period (stalled-job check).
   */
  WORKER_LOCK_DURATION: duration.default(parseDurationMs('30s')),
  /** Batches completed longer ago than this, and batch-log rows older than this, are deleted (ms). */
  RETENTION: duration.default(parseDurationMs('30d')),
  /** Most user ids in one reels_media request (halved automatically on "too many reels"). */
  STORIES_CHUNK_SIZE: posInt.max(100).default(20),
  /** How long a story lookup waits for others to share its request (ms). */
  STORIES_MAX_WAIT: duration.default(parseDurationMs('100ms')),
  /** Timeout of one upstream request (ms). */
  REQUEST_TIMEOUT: duration.default(parseDurationMs('15s')),
  /** User-id cache TTL (ms); ids never change, usernames can. */
  USER_ID_CACHE_TTL: duration.default(parseDurationMs('7d')),
  /** Story-result cache TTL (ms); 0s disables the result cache. */
  STORY_CACHE_TTL: duration.default(parseDurationMs('60s')),
  /** TTL of a cached "no such username" (ms): shorter, a name may be registered any time. */
  NOT_FOUND_CACHE_TTL: duration.default(parseDurationMs('1h')),
  /** Longest a check waits for another worker's lookup of the same username (ms). */
  SINGLE_FLIGHT_WAIT: duration.default(parseDurationMs('15s')),
  /** Accept proxies on loopback/private addresses (tests and demos). */
  ALLOW_PRIVATE_PROXIES: bool.default(false),
  /** Board HTTP port. */
  BOARD_PORT: port.default(3000),
  /** Board bind address; non-loopback requires BOARD_PASSWORD. */
  BOARD_HOST: z.string().min(1).default('127.0.0.1'),
  /** Board basic-auth user. */
  BOARD_USER: z.string().min(1).default('admin'),
  /** Board basic-auth password; unset = no auth (loopback only). */
  BOARD_PASSWORD: z.string().min(1).optional(),
  /** Board refuses retry/clean/remove actions unless false. */
  BOARD_READONLY: bool.default(true),
  /** error | warn | info | debug. */
  LOG_LEVEL: z.enum(['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly']).default('info'),
  /** json | pretty; default json, pretty on a TTY. */
  LOG_FORMAT: z.enum(['json', 'pretty']).optional(),
});

/** The typed configuration handed to the rest of the code; nothing else reads process.env. */
export interface Config {
  redisUrl: string;
  databaseUrl: string;
  prefix: string;
  igBaseUrl: string;
  secretKey: string | undefined;
  sessionRate: Rate;
  sessionBurst: number;
  proxyRate: Rate;
  proxyBurst: number;
  globalRate: Rate | undefined;
  globalBurst: number;
  budgetMargin: number;
  adaptiveRates: boolean;
  /** LEASE_SPREAD, ms. */
  leaseSpreadMs: number;
  /** THROTTLE_BACKOFF_BASE, ms (≥ 1). */
  throttleBackoffBaseMs: number;
  /** THROTTLE_BACKOFF_CAP, ms (≥ the base). */
  throttleBackoffCapMs: number;
  /** IP_THROTTLE_WINDOW, ms; 0 = never treat throttles as an IP limit. */
  ipThrottleWindowMs: number;
  /** LEASE_TRACE_FILE; undefined = no trace. */
  leaseTraceFile: string | undefined;
  workerConcurrency: number;
  workerHttpPort: number | undefined;
  workerHttpHost: string;
  workerWatchdogIdleMs: number;
  workerShutdownTimeoutMs: number;
  workerLockDurationMs: number;
  retentionMs: number;
  requestTimeoutMs: number;
  storiesChunkSize: number;
  storiesMaxWaitMs: number;
  userIdCacheTtlMs: number;
  storyCacheTtlMs: number;
  notFoundCacheTtlMs: number;
  singleFlightWaitMs: number;
  allowPrivateProxies: boolean;
  board: {
    port: number;
    host: string;
    user: string;
    password: string | undefined;
    readonly: boolean;
  };
  log: { level: string; format: 'json' | 'pretty' | undefined };
}

/**
 * Parses the environment once, at start. Empty strings count as unset. Throws
 * {@link ConfigError} naming the first bad variable; callers print its message and exit 2.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const input: Record<string, string> = {};
  for (const key of Object.keys(envSchema.shape)) {
    const v = env[key];
    if (v !== undefined && v.trim() !== '') input[key] = v.trim();
  }
  const parsed = envSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const variable = String(issue.path[0] ?? 'environment');
    throw new ConfigError(variable, issue.message);
  }
  const e = parsed.data;
  if (parseRedisUrl(e.REDIS_URL).kind === 'cluster') {
    const problem = clusterPrefixProblem(e.STORYCHECK_PREFIX);
    if (problem) throw new ConfigError('STORYCHECK_PREFIX', problem);
  }
  if (e.THROTTLE_BACKOFF_BASE < 1)
    throw new ConfigError('THROTTLE_BACKOFF_BASE', 'must be at least 1ms');
  if (e.THROTTLE_BACKOFF_CAP < e.THROTTLE_BACKOFF_BASE)
    throw new ConfigError(
      'THROTTLE_BACKOFF_CAP',
      `must be at least THROTTLE_BACKOFF_BASE (${e.THROTTLE_BACKOFF_BASE} ms)`,
    );
  return {
    redisUrl: e.REDIS_URL,
    databaseUrl: e.DATABASE_URL,
    prefix: e.STORYCHECK_PREFIX,
    igBaseUrl: e.IG_BASE_URL.replace(/\/+$/, ''),
    secretKey: e.STORYCHECK_SECRET_KEY,
    sessionRate: e.SESSION_RATE,
    sessionBurst: e.SESSION_BURST,
    proxyRate: e.PROXY_RATE,
    proxyBurst: e.PROXY_BURST,
    globalRate: e.GLOBAL_RATE,
    globalBurst: e.GLOBAL_BURST,
    budgetMargin: e.BUDGET_MARGIN,
    adaptiveRates: e.ADAPTIVE_RATES,
    leaseSpreadMs: e.LEASE_SPREAD,
    throttleBackoffBaseMs: e.THROTTLE_BACKOFF_BASE,
    throttleBackoffCapMs: e.THROTTLE_BACKOFF_CAP,
    ipThrottleWindowMs: e.IP_THROTTLE_WINDOW,
    leaseTraceFile: e.LEASE_TRACE_FILE,
    workerConcurrency: e.WORKER_CONCURRENCY,
    workerHttpPort: e.WORKER_HTTP_PORT,
    workerHttpHost: e.WORKER_HTTP_HOST,
    workerWatchdogIdleMs: e.WORKER_WATCHDOG_IDLE,
    workerShutdownTimeoutMs: e.WORKER_SHUTDOWN_TIMEOUT,
    workerLockDurationMs: e.WORKER_LOCK_DURATION,
    retentionMs: e.RETENTION,
    requestTimeoutMs: e.REQUEST_TIMEOUT,
    storiesChunkSize: e.STORIES_CHUNK_SIZE,
    storiesMaxWaitMs: e.STORIES_MAX_WAIT,
    userIdCacheTtlMs: e.USER_ID_CACHE_TTL,
    storyCacheTtlMs: e.STORY_CACHE_TTL,
    notFoundCacheTtlMs: e.NOT_FOUND_CACHE_TTL,
    singleFlightWaitMs: e.SINGLE_FLIGHT_WAIT,
    allowPrivateProxies: e.ALLOW_PRIVATE_PROXIES,
    board: {
      port: e.BOARD_PORT,
      host: e.BOARD_HOST,
      user: e.BOARD_USER,
      password: e.BOARD_PASSWORD,
      readonly: e.BOARD_READONLY,
    },
    log: { level: e.LOG_LEVEL, format: e.LOG_FORMAT },
  };
}
