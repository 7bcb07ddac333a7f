import { randomBytes } from 'node:crypto';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ConfigError } from '@storycheck/config';
import { coerceError, redactString } from '@storycheck/logger';
import { PoolInputError } from '@storycheck/pool/admin';
import { Context, InterruptedError, UsageError } from './context.js';
import { ServiceUnreachableError } from './connectivity.js';
import { dbMigrate } from './commands/db.js';
import { enqueue } from './commands/enqueue.js';
import { results, RESULT_FORMATS } from './commands/results.js';
import { batchesList, status } from './commands/status.js';
import { batchesLog, reconcile } from './commands/batches.js';
import { cacheClear, cacheStats } from './commands/cache.js';
import {
  rotateSecrets,
  proxiesImport,
  proxiesList,
  sessionsCheck,
  sessionsImport,
  sessionsList,
  sessionsSetEnabled,
} from './commands/pool.js';
import { InputError } from './input.js';

function positiveInt(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1)
    throw new InvalidArgumentError('must be a positive integer');
  return Number(v);
}

/** `db migrate` and `secret-key`. */
function addSetupCommands(program: Command, context: () => Context): void {
  program
    .command('db')
    .description('database administration')
    .command('migrate')
    .description('create the database if missing and apply migrations (safe to run twice)')
    .action(async () => dbMigrate(context()));

  program
    .command('secret-key')
    .description('print a fresh STORYCHECK_SECRET_KEY (32 random bytes, base64)')
    .option(
      '--rotate',
      're-encrypt every stored cookie and proxy password under the first key of STORYCHECK_SECRET_KEY ("new,old")',
    )
    .action(async (o: { rotate?: boolean }) => {
      if (o.rotate) return rotateSecrets(context());
      process.stdout.write(`${randomBytes(32).toString('base64')}\n`);
    });
}

/** `enqueue`. */
function addEnqueueCommand(program: Command, context: () => Context): void {
  program
    .command('enqueue')
    .description('add a batch of usernames (txt, CSV, JSON array; - reads stdin)')
    .argument('<file>', 'input file, or - for stdin')
    .option('--name <name>', 'a name for the batch')
    .option('--strict', 'reject the whole input if any line is invalid')
    .option('--wait', 'follow the batch until it completes, then print the counts')
    .option('--json', 'print one JSON object')
    .option('--batch-id <uuid>', 'enqueue into this batch (re-running adds only what it lacks)')
    .addOption(
      new Option('--format <format>', 'input format')
        .choices(['auto', 'txt', 'csv', 'json'])
        .default('auto'),
    )
    .option(
      '--column <name|n>',
      'CSV: the column holding the names, by header name, or by number for a CSV without header',
    )
    .option('--max-lines <n>', 'largest number of input lines accepted', positiveInt, 5_000_000)
    .action(async (file: string, o: Record<string, unknown>) =>
      enqueue(context(), file, {
        name: o.name as string | undefined,
        strict: o.strict === true,
        wait: o.wait === true,
        json: o.json === true,
        batchId: o.batchId as string | undefined,
        format: o.format as 'auto',
        ...(o.column !== undefined ? { column: o.column as string } : {}),
        maxLines: o.maxLines as number,
      }),
    );
}

