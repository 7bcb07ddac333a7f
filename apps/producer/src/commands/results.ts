import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { batchExists, streamResults, type ResultRecord } from '@storycheck/db';
import { UsageError, type Context } from '../context.js';

/** Output formats of `results`. */
export const RESULT_FORMATS = ['csv', 'json', 'ndjson'] as const;
/** One of {@link RESULT_FORMATS}. */
export type ResultFormat = (typeof RESULT_FORMATS)[number];

/** CONTRACT.md field order. */
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

function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * `storycheck results <batchId> [--format] [--output FILE]`: streams one record per accepted
 * username in input order. With --output the file appears only when complete (written to a
 * temporary name, then renamed), so a failure never leaves half a file.
 */
export async function results(
  ctx: Context,
  batchId: string,
  opts: { format?: string; output?: string },
): Promise<void> {
  const format = (opts.format ?? 'csv') as ResultFormat;
  if (!RESULT_FORMATS.includes(format)) {
    throw new UsageError(
      `--format must be one of ${RESULT_FORMATS.join(', ')}, got "${opts.format}"`,
    );
  }
  if (!(await batchExists(ctx.db.db, batchId))) throw new UsageError(`no batch ${batchId}`);
  const tmp = opts.output ? `${opts.output}.partial-${process.pid}` : undefined;
  const out: Writable = tmp ? createWriteStream(tmp) : process.stdout;
  const write = async (s: string) => {
    if (!out.write(s)) await once(out, 'drain');
  };
  try {
    if (format === 'csv') await write(`${RESULT_FIELDS.join(',')}\n`);
    if (format === 'json') await write('[');
    let first = true;
    for await (const r of streamResults(ctx.db.db, batchId)) {
      const rec = pick(r);
      if (format === 'csv') await write(`${RESULT_FIELDS.map((f) => csvCell(rec[f])).join(',')}\n`);
      else if (format === 'ndjson') await write(`${JSON.stringify(rec)}\n`);
      else {
        await write(`${first ? '\n' : ',\n'}${JSON.stringify(rec)}`);
        first = false;
      }
    }
    if (format === 'json') await write(first ? ']\n' : '\n]\n');
    if (tmp && opts.output) {
      out.end();
      await once(out, 'finish');
      await rename(tmp, opts.output);
    }
  } catch (e) {
    if (tmp) {
      out.destroy();
      await rm(tmp, { force: true });
    }
    throw e;
  }
}

function pick(r: ResultRecord): Record<(typeof RESULT_FIELDS)[number], unknown> {
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
