import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream, rmSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { addItems, batchExists, createBatch, pendingAmong, sealBatch } from '@storycheck/db';
import { CHECK_JOB, batchIdSchema, checkJobId } from '@storycheck/queue';
import { InterruptedError, UsageError, type Context } from '../context.js';
import { waitForServices } from '../connectivity.js';
import {
  InputError,
  formatFromName,
  normaliseUsername,
  precheckInput,
  readEntries,
  type InputFormat,
  type ReadOptions,
} from '../input.js';
import { waitForBatch } from './status.js';
import { coerceError } from '@storycheck/logger';

/** Options of `storycheck enqueue`. */
export interface EnqueueOptions {
  name?: string;
  strict?: boolean;
  wait?: boolean;
  json?: boolean;
  /** Enqueue into this batch id (a UUID); an existing batch gains only names it lacks. */
  batchId?: string;
  format?: InputFormat;
  /** CSV: the column of the names, by header name or 1-based number (docs/input.md). */
  column?: string;
  /** Largest number of input lines accepted. Default 5,000,000. */
  maxLines?: number;
}

/** A rejected input line. */
export interface Rejected {
  line: number;
  input: string;
  reason: string;
}

/** Items per Postgres insert and per addBulk call. */
export const ENQUEUE_CHUNK = 1_000;
/** Rejected lines listed in full; past this only the count grows (the JSON says so). */
const MAX_REJECTED_LISTED = 10_000;

/**
 * `storycheck enqueue <file|->`: streams the input, normalises and validates each line,
 * writes items to Postgres in multi-row inserts and then adds their jobs with addBulk, chunk
 * by chunk (each item row exists before its job). With `--strict` the whole input is
 * validated first and any invalid line rejects it (exit 2, nothing written). An input without
 * a single valid name is rejected the same way.
 */
export async function enqueue(ctx: Context, source: string, opts: EnqueueOptions): Promise<void> {
  const format = opts.format ?? 'auto';
  // The file name is a hint for `auto`, after the content (docs/input.md).
  const read: ReadOptions = {
    hint: formatFromName(source === '-' ? undefined : source),
    ...(opts.column !== undefined ? { column: opts.column } : {}),
  };
  const maxLines = opts.maxLines ?? 5_000_000;
  if (opts.batchId !== undefined && !batchIdSchema.safeParse(opts.batchId).success) {
    throw new UsageError(`--batch-id must be a UUID, got "${opts.batchId}"`);
  }
  let spooled: { path: string; dir: string } | undefined;
  let path = source;
  // SIGINT/SIGTERM: before anything can have been written, leave at once; once writing has
  // begun, stop reading, flush what was read, leave the batch unsealed and say how to resume.
  // A second signal leaves at once either way.
  let writing = false;
  let stopSignal: NodeJS.Signals | undefined;
  let batchIdForSignal: string | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (!writing || stopSignal) {
      if (spooled) rmSync(spooled.dir, { recursive: true, force: true });
      process.stderr.write(
        batchIdForSignal && writing
          ? `storycheck: ${sig} again; stopped without flushing; batch ${batchIdForSignal} is unsealed.\n${resumeHint(source, opts, batchIdForSignal)}\n`
          : `storycheck: interrupted by ${sig}; nothing enqueued\n`,
      );
      process.exit(signalExitCode(sig));
    }
    stopSignal = sig;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    path = await inputPath(source, (spool) => (spooled = spool));
    const open = (): Readable => createReadStream(path);
    await precheckInput(open, format, read);
    await checkLineLimit(path, format, maxLines);

    if (opts.strict) await checkStrict(open, format, maxLines, read, opts);

    await checkServices(ctx, opts);

    const batchId = opts.batchId ?? randomUUID();
    batchIdForSignal = batchId;
    // Appending to an existing batch (a re-run, or finishing an interrupted enqueue): names
    // already there but still pending get their jobs again; BullMQ drops ids it still has.
    const appending = opts.batchId !== undefined; // it exists: checked above
    const writer = new BatchWriter(ctx, batchId, opts.name ?? null, appending);
    let rejectedCount = 0;
    const rejected: Rejected[] = [];

    writing = true;
    try {
      for await (const r of validated(open(), format, maxLines, read)) {
        if (stopSignal) break;
        if ('reason' in r) {
          rejectedCount++;
          if (rejected.length < MAX_REJECTED_LISTED) rejected.push(r);
          continue;
        }
        await writer.add({ seq: r.line, username: r.username });
      }
      await writer.finish();
    } catch (e) {
      if (writer.batchReady && !(e instanceof UsageError) && !(e instanceof InputError)) {
        throw new Error(
          `enqueue stopped after ${writer.accepted} names of batch ${batchId} (${coerceError(e).message}); ` +
            `run the same command with --batch-id ${batchId} to finish it`,
          { cause: e },
        );
      }
      throw e;
    }
    const { batchReady, accepted, duplicates } = writer;
    if (stopSignal) throw interrupted(stopSignal, batchReady, accepted, batchId, source, opts);
    if (!batchReady) refuseNoNames(opts, rejected, rejectedCount);
    await sealBatch(ctx.db.db, batchId, { duplicates, rejected: rejectedCount });
    // Sealed: from here (the report, --wait) a signal ends the command the ordinary way.
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await reportAndWait(ctx, opts, { batchId, accepted, duplicates, rejected, rejectedCount });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (spooled) await rm(spooled.dir, { recursive: true, force: true });
  }
}

