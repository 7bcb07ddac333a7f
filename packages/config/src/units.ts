/**
 * Parsers for the units operators write in the environment: durations (`500ms`, `60s`, `11m`,
 * `7d`) and rates (`200/11m`). Kept separate from the schema so the CLI can reuse them.
 */

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses a duration like `60s` or `7d` into integer milliseconds; throws a one-line Error. */
export function parseDurationMs(text: string): number {
  const m = DURATION.exec(text.trim());
  if (!m)
    throw new Error(`"${text}" is not a duration (use a number with ms, s, m, h or d, e.g. 60s)`);
  const ms = Math.round(Number(m[1]) * UNIT_MS[m[2] as string]!);
  if (!Number.isSafeInteger(ms)) throw new Error(`"${text}" is too large`);
  return ms;
}

/** A budget: `count` requests per `periodMs`; the emission interval is periodMs / count. */
export interface Rate {
  /** Requests allowed per period. */
  count: number;
  /** Period length in milliseconds. */
  periodMs: number;
}

/** Parses `N/duration` (`10/1s`, `200/11m`) into a {@link Rate}; throws a one-line Error. */
export function parseRate(text: string): Rate {
  const [n, d, ...rest] = text.trim().split('/');
  if (!n || !d || rest.length)
    throw new Error(`"${text}" is not a rate (use N/duration, e.g. 200/11m)`);
  if (!/^\d+$/.test(n) || Number(n) < 1)
    throw new Error(`"${text}": the count must be a positive integer`);
  const periodMs = parseDurationMs(d);
  if (periodMs < 1) throw new Error(`"${text}": the period must be at least 1ms`);
  return { count: Number(n), periodMs };
}

/** Formats a Rate back to `N/duration` for logs and CLI output. */
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
