import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import fc from 'fast-check';
import { usernameProblem } from '@storycheck/model';
import {
  CHECK_JOB,
  checkJobId,
  createRedis,
  openCheckQueue,
  parseCheckJobId,
  parseCheckPayload,
  queuePrefix,
  usernameSchema,
} from '../src/index.js';

describe('job catalog', () => {
  it('derives a stable job id that splits back', () => {
    const batchId = randomUUID();
    const id = checkJobId(batchId, 'anna.k_1');
    expect(id).toBe(checkJobId(batchId, 'anna.k_1'));
    expect(id).not.toContain(':');
    expect(parseCheckJobId(id)).toEqual({ batchId, username: 'anna.k_1' });
  });

  it('rejects payloads this code cannot handle', () => {
    expect(() => parseCheckPayload({ batchId: 'x', username: 'a' })).toThrow();
    expect(() => parseCheckPayload({ batchId: randomUUID(), username: 'A..b' })).toThrow();
    expect(() =>
      parseCheckPayload({ batchId: randomUUID(), username: 'ok', sessionid: 1 }),
    ).not.toThrow();
    expect(Object.keys(parseCheckPayload({ batchId: randomUUID(), username: 'ok', x: 1 }))).toEqual(
      ['batchId', 'username'],
    );
  });

  it('accepts a payload username by the producer’s rule (packages/model), with its reason', () => {
    const nameLike = fc.oneof(
      fc.string({ unit: fc.constantFrom(...'ab9._'), maxLength: 34 }),
      fc.string({ maxLength: 34 }),
    );
    fc.assert(
      fc.property(nameLike, (u) => {
        const parsed = usernameSchema.safeParse(u);
        const problem = usernameProblem(u);
        expect(parsed.success).toBe(problem === null);
        if (problem) expect(parsed.error?.issues.map((i) => i.message)).toEqual([problem.reason]);
      }),
      { numRuns: 2_000 },
    );
  });
});

describe('queue on real Redis', () => {
  const prefix = `sctest-queue-${process.pid}-${Date.now()}`;
  const redis = createRedis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  const queue = openCheckQueue(redis, prefix);

  afterAll(async () => {
    await queue.obliterate({ force: true });
    await queue.close();
    await redis.quit();
  });

  it('adding the same (batch, username) twice creates one job', async () => {
    const batchId = randomUUID();
    const jobs = ['a', 'b', 'c'].map((username) => ({
      name: CHECK_JOB as typeof CHECK_JOB,
      data: { batchId, username },
      opts: { jobId: checkJobId(batchId, username) },
    }));
    await queue.addBulk(jobs);
    await queue.addBulk(jobs);
    expect(await queue.getJobCounts('waiting')).toEqual({ waiting: 3 });
    // Another prefix does not see them.
    const other = new Queue('story-check', {
      connection: redis,
      prefix: queuePrefix(`${prefix}-other`),
    });
    expect(await other.getJobCounts('waiting')).toEqual({ waiting: 0 });
    await other.close();
  });
});
