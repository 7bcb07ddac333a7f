#!/usr/bin/env node
import { ConfigError, loadConfig } from '@storycheck/config';
import { createLogger } from '@storycheck/logger';
import { startWorker } from './worker.js';

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
  let stalled = false;
  const running = await startWorker({
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
  });
  logger.info('worker started', {
    ...(running.httpUrl ? { http: running.httpUrl } : {}),
    pid: process.pid,
    concurrency: config.workerConcurrency,
    prefix: config.prefix,
    upstream: config.igBaseUrl,
  });
  return new Promise<number>((resolve) => {
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals) => {
      signals += 1;
      logger.info(signals === 1 ? 'stopping: finishing in-flight jobs' : 'stopping now', {
        signal: sig,
      });
      running.close().then(
        () => {
          logger.info('worker stopped');
          resolve(0);
        },
        (e: unknown) => {
          logger.error('error while stopping', { error: (e as Error).message });
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

main().then(
  (code) => {
    process.exitCode = code;
    // Anything left (a stuck socket) must not keep a stopped worker alive.
    setTimeout(() => process.exit(code), 2_000).unref();
  },
  (e: unknown) => {
    process.stderr.write(`storycheck-worker: ${(e as Error).message}\n`);
    process.exit(1);
  },
);
