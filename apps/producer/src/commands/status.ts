import cliProgress from 'cli-progress';
import { getBatchStatus, listBatches, type BatchStatus } from '@storycheck/db';
import { FINAL_STATUSES } from '@storycheck/model';
import { UsageError, type Context } from '../context.js';

/**
 * `status --json` shape (CONTRACT.md), in its documented key order, plus `sealed` last: false
 * while the producer has not finished writing the batch (an enqueue still running, or one that
 * was interrupted: resume it with `enqueue --batch-id`). An unsealed batch never completes.
 */
export function statusJson(s: BatchStatus): Record<string, unknown> {
  return {
    batchId: s.batchId,
    name: s.name,
    state: s.state,
    total: s.total,
    done: s.done,
    counts: s.counts,
    createdAt: s.createdAt,
    startedAt: s.startedAt,
    finishedAt: s.finishedAt,
    sealed: s.sealed,
  };
}

/** One human line: state (and "unsealed" when the enqueue has not finished), progress and counts. */
export function statusLine(s: BatchStatus): string {
  const pct = s.total ? Math.floor((s.done / s.total) * 100) : 100;
  return (
    `batch ${s.batchId}${s.name ? ` (${s.name})` : ''}: ${s.state}${s.sealed ? '' : ' (unsealed: enqueue running or interrupted)'}, ${s.done}/${s.total} done (${pct}%) — ` +
    countsText(s, ', ')
  );
}

/** "active 3, none 1, …": the count of every final status, in the model's order. */
function countsText(s: BatchStatus, separator: string): string {
  return FINAL_STATUSES.map((st) => `${st} ${s.counts[st]}`).join(separator);
}

async function load(ctx: Context, batchId: string): Promise<BatchStatus> {
  const s = await getBatchStatus(ctx.db.db, batchId);
  if (!s) throw new UsageError(`no batch ${batchId}`);
  return s;
}

/** `storycheck status <batchId> [--json] [--watch]`. */
export async function status(
  ctx: Context,
  batchId: string,
  opts: { json?: boolean; watch?: boolean },
): Promise<void> {
  if (opts.watch) {
    await waitForBatch(ctx, batchId, { json: opts.json ?? false });
    return;
  }
  const s = await load(ctx, batchId);
  process.stdout.write(opts.json ? `${JSON.stringify(statusJson(s))}\n` : `${statusLine(s)}\n`);
}

/**
 * Follows a batch until it completes: a progress bar with rate and ETA on a TTY (on stderr),
 * plain lines every `plainEveryMs` otherwise; then the final counts on stdout (JSON with
 * `json`). Polls Postgres every `pollMs` (default 500).
 */
export async function waitForBatch(
  ctx: Context,
  batchId: string,
  opts: {
    json: boolean;
    pollMs?: number;
    plainEveryMs?: number;
    /** Extra keys added to the final JSON object (enqueue --wait --json: its counts). */
    merge?: Record<string, unknown>;
  },
): Promise<BatchStatus> {
  const pollMs = opts.pollMs ?? 500;
  const plainEveryMs = opts.plainEveryMs ?? 5_000;
  const tty = process.stderr.isTTY === true;
  let s = await load(ctx, batchId);
  const bar = tty
    ? new cliProgress.SingleBar(
        {
          format:
            ' {bar} {percentage}% | {value}/{total} | {rate}/s | ETA {eta_formatted} | {counts}',
          etaBuffer: 50,
          stream: process.stderr,
          hideCursor: true,
        },
        cliProgress.Presets.shades_classic,
      )
    : null;
  const t0 = Date.now();
  const done0 = s.done;
  const rate = () => {
    const secs = (Date.now() - t0) / 1000;
    return secs > 0 ? ((s.done - done0) / secs).toFixed(1) : '0.0';
  };
  bar?.start(s.total, s.done, { rate: '0.0', counts: countsText(s, ' ') });
  let lastPlain = 0;
  try {
    while (s.state !== 'completed') {
      if (!bar && Date.now() - lastPlain >= plainEveryMs) {
        lastPlain = Date.now();
        const left = s.total - s.done;
        const r = Number(rate());
        const eta = r > 0 ? `${Math.ceil(left / r)}s` : '?';
        process.stderr.write(
          `progress ${s.done}/${s.total} (${rate()}/s, ETA ${eta}) ${countsText(s, ' ')}\n`,
        );
      }
      await new Promise((res) => setTimeout(res, pollMs));
      s = await load(ctx, batchId);
      bar?.setTotal(s.total);
      bar?.update(s.done, { rate: rate(), counts: countsText(s, ' ') });
    }
  } finally {
    bar?.stop();
  }
  process.stdout.write(
    opts.json ? `${JSON.stringify({ ...statusJson(s), ...opts.merge })}\n` : `${statusLine(s)}\n`,
  );
  return s;
}

/** `storycheck batches list [--json]`: recent batches with their progress. */
export async function batchesList(
  ctx: Context,
  opts: { json?: boolean; limit?: number },
): Promise<void> {
  const rows = await listBatches(ctx.db.db, opts.limit ?? 20);
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(rows.map(statusJson))}\n`);
    return;
  }
  if (rows.length === 0) {
    process.stdout.write('no batches yet\n');
    return;
  }
  for (const s of rows) process.stdout.write(`${s.createdAt}  ${statusLine(s)}\n`);
}
