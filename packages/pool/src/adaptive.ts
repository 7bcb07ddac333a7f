/**
 * Adaptive budgets: learn a session budget the upstream does not tell (its real limit is
 * unknown), from few throttles. Rates are fractions of the configured one (the rate factor).
 *
 * - A throttle after a success ends a run of admitted requests: the upstream, enforcing some
 *   GCRA budget, admitted the window's n requests and refused the next one, which bounds its
 *   rate from both sides once its burst is guessed (`upstreamBurst`; adaptive.lua). The session
 *   drops to the lower bound — never by less than `caution`, never by more than `decrease` — and
 *   remembers the upper one as the rate known too high. Without a usable window (too short, or
 *   idle before the throttle) it multiplies the rate by `decrease`, or by `caution` when it was
 *   throttled near a rate already known too high.
 * - Successes raise the rate by `step` up to `caution` × that ceiling, then by `probeStep` of it
 *   at a time, slowly, so the rate settles just under the real limit instead of oscillating.
 * - Throttles later in the same streak (the upstream's penalty still running) change no rate; the
 *   penalty's length is learned (the time from a streak's first throttled request to the first
 *   one that got through) and starts each streak's cooldown, as if the upstream had sent it as
 *   Retry-After, so a session is not sent back into a running penalty over and over.
 * - What one session learns (the lowered rate, the ceiling, the penalty) is shared with every
 *   session of the same configured budget: each takes it over on its next success, slowing down
 *   at once (and skipping one send) when it runs as fast as the rate that got throttled.
 */
export interface AdaptiveOptions {
  /** The deepest drop on a throttle: the rate × this at least, in (0, 1). Default 0.5. */
  decrease: number;
  /** The rate never goes below this fraction of the configured one, in (0, 1]. Default 0.1. */
  floor: number;
  /** Successes in a row before one raise. Default 20. */
  raiseAfter: number;
  /** One raise adds this fraction of the configured rate (never above it). Default 0.1. */
  step: number;
  /**
   * In (0, 1]. A throttle lowers the rate to at most caution × the rate throttled; fast raises
   * stop at caution × the rate known too high, and a throttle at or above that mark without a
   * usable window multiplies the rate by `caution` instead of `decrease`. Default 0.9.
   */
  caution: number;
  /** Above the caution mark one raise adds this fraction of the rate known too high. Default 0.01. */
  probeStep: number;
  /** Successes in a row before one raise above the caution mark. Default 100. */
  probeAfter: number;
  /**
   * The upstream's burst as guessed, for the window's bounds: the configured SESSION_BURST
   * (openPool). 0 (default) = each session's own burst.
   */
  upstreamBurst: number;
}

const DEFAULTS: AdaptiveOptions = {
  decrease: 0.5,
  floor: 0.1,
  raiseAfter: 20,
  step: 0.1,
  caution: 0.9,
  probeStep: 0.02,
  probeAfter: 40,
  upstreamBurst: 0,
};

/**
 * The adaptive options of a pool: null when off, else the defaults overlaid with `given`.
 * Throws (via `fail`) when one is out of range.
 */
export function resolveAdaptive(
  given: boolean | Partial<AdaptiveOptions> | undefined,
  fail: (message: string) => Error,
): AdaptiveOptions | null {
  if (!given) return null;
  const a: AdaptiveOptions = { ...DEFAULTS, ...(typeof given === 'object' ? given : {}) };
  const frac = (v: number, closed: boolean) => v >= 0.001 && (closed ? v <= 1 : v < 1);
  const count = (v: number) => Number.isInteger(v) && v >= 1;
  const checks: [keyof AdaptiveOptions, boolean][] = [
    ['decrease', frac(a.decrease, false)],
    ['floor', frac(a.floor, true)],
    ['step', frac(a.step, true)],
    ['caution', frac(a.caution, true)],
    ['probeStep', frac(a.probeStep, true)],
    ['raiseAfter', count(a.raiseAfter)],
    ['probeAfter', count(a.probeAfter)],
    ['upstreamBurst', a.upstreamBurst === 0 || count(a.upstreamBurst)],
  ];
  const bad = checks.find(([, ok]) => !ok)?.[0];
  if (bad) throw fail(`adaptive ${bad} ${String(a[bad])} is out of range`);
  return a;
}

const permille = (v: number) => Math.round(v * 1000);

/** report-success.lua's ARGV[4..8] and ARGV[10] (zeros = adaptive mode off). */
export function successArgs(a: AdaptiveOptions | null): {
  before: number[];
  burst: number;
} {
  if (!a) return { before: [0, 0, 0, 0, 0], burst: 0 };
  return {
    before: [
      a.raiseAfter,
      permille(a.step),
      permille(a.caution),
      permille(a.probeStep),
      a.probeAfter,
    ],
    burst: a.upstreamBurst,
  };
}

/** report-throttled.lua's ARGV[10..12] and ARGV[14] (zeros = adaptive mode off). */
export function throttleArgs(a: AdaptiveOptions | null): { before: number[]; burst: number } {
  if (!a) return { before: [0, 0, 0], burst: 0 };
  return {
    before: [permille(a.decrease), Math.max(1, permille(a.floor)), permille(a.caution)],
    burst: a.upstreamBurst,
  };
}
