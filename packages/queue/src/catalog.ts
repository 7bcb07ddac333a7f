import { z } from 'zod';
import type { JobsOptions } from 'bullmq';
import { usernameProblem } from '@storycheck/model';

/**
 * The job catalog: every queue, its job names, payload schema and retry policy, in one place.
 * Producer and worker both import it, so a misspelt queue or payload fails to compile; at the
 * worker `job.data` is `unknown` until {@link parseCheckPayload} accepts it, because jobs outlive
 * the code that wrote them.
 */

/** Name of the queue that carries one job per (batch, username). */
export const STORY_CHECK_QUEUE = 'story-check';

/** The only job name on {@link STORY_CHECK_QUEUE}. */
export const CHECK_JOB = 'check';

/** A batch id: lowercase UUID. */
export const batchIdSchema = z
  .string()
  .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'must be a UUID');

/**
 * A normalised Instagram username: the rule of packages/model (1–30 of a-z 0-9 . _, no edge or
 * double dot), the one the producer checks input lines by; an issue carries its reason.
 */
export const usernameSchema = z.string().superRefine((u, ctx) => {
  const problem = usernameProblem(u);
  if (problem) ctx.addIssue({ code: 'custom', message: problem.reason });
});

/** Payload of a check job: ids and usernames only, never a secret (DESIGN.md invariant 3). */
export const checkPayloadSchema = z.object({
  batchId: batchIdSchema,
  username: usernameSchema,
});

/** Typed payload of a check job. */
export type CheckPayload = z.infer<typeof checkPayloadSchema>;

/** Parses a job's data; throws a ZodError for a payload this code cannot handle. */
export function parseCheckPayload(data: unknown): CheckPayload {
  return checkPayloadSchema.parse(data);
}

/**
 * Attempts a check job may spend on real failures (upstream errors, broken proxies).
 * Throttling never spends one (DESIGN.md invariant 5).
 */
export const CHECK_ATTEMPTS = 5;

/**
 * Retry policy for real failures: exponential from 2 s (2, 4, 8, 16 s) with jitter, so a
 * struggling upstream is not hit by every retry at once. BullMQ's `jitter: 1` is full jitter:
 * random(0, delay).
 */
export const CHECK_BACKOFF = { type: 'exponential', delay: 2_000, jitter: 0.5 } as const;

/**
 * Default options of every check job. Completed jobs leave Redis soon (results live in
 * Postgres): kept 1 h or the last 1,000 for the board. Failed jobs are kept 7 days.
 */
export const CHECK_JOB_OPTIONS: JobsOptions = {
  attempts: CHECK_ATTEMPTS,
  backoff: { ...CHECK_BACKOFF },
  removeOnComplete: { age: 3_600, count: 1_000 },
  removeOnFail: { age: 7 * 86_400 },
};

/**
 * The job id of (batch, username). Deterministic, so adding the same pair twice adds nothing
 * while the first job is still in Redis. BullMQ forbids ':' in custom ids; a UUID has no '.',
 * so the id splits back unambiguously.
 */
export function checkJobId(batchId: string, username: string): string {
  return `${batchId}.${username}`;
}

/** Inverse of {@link checkJobId}. */
export function parseCheckJobId(jobId: string): CheckPayload {
  return parseCheckPayload({ batchId: jobId.slice(0, 36), username: jobId.slice(37) });
}

/** Queue of housekeeping jobs (retention), run by every worker process, one at a time. */
export const MAINTENANCE_QUEUE = 'maintenance';

/** The retention job: deletes old batches and batch-log rows (RETENTION). */
export const RETENTION_JOB = 'retention';

/** How often the retention job runs, in ms (hourly); a BullMQ job scheduler, so once per fleet. */
export const RETENTION_EVERY_MS = 3_600_000;
