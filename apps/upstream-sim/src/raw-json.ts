/**
 * JSON serialisation that can emit integers beyond Number.MAX_SAFE_INTEGER as bare numbers.
 * Instagram writes media `pk` as a 19-digit JSON number; `JSON.stringify` of a JS number would
 * round it, so such values are carried as {@link RawNumber} (their decimal digits) instead.
 */

/** A JSON number written verbatim from its decimal digits (e.g. a 19-digit media pk). */
export class RawNumber {
  /** @param digits an optionally negative decimal integer, e.g. "3790000000000000001". */
  constructor(readonly digits: string) {
    if (!/^-?(0|[1-9]\d*)$/.test(digits)) throw new TypeError(`not an integer literal: ${digits}`);
  }
}

/** Values {@link stringifyJson} accepts: plain JSON data plus {@link RawNumber}. */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | RawNumber
  | readonly JsonValue[]
  | { readonly [key: string]: JsonValue | undefined };

/**
 * Compact JSON text of `value`, like JSON.stringify (undefined object fields are skipped),
 * except that {@link RawNumber}s are written as their digits, unquoted.
 */
export function stringifyJson(value: JsonValue): string {
  if (value === null) return 'null';
  if (value instanceof RawNumber) return value.digits;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError(`non-finite number in JSON: ${value}`);
    return JSON.stringify(value);
  }
  if (typeof value === 'string' || typeof value === 'boolean') return JSON.stringify(value);
  if (Array.isArray(value)) {
    return `[${(value as readonly JsonValue[]).map((v) => stringifyJson(v)).join(',')}]`;
  }
  const parts: string[] = [];
  for (const [key, v] of Object.entries(
    value as { readonly [key: string]: JsonValue | undefined },
  )) {
    if (v === undefined) continue;
    parts.push(`${JSON.stringify(key)}:${stringifyJson(v)}`);
  }
  return `{${parts.join(',')}}`;
}