/** `status`, `results` and `batches list|log|reconcile`. */
function addBatchCommands(program: Command, context: () => Context): void {
  program
    .command('status')
    .description('show a batch: state, progress and counts')
    .argument('<batchId>')
    .option('--json', 'print one JSON object')
    .option('--watch', 'follow until the batch completes')
    .action(async (batchId: string, o: { json?: boolean; watch?: boolean }) =>
      status(context(), batchId, o),
    );

  program
    .command('results')
    .description('export one record per username, in input order')
    .argument('<batchId>')
    .addOption(
      new Option('--format <format>', 'output format').choices([...RESULT_FORMATS]).default('csv'),
    )
    .option('--output <file>', 'write to FILE (appears only when complete)')
    .action(async (batchId: string, o: { format?: string; output?: string }) =>
      results(context(), batchId, o),
    );

  const batches = program.command('batches').description('batches');
  batches
    .command('list')
    .description('recent batches with their progress')
    .option('--json', 'print JSON')
    .option('--limit <n>', 'how many', positiveInt, 20)
    .action(async (o: { json?: boolean; limit?: number }) => batchesList(context(), o));
  batches
    .command('log')
    .description('the batch log: events and every check attempt with timings and errors')
    .argument('<batchId>')
    .option('--errors', 'only attempts that carry an error')
    .option('--json', 'print a JSON array')
    .action(async (batchId: string, o: { errors?: boolean; json?: boolean }) =>
      batchesLog(context(), batchId, o),
    );
  batches
    .command('reconcile')
    .description('re-create jobs for unfinished items missing from Redis (safe any time)')
    .argument('<batchId>')
    .option('--json', 'print one JSON object')
    .action(async (batchId: string, o: { json?: boolean }) => {
      await reconcile(context(), batchId, o);
    });
}

/** `proxies import|list` and `sessions import|list|check|disable|enable`. */
function addPoolCommands(program: Command, context: () => Context): void {
  const proxies = program.command('proxies').description('HTTP proxies (one egress address each)');
  proxies
    .command('import')
    .description('lines: URL or label=URL (http://user:pass@host:port); passwords stored encrypted')
    .argument('<file>', 'input file, or - for stdin')
    .action(async (file: string) => proxiesImport(context(), file));
  proxies
    .command('list')
    .description('proxies with state and usage; passwords masked')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => proxiesList(context(), o));

  const sessions = program.command('sessions').description('logged-in sessions (accounts you own)');
  sessions
    .command('import')
    .description(
      'JSON array or NDJSON of {label, sessionid, csrftoken?, ds_user_id?, proxy?, rate?, burst?}',
    )
    .argument('<file>', 'input file, or - for stdin')
    .action(async (file: string) => sessionsImport(context(), file));
  sessions
    .command('list')
    .description('status, proxy, last used, usage, cooldown; never a cookie')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => sessionsList(context(), o));
  sessions
    .command('check')
    .description('ask the upstream whether each session is still logged in')
    .argument('[labels...]')
    .option('--json', 'print JSON')
    .action(async (labels: string[], o: { json?: boolean }) => sessionsCheck(context(), labels, o));
  sessions
    .command('disable')
    .argument('<label>')
    .description('stop using a session')
    .action(async (label: string) => sessionsSetEnabled(context(), label, false));
  sessions
    .command('enable')
    .argument('<label>')
    .description('use a session again (also after invalid/challenge)')
    .action(async (label: string) => sessionsSetEnabled(context(), label, true));
}

/** `cache stats|clear`. */
function addCacheCommands(program: Command, context: () => Context): void {
  const cache = program.command('cache').description('the user-id and result caches');
  cache
    .command('stats')
    .description('entries and hit ratio per cache')
    .option('--json', 'print one JSON object')
    .action(async (o: { json?: boolean }) => cacheStats(context(), o));
  cache
    .command('clear')
    .description('delete cache entries (both caches unless one is named)')
    .option('--user-ids', 'the user-id cache')
    .option('--results', 'the result cache')
    .option('--json', 'print one JSON object')
    .action(async (o: { userIds?: boolean; results?: boolean; json?: boolean }) =>
      cacheClear(context(), o),
    );
}

