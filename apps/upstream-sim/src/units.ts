/**
 * Durations (`500ms`, `60s`, `11m`, `1h`, `1d`) and rates (`200/11m`) as scenario files and flags
 * write them. Deliberately a copy of packages/config/src/units.ts, not shared with it: the
 * simulator must not inherit the parsing bugs of the code it is there to test (and it stays free
 * of the product's packages). Its errors are RangeErrors, as every scenario error here is.
 */

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses a duration like `60s` or `11m` into integer milliseconds; throws a one-line RangeError. */
export function parseDurationMs(text: string): number {
  const m = DURATION.exec(text.trim());
  const unitMs = m?.[2] === undefined ? undefined : UNIT_MS[m[2]];
  if (!m || unitMs === undefined) {
    throw new RangeError(`"${text}" is not a duration (a number with ms, s, m, h or d, e.g. 60s)`);
  }
  const ms = Math.round(Number(m[1]) * unitMs);
  if (!Number.isSafeInteger(ms)) throw new RangeError(`"${text}" is too large`);
  return ms;
}

/** A budget's sustained rate: `count` requests per `periodMs`; one request every periodMs/count. */
export interface Rate {
  /** Requests allowed per period, ≥ 1. */
  count: number;
  /** Period length in milliseconds, ≥ 1. */
  periodMs: number;
}

/** Parses `N/duration` (`10/1s`, `200/11m`) into a {@link Rate}; throws a one-line RangeError. */
export function parseRate(text: string): Rate {
  const [n, d, ...rest] = text.trim().split('/');
  if (n === undefined || d === undefined || rest.length > 0 || !/^\d+$/.test(n)) {
    throw new RangeError(`"${text}" is not a rate (N/duration, e.g. 200/11m)`);
  }
  const count = Number(n);
  if (count < 1) throw new RangeError(`"${text}": the count must be at least 1`);
  const periodMs = parseDurationMs(d);
  if (periodMs < 1) throw new RangeError(`"${text}": the period must be at least 1ms`);
  return { count, periodMs };
}

/** Formats a {@link Rate} back to `N/duration` (the largest whole unit), for admin output. */
export function formatRate(rate: Rate): string {
  for (const [unit, ms] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1_000],
  ] as const) {
    if (rate.periodMs % ms === 0) return `${rate.count}/${rate.periodMs / ms}${unit}`;
  }
  return `${rate.count}/${rate.periodMs}ms`;
}
