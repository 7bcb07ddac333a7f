import type { Queue } from 'bullmq';
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { PoolSnapshot, ProxyStatus, SessionStatus } from '@storycheck/pool';

/**
 * The board's Prometheus metrics: fleet-level gauges read from Redis at scrape time — jobs per
 * queue and state, sessions and proxies per state — plus the board process's own metrics.
 * The gauge names are the same as the workers' (`storycheck_queue_jobs`, `storycheck_pool_*`),
 * so a dashboard reads them from whichever target answers (`max without (instance)`); the
 * per-check counters and histograms only exist on the workers.
 */

/** Job states exported as `storycheck_queue_jobs{queue,state}`. */
export const BOARD_QUEUE_STATES = ['waiting', 'active', 'delayed', 'failed'] as const;

const SESSION_STATUSES: readonly SessionStatus[] = [
  'active',
  'cooling',
  'invalid',
  'challenge',
  'suspended',
  'disabled',
];
const PROXY_STATUSES: readonly ProxyStatus[] = ['active', 'cooling', 'broken', 'disabled'];

/** Bound on each scrape-time Redis read (ms): a scrape during an outage answers, without them. */
const COLLECT_TIMEOUT_MS = 1_000;

/** Options of {@link BoardMetrics}. */
export interface BoardMetricsOptions {
  /** Queues whose job counts are exported. */
  queues: ReadonlyArray<Pick<Queue, 'name' | 'getJobCounts'>>;
  /** Reads the pool; undefined = no pool gauges. */
  poolSnapshot?: (() => Promise<PoolSnapshot>) | undefined;
  /** Also export prom-client's process metrics. Default true; one registry per process only. */
  processMetrics?: boolean;
}

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The board's registry and its scrape-time refresh. Serve {@link render}. */
export class BoardMetrics {
  /** This instance's own registry (never prom-client's global one). */
  readonly registry = new Registry();
  private readonly queueJobs: Gauge<'queue' | 'state'>;
  private readonly sessions: Gauge<'state'>;
  private readonly proxies: Gauge<'state'>;
  private readonly sourceUp: Gauge<'source'>;

  constructor(private readonly opts: BoardMetricsOptions) {
    const registers = [this.registry];
    this.queueJobs = new Gauge({
      name: 'storycheck_queue_jobs',
      help: 'Jobs in the queue by state, read from Redis at scrape time (same on every process).',
      labelNames: ['queue', 'state'],
      registers,
    });
    this.sessions = new Gauge({
      name: 'storycheck_pool_sessions',
      help: 'Sessions in the pool by state (cooling = active with a cooldown running).',
      labelNames: ['state'],
      registers,
    });
    this.proxies = new Gauge({
      name: 'storycheck_pool_proxies',
      help: 'Proxies in the pool by state (broken = circuit open).',
      labelNames: ['state'],
      registers,
    });
    this.sourceUp = new Gauge({
      name: 'storycheck_metrics_source_up',
      help: '1 when the scrape-time read of a source (queue, pool) succeeded, 0 when it failed.',
      labelNames: ['source'],
      registers,
    });
    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** Content-Type of {@link render}'s text. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Reads queues and pool (each bounded to 1 s), then serialises the registry (format 0.0.4). */
  async render(): Promise<string> {
    await Promise.all([this.refreshQueues(), this.refreshPool()]);
    return this.registry.metrics();
  }

  private async refreshQueues(): Promise<void> {
    this.queueJobs.reset();
    try {
      for (const queue of this.opts.queues) {
        const counts = await withTimeout(
          queue.getJobCounts(...BOARD_QUEUE_STATES, 'prioritized'),
          COLLECT_TIMEOUT_MS,
        );
        for (const state of BOARD_QUEUE_STATES) {
          const n = (counts[state] ?? 0) + (state === 'waiting' ? (counts.prioritized ?? 0) : 0);
          this.queueJobs.set({ queue: queue.name, state }, n);
        }
      }
      this.sourceUp.set({ source: 'queue' }, 1);
    } catch {
      this.sourceUp.set({ source: 'queue' }, 0);
    }
  }

  private async refreshPool(): Promise<void> {
    const snapshot = this.opts.poolSnapshot;
    if (!snapshot) return;
    this.sessions.reset();
    this.proxies.reset();
    try {
      const snap = await withTimeout(snapshot(), COLLECT_TIMEOUT_MS);
      for (const state of SESSION_STATUSES) this.sessions.set({ state }, 0);
      for (const s of snap.sessions) this.sessions.inc({ state: s.status });
      for (const state of PROXY_STATUSES) this.proxies.set({ state }, 0);
      for (const p of snap.proxies) this.proxies.inc({ state: p.status });
      this.sourceUp.set({ source: 'pool' }, 1);
    } catch {
      this.sourceUp.set({ source: 'pool' }, 0);
    }
  }
}
