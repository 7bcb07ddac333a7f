/**
 * The simulated Instagram web API over node:http: the four endpoints a story checker uses, at
 * Instagram's paths and with bodies shaped like the real ones, answered from a deterministic
 * {@link World}. Admin routes under `/__sim/` expose the truth and counters; every non-admin
 * request is kept in a request log (in memory, optionally NDJSON on disk).
 */
import { createWriteStream } from 'node:fs';
import type { WriteStream } from 'node:fs';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '@storycheck/logger';
import {
  LOGIN_REQUIRED_BODY,
  NOT_FOUND_HTML,
  PROFILE_NULL_BODY,
  currentUserBody,
  failBody,
  profileBody,
  reelsMediaBody,
  sessionLabel,
  userStoryBody,
} from './payloads.js';
import { Rng } from './prng.js';
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

/** One answered non-admin request. No secrets: the session cookie appears only as a label. */
export interface RequestLogEntry {
  /** When the request arrived, epoch milliseconds. */
  timeMs: number;
  /** Remote address of the client socket (which proxy / IP the request came through). */
  client: string | null;
  /** `s:` + 6 hex chars of sha256(sessionid cookie), or null without that cookie. */
  session: string | null;
  kind: PathKind;
  /** Reel ids asked (reels_media) or the user id (user_story); [] otherwise. */
  ids: string[];
  /** Username asked (profile), lowercased; null otherwise. */
  username: string | null;
  /** HTTP status answered. */
  status: number;
  /** From arrival to the end of the answer, injected latency included, milliseconds. */
  latencyMs: number;
}

/** Counters since start or the last reset. */
export interface SimStats {
  /** When counting started, epoch milliseconds. */
  sinceMs: number;
  /** Non-admin requests answered. */
  totalRequests: number;
  byKind: Record<PathKind, number>;
  /** Keyed by status code as a string, e.g. "200". */
  byStatus: Record<string, number>;
  /** Sum over reels_media requests of the reel ids asked (duplicates included). */
  reelIdsAsked: number;
  /** Profile lookups per (lowercased) username. */
  profileLookups: Record<string, number>;
}

/** Options for {@link startSim}; every field has a default. */
export interface SimOptions {
  /** TCP port; 0 (default) picks a free one. */
  port?: number;
  /** Interface to bind. Default `127.0.0.1`. */
  host?: string;
  /** World seed. Default 42. */
  seed?: number;
  /** Number of users. Default 1000. */
  size?: number;
  /** The world's epoch (item times are relative to it), epoch seconds. Default: now. */
  epochSecs?: number;
  /** Clock deciding which items are expired, epoch seconds. Default: the wall clock. */
  nowSecs?: () => number;
  /** Fixed delay before every non-admin answer, milliseconds. Default 0. */
  latencyMs?: number;
  /** Extra uniform random delay in [0, latencyJitterMs), milliseconds. Default 0. */
  latencyJitterMs?: number;
  /** Answer 400 "useragent mismatch" when `X-IG-App-ID` is missing. Default true. */
  requireAppId?: boolean;
  /** reels_media requests with more ids get 400 "Too many reels requested". Default 50. */
  maxReelIds?: number;
  /** Unknown username on web_profile_info: `404` HTML page (default) or `null` → 200 `data.user: null`. */
  notFoundStyle?: '404' | 'null';
  /** Append every request log entry as one JSON line to this file. Default: none. */
  requestLogFile?: string;
  /** In-memory request log cap; the oldest entries are dropped beyond it. Default 100 000. */
  requestLogLimit?: number;
  /** Logger for startup and per-request debug records. Default: silent. */
  logger?: Logger;
}

/** A running simulator. */
export interface SimServer {
  /** Base URL, e.g. `http://127.0.0.1:41234` (no trailing slash). */
  url: string;
  port: number;
  world: World;
  /** Stops listening, drops keep-alive and in-flight connections, flushes the log file. Idempotent. */
  close(): Promise<void>;
  /** A snapshot of the counters. */
  stats(): SimStats;
  /** Zeroes the counters (the request log is kept). */
  resetStats(): void;
  /** A copy of the in-memory request log, oldest first. */
  requestLog(): RequestLogEntry[];
}

interface Answer {
  status: number;
  body: string;
  contentType: 'json' | 'html';
}

interface Classified {
  kind: PathKind;
  ids: string[];
  username: string | null;
  answer: Answer;
}

