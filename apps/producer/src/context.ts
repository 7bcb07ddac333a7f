import { loadConfig, type Config } from '@storycheck/config';
import { createLogger, type Logger } from '@storycheck/logger';
import { openDb, type DbHandle } from '@storycheck/db';
import { createRedis, openCheckQueue, type CheckQueue } from '@storycheck/queue';
import type { Redis } from 'ioredis';

/** Exit code 2: bad usage or invalid input; nothing was written. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/**
 * The command stopped on SIGINT/SIGTERM. `exitCode` follows the shell convention (128 + signal
 * number: 130 for SIGINT, 143 for SIGTERM); the message may span lines (e.g. the command that
 * resumes an interrupted enqueue).
 */
export class InterruptedError extends Error {
  override name = 'InterruptedError';
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/**
 * What a command needs, opened lazily so that `storycheck secret-key` touches nothing and
 * `status` never opens Redis. `close()` closes whatever was opened.
 */
export class Context {
  readonly config: Config;
  readonly logger: Logger;
  private dbHandle: DbHandle | undefined;
  private redisConn: Redis | undefined;
  private checkQueue: CheckQueue | undefined;

  constructor(env: Record<string, string | undefined> = process.env) {
    this.config = loadConfig(env);
    this.logger = createLogger({
      level: this.config.log.level,
      format: this.config.log.format,
      scope: 'cli',
    });
  }

  /** The Postgres handle. */
  get db(): DbHandle {
    this.dbHandle ??= openDb(this.config.databaseUrl, { max: 4 });
    return this.dbHandle;
  }

  /** A Redis client connection (fails fast, does not hang a command when Redis is down). */
  get redis(): Redis {
    this.redisConn ??= createRedis(this.config.redisUrl, {
      name: 'storycheck-cli',
      onError: (e) => this.logger.debug('redis error', { error: e.message }),
    });
    return this.redisConn;
  }

  /** The story-check queue under STORYCHECK_PREFIX. */
  get queue(): CheckQueue {
    if (!this.checkQueue) {
      this.checkQueue = openCheckQueue(this.redis, this.config.prefix);
      // Without a listener BullMQ prints every reconnect error as a raw stack on stderr; the
      // failed command itself reports the problem in one line.
      this.checkQueue.on('error', (e) => this.logger.debug('queue error', { error: e.message }));
    }
    return this.checkQueue;
  }

  /** Closes everything opened. */
  async close(): Promise<void> {
    await this.checkQueue?.close().catch(() => undefined);
    if (this.redisConn) this.redisConn.disconnect();
    await this.dbHandle?.close().catch(() => undefined);
  }
}
