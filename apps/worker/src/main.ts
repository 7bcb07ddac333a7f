#!/usr/bin/env node
import { ConfigError, loadConfig } from '@storycheck/config';
import { coerceError, createLogger, onShutdownSignals } from '@storycheck/logger';
import { startWorker } from './worker.js';
import { startWhenReady } from './startup.js';
import { firstLine } from './dependencies.js';
import { infraDependencyOf } from './outcomes.js';

/**
 * storycheck-worker: one worker process; scale by running more. Shutdown in one place:
 * SIGTERM/SIGINT → stop fetching → wait for in-flight jobs up to WORKER_SHUTDOWN_TIMEOUT →
 * abort and put back what is left → exit 0. A second signal forces at once.
 */
async function main(): Promise<number> {
  let config;
  try {
    config = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`storycheck-worker: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  const logger = createLogger({
    level: config.log.level,
    format: config.log.format,
    scope: 'worker',
  });
  // Last resort, in JSON like every other line: a connection error nobody listened for must not
  // print a raw multi-line stack. An infrastructure error is logged and survived (the worker
  // pauses and resumes by itself); anything else is a bug: log it and exit 1.
  process.on('uncaughtException', (e) => {
    if (infraDependencyOf(e)) {
      logger.error('uncaught dependency error (survived)', { error: firstLine(e) });
      return;
    }
    logger.error('uncaught exception; exiting', { error: firstLine(e), stack: (e as Error).stack });
    setTimeout(() => process.exit(1), 200);
  });
  process.on('unhandledRejection', (e) => {
    logger.error('unhandled rejection', { error: firstLine(e) });
  });
  let stalled = false;
  let stopRequested = false;
  const early = () => {
    stopRequested = true;
  };
  process.once('SIGTERM', early);
  process.once('SIGINT', early);
  const started = await startWhenReady(
    config,
    logger,
    () =>
      startWorker({
        config,
        logger,
        // The watchdog saw jobs waiting and none taken: log why, close briefly, exit 1 so the
        // supervisor restarts a fresh process.
        onStall: (reason) => {
          if (stalled) return;
          stalled = true;
          logger.error(reason, { idleMs: config.workerWatchdogIdleMs });
          setTimeout(() => process.exit(1), 5_000).unref();
          void running.close(3_000).finally(() => process.exit(1));
        },
      }),
    () => stopRequested,
  );
  process.off('SIGTERM', early);
  process.off('SIGINT', early);
  if (!started) return 0; // a signal arrived while waiting for Redis/Postgres
  const running = started;
  logger.info('worker started', {
    ...(running.httpUrl ? { http: running.httpUrl } : {}),
    pid: process.pid,
    concurrency: config.workerConcurrency,
    prefix: config.prefix,
    upstream: config.igBaseUrl,
  });
  return new Promise<number>((resolve) => {
    // A second signal closes again, which forces (RunningWorker.close); the close bounds itself.
    onShutdownSignals({
      logger,
      close: () => running.close(),
      repeatClose: true,
      exit: resolve,
      messages: {
        first: 'stopping: finishing in-flight jobs',
        again: 'stopping now',
        closed: 'worker stopped',
        failed: 'error while stopping',
      },
    });
  });
}

main().then(
  (code) => {
    process.exitCode = code;
    // Anything left (a stuck socket) must not keep a stopped worker alive.
    setTimeout(() => process.exit(code), 2_000).unref();
  },
  (e: unknown) => {
    process.stderr.write(`storycheck-worker: ${coerceError(e).message}\n`);
    process.exit(1);
  },
);
