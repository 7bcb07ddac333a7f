import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import {
  RESULT_FORMATS,
  batchExists,
  formatResults,
  streamResults,
  type ResultFormat,
} from '@storycheck/db';
import { UsageError, type Context } from '../context.js';

/** Output formats of `results` (shared with the board's downloads, in @storycheck/db). */
export { RESULT_FORMATS } from '@storycheck/db';

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
    for await (const piece of formatResults(streamResults(ctx.db.db, batchId), format))
      await write(piece);
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
