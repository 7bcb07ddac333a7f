/**
 * The simulated Instagram web API over node:http: the four endpoints a story checker uses, at
 * Instagram's paths and with bodies shaped like the real ones, answered from a deterministic
 * {@link World}. A scenario (see scenario.ts) switches on realism: sessions and their states,
 * per-session and per-IP budgets with penalties, faults and latency. Admin routes under
 * `/__sim/` expose the truth, counters, the request log and runtime controls; every non-admin
 * request is kept in a request log (in memory, optionally NDJSON on disk).
 *
 * This module starts the server and delivers answers; deciding an answer is decide.ts (the order
 * of checks is written there), the admin routes admin.ts, the counters and the request log
 * request-log.ts, reading a request http-io.ts, the proxies proxy.ts.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '@storycheck/logger';
import { serveAdmin } from './admin.js';
import type { AdminContext } from './admin.js';
import { Decider } from './decide.js';
import type { SettingsView } from './decide.js';
import { classifyPath, clientAddress, send, sessionCookie } from './http-io.js';
import { Rng } from './prng.js';
import { startProxies } from './proxy.js';
import type {
  ProxyBrokenMode,
  ProxyInfo,
  ProxyPool,
  ProxyPoolOptions,
  ProxyStats,
} from './proxy.js';
import { RequestLog } from './request-log.js';
import type { RequestLogEntry, SimStats } from './request-log.js';
import {
  SCENARIOS,
  SCENARIO_KEYS,
  SESSION_STATES,
  mergeScenario,
  parseScenario,
  resolveSettings,
} from './scenario.js';
import type { Scenario, ScenarioName, SessionState } from './scenario.js';
import { createWorld } from './world.js';
import type { World } from './world.js';

export { PATH_KINDS } from './http-io.js';
export type { PathKind } from './http-io.js';
export type { Outcome, SessionView } from './decide.js';
export type { PartyStats, RequestLogEntry, SimStats } from './request-log.js';

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
  settings(): SettingsView;
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

/** The scenario fields of `opts` (everything startSim does not consume itself). */
function scenarioFields(opts: SimOptions): Scenario {
  const out: Record<string, unknown> = {};
  for (const key of SCENARIO_KEYS) {
    const value = (opts as Record<string, unknown>)[key];
    if (value !== undefined) out[key] = value;
  }
  return out as Scenario;
}

/** The named scenario or scenario object of `startSim`'s options; {} without. */
function baseScenario(scenario: SimOptions['scenario']): Scenario {
  if (typeof scenario === 'string') {
    const named = (SCENARIOS as Record<string, Scenario | undefined>)[scenario];
    if (!named) {
      throw new RangeError(
        `unknown scenario "${scenario}" (known: ${Object.keys(SCENARIOS).join(', ')})`,
      );
    }
    return named;
  }
  return scenario ? parseScenario(scenario) : {};
}

/** Delivery of API answers: latency draws, answers under way, delayed answers' timers. */
interface Delivery {
  decider: Decider;
  requests: RequestLog;
  // Each random decision has its own seeded stream, so the world stays independent of traffic
  // and switching one feature on does not shift the draws of another (faults: see decide.ts).
  jitterRng: Rng;
  slowRng: Rng;
  /** Non-admin requests not yet closed (answered or dropped). */
  inFlight: number;
  pendingTimers: Set<NodeJS.Timeout>;
}

/**
 * Answers an API request: decides the answer, records it when the response closes, and delivers
 * it after the scenario's latency (or resets / never answers the connection).
 */
