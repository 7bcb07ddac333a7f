import type { BatchStatus } from '@storycheck/db';

/**
 * ETAs of the running batches for the board's metrics, from the batch rows alone (no scan of
 * items): each scrape notes every running batch's `done`; the ETA is the items left divided by
 * the rate over the notes of the last `windowMs` (the average since the batch started while
 * there is less than `minSpanMs` of notes). A batch that finished nothing over a full window
 * has an infinite ETA: it is stuck.
 */

/** One running batch's figures at one scrape. */
export interface BatchEta {
  batchId: string;
  /** Seconds since the batch started. */
  elapsedS: number;
  /** Seconds until it should finish at its recent rate; Infinity when it is not moving. */
  etaS: number;
  /**
   * Its projected duration (elapsed + ETA) over the shortest projection seen for it (at least
   * `minProjectionS`): 1 = on plan, 4 = it will take four times as long as it once promised.
   */
  overrun: number;
  /** True when it finished nothing over a whole window. */
  stuck: boolean;
}

/** Options of {@link BatchEtaTracker}. */
export interface BatchEtaOptions {
  /** Rate window, ms. Default 300 000 (5 min). */
  windowMs?: number;
  /** Least span of notes for a windowed rate, ms. Default 30 000. */
  minSpanMs?: number;
  /** Floor of the projection an overrun is measured against, s. Default 600. */
  minProjectionS?: number;
}

/** Remembers recent `done` counts of running batches and turns them into ETAs. */
export class BatchEtaTracker {
  private readonly notes = new Map<string, Array<{ at: number; done: number }>>();
  private readonly bestProjectionS = new Map<string, number>();
  private readonly windowMs: number;
  private readonly minSpanMs: number;
  private readonly minProjectionS: number;

  constructor(opts: BatchEtaOptions = {}) {
    this.windowMs = opts.windowMs ?? 300_000;
    this.minSpanMs = opts.minSpanMs ?? 30_000;
    this.minProjectionS = opts.minProjectionS ?? 600;
  }

  /** Notes the batches (only running ones count) at `nowMs` and returns their ETAs. */
  update(batches: readonly BatchStatus[], nowMs: number): BatchEta[] {
    const out: BatchEta[] = [];
    const seen = new Set<string>();
    for (const b of batches) {
      if (b.state !== 'running' || b.startedAt === null) continue;
      seen.add(b.batchId);
      const started = Date.parse(b.startedAt);
      const list = this.notes.get(b.batchId) ?? [];
      list.push({ at: nowMs, done: b.done });
      // Keep the newest note at or before the window's start, so the window stays full.
      while (list.length > 2 && list[1]!.at <= nowMs - this.windowMs) list.shift();
      this.notes.set(b.batchId, list);
      const elapsedMs = Math.max(0, nowMs - started);
      const first = list[0]!;
      const span = nowMs - first.at;
      const left = Math.max(0, b.total - b.done);
      let perMs: number;
      if (span >= this.minSpanMs) perMs = (b.done - first.done) / span;
      else perMs = elapsedMs > 0 ? b.done / elapsedMs : 0;
      const stuck = span >= this.windowMs && b.done === first.done && left > 0;
      const etaS = left === 0 ? 0 : stuck || perMs <= 0 ? Infinity : left / perMs / 1_000;
      const elapsedS = elapsedMs / 1_000;
      const projection = elapsedS + etaS;
      const best = Math.min(this.bestProjectionS.get(b.batchId) ?? Infinity, projection);
      this.bestProjectionS.set(b.batchId, best);
      const overrun = Number.isFinite(best) ? projection / Math.max(best, this.minProjectionS) : 1; // never projected yet: no promise to break
      out.push({ batchId: b.batchId, elapsedS, etaS, overrun, stuck });
    }
    for (const id of [...this.notes.keys()]) if (!seen.has(id)) this.notes.delete(id);
    for (const id of [...this.bestProjectionS.keys()])
      if (!seen.has(id)) this.bestProjectionS.delete(id);
    return out;
  }
}
