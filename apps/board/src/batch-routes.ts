import { once } from 'node:events';
import type { Express, Request, Response } from 'express';
import {
  RESULT_CONTENT_TYPES,
  batchExists,
  batchFailures,
  batchItemsPage,
  batchLogErrors,
  batchThroughput,
  formatResults,
  getBatchStatus,
  streamResults,
  type Db,
  type ResultFormat,
} from '@storycheck/db';
import { coerceError, type Logger } from '@storycheck/logger';
import type { ResultRecord } from '@storycheck/model';
import { batchIdSchema } from '@storycheck/queue';
import {
  ITEM_FILTERS,
  ITEMS_PER_PAGE,
  bucketFor,
  renderBatchPage,
  type BatchPageData,
} from './batch-page.js';
import { renderErrorPage } from './pages.js';
import { within } from './within.js';

/** Where `/batches/:id` and its downloads read from. */
export interface BatchDetailSource {
  /** Everything the page shows, or null when there is no such batch. */
  page(
    batchId: string,
    opts: { filter: BatchPageData['filter']; page: number },
  ): Promise<BatchPageData | null>;
  /** True when the batch exists. */
  exists(batchId: string): Promise<boolean>;
  /** The batch's result records in input order (what `storycheck results` formats). */
  results(batchId: string): AsyncIterable<ResultRecord>;
}

/** The page's data straight from Postgres: five bounded queries, run in parallel. */
export function dbBatchDetail(db: Db): BatchDetailSource {
  return {
    async page(batchId, { filter, page }) {
      const status = await getBatchStatus(db, batchId);
      if (!status) return null;
      const start = status.startedAt ? Date.parse(status.startedAt) : Date.parse(status.createdAt);
      const end = status.finishedAt ? Date.parse(status.finishedAt) : Date.now();
      const bucketMs = bucketFor(end - start);
      const [buckets, failures, logErrors, items] = await Promise.all([
        batchThroughput(db, batchId, bucketMs),
        batchFailures(db, batchId),
        batchLogErrors(db, batchId, 50),
        batchItemsPage(db, batchId, {
          status: filter,
          offset: page * ITEMS_PER_PAGE,
          limit: ITEMS_PER_PAGE,
        }),
      ]);
      return {
        status,
        throughput: { bucketMs, buckets },
        failures,
        logErrors,
        items,
        filter,
        page,
      };
    },
    exists: (batchId) => batchExists(db, batchId),
    results: (batchId) => streamResults(db, batchId),
  };
}

const DOWNLOAD_FORMATS: readonly ResultFormat[] = ['csv', 'ndjson', 'json'];
/** Bytes gathered before one write to the socket. */
const WRITE_CHUNK = 64 * 1024;
/** Highest page number accepted (×50 items). */
const MAX_PAGE = 1_000_000;

/** Streams a batch's results to `res` with backpressure; a failure cuts the download. */
async function sendResults(
  res: Response,
  source: BatchDetailSource,
  id: string,
  format: ResultFormat,
  logger: Logger,
): Promise<void> {
  let closed = false;
  res.once('close', () => (closed = true));
  const flush = async (text: string) => {
    if (!res.write(text) && !closed) await Promise.race([once(res, 'drain'), once(res, 'close')]);
  };
  try {
    let buf = '';
    for await (const piece of formatResults(source.results(id), format)) {
      if (closed) return;
      buf += piece;
      if (buf.length >= WRITE_CHUNK) {
        await flush(buf);
        buf = '';
      }
    }
    if (buf) await flush(buf);
    res.end();
  } catch (err) {
    logger.warn('results download failed', { error: coerceError(err).message });
    res.destroy(coerceError(err));
  }
}

/**
 * Mounts `GET /batches/:id` (the page) and `GET /batches/:id/results.{csv,ndjson,json}` (the
 * downloads, streamed with backpressure, formatted by the same code as `storycheck results`).
 * An id that is not a UUID or no batch is a 404; a Postgres failure is a 503 page (or a cut
 * download: the client sees an incomplete transfer, never a short file that looks whole).
 */
export function mountBatchRoutes(
  app: Express,
  opts: { source?: BatchDetailSource | undefined; logger: Logger; timeoutMs: number },
): void {
  const notFound = (res: Response, message: string) =>
    res
      .status(404)
      .set('cache-control', 'no-store')
      .type('html')
      .send(renderErrorPage('/batches', message, '../'));

  app.get('/batches/:id', async (req: Request, res: Response) => {
    const source = opts.source;
    const id = String(req.params.id);
    if (!source) return notFound(res, 'Batches are not configured on this board.');
    if (!batchIdSchema.safeParse(id).success) return notFound(res, 'No such batch.');
    const f = typeof req.query.status === 'string' ? req.query.status : undefined;
    const filter = (ITEM_FILTERS as readonly string[]).includes(f ?? '')
      ? (f as BatchPageData['filter'])
      : undefined;
    const asked = Number(typeof req.query.page === 'string' ? req.query.page : 0);
    const page = Number.isInteger(asked) && asked >= 0 && asked <= MAX_PAGE ? asked : 0;
    let data: BatchPageData | null;
    try {
      data = await within(source.page(id, { filter, page }), opts.timeoutMs);
    } catch (err) {
      opts.logger.warn('batch page: cannot read the batch', { error: coerceError(err).message });
      res
        .status(503)
        .set('cache-control', 'no-store')
        .type('html')
        .send(
          renderErrorPage('/batches', 'Postgres is unavailable: cannot read the batch.', '../'),
        );
      return;
    }
    if (!data) return notFound(res, 'No such batch.');
    res
      .status(200)
      .set('cache-control', 'no-store')
      .type('html')
      .send(renderBatchPage(data, Date.now()));
  });

  app.get('/batches/:id/results.:format', async (req: Request, res: Response) => {
    const source = opts.source;
    const id = String(req.params.id);
    const format = String(req.params.format) as ResultFormat;
    if (!source) return notFound(res, 'Batches are not configured on this board.');
    if (!DOWNLOAD_FORMATS.includes(format) || !batchIdSchema.safeParse(id).success)
      return notFound(res, 'No such download.');
    try {
      if (!(await within(source.exists(id), opts.timeoutMs)))
        return notFound(res, 'No such batch.');
    } catch (err) {
      opts.logger.warn('results download: cannot read the batch', {
        error: coerceError(err).message,
      });
      res.status(503).json({ error: 'Postgres is unavailable' });
      return;
    }
    res.status(200).set({
      'content-type': RESULT_CONTENT_TYPES[format],
      'content-disposition': `attachment; filename="batch-${id}.${format}"`,
      'cache-control': 'no-store',
    });
    await sendResults(res, source, id, format, opts.logger);
  });
}
