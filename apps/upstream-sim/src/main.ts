#!/usr/bin/env node
/**
 * storycheck-sim: runs the simulated Instagram web API (and, with --proxies, loopback proxies).
 * stdout carries one line once listening, then one line per proxy (or the lists asked for);
 * logs go to stderr. Invalid flags → one line on stderr and exit code 2. SIGTERM/SIGINT → close,
 * exit 0.
 */
import { parseArgs } from 'node:util';
import { coerceError, createLogger, onShutdownSignals } from '@storycheck/logger';
import { buildDemoSample } from './make-sample.js';
import { PROXY_BROKEN_MODES } from './proxy.js';
import type { ProxyPoolOptions } from './proxy.js';
import {
  FAULT_KINDS,
  SCENARIOS,
  THROTTLE_STYLES,
  loadScenario,
  mergeScenario,
  parseScenario,
} from './scenario.js';
import type { BudgetSpec, FaultKind, Scenario, SessionSpec, SessionState } from './scenario.js';
import { startSim } from './server.js';
import { parseRate } from './units.js';
import { createWorld } from './world.js';

/** How long a signalled shutdown may take before the process exits anyway, milliseconds. */
const SHUTDOWN_DEADLINE_MS = 5_000;

const USAGE = `usage: storycheck-sim [--port N] [--host H] [--seed N] [--size N] [--epoch-secs N]
  [--scenario demo|strict-budgets|hostile|FILE.json] [--list-scenarios]
  [--latency-ms N] [--latency-jitter-ms N] [--latency-slow-rate P] [--latency-slow-ms N]
  [--max-reel-ids N] [--not-found-style 404|null|400] [--private-style no-reel|not-authorized]
  [--logged-out-style 403|302|302-root|mixed] [--no-app-id] [--require-session]
  [--session LABEL=SESSIONID]... [--session-state LABEL=STATE]...
  [--session-rate N/DUR] [--session-burst N] [--ip-rate N/DUR] [--ip-burst N]
  [--penalty-ms N] [--penalty-extends] [--throttle-style STYLE] [--retry-after-secs N]
  [--faults KIND=P,...] [--proxies N] [--proxy-auth USER:PASS] [--proxy-broken LABEL=MODE]...
  [--request-log FILE] [--log-level LEVEL] [--print-usernames] [--print-demo-sample]`;

class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

function intFlag(
  name: string,
  raw: string | undefined,
  min: number,
  max: number,
): number | undefined {
  if (raw === undefined) return undefined;
  const value = /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new UsageError(`--${name} must be an integer in ${min}..${max}, got "${raw}"`);
  }
  return value;
}

function probFlag(name: string, raw: string): number {
  const value = /^\d*\.?\d+$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
  if (!(value >= 0 && value <= 1)) throw new UsageError(`--${name} must be in 0..1, got "${raw}"`);
  return value;
}

function enumFlag<T extends string>(
  name: string,
  raw: string | undefined,
  values: readonly T[],
): T | undefined {
  if (raw === undefined) return undefined;
  if (!(values as readonly string[]).includes(raw)) {
    throw new UsageError(`--${name} must be one of ${values.join(', ')}, got "${raw}"`);
  }
  return raw as T;
}

function pairFlag(name: string, raw: string): [string, string] {
  const eq = raw.indexOf('=');
  if (eq <= 0 || eq === raw.length - 1)
    throw new UsageError(`--${name} must be KEY=VALUE, got "${raw}"`);
  return [raw.slice(0, eq), raw.slice(eq + 1)];
}

function budgetFlag(
  name: string,
  base: BudgetSpec | null | undefined,
  rateRaw: string | undefined,
  burst: number | undefined,
): BudgetSpec | null | undefined {
  if (rateRaw === undefined && burst === undefined) return base;
  if (rateRaw !== undefined) {
    try {
      parseRate(rateRaw);
    } catch (err) {
      throw new UsageError(`--${name}-rate: ${coerceError(err).message}`);
    }
  }
  const rate = rateRaw ?? base?.rate;
  if (rate === undefined)
    throw new UsageError(`--${name}-burst needs --${name}-rate (or a scenario budget)`);
  return { rate, burst: burst ?? base?.burst };
}

