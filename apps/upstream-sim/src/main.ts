#!/usr/bin/env node
/**
 * storycheck-sim: runs the simulated Instagram web API.
 * stdout carries exactly one line once listening (or the lists asked for); logs go to stderr.
 * Invalid flags → one line on stderr and exit code 2. SIGTERM/SIGINT → close, exit 0.
 */
import { parseArgs } from 'node:util';
import { createLogger } from '@storycheck/logger';
import { buildDemoSample } from './make-sample.js';
import { startSim } from './server.js';
import type { SimOptions } from './server.js';
import { createWorld } from './world.js';

/** How long a signalled shutdown may take before the process exits anyway, milliseconds. */
const SHUTDOWN_DEADLINE_MS = 5_000;

const USAGE = `usage: storycheck-sim [--port N] [--host H] [--seed N] [--size N] [--epoch-secs N]
  [--latency-ms N] [--latency-jitter-ms N] [--max-reel-ids N] [--not-found-style 404|null]
  [--no-app-id] [--request-log FILE] [--log-level LEVEL] [--print-usernames] [--print-demo-sample]`;

class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

function intFlag(
  name: string,
  raw: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (raw === undefined) return fallback;
  const value = /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new UsageError(`--${name} must be an integer in ${min}..${max}, got "${raw}"`);
  }
  return value;
}

function parse(argv: string[]) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        port: { type: 'string' },
        host: { type: 'string' },
        seed: { type: 'string' },
        size: { type: 'string' },
        'epoch-secs': { type: 'string' },
        'latency-ms': { type: 'string' },
        'latency-jitter-ms': { type: 'string' },
        'max-reel-ids': { type: 'string' },
        'not-found-style': { type: 'string' },
        'no-app-id': { type: 'boolean' },
        'request-log': { type: 'string' },
        'log-level': { type: 'string' },
        'print-usernames': { type: 'boolean' },
        'print-demo-sample': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const v = parsed.values;
  const notFoundStyle = v['not-found-style'] ?? '404';
  if (notFoundStyle !== '404' && notFoundStyle !== 'null') {
    throw new UsageError(`--not-found-style must be 404 or null, got "${notFoundStyle}"`);
  }
  const host = v.host ?? '127.0.0.1';
  if (host.trim() === '') throw new UsageError('--host must not be empty');
  const logLevel = v['log-level'] ?? 'info';
  if (!['error', 'warn', 'info', 'debug'].includes(logLevel)) {
    throw new UsageError(`--log-level must be error, warn, info or debug, got "${logLevel}"`);
  }
  if (v['request-log'] !== undefined && v['request-log'].trim() === '') {
    throw new UsageError('--request-log must name a file');
  }
  const sim: SimOptions = {
    port: intFlag('port', v.port, 4100, 0, 65_535),
    host,
    seed: intFlag('seed', v.seed, 42, 0, 0xffff_ffff),
    size: intFlag('size', v.size, 1000, 0, 1_000_000),
    epochSecs: intFlag('epoch-secs', v['epoch-secs'], Math.floor(Date.now() / 1000), 0, 1e11),
    latencyMs: intFlag('latency-ms', v['latency-ms'], 0, 0, 600_000),
    latencyJitterMs: intFlag('latency-jitter-ms', v['latency-jitter-ms'], 0, 0, 600_000),
    maxReelIds: intFlag('max-reel-ids', v['max-reel-ids'], 50, 1, 10_000),
    requireAppId: !v['no-app-id'],
    notFoundStyle,
    requestLogFile: v['request-log'],
  };
  return {
    sim,
    logLevel,
    help: v.help === true,
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
  const { sim } = args;
  if (args.printUsernames || args.printDemoSample) {
    const world = createWorld({
      seed: sim.seed ?? 42,
      size: sim.size ?? 1000,
      epochSecs: sim.epochSecs ?? 0,
    });
    const lines = args.printUsernames ? world.usernames() : buildDemoSample(world);
    process.stdout.write(lines.map((line) => `${line}\n`).join(''));
    return;
  }

  const logger = createLogger({ level: args.logLevel, scope: 'sim' });
  const server = await startSim({ ...sim, logger });
  process.stdout.write(
    `storycheck-sim listening on ${server.url} (seed ${server.world.seed}, size ${server.world.size})\n`,
  );

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn('second signal, exiting now', { signal });
      process.exit(1);
    }
    stopping = true;
    logger.info('shutting down', { signal });
    const deadline = setTimeout(() => {
      logger.error('shutdown deadline passed, exiting', { deadlineMs: SHUTDOWN_DEADLINE_MS });
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS);
    deadline.unref();
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error('close failed', { error: (err as Error).message });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`storycheck-sim: ${(err as Error).message}\n`);
  process.exitCode = 1;
});
