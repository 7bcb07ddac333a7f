#!/usr/bin/env node
import { ConfigError, loadConfig, type Config } from '@storycheck/config';
import { createLogger, onShutdownSignals } from '@storycheck/logger';
import { startBoard, type RunningBoard } from './server.js';

/** How long shutdown may take before the process exits anyway (ms). */
const SHUTDOWN_DEADLINE_MS = 10_000;

/** One line for stderr: the error's message, never a stack. */
function oneLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0] ?? message;
}

/**
 * Entry point of `storycheck-board`: config (exit 2 when invalid), logger, board; SIGTERM/SIGINT
 * close everything and exit 0 (a second signal, or the deadline, forces exit 1).
 */
async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`storycheck-board: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger({
    level: config.log.level,
    format: config.log.format,
    scope: 'board',
  });

  let board: RunningBoard;
  try {
    board = await startBoard(config, { logger });
  } catch (err) {
    process.stderr.write(`storycheck-board: ${oneLine(err)}\n`);
    process.exit(1);
  }
  logger.info('board listening', { url: board.url, readonly: config.board.readonly });
  process.stdout.write(`storycheck-board listening on ${board.url}\n`);

  onShutdownSignals({ logger, close: () => board.close(), deadlineMs: SHUTDOWN_DEADLINE_MS });
}

main().catch((err: unknown) => {
  process.stderr.write(`storycheck-board: ${oneLine(err)}\n`);
  process.exit(1);
});
