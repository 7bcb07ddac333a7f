import type { Db } from './client.js';
import {
  appendBatchLog,
  recordResults,
  type BatchLogEntry,
  type RecordOutcome,
  type ResultEntry,
} from './batches.js';

/** Options of {@link ResultRecorder}. */
export interface ResultRecorderOptions {
  /** Most results committed in one transaction. Default 500. */
  maxGroup?: number;
  /** Called when a group's transaction failed and its entries are retried one by one. */
  onGroupError?: (error: Error, size: number) => void;
}

interface Pending {
  entry: ResultEntry;
  resolve: (o: RecordOutcome) => void;
  reject: (e: unknown) => void;
}

interface PendingLog {
  entries: BatchLogEntry[];
  resolve: () => void;
  reject: (e: unknown) => void;
}

/**
 * Group commit for a worker's results. Every concurrent job calls {@link record} and awaits
 * its own outcome, exactly as with {@link recordResult}, but the results that arrive while a
 * transaction is in flight are committed together in the next one (natural batching: no timer,
 * no added latency when idle; groups grow with load). One commit — one WAL flush and one turn
 * on the batch row's lock — then serves dozens of checks instead of one, which is what bounded
 * a worker at ~100 checks/s against a local Postgres. A job's promise settles only after its
 * row is committed, so a job is never acknowledged before its result is durable (invariant 2).
 * If a group's transaction fails, its entries are retried one transaction each, so one bad
 * entry fails only its own job.
 */
export class ResultRecorder {
  private readonly maxGroup: number;
  private queue: Pending[] = [];
  private logs: PendingLog[] = [];
  private running: Promise<void> | null = null;

  /** `db`: the worker's pool; one transaction at a time is taken from it. */
  constructor(
    private readonly db: Db,
    private readonly options: ResultRecorderOptions = {},
  ) {
    this.maxGroup = options.maxGroup ?? 500;
  }

  /** Queues one result; resolves once it is committed (see {@link recordResults}). */
  record(entry: ResultEntry): Promise<RecordOutcome> {
    return new Promise((resolve, reject) => {
      this.queue.push({ entry, resolve, reject });
      this.kick();
    });
  }

  /** Appends batch-log rows (delays, retries) in the next group's separate INSERT. */
  log(entries: BatchLogEntry[]): Promise<void> {
    if (entries.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.logs.push({ entries, resolve, reject });
      this.kick();
    });
  }

  /** Results and log rows queued and not yet committed. */
  get pending(): number {
    return this.queue.length + this.logs.length;
  }

  /** Resolves when everything queued so far is committed (or has failed). */
  async drain(): Promise<void> {
    while (this.running) await this.running;
  }

  private kick(): void {
    if (this.running) return; // the loop picks the new entries up when the current group ends
    this.running = (async () => {
      // One macrotask turn: lets every job that finishes in this tick join the first group.
      await new Promise<void>((r) => setImmediate(r));
      while (this.queue.length || this.logs.length) await this.flushOnce();
    })().finally(() => {
      this.running = null;
      if (this.queue.length || this.logs.length) this.kick();
    });
  }

  private async flushOnce(): Promise<void> {
    const group = this.queue.splice(0, this.maxGroup);
    const logs = this.logs.splice(0);
    if (group.length) {
      try {
        const outcomes = await recordResults(
          this.db,
          group.map((p) => p.entry),
        );
        group.forEach((p, i) => p.resolve(outcomes[i]!));
      } catch (err) {
        if (group.length === 1) group[0]!.reject(err);
        else {
          this.options.onGroupError?.(err as Error, group.length);
          for (const p of group) {
            await recordResults(this.db, [p.entry]).then(([o]) => p.resolve(o!), p.reject);
          }
        }
      }
    }
    if (logs.length) {
      try {
        await appendBatchLog(
          this.db,
          logs.flatMap((l) => l.entries),
        );
        for (const l of logs) l.resolve();
      } catch (err) {
        for (const l of logs) l.reject(err);
      }
    }
  }
}