function serveApi(
  d: Delivery,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  arrivedMs: number,
  started: number,
): void {
  req.resume(); // bodies are never used; drain them so keep-alive sockets stay usable

  const cookie = sessionCookie(req);
  const client = clientAddress(req);
  const c = classifyPath(url);
  const { decision, label } = d.decider.decide(req, url, c, cookie, client);
  const { answer } = decision;
  let timer: NodeJS.Timeout | undefined;
  d.inFlight++;
  res.once('close', () => {
    d.inFlight--;
    if (timer) {
      clearTimeout(timer);
      d.pendingTimers.delete(timer);
    }
    d.requests.record(
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
  const s = d.decider.settings;
  const delayMs =
    s.latencyMs +
    (s.latencyJitterMs > 0 ? Math.floor(d.jitterRng.next() * s.latencyJitterMs) : 0) +
    (s.latencySlowRate > 0 && d.slowRng.next() < s.latencySlowRate ? s.latencySlowMs : 0);
  const deliver = (): void => {
    timer = undefined;
    if (answer.action === 'send') send(res, answer, req.method === 'HEAD');
    else if (answer.action === 'reset') req.socket.resetAndDestroy();
    // 'hang': never answered; close() destroys the connection.
  };
  if (delayMs <= 0 || answer.action === 'hang') return deliver();
  timer = setTimeout(() => {
    if (timer) d.pendingTimers.delete(timer);
    deliver();
  }, delayMs);
  d.pendingTimers.add(timer);
}

/** Listens on `port` and `host`; resolves with the port bound. */
async function listen(
  server: ReturnType<typeof createServer>,
  port: number,
  host: string,
): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

/**
 * Stops the proxies and listening, drops every connection, waits (a little) for the dropped
 * requests to be recorded, and flushes the log file.
 */
async function closeSim(
  server: ReturnType<typeof createServer>,
  d: Delivery,
  pool: ProxyPool | undefined,
): Promise<void> {
  await pool?.close();
  for (const timer of d.pendingTimers) clearTimeout(timer);
  d.pendingTimers.clear();
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
  // Let the 'close' events of just-destroyed requests (never answered ones) record first;
  // they arrive a few ticks after the sockets are destroyed. Bounded: 200 ms at most.
  for (let waitedMs = 0; d.inFlight > 0 && waitedMs < 200; waitedMs += 5) {
    await new Promise<void>((resolve) => setTimeout(resolve, 5));
  }
  await d.requests.closeFile();
}

/**
 * Starts the simulator and resolves once it listens. Keep-alive is on (node's default), and
 * `close()` also ends idle keep-alive sockets and never-answered requests, so that a test leaves
 * no open handle. With no scenario options it is the friendly upstream: anonymous requests work,
 * no budgets, no faults.
 */
export async function startSim(opts: SimOptions = {}): Promise<SimServer> {
  const host = opts.host ?? '127.0.0.1';
  const scenario = mergeScenario(baseScenario(opts.scenario), scenarioFields(opts));
  const settings = resolveSettings(scenario);
  const seed = scenario.seed ?? 42;
  const world = createWorld({
    seed,
    size: scenario.size ?? 1000,
    epochSecs: scenario.epochSecs ?? Math.floor(Date.now() / 1000),
  });
  const nowSecs = opts.nowSecs ?? ((): number => Math.floor(Date.now() / 1000));
  const clockMs = opts.clockMs ?? Date.now;
  const logger = opts.logger;
  const requests = new RequestLog(
    world,
    opts.requestLogLimit ?? 100_000,
    opts.requestLogFile,
    logger,
  );
  const decider = new Decider({ world, scenario, settings, seed, nowSecs, clockMs });
  const delivery: Delivery = {
    decider,
    requests,
    jitterRng: new Rng(seed ^ 0x5eed1e55),
    slowRng: new Rng(seed ^ 0x51031a7e),
    inFlight: 0,
    pendingTimers: new Set(),
  };
  let pool: ProxyPool | undefined;
  const admin: AdminContext = { world, decider, requests, nowSecs, pool: () => pool };

  const server = createServer((req, res) => {
    const arrivedMs = Date.now();
    const started = performance.now();
    const url = new URL(req.url ?? '/', 'http://sim.invalid');
    if (url.pathname.startsWith('/__sim/')) serveAdmin(admin, req, res, url);
    else serveApi(delivery, req, res, url, arrivedMs, started);
  });

  const port = await listen(server, opts.port ?? 0, host);
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => (closing ??= closeSim(server, delivery, pool));

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
  return simServer({ url, port, world, pool, close, requests, decider });
}

/** The {@link SimServer} API over a started simulator's parts. */
function simServer(parts: {
  url: string;
  port: number;
  world: World;
  pool: ProxyPool | undefined;
  close: () => Promise<void>;
  requests: RequestLog;
  decider: Decider;
}): SimServer {
  const { url, port, world, pool, close, requests, decider } = parts;
  return {
    url,
    port,
    world,
    proxies: pool ? pool.proxies.map((p) => ({ ...p })) : [],
    close,
    stats: () => structuredClone(requests.stats),
    resetStats: () => requests.resetStats(),
    requestLog: () =>
      requests.recent(requests.limit).map((entry) => ({ ...entry, ids: [...entry.ids] })),
    settings: () => decider.settingsView(),
    updateScenario: (patch) => decider.updateScenario(patch),
    setSessionState: (label, state) => {
      if (!SESSION_STATES.includes(state)) throw new RangeError(`unknown session state "${state}"`);
      decider.overrideState(label, state);
    },
    resetBudgets: () => decider.resetBudgets(),
    renameUser: (oldName: string, newName: string) => decider.renameUser(oldName, newName),
    setProxyBroken: async (label, mode) => {
      if (!pool) throw new RangeError('no proxies were started (startSim option `proxies`)');
      await pool.setBroken(label, mode);
    },
    proxyStats: () => pool?.stats() ?? {},
  };
}