/** The command-line flags (node:util parseArgs). */
const FLAGS = {
  port: { type: 'string' },
  host: { type: 'string' },
  seed: { type: 'string' },
  size: { type: 'string' },
  'epoch-secs': { type: 'string' },
  scenario: { type: 'string' },
  'list-scenarios': { type: 'boolean' },
  'latency-ms': { type: 'string' },
  'latency-jitter-ms': { type: 'string' },
  'latency-slow-rate': { type: 'string' },
  'latency-slow-ms': { type: 'string' },
  'max-reel-ids': { type: 'string' },
  'not-found-style': { type: 'string' },
  'private-style': { type: 'string' },
  'logged-out-style': { type: 'string' },
  'no-app-id': { type: 'boolean' },
  'require-session': { type: 'boolean' },
  session: { type: 'string', multiple: true },
  'session-state': { type: 'string', multiple: true },
  'session-rate': { type: 'string' },
  'session-burst': { type: 'string' },
  'ip-rate': { type: 'string' },
  'ip-burst': { type: 'string' },
  'penalty-ms': { type: 'string' },
  'penalty-extends': { type: 'boolean' },
  'throttle-style': { type: 'string' },
  'retry-after-secs': { type: 'string' },
  faults: { type: 'string' },
  proxies: { type: 'string' },
  'proxy-auth': { type: 'string' },
  'proxy-broken': { type: 'string', multiple: true },
  'request-log': { type: 'string' },
  'log-level': { type: 'string' },
  'print-usernames': { type: 'boolean' },
  'print-demo-sample': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** The flags' values; throws UsageError for an unknown flag or a missing value. */
function readFlags(argv: string[]) {
  try {
    return parseArgs({ args: argv, strict: true, allowPositionals: false, options: FLAGS }).values;
  } catch (err) {
    throw new UsageError(coerceError(err).message);
  }
}

type FlagValues = ReturnType<typeof readFlags>;

/** --session LABEL=SESSIONID adds (or replaces) one; --session-state LABEL=STATE sets its state. */
function sessionsFlags(base: Scenario, v: FlagValues): SessionSpec[] | undefined {
  let sessions: SessionSpec[] | undefined = base.sessions ? [...base.sessions] : undefined;
  for (const raw of v.session ?? []) {
    const [label, sessionid] = pairFlag('session', raw);
    sessions = (sessions ?? []).filter((s) => s.label !== label && s.sessionid !== sessionid);
    sessions.push({ sessionid, label });
  }
  for (const raw of v['session-state'] ?? []) {
    const [label, state] = pairFlag('session-state', raw);
    const index = (sessions ?? []).findIndex((s) => s.label === label);
    const found = sessions?.[index];
    if (!sessions || !found)
      throw new UsageError(`--session-state: no session labelled "${label}"`);
    sessions[index] = { ...found, state: state as SessionState };
  }
  return sessions;
}

/** --faults KIND=P,... */
function faultsFlag(v: FlagValues): Partial<Record<FaultKind, number>> | undefined {
  let faults: Partial<Record<FaultKind, number>> | undefined;
  if (v.faults !== undefined) {
    faults = {};
    for (const part of v.faults.split(',').filter((p) => p.trim() !== '')) {
      const [kind, p] = pairFlag('faults', part.trim());
      if (!(FAULT_KINDS as readonly string[]).includes(kind)) {
        throw new UsageError(`--faults: unknown kind "${kind}" (known: ${FAULT_KINDS.join(', ')})`);
      }
      faults[kind as FaultKind] = probFlag('faults', p);
    }
  }
  return faults;
}

/** The scenario flags laid over `base` (a --scenario, or {}). */
function scenarioFlags(base: Scenario, v: FlagValues): Scenario {
  const sessions = sessionsFlags(base, v);
  const faults = faultsFlag(v);
  const sessionBurst = intFlag('session-burst', v['session-burst'], 1, 1_000_000);
  const ipBurst = intFlag('ip-burst', v['ip-burst'], 1, 1_000_000);
  const budgets = {
    session: budgetFlag('session', base.budgets?.session, v['session-rate'], sessionBurst),
    ip: budgetFlag('ip', base.budgets?.ip, v['ip-rate'], ipBurst),
    penaltyMs: intFlag('penalty-ms', v['penalty-ms'], 0, 7 * 86_400_000),
    penaltyExtends: v['penalty-extends'] === true ? true : undefined,
    throttleStyle: enumFlag('throttle-style', v['throttle-style'], THROTTLE_STYLES),
    retryAfterSecs: intFlag('retry-after-secs', v['retry-after-secs'], 0, 86_400),
  };
  const notFoundStyle = enumFlag('not-found-style', v['not-found-style'], ['404', 'null', '400']);
  const patch: Scenario = {
    seed: intFlag('seed', v.seed, 0, 0xffff_ffff),
    size: intFlag('size', v.size, 0, 1_000_000),
    epochSecs: intFlag('epoch-secs', v['epoch-secs'], 0, 1e11),
    latencyMs: intFlag('latency-ms', v['latency-ms'], 0, 600_000),
    latencyJitterMs: intFlag('latency-jitter-ms', v['latency-jitter-ms'], 0, 600_000),
    latencySlowRate:
      v['latency-slow-rate'] === undefined
        ? undefined
        : probFlag('latency-slow-rate', v['latency-slow-rate']),
    latencySlowMs: intFlag('latency-slow-ms', v['latency-slow-ms'], 0, 600_000),
    maxReelIds: intFlag('max-reel-ids', v['max-reel-ids'], 1, 10_000),
    notFoundStyle,
    privateStyle: enumFlag('private-style', v['private-style'], ['no-reel', 'not-authorized']),
    loggedOutStyle: enumFlag('logged-out-style', v['logged-out-style'], [
      '403',
      '302',
      '302-root',
      'mixed',
    ]),
    requireAppId: v['no-app-id'] === true ? false : undefined,
    requireSession: v['require-session'] === true ? true : undefined,
    sessions,
    budgets: Object.fromEntries(Object.entries(budgets).filter(([, x]) => x !== undefined)),
    faults,
  };
  try {
    return parseScenario(mergeScenario(base, patch));
  } catch (err) {
    const message = coerceError(err).message;
    // Only --session-state can carry a bad value this far (everything else is checked above).
    throw new UsageError(message.includes('sessions[') ? `--session-state: ${message}` : message);
  }
}

/** --proxies N, --proxy-auth USER:PASS, --proxy-broken LABEL=MODE. */
function proxiesFlags(v: FlagValues): ProxyPoolOptions | undefined {
  let proxies: ProxyPoolOptions | undefined;
  const proxyCount = intFlag('proxies', v.proxies, 0, 1000);
  if (proxyCount !== undefined && proxyCount > 0) {
    proxies = { count: proxyCount };
    if (v['proxy-auth'] !== undefined) {
      const colon = v['proxy-auth'].indexOf(':');
      if (colon <= 0 || colon === v['proxy-auth'].length - 1) {
        throw new UsageError('--proxy-auth must be USER:PASS');
      }
      proxies.auth = {
        user: v['proxy-auth'].slice(0, colon),
        pass: v['proxy-auth'].slice(colon + 1),
      };
    }
    for (const raw of v['proxy-broken'] ?? []) {
      const [label, mode] = pairFlag('proxy-broken', raw);
      const index = Number(label.replace(/^p/, ''));
      if (!/^p\d+$/.test(label) || index < 1 || index > proxyCount) {
        throw new UsageError(`--proxy-broken: no proxy "${label}" (p1..p${proxyCount})`);
      }
      proxies.broken = {
        ...proxies.broken,
        [label]: enumFlag('proxy-broken', mode, PROXY_BROKEN_MODES) ?? '407',
      };
    }
  } else if (v['proxy-auth'] !== undefined || v['proxy-broken'] !== undefined) {
    throw new UsageError('--proxy-auth and --proxy-broken need --proxies N');
  }
  return proxies;
}

function parse(argv: string[]) {
  const v = readFlags(argv);
  const host = v.host ?? '127.0.0.1';
  if (host.trim() === '') throw new UsageError('--host must not be empty');
  const logLevel = v['log-level'] ?? 'info';
  if (!['error', 'warn', 'info', 'debug'].includes(logLevel)) {
    throw new UsageError(`--log-level must be error, warn, info or debug, got "${logLevel}"`);
  }
  if (v['request-log'] !== undefined && v['request-log'].trim() === '') {
    throw new UsageError('--request-log must name a file');
  }

  let base: Scenario = {};
  if (v.scenario !== undefined) {
    try {
      base = loadScenario(v.scenario);
    } catch (err) {
      throw new UsageError(`--scenario: ${coerceError(err).message}`);
    }
  }
  const scenario = scenarioFlags(base, v);
  const proxies = proxiesFlags(v);

  return {
    scenario,
    port: intFlag('port', v.port, 0, 65_535) ?? 4100,
    host,
    proxies,
    requestLogFile: v['request-log'],
    logLevel,
    help: v.help === true,
    listScenarios: v['list-scenarios'] === true,
    printUsernames: v['print-usernames'] === true,
    printDemoSample: v['print-demo-sample'] === true,
  };
}

async function main(): Promise<void> {
  let args: ReturnType<typeof parse>;
  try {
    args = parse(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`storycheck-sim: ${err.message.replace(/\s*\n\s*/g, ' ')}\n`);
    process.exitCode = 2;
    return;
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (args.listScenarios) {
    for (const [name, s] of Object.entries(SCENARIOS)) {
      process.stdout.write(`${name}\t${s.description ?? ''}\n`);
    }
    return;
  }
  const { scenario } = args;
  if (args.printUsernames || args.printDemoSample) {
    const world = createWorld({
      seed: scenario.seed ?? 42,
      size: scenario.size ?? 1000,
      epochSecs: scenario.epochSecs ?? 0,
    });
    const lines = args.printUsernames ? world.usernames() : buildDemoSample(world);
    process.stdout.write(lines.map((line) => `${line}\n`).join(''));
    return;
  }

  const logger = createLogger({ level: args.logLevel, scope: 'sim' });
  const server = await startSim({
    scenario,
    port: args.port,
    host: args.host,
    proxies: args.proxies,
    requestLogFile: args.requestLogFile,
    logger,
  });
  process.stdout.write(
    `storycheck-sim listening on ${server.url} (seed ${server.world.seed}, size ${server.world.size})\n` +
      server.proxies
        .map((p) => `storycheck-sim proxy ${p.label} ${p.url} egress ${p.egress}\n`)
        .join(''),
  );

  onShutdownSignals({
    logger,
    close: () => server.close(),
    deadlineMs: SHUTDOWN_DEADLINE_MS,
    messages: { failed: 'close failed' },
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`storycheck-sim: ${coerceError(err).message}\n`);
  process.exitCode = 1;
});