/**
 * Both services must answer before the batch row exists: an outage is one line and exit 1
 * after ~10 s of retries, never a half-written batch. A `--batch-id` must name a batch.
 */
async function checkServices(ctx: Context, opts: EnqueueOptions): Promise<void> {
  await waitForServices({
    redisUrl: ctx.config.redisUrl,
    databaseUrl: ctx.config.databaseUrl,
    pool: ctx.db.pool,
  });
  if (opts.batchId !== undefined && !(await batchExists(ctx.db.db, opts.batchId))) {
    throw new UsageError(`no batch ${opts.batchId}`);
  }
}

/** The error of an enqueue stopped by a signal once writing had begun. */
function interrupted(
  signal: NodeJS.Signals,
  batchReady: boolean,
  accepted: number,
  batchId: string,
  source: string,
  opts: EnqueueOptions,
): InterruptedError {
  return new InterruptedError(
    batchReady
      ? `storycheck: interrupted by ${signal} after ${accepted} new name${accepted === 1 ? '' : 's'}; ` +
          `batch ${batchId} is unsealed (what was written is queued and will be checked).\n` +
          resumeHint(source, opts, batchId)
      : `storycheck: interrupted by ${signal}; nothing enqueued`,
    signalExitCode(signal),
  );
}

/**
 * Writes the accepted names of a batch chunk by chunk: items to Postgres in multi-row inserts
 * (the batch row first, once), then their jobs with addBulk; when appending, the names the
 * batch already has but that are still pending get their jobs again.
 */
class BatchWriter {
  /** Whether the batch row exists (from the start when appending). */
  batchReady: boolean;
  /** Names inserted, and names the batch already had. */
  accepted = 0;
  duplicates = 0;
  private chunk: Array<{ seq: number; username: string }> = [];
  // One addBulk may be in flight while the next chunk is read and inserted: Postgres and
  // Redis work overlap, and every job is still added only after its row is committed.
  private inFlight: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly ctx: Context,
    private readonly batchId: string,
    private readonly name: string | null,
    private readonly appending: boolean,
  ) {
    this.batchReady = appending;
  }

  /** Adds one name; writes the chunk once it is full. */
  async add(row: { seq: number; username: string }): Promise<void> {
    this.chunk.push(row);
    if (this.chunk.length >= ENQUEUE_CHUNK) await this.flush();
  }

  /** Writes what is left and waits for the last addBulk. */
  async finish(): Promise<void> {
    await this.flush();
    await this.inFlight;
  }

  private async flush(): Promise<void> {
    const { ctx, batchId } = this;
    if (this.chunk.length === 0) return;
    const rows = this.chunk;
    this.chunk = [];
    if (!this.batchReady) {
      await createBatch(ctx.db.db, { id: batchId, name: this.name });
      this.batchReady = true;
    }
    const inserted = await addItems(ctx.db.db, batchId, rows);
    this.duplicates += rows.length - inserted.length;
    this.accepted += inserted.length;
    const toQueue = this.appending
      ? await pendingAmong(
          ctx.db.db,
          batchId,
          rows.map((r) => r.username),
        )
      : inserted.map((r) => r.username);
    await this.inFlight;
    if (toQueue.length) {
      this.inFlight = ctx.queue.addBulk(
        toQueue.map((username) => ({
          name: CHECK_JOB,
          data: { batchId, username },
          opts: { jobId: checkJobId(batchId, username) },
        })),
      );
      // Handled when awaited; this keeps an early rejection from being reported as unhandled.
      this.inFlight.catch(() => undefined);
    }
  }
}

