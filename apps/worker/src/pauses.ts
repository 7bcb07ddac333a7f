import type { Worker } from 'bullmq';
import type { Logger } from '@storycheck/logger';
import { bestEffort } from './best-effort.js';
import type { Dependency } from './outcomes.js';
import type { WorkerMetrics } from './metrics.js';

/** Why the worker stopped fetching jobs on purpose (it resumes by itself). */
export type PauseReason = 'no_session' | Dependency;

/**
 * The reasons the worker fetches no job now: it pauses when the first one starts holding and
 * resumes when the last one clears. Each reason is exported as `storycheck_worker_paused`.
 * Reasons may be set before the BullMQ worker exists ({@link attach} applies them).
 */
export class Pauses {
  private readonly reasons = new Set<PauseReason>();
  private worker: Worker | undefined;

  constructor(
    private readonly metrics: WorkerMetrics,
    private readonly logger: Logger,
  ) {}

  /** True while any reason holds (the watchdog does not judge a worker paused on purpose). */
  get any(): boolean {
    return this.reasons.size > 0;
  }

  /** True once the BullMQ worker exists. */
  get attached(): boolean {
    return this.worker !== undefined;
  }

  /** The worker to pause and resume; paused at once when a reason already holds. */
  attach(worker: Worker): void {
    this.worker = worker;
    // A worker closing meanwhile refuses the pause; nothing to do then.
    if (this.any) void bestEffort(worker.pause(true), this.logger, 'pause the new worker');
  }

  /** Sets (`on`) or clears one reason. */
  set(reason: PauseReason, on: boolean): void {
    const before = this.any;
    if (on) this.reasons.add(reason);
    else this.reasons.delete(reason);
    this.metrics.paused(reason, on);
    const after = this.any;
    const worker = this.worker;
    if (!worker) return;
    // Pausing or resuming fails only while the worker closes: there is nothing left to pause.
    if (!before && after) void bestEffort(worker.pause(true), this.logger, 'pause the worker');
    if (before && !after) void bestEffort(worker.resume(), this.logger, 'resume the worker');
  }
}
