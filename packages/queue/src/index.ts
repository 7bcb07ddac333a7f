import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { CHECK_JOB_OPTIONS, STORY_CHECK_QUEUE, type CheckPayload } from './catalog.js';
import { queuePrefix } from './redis.js';

export * from './catalog.js';
export {
  checkRedisKind,
  createRedis,
  isCluster,
  queuePrefix,
  redisNodes,
  type CreateRedisOptions,
  type RedisRole,
} from './redis.js';

/** The check queue, typed with its payload and job name. */
export type CheckQueue = Queue<CheckPayload, unknown, 'check'>;

/**
 * Opens the story-check queue under `prefix` (STORYCHECK_PREFIX; its BullMQ prefix is
 * {@link queuePrefix}) on a given connection. The caller owns the connection and closes it after
 * `queue.close()`.
 */
export function openCheckQueue(connection: Redis, prefix: string): CheckQueue {
  return new Queue<CheckPayload, unknown, 'check'>(STORY_CHECK_QUEUE, {
    connection,
    prefix: queuePrefix(prefix),
    defaultJobOptions: CHECK_JOB_OPTIONS,
  });
}
