import type { Queue } from 'bullmq';
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { BatchStatus } from '@storycheck/db';
import { COLLECT_TIMEOUT_MS, FleetGauges, withTimeout, type PoolSnapshot } from '@storycheck/pool';
import { BatchEtaTracker } from './batch-eta.js';

/**
 * The board's Prometheus metrics: fleet-level gauges read from Redis at scrape time — jobs per
 * queue and state, sessions and proxies per state — plus the board process's own metrics.
 * The gauge names are the same as the workers' (`storycheck_queue_jobs`, `storycheck_pool_*`),
 * so a dashboard reads them from whichever target answers (`max without (instance)`); the
 * per-check counters and histograms only exist on the workers. Only the board exports Redis
 * memory (`storycheck_redis_memory_used_bytes`, `storycheck_redis_maxmemory_bytes`) and the
 * running batches' progress, over all running batches (no batch id in any label):
 * `storycheck_batches_running`, `storycheck_batches_stuck`, `storycheck_batch_eta_seconds`
 * (the longest ETA) and `storycheck_batch_eta_overrun_ratio` (the worst overrun, batch-eta.ts).
 */

/** Options of {@link BoardMetrics}. */
export interface BoardMetricsOptions {
  /** Queues whose job counts are exported. */
  queues: ReadonlyArray<Pick<Queue, 'name' | 'getJobCounts'>>;
  /** Reads the pool; undefined = no pool gauges. */
  poolSnapshot?: (() => Promise<PoolSnapshot>) | undefined;
  /** Redis `INFO memory` text; undefined = no Redis memory gauges. */
  redisInfo?: (() => Promise<string>) | undefined;
  /** Recent batches (running ones are exported); undefined = no batch gauges. */
  listBatches?: (() => Promise<BatchStatus[]>) | undefined;
  /** Also export prom-client's process metrics. Default true; one registry per process only. */
  processMetrics?: boolean;
}

/** The board's registry and its scrape-time refresh. Serve {@link render}. */
export class BoardMetrics {
  /** This instance's own registry (never prom-client's global one). */
  readonly registry = new Registry();
  /** Queue and pool gauges, refreshed at scrape time (shared with the workers). */
  private readonly fleet: FleetGauges;
  private readonly redisUsed: Gauge;
  private readonly redisMax: Gauge;
  private readonly batchesRunning: Gauge;
  private readonly batchesStuck: Gauge;
  private readonly batchEta: Gauge;
  private readonly batchOverrun: Gauge;
  private readonly etas = new BatchEtaTracker();

  constructor(private readonly opts: BoardMetricsOptions) {
    const registers = [this.registry];
    this.fleet = new FleetGauges(this.registry, COLLECT_TIMEOUT_MS);
    this.redisUsed = new Gauge({
      name: 'storycheck_redis_memory_used_bytes',
      help: 'Redis used_memory (INFO memory), read at scrape time.',
      registers,
    });
    this.redisMax = new Gauge({
      name: 'storycheck_redis_maxmemory_bytes',
      help: 'Redis maxmemory (0 = no limit), read at scrape time.',
      registers,
    });
    this.batchesRunning = new Gauge({
      name: 'storycheck_batches_running',
      help: 'Batches in state running.',
      registers,
    });
    this.batchesStuck = new Gauge({
      name: 'storycheck_batches_stuck',
      help: 'Running batches that finished no item in the last 5 min.',
      registers,
    });
    this.batchEta = new Gauge({
      name: 'storycheck_batch_eta_seconds',
      help: 'Longest ETA of the running batches at their rate of the last 5 min (+Inf: one is stuck; 0: none running).',
      registers,
    });
    this.batchOverrun = new Gauge({
      name: 'storycheck_batch_eta_overrun_ratio',
      help: "Worst running batch's projected duration over the shortest it was projected (floor 10 min); 1 = on plan.",
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
    await Promise.all([
      this.refreshQueues(),
      this.refreshPool(),
      this.refreshRedis(),
      this.refreshBatches(),
    ]);
    return this.registry.metrics();
  }

  private async refreshQueues(): Promise<void> {
    await this.fleet.refreshQueues(this.opts.queues);
  }

  private async refreshPool(): Promise<void> {
    if (this.opts.poolSnapshot) await this.fleet.refreshPool(this.opts.poolSnapshot);
  }

  private async refreshRedis(): Promise<void> {
    const info = this.opts.redisInfo;
    if (!info) return;
    try {
      const text = await withTimeout(info(), COLLECT_TIMEOUT_MS, 'redis info');
      const field = (k: string) => Number(new RegExp(`^${k}:(\\d+)`, 'm').exec(text)?.[1] ?? NaN);
      const used = field('used_memory');
      const max = field('maxmemory');
      if (!Number.isFinite(used) || !Number.isFinite(max)) throw new Error('no memory fields');
      this.redisUsed.set(used);
      this.redisMax.set(max);
      this.fleet.sourceUp.set({ source: 'redis' }, 1);
    } catch {
      this.fleet.sourceUp.set({ source: 'redis' }, 0);
    }
  }

  private async refreshBatches(): Promise<void> {
    const list = this.opts.listBatches;
    if (!list) return;
    try {
      const batches = await withTimeout(list(), COLLECT_TIMEOUT_MS, 'batch list');
      const etas = this.etas.update(batches, Date.now());
      this.batchesRunning.set(etas.length);
      this.batchesStuck.set(etas.filter((e) => e.stuck).length);
      this.batchEta.set(Math.max(0, ...etas.map((e) => e.etaS)));
      this.batchOverrun.set(Math.max(0, ...etas.map((e) => e.overrun)));
      this.fleet.sourceUp.set({ source: 'postgres' }, 1);
    } catch {
      this.fleet.sourceUp.set({ source: 'postgres' }, 0);
    }
  }
}
