import type { Queue } from 'bullmq';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { FinalStatus } from '@storycheck/model';
import {
  COLLECT_TIMEOUT_MS,
  FleetGauges,
  type JobCountSource,
  type PoolSnapshot,
} from '@storycheck/pool';

/**
 * Prometheus metrics of one worker process. Every metric lives in the instance's own
 * registry (never prom-client's global one), so a process — or a test — may hold several.
 *
 * Labels are small closed sets (status, endpoint, status class, cache, state): never a
 * username, a batch id, a session or proxy label, or anything secret.
 */

/** Upstream endpoints a check calls (the story-checker's request kinds). */
export type UpstreamEndpoint = 'profile' | 'stories' | 'current_user';

/** Class of an upstream answer: the HTTP status family, or `network` when no answer came. */
export type StatusClass = '2xx' | '3xx' | '4xx' | '5xx' | 'network';

/** Caches whose lookups are counted. */
export type CacheName = 'userIds' | 'results';

/**
 * Buckets of `storycheck_check_duration_seconds`: a cached check takes milliseconds, a real one
 * one or two upstream round trips (0.2–2 s), a slow one waits on a coalesced request or a
 * timeout (REQUEST_TIMEOUT, default 15 s).
 */
export const CHECK_DURATION_BUCKETS_SECS = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60,
];

/**
 * Buckets of `storycheck_limiter_wait_seconds`: from "budget free now" through one emission
 * interval (200/11m ≈ 3.3 s) to a throttle cooldown (capped at 30 min by the pool's backoff).
 */
export const LIMITER_WAIT_BUCKETS_SECS = [
  0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800,
];

/** Options of {@link WorkerMetrics}. */
export interface WorkerMetricsOptions {
  /**
   * The story-check queue; its job counts are read from Redis at every scrape. Optional so a
   * process without a queue handle can still export its counters.
   */
  queue?: Pick<Queue, 'name' | 'getJobCounts'> | undefined;
  /** Reads the pool at every scrape (sessions and proxies by state). Optional. */
  poolSnapshot?: (() => Promise<PoolSnapshot>) | undefined;
  /**
   * Also export prom-client's process metrics (CPU, memory, event-loop lag, GC, handles).
   * Default true. They observe process-wide hooks, so enable them on one registry per process.
   */
  processMetrics?: boolean;
  /** Bound on each scrape-time Redis read, ms. Default {@link COLLECT_TIMEOUT_MS}. */
  collectTimeoutMs?: number;
}

/** Maps an HTTP status code (or none: no answer at all) to its {@link StatusClass}. */
export function statusClassOf(statusCode: number | undefined | null): StatusClass {
  if (statusCode === undefined || statusCode === null || statusCode < 200) return 'network';
  if (statusCode < 300) return '2xx';
  if (statusCode < 400) return '3xx';
  if (statusCode < 500) return '4xx';
  return '5xx';
}

/**
 * The worker's metrics. The worker calls the typed methods as things happen; queue counts and
 * pool states are read when Prometheus scrapes ({@link render}), so they are never stale and
 * cost nothing between scrapes. Serve {@link render}, not `registry.metrics()`: only render
 * refreshes the scrape-time gauges.
 *
 * Exported series (all prefixed `storycheck_`):
 * - `checks_finished_total{status,cached}` and `check_duration_seconds{cached}` (histogram)
 * - `upstream_requests_total{endpoint,status_class}`, `upstream_throttled_total{endpoint}`
 * - `cache_lookups_total{cache,result}` (result = hit | miss)
 * - `limiter_wait_seconds` (histogram), `pool_no_usable_session` (0/1)
 * - `queue_jobs{queue,state}`, `pool_sessions{state}`, `pool_proxies{state}` (scrape time)
 * - `metrics_source_up{source}`: 1 when the scrape-time read of `queue` / `pool` worked
 */
export class WorkerMetrics {
  /** The registry holding every metric of this instance. */
  readonly registry: Registry;

  private readonly checks: Counter<'status' | 'cached'>;
  private readonly checkDuration: Histogram<'cached'>;
  private readonly upstream: Counter<'endpoint' | 'status_class'>;
  private readonly throttles: Counter<'endpoint'>;
  private readonly caches: Counter<'cache' | 'result'>;
  private readonly limiterWaitHist: Histogram;
  private readonly noSession: Gauge;
  private readonly dependencyUpGauge: Gauge<'dependency'>;
  private readonly pausedGauge: Gauge<'reason'>;
  private readonly watchdogChecks: Counter<'result'>;
  /** Queue and pool gauges, refreshed at scrape time (shared with the board). */
  private readonly fleet: FleetGauges;
  private readonly queue: JobCountSource | undefined;
  private readonly poolSnapshot: (() => Promise<PoolSnapshot>) | undefined;

