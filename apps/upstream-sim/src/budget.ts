/**
 * Upstream-side budgets: GCRA (the generic cell rate algorithm) per key, the way a rate limiter
 * in front of Instagram would count a session or a client IP, plus a penalty period after a
 * violation.
 *
 * GCRA keeps one number per key, the theoretical arrival time (TAT). With emission interval
 * T = periodMs / count and tolerance τ = (burst − 1)·T, a request at `now` is admitted when
 * max(TAT, now) − now ≤ τ, and then TAT = max(TAT, now) + T. From idle that admits `burst`
 * requests back to back, then one every T: in any window W at most burst + floor(W / T).
 * A rejected request does not move TAT.
 */
import type { Budget } from './scenario.js';

/** The verdict on one request for one key. */
export type BudgetVerdict =
  /** Within budget (or no budget): admitted and counted. */
  | 'ok'
  /** Over budget just now: the penalty starts. */
  | 'violation'
  /** Still inside the penalty of an earlier violation. */
  | 'penalty';

interface KeyState {
  tatMs: number;
  penaltyUntilMs: number;
}

/**
 * GCRA state for a family of keys (all sessions, or all client IPs). The budget is passed on
 * every call, so a runtime change of budgets applies at once while the TAT is kept.
 */
export class BudgetBook {
  private readonly keys = new Map<string, KeyState>();

  /**
   * Decides one request of `key` at `nowMs` (milliseconds on any monotonic-enough clock).
   * `budget` null means unlimited (always `ok`, nothing stored). During a penalty every request
   * is refused; when `penaltyExtends` each one restarts the penalty from `nowMs`.
   */
  take(
    key: string,
    nowMs: number,
    budget: Budget | null,
    penaltyMs: number,
    penaltyExtends: boolean,
  ): BudgetVerdict {
    if (budget === null) return 'ok';
    let state = this.keys.get(key);
    if (!state) {
      state = { tatMs: nowMs, penaltyUntilMs: 0 };
      this.keys.set(key, state);
    }
    if (nowMs < state.penaltyUntilMs) {
      if (penaltyExtends) state.penaltyUntilMs = nowMs + penaltyMs;
      return 'penalty';
    }
    const intervalMs = budget.rate.periodMs / budget.rate.count;
    const toleranceMs = (budget.burst - 1) * intervalMs;
    const tat = Math.max(state.tatMs, nowMs);
    // A tiny epsilon absorbs float error of periodMs / count (e.g. 1000 / 3).
    if (tat - nowMs > toleranceMs + 1e-6) {
      if (penaltyMs > 0) state.penaltyUntilMs = nowMs + penaltyMs;
      return 'violation';
    }
    state.tatMs = tat + intervalMs;
    return 'ok';
  }

  /** Penalty end of `key`, milliseconds, or 0 when it was never punished. */
  penaltyUntilMs(key: string): number {
    return this.keys.get(key)?.penaltyUntilMs ?? 0;
  }

  /** Forgets every key (budgets full again, penalties lifted). */
  clear(): void {
    this.keys.clear();
  }
}