/**
 * The file to read: stdin is spooled to a temp file (handed to `spooled` before it is written,
 * so a signal can remove it); a named file must exist and be a file.
 */
async function inputPath(
  source: string,
  spooled: (s: { path: string; dir: string }) => void,
): Promise<string> {
  let path = source;
  if (source === '-') {
    // stdin can be read once: it is spooled to a temp file so that limits and --strict are
    // checked before anything is written (nothing half-written on bad input).
    const dir = await mkdtemp(join(tmpdir(), 'storycheck-'));
    const spool = { dir, path: join(dir, 'stdin') };
    spooled(spool);
    await pipeline(process.stdin, createWriteStream(spool.path));
    path = spool.path;
  } else if (source !== '-') {
    const st = await stat(source).catch((e: NodeJS.ErrnoException) => {
      throw new UsageError(
        `cannot read ${source}: ${e.code === 'ENOENT' ? 'no such file' : (e.code ?? e.message)}`,
      );
    });
    if (!st.isFile()) throw new UsageError(`cannot read ${source}: not a file`);
  }
  return path;
}

/** `--strict`: the whole input is validated first; any invalid line rejects it (UsageError). */
async function checkStrict(
  open: () => Readable,
  format: InputFormat,
  maxLines: number,
  read: ReadOptions,
  opts: EnqueueOptions,
): Promise<void> {
  const rejected: Rejected[] = [];
  let valid = 0;
  for await (const r of validated(open(), format, maxLines, read)) {
    if ('reason' in r) {
      if (rejected.length < MAX_REJECTED_LISTED) rejected.push(r);
    } else valid++;
  }
  if (rejected.length) {
    // One line on stderr (the first reason); --json lists them all on stdout.
    if (opts.json) report(opts, { batchId: null, accepted: 0, duplicates: 0, rejected });
    throw new UsageError(
      `--strict: ${rejected.length} invalid line${rejected.length === 1 ? '' : 's'} (first: line ${rejected[0]!.line}: ${rejected[0]!.reason}); nothing enqueued`,
    );
  }
  if (valid === 0) throw new UsageError('no usernames in input; nothing enqueued');
}

/** An input without a single valid name: reported (with --json) and refused (UsageError). */
function refuseNoNames(opts: EnqueueOptions, rejected: Rejected[], rejectedCount: number): never {
  if (opts.json) report(opts, { batchId: null, accepted: 0, duplicates: 0, rejected });
  const first = rejected[0];
  if (!first) throw new UsageError('no usernames in input; nothing enqueued');
  throw new UsageError(
    `no usernames in input (${rejectedCount} rejected; first: line ${first.line}: ${first.reason}); nothing enqueued`,
  );
}

/** Prints the counts; with `--wait`, follows the batch until it completes. */
async function reportAndWait(
  ctx: Context,
  opts: EnqueueOptions,
  counts: Parameters<typeof report>[1] & { batchId: string },
): Promise<void> {
  const { batchId, accepted } = counts;
  // --wait --json prints ONE object: the final status with the enqueue counts merged in.
  if (opts.wait && opts.json) {
    process.stderr.write(`batch ${batchId}: ${accepted} accepted; waiting for it to finish\n`);
    await waitForBatch(ctx, batchId, { json: true, merge: enqueueJson(counts) });
    return;
  }
  report(opts, counts);
  if (opts.wait) await waitForBatch(ctx, batchId, { json: false });
}

/** 128 + the signal number, as a shell reports a process killed by it: 130 SIGINT, 143 SIGTERM. */
function signalExitCode(sig: NodeJS.Signals): number {
  return sig === 'SIGINT' ? 130 : 143;
}