const JSON_TYPE = 'application/json; charset=utf-8';
const HTML_TYPE = 'text/html; charset=utf-8';
const PROFILE_PATH = /^\/api\/v1\/users\/web_profile_info\/?$/;
const REELS_MEDIA_PATH = /^\/api\/v1\/feed\/reels_media\/?$/;
const USER_STORY_PATH = /^\/api\/v1\/feed\/user\/(\d+)\/story\/?$/;
const CURRENT_USER_PATH = /^\/api\/v1\/accounts\/current_user\/?$/;

const json = (status: number, body: string): Answer => ({ status, body, contentType: 'json' });
const html404 = (): Answer => ({ status: 404, body: NOT_FOUND_HTML, contentType: 'html' });

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
  };
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

function intOption(name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min)
    throw new RangeError(`${name} must be an integer ≥ ${min}, got ${value}`);
  return value;
}

/**
 * Starts the simulator and resolves once it listens. Keep-alive is on (node's default), and
 * `close()` also ends idle keep-alive sockets so that a test leaves no open handle.
 */
export async function startSim(opts: SimOptions = {}): Promise<SimServer> {
  const host = opts.host ?? '127.0.0.1';
  const seed = opts.seed ?? 42;
  const world = createWorld({
    seed,
    size: opts.size ?? 1000,
    epochSecs: opts.epochSecs ?? Math.floor(Date.now() / 1000),
  });
  const nowSecs = opts.nowSecs ?? ((): number => Math.floor(Date.now() / 1000));
  const latencyMs = intOption('latencyMs', opts.latencyMs ?? 0, 0);
  const latencyJitterMs = intOption('latencyJitterMs', opts.latencyJitterMs ?? 0, 0);
  const maxReelIds = intOption('maxReelIds', opts.maxReelIds ?? 50, 1);
  const requestLogLimit = intOption('requestLogLimit', opts.requestLogLimit ?? 100_000, 1);
  const requireAppId = opts.requireAppId ?? true;
  const notFoundStyle = opts.notFoundStyle ?? '404';
  const logger = opts.logger;
  // Jitter draws come from their own seeded stream, so the world stays independent of traffic.
  const jitterRng = new Rng(seed ^ 0x5eed1e55);

  let stats = emptyStats();
  const log: RequestLogEntry[] = [];
  const pendingTimers = new Set<NodeJS.Timeout>();
  let logFile: WriteStream | undefined;
  if (opts.requestLogFile) {
    logFile = createWriteStream(opts.requestLogFile, { flags: 'a' });
    logFile.on('error', (err) => logger?.warn('request log file error', { error: err.message }));
  }

  const record = (entry: RequestLogEntry): void => {
    stats.totalRequests++;
    stats.byKind[entry.kind]++;
    const code = String(entry.status);
    stats.byStatus[code] = (stats.byStatus[code] ?? 0) + 1;
    if (entry.kind === 'reels_media') stats.reelIdsAsked += entry.ids.length;
    if (entry.kind === 'profile' && entry.username !== null) {
      stats.profileLookups[entry.username] = (stats.profileLookups[entry.username] ?? 0) + 1;
    }
    log.push(entry);
    if (log.length > requestLogLimit) log.splice(0, log.length - requestLogLimit);
    logFile?.write(`${JSON.stringify(entry)}\n`);
    logger?.debug('sim request', {
      kind: entry.kind,
      status: entry.status,
      session: entry.session,
      latencyMs: entry.latencyMs,
    });
  };

  const classify = (req: IncomingMessage, url: URL, session: string | null): Classified => {
    const path = url.pathname;
    const isGet = req.method === 'GET' || req.method === 'HEAD';
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
      kind === 'profile' ? (url.searchParams.get('username') ?? '').trim().toLowerCase() : null;
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
    const base = { kind, ids, username: username === '' ? null : username };

    if (kind === 'other' || !isGet) return { ...base, answer: html404() };
    if (requireAppId && !req.headers['x-ig-app-id']) {
      return { ...base, answer: json(400, failBody('useragent mismatch')) };
    }
    const now = nowSecs();
    switch (kind) {
      case 'profile': {
        if (!username) return { ...base, answer: json(400, failBody('username is required')) };
        const user = world.byUsername(username);
        if (user) return { ...base, answer: json(200, profileBody(user)) };
        return {
          ...base,
          answer: notFoundStyle === 'null' ? json(200, PROFILE_NULL_BODY) : html404(),
        };
      }
      case 'reels_media': {
        if (ids.length === 0)
          return { ...base, answer: json(400, failBody('reel_ids is required')) };
        if (ids.length > maxReelIds)
          return { ...base, answer: json(400, failBody('Too many reels requested')) };
        const seen = new Set<string>();
        const visible: SimUser[] = [];
        for (const id of ids) {
          if (seen.has(id)) continue;
          seen.add(id);
          const user = world.byId(id);
          if (user && reelVisible(user, now)) visible.push(user);
        }
        return { ...base, answer: json(200, reelsMediaBody(visible)) };
      }
      case 'user_story': {
        const user = world.byId(userStoryId ?? '');
        return {
          ...base,
          answer: json(200, userStoryBody(user && reelVisible(user, now) ? user : null)),
        };
      }
      case 'current_user':
        return {
          ...base,
          answer: session ? json(200, currentUserBody(session)) : json(403, LOGIN_REQUIRED_BODY),
        };
    }
  };

  const send = (res: ServerResponse, answer: Answer, head: boolean): void => {
    res.writeHead(answer.status, {
      'content-type': answer.contentType === 'json' ? JSON_TYPE : HTML_TYPE,
      'content-length': Buffer.byteLength(answer.body),
      'cache-control': 'private, no-cache, no-store, must-revalidate',
    });
    res.end(head ? undefined : answer.body);
  };

  const handleAdmin = (req: IncomingMessage, res: ServerResponse, url: URL): void => {
    const route = `${req.method ?? 'GET'} ${url.pathname.replace(/\/+$/, '')}`;
    switch (route) {
      case 'GET /__sim/health':
        return send(
          res,
          json(
            200,
            JSON.stringify({
              status: 'ok',
              seed: world.seed,
              size: world.size,
              epochSecs: world.epochSecs,
              digest: world.digest(),
            }),
          ),
          false,
        );
      case 'GET /__sim/truth': {
        const username = (url.searchParams.get('username') ?? '').trim();
        if (!username) return send(res, json(400, failBody('username is required')), false);
        const at = url.searchParams.get('nowSecs');
        const atSecs = at !== null && /^\d+$/.test(at) ? Number(at) : nowSecs();
        return send(
          res,
          json(
            200,
            JSON.stringify({ username: username.toLowerCase(), ...world.truth(username, atSecs) }),
          ),
          false,
        );
      }
      case 'GET /__sim/stats':
        return send(res, json(200, JSON.stringify(stats)), false);
      case 'POST /__sim/reset-stats':
        stats = emptyStats();
        return send(res, json(200, JSON.stringify({ status: 'ok' })), false);
      default:
        return send(res, json(404, failBody('unknown admin route')), false);
    }
  };

  const server = createServer((req, res) => {
    const arrivedMs = Date.now();
    const started = performance.now();
    req.resume(); // bodies are never used; drain them so keep-alive sockets stay usable
    const url = new URL(req.url ?? '/', 'http://sim.invalid');
    if (url.pathname.startsWith('/__sim/')) return handleAdmin(req, res, url);

    const cookie = sessionCookie(req);
    const session = cookie === null ? null : sessionLabel(cookie);
    const { kind, ids, username, answer } = classify(req, url, session);
    res.on('finish', () =>
      record({
        timeMs: arrivedMs,
        client: req.socket.remoteAddress ?? null,
        session,
        kind,
        ids,
        username,
        status: answer.status,
        latencyMs: Math.round(performance.now() - started),
      }),
    );
    const delayMs =
      latencyMs + (latencyJitterMs > 0 ? Math.floor(jitterRng.next() * latencyJitterMs) : 0);
    if (delayMs <= 0) return send(res, answer, req.method === 'HEAD');
    const timer = setTimeout(() => {
      pendingTimers.delete(timer);
      send(res, answer, req.method === 'HEAD');
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
  logger?.info('sim listening', { url, seed, size: world.size, epochSecs: world.epochSecs });

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      for (const timer of pendingTimers) clearTimeout(timer);
      pendingTimers.clear();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      if (logFile) {
        const file = logFile;
        await new Promise<void>((resolve) => file.end(() => resolve()));
      }
    })();
    return closing;
  };

  return {
    url,
    port,
    world,
    close,
    stats: () => structuredClone(stats),
    resetStats: () => {
      stats = emptyStats();
    },
    requestLog: () => log.map((entry) => ({ ...entry, ids: [...entry.ids] })),
  };
}
