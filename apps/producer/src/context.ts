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
    this.checkQueue ??= openCheckQueue(this.redis, this.config.prefix);
    return this.checkQueue;
  }

  /** Closes everything opened. */
  async close(): Promise<void> {
    await this.checkQueue?.close().catch(() => undefined);
    if (this.redisConn) this.redisConn.disconnect();
    await this.dbHandle?.close().catch(() => undefined);
  }
}
