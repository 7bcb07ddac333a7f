import type { ResultRecord } from '@storycheck/model';

/**
 * How `storycheck results` and the board's downloads write a batch's results: one shared
 * formatter, so a CSV or NDJSON file from either is byte-for-byte the same records.
 */

/** Output formats of results. */
export const RESULT_FORMATS = ['csv', 'json', 'ndjson'] as const;
/** One of {@link RESULT_FORMATS}. */
export type ResultFormat = (typeof RESULT_FORMATS)[number];

/** CONTRACT.md field order (the CSV header, and the key order of each JSON record). */
export const RESULT_FIELDS = [
  'username',
  'status',
  'storyCount',
  'latestStoryAt',
  'expiresAt',
  'userId',
  'checkedAt',
  'attempts',
  'cached',
  'error',
] as const;

/** Content-Type of each format, for HTTP downloads. */
export const RESULT_CONTENT_TYPES: Record<ResultFormat, string> = {
  csv: 'text/csv; charset=utf-8',
  json: 'application/json; charset=utf-8',
  ndjson: 'application/x-ndjson; charset=utf-8',
};

/** One CSV cell: empty for null, quoted when it holds `"`, `,`, CR or LF (RFC 4180). */
export function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** A record with exactly the CONTRACT.md fields, in their order. */
export function resultFields(r: ResultRecord): Record<(typeof RESULT_FIELDS)[number], unknown> {
  return {
    username: r.username,
    status: r.status,
    storyCount: r.storyCount,
    latestStoryAt: r.latestStoryAt,
    expiresAt: r.expiresAt,
    userId: r.userId,
    checkedAt: r.checkedAt,
    attempts: r.attempts,
    cached: r.cached,
    error: r.error,
  };
}

/**
 * The text of a results file, in pieces: the CSV header then one line per record; one JSON
 * line per record (NDJSON); or a JSON array, one record per line. Pieces are small; the caller
 * writes them with backpressure.
 */
export async function* formatResults(
  records: AsyncIterable<ResultRecord>,
  format: ResultFormat,
): AsyncGenerator<string> {
  if (format === 'csv') yield `${RESULT_FIELDS.join(',')}\n`;
  if (format === 'json') yield '[';
  let first = true;
  for await (const r of records) {
    const rec = resultFields(r);
    if (format === 'csv') yield `${RESULT_FIELDS.map((f) => csvCell(rec[f])).join(',')}\n`;
    else if (format === 'ndjson') yield `${JSON.stringify(rec)}\n`;
    else {
      yield `${first ? '\n' : ',\n'}${JSON.stringify(rec)}`;
      first = false;
    }
  }
  if (format === 'json') yield first ? ']\n' : '\n]\n';
}
