/**
 * The worker's watchdog. BullMQ has had bugs where a worker silently stops consuming after a
 * reconnect: the process looks alive, jobs pile up, nothing fails. The watchdog notices "jobs
 * are waiting but this worker has neither taken nor finished one for `idleMs`" and calls
 * `onStall` once, so the worker can log why and exit non-zero for its supervisor to restart it.
 *
 * "Jobs waiting" is measured from Redis (never from the worker's own view, which is what may be
 * wrong). A failed or slow measurement means "cannot tell" and does not fire by itself; but when
 * every measurement has failed for `idleMs` while nothing moved, Redis is unreachable from this
 * process and it fires with a reason that says so.
 */

/** Default for {@link WatchdogOptions.checkEveryMs}: idleMs / 5, between 1 s and 30 s. */
export function defaultCheckEveryMs(idleMs: number): number {
  return Math.min(30_000, Math.max(1_000, Math.floor(idleMs / 5)));
}

/** Options of {@link startWatchdog}. */
export interface WatchdogOptions {
  /**
   * How long jobs may wait while this worker takes and finishes none before it counts as
   * stalled, ms (WORKER_WATCHDOG_IDLE; suggested default 5 min: longer than any single check,
   * whose requests time out after REQUEST_TIMEOUT, and than a throttle delay). 0 disables it.
   */
  idleMs: number;
  /** How often Redis is asked, ms. Default {@link defaultCheckEveryMs}. */
  checkEveryMs?: number;
  /**
   * Jobs waiting to be taken, read from Redis, e.g.
   * `async () => { const c = await queue.getJobCounts('waiting', 'prioritized'); return (c.waiting ?? 0) + (c.prioritized ?? 0); }`.
   * A rejection, or no answer within `measureTimeoutMs`, counts as "cannot tell".
   */
  jobsWaiting: () => Promise<number>;
  /** Called at most once, with a one-line reason. The watchdog stops itself first. */
  onStall: (reason: string) => void;
  /**
   * How long one measurement may take before it counts as failed, ms. Default: checkEveryMs,
   * at most 5 s. (A worker's Redis connection queues commands while disconnected and never
   * rejects them, so without a bound a cut connection would look like "still asking".)
   */
  measureTimeoutMs?: number;
  /**
   * True while the worker has stopped fetching on purpose (no usable session, Redis or Postgres
   * down): a pause is not a stall, so while it returns true the watchdog does not judge, and the
   * worker gets a full `idleMs` after it resumes. Default: never paused.
   */
  pausedOnPurpose?: () => boolean;
  /** Called after every check with its result (for a metric). */
  onCheck?: (result: 'ok' | 'paused' | 'stalled') => void;
  /** Clock in ms. Default Date.now. */
  now?: () => number;
}

/** What {@link startWatchdog} returns. */
export interface Watchdog {
  /** Call when a job is taken or finished (completed, failed, delayed): the worker is moving. */
  touch(): void;
  /** Stops checking. Idempotent; an in-flight measurement is ignored. */
  stop(): void;
}

/** Seconds, one decimal at most, for reasons. */
const secs = (ms: number): string => `${Math.round(ms / 100) / 10}s`;

/**
 * Starts the watchdog: every `checkEveryMs` it reads the waiting count from Redis and fires
 * `onStall` when either
 * - jobs have been waiting, and nothing was taken or finished, for `idleMs` (measured from the
 *   later of the last touch and the first measurement that saw jobs waiting, so an idle worker
 *   whose queue just filled up gets its full `idleMs`), or
 * - every measurement failed for `idleMs`, and nothing was taken or finished meanwhile.
 * With `idleMs` 0 it never fires, nor while `pausedOnPurpose()` is true.
 */
export function startWatchdog(opts: WatchdogOptions): Watchdog {
  const now = opts.now ?? Date.now;
  const idleMs = opts.idleMs;
  const everyMs = opts.checkEveryMs ?? defaultCheckEveryMs(idleMs);
  const measureTimeoutMs = opts.measureTimeoutMs ?? Math.min(everyMs, 5_000);

  let lastMoveAt = now();
  /** First successful measurement of the current "jobs waiting" streak; null when none wait. */
  let waitingSince: number | null = null;
  /** First failed measurement of the current failure streak; null after a success. */
  let failingSince: number | null = null;
  let lastError = '';
  let stopped = idleMs <= 0;
  let timer: NodeJS.Timeout | undefined;

  /** Paused on purpose: nothing is expected to move. Starts every clock afresh; true if so. */
  const paused = (): boolean => {
    if (!opts.pausedOnPurpose?.()) return false;
    lastMoveAt = now();
    waitingSince = null;
    failingSince = null;
    opts.onCheck?.('paused');
    return true;
  };

  const fire = (reason: string): void => {
    // A pause that began while the measurement ran is not a stall either.
    if (paused()) return;
    opts.onCheck?.('stalled');
    stop();
    opts.onStall(reason);
  };

  const measure = async (): Promise<number> => {
    let t: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      t = setTimeout(
        () => reject(new Error(`no answer within ${measureTimeoutMs} ms`)),
        measureTimeoutMs,
      );
    });
    try {
      return await Promise.race([Promise.resolve().then(opts.jobsWaiting), timeout]);
    } finally {
      clearTimeout(t);
    }
  };

  const check = async (): Promise<void> => {
    if (paused()) return;
    let waiting: number;
    try {
      waiting = await measure();
    } catch (e) {
      if (stopped) return;
      lastError = (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';
      const t = now();
      failingSince ??= t;
      const since = Math.max(failingSince, lastMoveAt);
      if (t - since < idleMs) opts.onCheck?.('ok');
      else {
        fire(
          `watchdog: Redis unreachable: cannot read the queue's waiting count for ${secs(t - failingSince)} ` +
            `and no job taken or finished for ${secs(t - lastMoveAt)} (limit ${secs(idleMs)}; last error: ${lastError})`,
        );
      }
      return;
    }
    if (stopped) return;
    const t = now();
    failingSince = null;
    if (!(waiting > 0)) {
      waitingSince = null;
      opts.onCheck?.('ok');
      return;
    }
    waitingSince ??= t;
    const since = Math.max(waitingSince, lastMoveAt);
    if (t - since < idleMs) opts.onCheck?.('ok');
    else {
      fire(
        `watchdog: ${waiting} job(s) waiting but none taken or finished for ${secs(t - since)} ` +
          `(limit ${secs(idleMs)}); the worker stopped consuming`,
      );
    }
  };

  const schedule = (): void => {
    if (stopped) return;
    timer = setTimeout(() => {
      void check().finally(schedule);
    }, everyMs);
    // The watchdog alone must not keep a stopping process alive.
    timer.unref();
  };

  function stop(): void {
    stopped = true;
    clearTimeout(timer);
  }

  schedule();
  return {
    touch() {
      lastMoveAt = now();
    },
    stop,
  };
}
