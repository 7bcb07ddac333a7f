import type { Dependency } from './outcomes.js';

/** A probe of one dependency: resolves when it can do the worker's work, rejects otherwise. */
export type DependencyProbe = () => Promise<void>;

/** Options of {@link DependencyMonitor}. */
export interface DependencyMonitorOptions {
  /**
   * One probe per dependency. Redis should be probed with a write (e.g. SET … PX under the
   * prefix): a PING still answers when Redis is full (OOM) or a read-only replica.
   */
  probes: Record<Dependency, DependencyProbe>;
  /** Probe period while every dependency is up, ms. Default 5 000. */
  everyMs?: number;
  /** Probe period while one is down, ms (how soon the worker resumes). Default 1 000. */
  downEveryMs?: number;
  /** A probe that has not answered within this many ms counts as down. Default 2 000. */
  timeoutMs?: number;
  /** Called when a dependency goes down (with the probe's error line) or comes back up. */
  onChange: (dependency: Dependency, up: boolean, error?: string) => void;
}

const DEPENDENCIES: Dependency[] = ['redis', 'postgres'];

/**
 * Knows whether the worker's dependencies (Redis, Postgres) can do its work right now: it
 * probes them periodically, and at once when a job reports an infrastructure error, and tells
 * `onChange` about every transition. The worker pauses fetching jobs while one is down and
 * resumes by itself when both are back; `/readyz` and the `storycheck_worker_dependency_up`
 * gauge read the same state. Probes never overlap: a probe asked for while one runs joins it.
 */
export class DependencyMonitor {
  private readonly up: Record<Dependency, boolean> = { redis: true, postgres: true };
  private running: Promise<void> | null = null;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly opts: DependencyMonitorOptions) {}

  /** Starts the periodic probes (the first one now); resolves after the first round. */
  async start(): Promise<void> {
    await this.check();
    this.schedule();
  }

  /** Is `dependency` up according to the latest probe? */
  isUp(dependency: Dependency): boolean {
    return this.up[dependency];
  }

  /** True when every dependency answered its latest probe. */
  allUp(): boolean {
    return DEPENDENCIES.every((d) => this.up[d]);
  }

  /** The dependencies down now. */
  down(): Dependency[] {
    return DEPENDENCIES.filter((d) => !this.up[d]);
  }

  /** Probes every dependency now (joins a round in flight); never rejects. */
  check(): Promise<void> {
    this.running ??= this.round().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  /** Stops probing. Idempotent. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.stopped) return;
    const every = this.allUp() ? (this.opts.everyMs ?? 5_000) : (this.opts.downEveryMs ?? 1_000);
    this.timer = setTimeout(() => {
      void this.check().finally(() => this.schedule());
    }, every);
    this.timer.unref();
  }

  private async round(): Promise<void> {
    const timeoutMs = this.opts.timeoutMs ?? 2_000;
    await Promise.all(
      DEPENDENCIES.map(async (d) => {
        const error = await withTimeout(this.opts.probes[d], timeoutMs);
        if (this.stopped) return;
        const up = error === null;
        if (up === this.up[d]) return;
        this.up[d] = up;
        this.opts.onChange(d, up, error ?? undefined);
      }),
    );
  }
}

/** Runs a probe with a deadline: null when it answered, else the first line of its error. */
async function withTimeout(probe: DependencyProbe, timeoutMs: number): Promise<string | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`no answer within ${timeoutMs} ms`), timeoutMs);
  });
  try {
    return await Promise.race([
      Promise.resolve()
        .then(probe)
        .then(
          () => null,
          (e: unknown) => firstLine(e),
        ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** First line of an error's message (no stack), for one-line logs. */
export function firstLine(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return (m.split('\n')[0] ?? '').slice(0, 300);
}