/** The exit code for what a command threw, after writing its one line to stderr. */
function exitCodeOf(e: unknown, env: Record<string, string | undefined>): number {
  if (e instanceof CommanderError) {
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.exitCode === 0)
      return 0;
    return 2; // commander already printed its one line
  }
  const debug = env.LOG_LEVEL === 'debug';
  if (
    e instanceof UsageError ||
    e instanceof ConfigError ||
    e instanceof InputError ||
    e instanceof PoolInputError
  ) {
    process.stderr.write(`storycheck: ${redactString(e.message)}\n`);
    return 2;
  }
  if (e instanceof InterruptedError) {
    process.stderr.write(`${redactString(e.message)}\n`);
    return e.exitCode;
  }
  if (e instanceof ServiceUnreachableError) {
    process.stderr.write(`storycheck: ${redactString(e.message)}\n`);
    return 1;
  }
  const err = coerceError(e);
  process.stderr.write(`storycheck: ${redactString(describe(err))}\n`);
  if (debug && err.stack) process.stderr.write(`${redactString(err.stack)}\n`);
  return 1;
}

/**
 * Runs the `storycheck` CLI with `argv` (without node and script) and returns the exit code:
 * 0 success, 2 bad usage or invalid input (nothing written), 130/143 stopped by SIGINT/SIGTERM
 * (`enqueue`), 1 any other failure. Errors are one redacted line on stderr; the stack only with
 * LOG_LEVEL=debug. With `inspect`, hands it the commander program (every command, argument and
 * option) instead of running anything: the docs generator (packages/devtools/docs-gen.mjs)
 * writes docs/cli.md from it.
 */
export async function runCli(
  argv: string[],
  env: Record<string, string | undefined> = process.env,
  inspect?: (program: Command) => void,
): Promise<number> {
  let ctx: Context | undefined;
  const context = (): Context => (ctx ??= new Context(env));
  const program = new Command('storycheck')
    .description('Checks at scale whether Instagram accounts have an active story.')
    .exitOverride()
    .showHelpAfterError(false)
    .configureOutput({
      writeErr: (s) => process.stderr.write(s.split('\n').filter(Boolean)[0] + '\n'),
    });

  addSetupCommands(program, context);
  addEnqueueCommand(program, context);
  addBatchCommands(program, context);
  addPoolCommands(program, context);
  addCacheCommands(program, context);

  // The docs generator and the docs tests read the command tree here; nothing is run.
  if (inspect) return (inspect(program), 0);

  // The reader of stdout went away (`storycheck results … | head`): the Unix convention is to
  // stop quietly with success. Closing the context makes the command's next query fail, so it
  // stops its work and its cleanup runs; whatever it throws then is not reported.
  let pipeClosed = false;
  const onStdoutError = (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE' || pipeClosed) return;
    pipeClosed = true;
    void ctx?.close();
    // Backstop for a command blocked on something the closed context does not end.
    setTimeout(() => process.exit(0), 2_000).unref();
  };
  process.stdout.on('error', onStdoutError);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (pipeClosed) return 0;
    return exitCodeOf(e, env);
  } finally {
    process.stdout.off('error', onStdoutError);
    await ctx?.close();
  }
}

/** One line for an unexpected error, naming the service when it is a connection failure. */
function describe(outer: Error): string {
  // drizzle wraps driver errors ("Failed query: …"); the root cause says what went wrong.
  let err = outer;
  while (err.cause instanceof Error && /^Failed query/.test(err.message)) err = err.cause;
  if (err instanceof AggregateError && err.errors[0] instanceof Error) err = err.errors[0] as Error;
  const code = (err as NodeJS.ErrnoException).code;
  const msg = err.message || String(err);
  if (code === 'ECONNREFUSED' || /ECONNREFUSED/.test(msg)) {
    const port = /:(\d+)/.exec(msg)?.[1];
    const what = port === '6379' ? 'Redis' : port === '5432' ? 'Postgres' : 'a service';
    return `cannot connect to ${what} (${msg.split('\n')[0]})`;
  }
  if (code === '3D000') return `${msg} — run "storycheck db migrate" first`;
  if (code === '42703')
    return `${msg} — the database schema is older than this code; run "storycheck db migrate"`;
  if (code === '42P01') return `${msg} — the database is not migrated; run "storycheck db migrate"`;
  return msg.split('\n')[0]!;
}
