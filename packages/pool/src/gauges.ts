import { Gauge, type Registry } from 'prom-client';
import type { PoolSnapshot, ProxyStatus, SessionStatus } from './pool.js';

/** Job states exported as `storycheck_queue_jobs{queue,state}`. */
export const QUEUE_STATES = ['waiting', 'active', 'delayed', 'failed'] as const;

/** Every session status, exported even when 0 so dashboards see a stable set of series. */
export const SESSION_STATUSES: readonly SessionStatus[] = [
  'active',
  'cooling',
  'invalid',
  'challenge',
  'suspended',
  'disabled',
];

/** Every proxy status, exported even when 0. */
export const PROXY_STATUSES: readonly ProxyStatus[] = ['active', 'cooling', 'broken', 'disabled'];

/**
 * How long a scrape waits for Redis (queue counts, pool snapshot) before it reports the source
 * as down (ms). A Redis connection retries forever, so without a bound a scrape during a Redis
 * outage would hang until the scraper gives up.
 */
export const COLLECT_TIMEOUT_MS = 1_000;

/** What the gauges read of a BullMQ queue (a `Queue`, structurally: no bullmq import here). */
export interface JobCountSource {
  name: string;
  getJobCounts(...types: string[]): Promise<Record<string, number>>;
}

/** Rejects with a timeout error when `p` has not settled within `ms`; clears its timer. */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The fleet-level gauges every process that reads Redis exports (the workers and the board),
 * with the same names so a dashboard reads them from whichever target answers
 * (`max without (instance)`): `storycheck_queue_jobs{queue,state}`,
 * `storycheck_pool_sessions{state}`, `storycheck_pool_proxies{state}`, and
 * `storycheck_metrics_source_up{source}` (1 when a scrape-time read worked; the board sets
 * its other sources on it too). The refreshes are called at scrape time, each Redis read
 * bounded by `collectTimeoutMs`; they never reject.
 */
export class FleetGauges {
  /** `storycheck_metrics_source_up{source}`: set it for any other scrape-time source. */
  readonly sourceUp: Gauge<'source'>;
  private readonly queueJobs: Gauge<'queue' | 'state'>;
  private readonly sessions: Gauge<'state'>;
  private readonly proxies: Gauge<'state'>;

  constructor(
    registry: Registry,
    private readonly collectTimeoutMs: number = COLLECT_TIMEOUT_MS,
  ) {
    const registers = [registry];
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
  }

  /**
   * Job counts of each queue, one after the other (BullMQ keeps prioritized jobs apart from
   * waiting ones; to an operator both wait). Source `queue`: 0 when any read failed.
   */
  async refreshQueues(queues: readonly JobCountSource[]): Promise<void> {
    this.queueJobs.reset();
    try {
      for (const queue of queues) {
        const counts = await withTimeout(
          queue.getJobCounts(...QUEUE_STATES, 'prioritized'),
          this.collectTimeoutMs,
          'queue counts',
        );
        for (const state of QUEUE_STATES) {
          const n = (counts[state] ?? 0) + (state === 'waiting' ? (counts.prioritized ?? 0) : 0);
          this.queueJobs.set({ queue: queue.name, state }, n);
        }
      }
      this.sourceUp.set({ source: 'queue' }, 1);
    } catch {
      this.sourceUp.set({ source: 'queue' }, 0);
    }
  }

  /** Sessions and proxies by status, every status present (0 when none). Source `pool`. */
  async refreshPool(snapshot: () => Promise<PoolSnapshot>): Promise<void> {
    this.sessions.reset();
    this.proxies.reset();
    try {
      const snap = await withTimeout(snapshot(), this.collectTimeoutMs, 'pool snapshot');
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
