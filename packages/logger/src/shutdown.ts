import type winston from 'winston';

/** The log lines of a shutdown (each with `{ signal }`, `{ deadlineMs }` or `{ error }`). */
export interface ShutdownMessages {
  /** info, at the first signal. */
  first: string;
  /** At a later signal: warn before exiting 1, or info before closing again (`repeatClose`). */
  again: string;
  /** info, once closed; none by default (the exit says it). */
  closed: string | undefined;
  /** error, when close() rejected (the process exits 1). */
  failed: string;
}

/** Options of {@link onShutdownSignals}. */
export interface ShutdownOptions {
  logger: winston.Logger;
  /** Closes what the process holds. Called at the first signal. */
  close: () => Promise<void>;
  /**
   * Past this many ms after the first signal, the process exits 1 whatever close() is doing
   * (logged `shutdown deadline passed, exiting`). Omitted: close() bounds itself.
   */
  deadlineMs?: number;
  /**
   * A later signal calls close() again (a second close forces: the worker) instead of exiting
   * 1 at once (the default).
   */
  repeatClose?: boolean;
  /**
   * Receives the exit code once close() settles: 0 closed, 1 it rejected. Default
   * `process.exit`. A later signal or the deadline always call `process.exit(1)`.
   */
  exit?: (code: number) => void;
  /** Overrides of the default log lines ({@link DEFAULT_SHUTDOWN_MESSAGES}). */
  messages?: Partial<ShutdownMessages>;
  /** Default SIGTERM and SIGINT. */
  signals?: readonly NodeJS.Signals[];
}

/** The log lines a service's shutdown writes unless told otherwise. */
export const DEFAULT_SHUTDOWN_MESSAGES: ShutdownMessages = {
  first: 'shutting down',
  again: 'second signal, exiting now',
  closed: undefined,
  failed: 'shutdown failed',
};

/** One line of an error: its message's first line, never a stack. */
function oneLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0] ?? message;
}

/**
 * Shutdown in one place, for every long-running process (board, worker, simulator): the first
 * SIGTERM/SIGINT logs and calls `close()`, then exits 0 once it resolves (1 when it rejects);
 * with `deadlineMs`, a close still running past the deadline exits 1; a second signal exits 1
 * at once (or, with `repeatClose`, calls close() again to force it). Returns a function that
 * removes the signal handlers (and clears the deadline).
 */
export function onShutdownSignals(opts: ShutdownOptions): () => void {
  const { logger } = opts;
  const messages = { ...DEFAULT_SHUTDOWN_MESSAGES, ...opts.messages };
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  const signals = opts.signals ?? ['SIGTERM', 'SIGINT'];
  let received = 0;
  let deadline: NodeJS.Timeout | undefined;
  const close = (): void => {
    opts.close().then(
      () => {
        if (messages.closed) logger.info(messages.closed);
        exit(0);
      },
      (err: unknown) => {
        logger.error(messages.failed, { error: oneLine(err) });
        exit(1);
      },
    );
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    received += 1;
    if (received > 1) {
      if (opts.repeatClose) {
        logger.info(messages.again, { signal });
        return close();
      }
      logger.warn(messages.again, { signal });
      process.exit(1);
    }
    logger.info(messages.first, { signal });
    if (opts.deadlineMs !== undefined) {
      const deadlineMs = opts.deadlineMs;
      deadline = setTimeout(() => {
        logger.error('shutdown deadline passed, exiting', { deadlineMs });
        process.exit(1);
      }, deadlineMs);
      deadline.unref();
    }
    close();
  };
  for (const s of signals) process.on(s, onSignal);
  return () => {
    clearTimeout(deadline);
    for (const s of signals) process.off(s, onSignal);
  };
}