/** "resume with: storycheck enqueue <file> --batch-id <id>", the file quoted for a POSIX shell. */
function resumeHint(source: string, opts: EnqueueOptions, batchId: string): string {
  const quoted = /^[\w@%+=:,./-]+$/.test(source) ? source : `'${source.replace(/'/g, `'\\''`)}'`;
  const format = opts.format && opts.format !== 'auto' ? ` --format ${opts.format}` : '';
  return (
    `resume with: storycheck enqueue ${quoted} --batch-id ${batchId}${format}` +
    (source === '-' ? ' (the same input on stdin)' : '')
  );
}

/**
 * Refuses an input over the line limit before anything is written: newline bytes are counted
 * (fast, no parsing); for JSON, whose entries may share a line, commas bound the element count
 * and only a file that might exceed is counted exactly.
 */
async function checkLineLimit(path: string, format: InputFormat, maxLines: number): Promise<void> {
  const { size } = await stat(path);
  if (size <= maxLines) return; // every line takes at least one byte
  let newlines = 0;
  let commas = 0;
  let last = 0x0a;
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
    for (let i = chunk.indexOf(0x0a); i !== -1; i = chunk.indexOf(0x0a, i + 1)) newlines++;
    for (let i = chunk.indexOf(0x2c); i !== -1; i = chunk.indexOf(0x2c, i + 1)) commas++;
    if (chunk.length) last = chunk[chunk.length - 1]!;
  }
  const lines = newlines + (last === 0x0a ? 0 : 1);
  const tooMany = () =>
    new UsageError(
      `input has more than ${maxLines} lines (the limit); split it or raise --max-lines`,
    );
  const json = format === 'json' || (format === 'auto' && (await firstByte(path)) === 0x5b);
  if (!json) {
    if (lines > maxLines) throw tooMany();
    return;
  }
  if (commas + 1 <= maxLines) return;
  let entries = 0;
  for await (const _ of readEntries(createReadStream(path), 'json'))
    if (++entries > maxLines) throw tooMany();
}

async function firstByte(path: string): Promise<number | undefined> {
  for await (const chunk of createReadStream(path, {
    start: 0,
    end: 4095,
  }) as AsyncIterable<Buffer>) {
    const i = chunk.findIndex(
      (b) =>
        b !== 0x20 &&
        b !== 0x0a &&
        b !== 0x0d &&
        b !== 0x09 &&
        b !== 0xef &&
        b !== 0xbb &&
        b !== 0xbf,
    );
    if (i >= 0) return chunk[i];
  }
  return undefined;
}

/** Every entry of the input, normalised: an accepted name or a rejection with its reason. */
async function* validated(
  stream: Readable,
  format: InputFormat,
  maxLines: number,
  read: ReadOptions,
): AsyncGenerator<{ line: number; username: string } | Rejected> {
  for await (const e of readEntries(stream, format, read)) {
    if (e.line > maxLines) {
      throw new UsageError(
        `input has more than ${maxLines} lines (the limit); split it or raise --max-lines`,
      );
    }
    if (e.problem) {
      yield { line: e.line, input: e.input, reason: e.problem };
      continue;
    }
    const n = normaliseUsername(e.input);
    yield n.ok
      ? { line: e.line, username: n.username }
      : { line: e.line, input: e.input, reason: n.reason };
  }
}

function report(
  opts: EnqueueOptions,
  r: {
    batchId: string | null;
    accepted: number;
    duplicates: number;
    rejected: Rejected[];
    rejectedCount?: number;
  },
): void {
  const rejectedCount = r.rejectedCount ?? r.rejected.length;
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(enqueueJson(r))}\n`);
    return;
  }
  const lines = r.rejected
    .slice(0, 50)
    .map((x) => `  line ${x.line}: ${JSON.stringify(x.input)} — ${x.reason}`);
  if (rejectedCount > lines.length)
    lines.push(`  … and ${rejectedCount - lines.length} more (use --json for all)`);
  if (lines.length)
    process.stderr.write(
      `rejected ${rejectedCount} line${rejectedCount === 1 ? '' : 's'}:\n${lines.join('\n')}\n`,
    );
  if (r.batchId) {
    process.stdout.write(
      `batch ${r.batchId}: ${r.accepted} accepted, ${r.duplicates} duplicate${r.duplicates === 1 ? '' : 's'}, ${rejectedCount} rejected\n`,
    );
  }
}

/** The `enqueue --json` object (CONTRACT.md); `rejectedTotal` only when the list is cut. */
function enqueueJson(r: Parameters<typeof report>[1]): Record<string, unknown> {
  const rejectedCount = r.rejectedCount ?? r.rejected.length;
  const out: Record<string, unknown> = {
    batchId: r.batchId,
    accepted: r.accepted,
    duplicates: r.duplicates,
    rejected: r.rejected,
  };
  if (rejectedCount > r.rejected.length) out.rejectedTotal = rejectedCount;
  return out;
}