  constructor(opts: WorkerMetricsOptions = {}) {
    const registry = new Registry();
    this.registry = registry;
    this.queue = opts.queue;
    this.poolSnapshot = opts.poolSnapshot;
    const registers = [registry];

    this.checks = new Counter({
      name: 'storycheck_checks_finished_total',
      help: 'Checks that reached a final status, by status and whether a cache answered.',
      labelNames: ['status', 'cached'],
      registers,
    });
    this.checkDuration = new Histogram({
      name: 'storycheck_check_duration_seconds',
      help: 'Time from taking a check job to its final status, in seconds.',
      labelNames: ['cached'],
      buckets: CHECK_DURATION_BUCKETS_SECS,
      registers,
    });
    this.upstream = new Counter({
      name: 'storycheck_upstream_requests_total',
      help: 'Upstream requests sent, by endpoint and answer class (network = no answer).',
      labelNames: ['endpoint', 'status_class'],
      registers,
    });
    this.throttles = new Counter({
      name: 'storycheck_upstream_throttled_total',
      help: 'Upstream answers classified as throttled (429, "please wait"), by endpoint.',
      labelNames: ['endpoint'],
      registers,
    });
    this.caches = new Counter({
      name: 'storycheck_cache_lookups_total',
      help: 'Cache lookups, by cache and result (hit or miss).',
      labelNames: ['cache', 'result'],
      registers,
    });
    this.limiterWaitHist = new Histogram({
      name: 'storycheck_limiter_wait_seconds',
      help: 'Wait the rate limiter asked for before a request could be sent, in seconds.',
      buckets: LIMITER_WAIT_BUCKETS_SECS,
      registers,
    });
    this.noSession = new Gauge({
      name: 'storycheck_pool_no_usable_session',
      help: '1 while the pool has no session that could ever be leased (operator needed).',
      registers,
    });
    this.noSession.set(0);
    this.dependencyUpGauge = new Gauge({
      name: 'storycheck_worker_dependency_up',
      help: '1 while the dependency (redis: a write under the prefix; postgres: SELECT 1) answers its probe, 0 while it does not (the worker pauses).',
      labelNames: ['dependency'],
      registers,
    });
    this.pausedGauge = new Gauge({
      name: 'storycheck_worker_paused',
      help: '1 while the worker has stopped fetching jobs on purpose, by reason (no_session, redis, postgres).',
      labelNames: ['reason'],
      registers,
    });
    this.watchdogChecks = new Counter({
      name: 'storycheck_worker_watchdog_checks_total',
      help: 'Watchdog checks, by result (ok, paused: not judged because the worker pauses on purpose, stalled).',
      labelNames: ['result'],
      registers,
    });
    for (const dependency of ['redis', 'postgres']) this.dependencyUpGauge.set({ dependency }, 1);
    for (const reason of ['no_session', 'redis', 'postgres']) this.pausedGauge.set({ reason }, 0);
    for (const result of ['ok', 'paused', 'stalled']) this.watchdogChecks.inc({ result }, 0);
    // Pre-create label sets so a fresh process exports zeros instead of missing series
    // (rate() over a series that appears mid-way loses its first increment).
    for (const cached of ['true', 'false']) this.checkDuration.zero({ cached });
    for (const cache of ['userIds', 'results'])
      for (const result of ['hit', 'miss']) this.caches.inc({ cache, result }, 0);

    // Scrape-time gauges: set by render() from Redis just before the registry is serialised.
    this.fleet = new FleetGauges(registry, opts.collectTimeoutMs ?? COLLECT_TIMEOUT_MS);
    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: registry });
  }

  /** A check reached a final status after `durationMs` ms; `cached` when a cache answered it. */
  checkFinished(status: FinalStatus, durationMs: number, cached: boolean): void {
    const c = cached ? 'true' : 'false';
    this.checks.inc({ status, cached: c });
    this.checkDuration.observe({ cached: c }, Math.max(0, durationMs) / 1000);
  }

  /** One upstream request got an answer of `statusClass` (see {@link statusClassOf}). */
  upstreamRequest(endpoint: UpstreamEndpoint, statusClass: StatusClass): void {
    this.upstream.inc({ endpoint, status_class: statusClass });
  }

  /** The upstream throttled a request to `endpoint` (counted in addition to upstreamRequest). */
  throttled(endpoint: UpstreamEndpoint): void {
    this.throttles.inc({ endpoint });
  }

  /** One lookup in a cache, and whether it hit. */
  cacheLookup(cache: CacheName, hit: boolean): void {
    this.caches.inc({ cache, result: hit ? 'hit' : 'miss' });
  }

  /** The limiter said "wait `ms` ms" (0 when a lease was granted at once). */
  limiterWait(ms: number): void {
    this.limiterWaitHist.observe(Math.max(0, ms) / 1000);
  }

  /** The pool has (true) or again has (false) no usable session. */
  noUsableSession(active: boolean): void {
    this.noSession.set(active ? 1 : 0);
  }

  /** A dependency answered its probe (true) or stopped answering (false). */
  dependencyUp(dependency: 'redis' | 'postgres', up: boolean): void {
    this.dependencyUpGauge.set({ dependency }, up ? 1 : 0);
  }

  /** The worker paused (true) or resumed (false) fetching for `reason`. */
  paused(reason: 'no_session' | 'redis' | 'postgres', on: boolean): void {
    this.pausedGauge.set({ reason }, on ? 1 : 0);
  }

  /** One watchdog check ran, with its result. */
  watchdogCheck(result: 'ok' | 'paused' | 'stalled'): void {
    this.watchdogChecks.inc({ result });
  }

  /** Content-Type of {@link render}'s text: `text/plain; version=0.0.4; charset=utf-8`. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * Reads the scrape-time sources (queue counts and pool snapshot, in parallel, each bounded by
   * `collectTimeoutMs`), then returns every metric in Prometheus text exposition format 0.0.4.
   * Never rejects because Redis is away: the affected gauges are left out and
   * `storycheck_metrics_source_up{source}` is 0.
   */
  async render(): Promise<string> {
    await Promise.all([this.refreshQueue(), this.refreshPool()]);
    return this.registry.metrics();
  }

  private async refreshQueue(): Promise<void> {
    if (this.queue) await this.fleet.refreshQueues([this.queue]);
  }

  private async refreshPool(): Promise<void> {
    if (this.poolSnapshot) await this.fleet.refreshPool(this.poolSnapshot);
  }
}
