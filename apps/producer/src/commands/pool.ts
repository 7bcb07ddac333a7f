import { readFile } from 'node:fs/promises';
import { PoolAdmin } from '@storycheck/pool/admin';
import { UsageError, type Context } from '../context.js';

// The pool's administration lives in packages/pool (`PoolAdmin`, `@storycheck/pool/admin`): these commands read their
// input, call it and print. Its refusals are `PoolInputError`s (exit 2, see cli.ts).

/** The address rule's property tests (test/proxy-address.test.ts) import it from here. */
export { parseProxyLine } from '@storycheck/pool/admin';

async function readSource(source: string): Promise<string> {
  if (source === '-') {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }
  return readFile(source, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new UsageError(
      `cannot read ${source}: ${e.code === 'ENOENT' ? 'no such file' : (e.code ?? e.message)}`,
    );
  });
}

const admin = (ctx: Context) =>
  new PoolAdmin({
    config: ctx.config,
    db: ctx.db.db,
    redis: () => ctx.redis,
    logger: ctx.logger,
  });

const plural = (n: number, one: string, many: string) => (n === 1 ? one : many);

/**
 * `storycheck proxies import <file|->`: one proxy per line, `URL` or `label=URL`; blank lines
 * and `#` comments skipped. Every line is validated first: one bad line rejects the file (exit
 * 2, nothing written). Passwords are stored encrypted; importing a label again updates it.
 */
export async function proxiesImport(ctx: Context, source: string): Promise<void> {
  const n = await admin(ctx).importProxies(await readSource(source));
  process.stdout.write(
    `imported ${n.imported} ${plural(n.imported, 'proxy', 'proxies')} (${n.created} new, ${n.imported - n.created} updated)\n`,
  );
}

/** `storycheck proxies list [--json]`: label, URL (password masked), state and usage. */
export async function proxiesList(ctx: Context, opts: { json?: boolean }): Promise<void> {
  const out = await admin(ctx).proxies();
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(out)}\n`);
    return;
  }
  if (!out.length)
    process.stdout.write('no proxies (import some with "storycheck proxies import")\n');
  for (const p of out) {
    process.stdout.write(
      `${p.label.padEnd(20)} ${p.status.padEnd(9)} used ${String(p.usage).padStart(6)}  ${p.url}${p.lastError ? `  last error ${p.lastError}` : ''}\n`,
    );
  }
}

/**
 * `storycheck sessions import <file|->`: a JSON array or NDJSON of session objects. All are
 * validated first (shape, the local cookie check, proxy labels); cookies are stored encrypted.
 * Importing a label again updates it and makes it active again.
 */
export async function sessionsImport(ctx: Context, source: string): Promise<void> {
  const n = await admin(ctx).importSessions(() => readSource(source));
  process.stdout.write(
    `imported ${n.imported} ${plural(n.imported, 'session', 'sessions')} (${n.created} new, ${n.imported - n.created} updated)\n`,
  );
}

/** `storycheck sessions list [--json]`: status, proxy, last used, usage, cooldown; never a cookie. */
export async function sessionsList(ctx: Context, opts: { json?: boolean }): Promise<void> {
  const out = await admin(ctx).sessions();
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(out)}\n`);
    return;
  }
  if (!out.length)
    process.stdout.write('no sessions (import some with "storycheck sessions import")\n');
  for (const s of out) {
    const cool = s.cooldownLeftMs > 0 ? `  cooling ${Math.ceil(s.cooldownLeftMs / 1000)}s` : '';
    process.stdout.write(
      `${s.label.padEnd(20)} ${s.status.padEnd(9)} proxy ${(s.proxy ?? '-').padEnd(14)} used ${String(s.usage).padStart(6)}  last ${s.lastUsed ?? 'never'}${cool}${s.lastError ? `  last error ${s.lastError}` : ''}\n`,
    );
  }
}

/** `storycheck sessions disable|enable <label>`. */
export async function sessionsSetEnabled(
  ctx: Context,
  label: string,
  enabled: boolean,
): Promise<void> {
  await admin(ctx).setSessionEnabled(label, enabled);
  process.stdout.write(`session ${label} ${enabled ? 'enabled' : 'disabled'}\n`);
}

/**
 * `storycheck sessions check [label…]`: asks the upstream whether each session is logged in,
 * under a lease of that session (`PoolAdmin.checkSessions`).
 */
export async function sessionsCheck(
  ctx: Context,
  labels: string[],
  opts: { json?: boolean },
): Promise<void> {
  const report = await admin(ctx).checkSessions(labels);
  if (opts.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  else
    for (const x of report)
      process.stdout.write(
        `${x.label.padEnd(20)} ${x.result}${x.detail ? ` (${x.detail})` : ''}\n`,
      );
}

/**
 * `storycheck secret-key --rotate`: with STORYCHECK_SECRET_KEY="new,old[,older]", re-encrypts
 * every stored cookie and proxy password under the new key, in one transaction. Afterwards the
 * old keys can be dropped from the variable.
 */
export async function rotateSecrets(ctx: Context): Promise<void> {
  const n = await admin(ctx).rotateSecrets();
  process.stdout.write(
    `re-encrypted ${n.sessions} ${plural(n.sessions, 'session', 'sessions')} and ${n.proxies} proxy ${plural(n.proxies, 'password', 'passwords')} under key ${n.keyId}\n`,
  );
}
