import { readFile } from 'node:fs/promises';
import {
  listProxies,
  listSessions,
  loadPoolStore,
  reencryptSecrets,
  setSessionStatus,
  upsertProxies,
  upsertSessions,
  type ProxyRow,
  type SessionRow,
} from '@storycheck/db';
import { parseRate } from '@storycheck/config';
import { coerceError, registerSecret } from '@storycheck/logger';
import {
  decryptSessionCookies,
  encryptSecret,
  openPool,
  parseSecretKeys,
  proxyUrlWithPassword,
  reencryptSecret,
  syncPool,
  type Lease,
  type Pool,
  type DecryptedCookies,
  type SecretKey,
} from '@storycheck/pool';
import {
  ALLOW_PRIVATE_HINT,
  StoryChecker,
  ThrottledError,
  checkSessionLocally,
  proxyUrlProblem,
} from '@storycheck/story-checker';
import { UsageError, type Context } from '../context.js';

/** Proxy URL schemes we accept. */
const PROXY_SCHEMES = ['http:', 'https:', 'socks4:', 'socks5:', 'socks:'];
const LABEL = /^[A-Za-z0-9_.-]{1,64}$/;

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

function keys(ctx: Context): SecretKey[] {
  if (!ctx.config.secretKey) {
    throw new UsageError(
      'STORYCHECK_SECRET_KEY is not set (run "storycheck secret-key" to make one)',
    );
  }
  return parseSecretKeys(ctx.config.secretKey);
}

/** One parsed proxy line. */
interface ProxyLine {
  label: string;
  /** Without the password. */
  url: string;
  password: string | null;
}

/** Parses `URL` or `label=URL`; throws a one-line reason (never echoing the password). */
export function parseProxyLine(line: string, allowPrivate: boolean): ProxyLine {
  const m = /^([A-Za-z0-9_.-]+)=(.+)$/.exec(line);
  const label0 = m?.[1];
  const text = (m?.[2] ?? line).trim();
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new Error('not a URL (expected scheme://[user:pass@]host:port)');
  }
  if (!PROXY_SCHEMES.includes(u.protocol))
    throw new Error(`scheme ${u.protocol.replace(':', '')} not supported (http, https, socks)`);
  if (!u.hostname) throw new Error('no host');
  // The address first: it is the reason that matters (and `:80`/`:443` are no reason at all).
  const why = allowPrivate ? null : proxyUrlProblem(u);
  if (why) throw new Error(`${why} (${ALLOW_PRIVATE_HINT})`);
  // The parser drops a scheme's default port (`http://h:80` has port ''): read it from the text.
  const port = u.port || explicitPort(text);
  if (!port) throw new Error('no port');
  if (u.pathname !== '/' && u.pathname !== '') throw new Error('a proxy URL has no path');
  const password = u.password ? decodeURIComponent(u.password) : null;
  if (password) registerSecret(password);
  u.password = '';
  const label = label0 ?? `${u.hostname.replace(/[^A-Za-z0-9_.-]+/g, '_')}-${port}`;
  if (!LABEL.test(label)) throw new Error(`label "${label}" must be 1–64 of A-Z a-z 0-9 _ . -`);
  return { label, url: u.href.replace(/\/$/, ''), password };
}

/** The port written in a URL's authority (even the scheme's default), or '' when none is. */
function explicitPort(text: string): string {
  const m = /^[a-z][a-z0-9+.-]*:\/\/(?:[^@/?#]*@)?(?:\[[^\]]*\]|[^:/?#]*):(\d+)(?:[/?#]|$)/i.exec(
    text,
  );
  return m?.[1] ?? '';
}

/** Postgres rows → the pool. */
async function syncFromDb(ctx: Context, pool: Pool, keepState: boolean): Promise<void> {
  await syncPool(pool, await loadPoolStore(ctx.db.db), {
    keepState,
    margin: ctx.config.budgetMargin,
    spreadMs: ctx.config.leaseSpreadMs,
    sessionRate: ctx.config.sessionRate,
  });
}

/**
 * `storycheck proxies import <file|->`: one proxy per line, `URL` or `label=URL`; blank lines
 * and `#` comments skipped. Every line is validated first: one bad line rejects the file (exit
 * 2, nothing written). Passwords are stored encrypted; importing a label again updates it.
 */
export async function proxiesImport(ctx: Context, source: string): Promise<void> {
  const text = await readSource(source);
  const parsed: ProxyLine[] = [];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (!line || line.startsWith('#')) continue;
    try {
      parsed.push(parseProxyLine(line, ctx.config.allowPrivateProxies));
    } catch (e) {
      throw new UsageError(`line ${i + 1}: ${coerceError(e).message}; nothing imported`);
    }
  }
  if (parsed.length === 0) throw new UsageError('no proxies in input; nothing imported');
  const dupe = parsed.find((p, i) => parsed.findIndex((q) => q.label === p.label) !== i);
  if (dupe) throw new UsageError(`label ${dupe.label} appears twice; nothing imported`);
  const needKey = parsed.some((p) => p.password);
  const key = needKey ? keys(ctx)[0]! : undefined;
  const rows = await upsertProxies(
    ctx.db.db,
    parsed.map((p) => ({
      label: p.label,
      url: p.url,
      passwordEnc: p.password && key ? encryptSecret(p.password, key, `proxy:${p.label}`) : null,
    })),
  );
  const pool = openPool(ctx.config, ctx.redis);
  for (const r of rows) await pool.upsertProxy({ id: String(r.id), label: r.label });
  const created = rows.filter((r) => r.created).length;
  process.stdout.write(
    `imported ${rows.length} prox${rows.length === 1 ? 'y' : 'ies'} (${created} new, ${rows.length - created} updated)\n`,
  );
}

/** Masks a stored proxy URL for display: the password never leaves its column. */
function shownUrl(r: ProxyRow): string {
  if (!r.passwordEnc) return r.url;
  const u = new URL(r.url);
  u.password = '***';
  return u.href.replace(/\/$/, '');
}

/** `storycheck proxies list [--json]`: label, URL (password masked), state and usage. */
export async function proxiesList(ctx: Context, opts: { json?: boolean }): Promise<void> {
  const rows = await listProxies(ctx.db.db);
  const snap = await openPool(ctx.config, ctx.redis).snapshot();
  const live = new Map(snap.proxies.map((p) => [p.id, p]));
  const out = rows.map((r) => {
    const l = live.get(String(r.id));
    return {
      label: r.label,
      url: shownUrl(r),
      status: l?.status ?? r.status,
      usage: l?.usageCount ?? r.usageCount,
      lastUsed: l?.lastUsedAt
        ? new Date(l.lastUsedAt).toISOString()
        : (r.lastUsed?.toISOString() ?? null),
      lastError: l?.lastError ?? r.lastError,
    };
  });
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

/** One session as imported (CONTRACT.md). */
interface SessionInputRow {
  label: string;
  sessionid: string;
  csrftoken?: string;
  ds_user_id?: string;
  proxy?: string;
  rate?: string;
  burst?: number;
}

function parseSessionsText(text: string): unknown[] {
  const t = text.replace(/^\uFEFF/, '').trim();
  if (!t) return [];
  if (t.startsWith('[')) {
    const v: unknown = JSON.parse(t);
    if (!Array.isArray(v)) throw new UsageError('expected a JSON array of session objects');
    return v;
  }
  return t
    .split(/\r?\n/)
    .map((l, i) => ({ l: l.trim(), i }))
    .filter(({ l }) => l && !l.startsWith('#'))
    .map(({ l, i }) => {
      try {
        return JSON.parse(l) as unknown;
      } catch {
        throw new UsageError(`line ${i + 1}: not a JSON object; nothing imported`);
      }
    });
}

function validateSession(v: unknown, where: string): SessionInputRow {
  if (!v || typeof v !== 'object' || Array.isArray(v))
    throw new UsageError(`${where}: not an object; nothing imported`);
  const o = v as Record<string, unknown>;
  const str = (k: string) =>
    typeof o[k] === 'string' ? (o[k] as string).trim() : o[k] === undefined ? undefined : null;
  const label = str('label');
  if (!label || !LABEL.test(label))
    throw new UsageError(`${where}: "label" must be 1–64 of A-Z a-z 0-9 _ . -; nothing imported`);
  const sessionid = str('sessionid');
  if (!sessionid)
    throw new UsageError(`${where} (${label}): "sessionid" is missing; nothing imported`);
  registerSecret(sessionid);
  const csrftoken = str('csrftoken');
  if (csrftoken) registerSecret(csrftoken);
  const ds = str('ds_user_id');
  if (ds === null || (ds !== undefined && !/^\d+$/.test(ds)))
    throw new UsageError(`${where} (${label}): "ds_user_id" must be digits; nothing imported`);
  const local = checkSessionLocally({ sessionid, ...(ds ? { dsUserId: ds } : {}) });
  if (!local.ok) throw new UsageError(`${where} (${label}): ${local.reason}; nothing imported`);
  const proxy = str('proxy');
  if (proxy === null)
    throw new UsageError(`${where} (${label}): "proxy" must be a proxy label; nothing imported`);
  const rate = str('rate');
  if (rate === null)
    throw new UsageError(`${where} (${label}): "rate" must be N/duration; nothing imported`);
  if (rate) {
    try {
      parseRate(rate);
    } catch (e) {
      throw new UsageError(`${where} (${label}): rate ${coerceError(e).message}; nothing imported`);
    }
  }
  const burst = o.burst;
  if (burst !== undefined && (typeof burst !== 'number' || !Number.isInteger(burst) || burst < 1)) {
    throw new UsageError(
      `${where} (${label}): "burst" must be a positive integer; nothing imported`,
    );
  }
  return {
    label,
    sessionid,
    ...(csrftoken ? { csrftoken } : {}),
    ...(ds ? { ds_user_id: ds } : {}),
    ...(proxy ? { proxy } : {}),
    ...(rate ? { rate } : {}),
    ...(burst !== undefined ? { burst: burst as number } : {}),
  };
}

/**
 * `storycheck sessions import <file|->`: a JSON array or NDJSON of session objects. All are
 * validated first (shape, the local cookie check, proxy labels); cookies are stored encrypted.
 * Importing a label again updates it and makes it active again.
 */
export async function sessionsImport(ctx: Context, source: string): Promise<void> {
  const key = keys(ctx)[0]!;
  let items: unknown[];
  try {
    items = parseSessionsText(await readSource(source));
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(
      `input is not JSON: ${coerceError(e).message.split('\n')[0]}; nothing imported`,
    );
  }
  if (items.length === 0) throw new UsageError('no sessions in input; nothing imported');
  const rows = items.map((v, i) => validateSession(v, `entry ${i + 1}`));
  const dupe = rows.find((r, i) => rows.findIndex((q) => q.label === r.label) !== i);
  if (dupe) throw new UsageError(`label ${dupe.label} appears twice; nothing imported`);
  const known = new Set((await listProxies(ctx.db.db)).map((p) => p.label));
  const missing = rows.find((r) => r.proxy && !known.has(r.proxy));
  if (missing)
    throw new UsageError(
      `session ${missing.label}: no proxy labelled ${missing.proxy} (import it first); nothing imported`,
    );
  const saved = await upsertSessions(
    ctx.db.db,
    rows.map((r) => ({
      label: r.label,
      cookiesEnc: encryptSecret(
        JSON.stringify({
          sessionid: r.sessionid,
          csrftoken: r.csrftoken ?? null,
          ds_user_id: r.ds_user_id ?? null,
        }),
        key,
        `session:${r.label}`,
      ),
      dsUserId: r.ds_user_id ?? null,
      proxyLabel: r.proxy ?? null,
      rate: r.rate ?? null,
      burst: r.burst ?? null,
    })),
  );
  const pool = openPool(ctx.config, ctx.redis);
  await syncFromDb(ctx, pool, true);
  // A re-import is the operator saying "this cookie is good": active again in the pool too.
  for (const s of saved) await pool.enableSession(String(s.id));
  const created = saved.filter((s) => s.created).length;
  process.stdout.write(
    `imported ${saved.length} session${saved.length === 1 ? '' : 's'} (${created} new, ${saved.length - created} updated)\n`,
  );
}

const ago = (ms: number | null) => (ms === null ? 'never' : new Date(ms).toISOString());

/** `storycheck sessions list [--json]`: status, proxy, last used, usage, cooldown; never a cookie. */
export async function sessionsList(ctx: Context, opts: { json?: boolean }): Promise<void> {
  const [rows, proxyRows] = await Promise.all([listSessions(ctx.db.db), listProxies(ctx.db.db)]);
  const snap = await openPool(ctx.config, ctx.redis).snapshot();
  const live = new Map(snap.sessions.map((s) => [s.id, s]));
  const proxyLabel = new Map(proxyRows.map((p) => [p.id, p.label]));
  const out = rows.map((r: SessionRow) => {
    const l = live.get(String(r.id));
    return {
      label: r.label,
      status: l?.status ?? r.status,
      proxy: r.proxyId === null ? null : (proxyLabel.get(r.proxyId) ?? null),
      lastUsed: l?.lastUsedAt
        ? new Date(l.lastUsedAt).toISOString()
        : (r.lastUsed?.toISOString() ?? null),
      usage: l?.usageCount ?? r.usageCount,
      cooldownLeftMs: l?.cooldownLeftMs ?? 0,
      lastError: l?.lastError ?? r.lastError,
      rate: r.rate,
      burst: r.burst,
    };
  });
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(out)}\n`);
    return;
  }
  if (!out.length)
    process.stdout.write('no sessions (import some with "storycheck sessions import")\n');
  for (const s of out) {
    const cool = s.cooldownLeftMs > 0 ? `  cooling ${Math.ceil(s.cooldownLeftMs / 1000)}s` : '';
    process.stdout.write(
      `${s.label.padEnd(20)} ${s.status.padEnd(9)} proxy ${(s.proxy ?? '-').padEnd(14)} used ${String(s.usage).padStart(6)}  last ${s.lastUsed ?? ago(null)}${cool}${s.lastError ? `  last error ${s.lastError}` : ''}\n`,
    );
  }
}

/** `storycheck sessions disable|enable <label>`. */
export async function sessionsSetEnabled(
  ctx: Context,
  label: string,
  enabled: boolean,
): Promise<void> {
  const rows = await listSessions(ctx.db.db);
  const row = rows.find((r) => r.label === label);
  if (!row) throw new UsageError(`no session labelled ${label}`);
  await setSessionStatus(
    ctx.db.db,
    label,
    enabled ? 'active' : 'disabled',
    enabled ? null : undefined,
  );
  const pool = openPool(ctx.config, ctx.redis);
  await syncFromDb(ctx, pool, true);
  if (enabled) await pool.enableSession(String(row.id));
  else await pool.disableSession(String(row.id));
  process.stdout.write(`session ${label} ${enabled ? 'enabled' : 'disabled'}\n`);
}

/** Decrypts a session row's cookies (registering them as secrets for redaction). */
function sessionCookies(row: SessionRow, ring: SecretKey[]): DecryptedCookies {
  return decryptSessionCookies(row.cookiesEnc, row.label, ring);
}

/** Decrypts a proxy row into a URL with its password (memory only). */
function proxyUrl(row: ProxyRow, ring: SecretKey[]): string {
  return proxyUrlWithPassword(row.url, row.passwordEnc, row.label, ring);
}

/** How long `sessions check` waits for a session's budget before it reports it unchecked. */
const CHECK_MAX_WAIT_MS = 10_000;

/**
 * `storycheck sessions check [label…]`: asks the upstream (accounts/current_user, through the
 * session's proxy) whether each session is logged in. Every request goes under a lease of that
 * session (DESIGN.md: every upstream request spends budget), so a cooling session is not asked
 * (`cooling`, with the time left) and a busy one waits for its budget (up to 10 s; then `busy`).
 * Dead → invalid, challenged → challenge or suspended; a throttled answer cools the session
 * down like any other request's would; a broken proxy says nothing about the session.
 */
export async function sessionsCheck(
  ctx: Context,
  labels: string[],
  opts: { json?: boolean },
): Promise<void> {
  const ring = keys(ctx);
  const rows = await listSessions(ctx.db.db);
  const chosen = labels.length ? rows.filter((r) => labels.includes(r.label)) : rows;
  const unknown = labels.filter((l) => !rows.some((r) => r.label === l));
  if (unknown.length) throw new UsageError(`no session labelled ${unknown.join(', ')}`);
  const proxies = new Map((await listProxies(ctx.db.db)).map((p) => [p.id, p]));
  const pool = openPool(ctx.config, ctx.redis);
  await syncFromDb(ctx, pool, true);
  const checker = new StoryChecker({
    baseUrl: ctx.config.igBaseUrl,
    requestTimeoutMs: ctx.config.requestTimeoutMs,
    logger: ctx.logger,
    allowPrivateProxies: ctx.config.allowPrivateProxies,
  });
  const report: Array<{ label: string; result: string; detail: string | null }> = [];
  try {
    for (const r of chosen) {
      const p = r.proxyId === null ? undefined : proxies.get(r.proxyId);
      const proxy = p ? { label: p.label, url: proxyUrl(p, ring) } : undefined;
      let result: string;
      let detail: string | null = null;
      const lease = await leaseFor(pool, String(r.id), checker, proxy);
      if (!lease.ok) {
        report.push({ label: r.label, result: lease.result, detail: lease.detail });
        continue;
      }
      try {
        const a = await checker.checkSession({
          session: sessionCookies(r, ring),
          ...(proxy ? { proxy } : {}),
        });
        if (a.state === 'alive') {
          result = 'alive';
          detail = a.username;
          await pool.reportSuccess(lease.lease);
        } else {
          const kind =
            a.state === 'dead'
              ? 'invalid'
              : (a.error as { kind?: string }).kind === 'suspended'
                ? 'suspended'
                : 'challenge';
          result = kind;
          detail = a.error.code;
          await pool.markSession(String(r.id), kind, a.error.code);
          await setSessionStatus(ctx.db.db, r.label, kind, a.error.code);
        }
      } catch (e) {
        result = 'unknown';
        detail = `${coerceError(e).name}: ${(e as { code?: string }).code ?? coerceError(e).message}`;
        if (e instanceof ThrottledError)
          await pool.reportThrottled(lease.lease, {
            retryAfterMs: e.retryAfterMs,
            code: e.code,
          });
      }
      report.push({ label: r.label, result, detail });
    }
  } finally {
    checker.close();
  }
  if (opts.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  else
    for (const x of report)
      process.stdout.write(
        `${x.label.padEnd(20)} ${x.result}${x.detail ? ` (${x.detail})` : ''}\n`,
      );
}

/**
 * A lease of one session for `sessions check`: waits for its budget up to CHECK_MAX_WAIT_MS
 * (a cooling session is reported, not waited for), and has its connection open before the
 * lease is used, as the worker does (packages/pool README, "Lease → arrival").
 */
async function leaseFor(
  pool: Pool,
  sessionId: string,
  checker: StoryChecker,
  proxy: { label: string; url: string } | undefined,
): Promise<{ ok: true; lease: Lease } | { ok: false; result: string; detail: string }> {
  const deadline = Date.now() + CHECK_MAX_WAIT_MS;
  let warmed = false;
  for (;;) {
    const r = await pool.acquire(sessionId);
    if (r.ok) {
      if (warmed || checker.connectionReady(proxy)) return { ok: true, lease: r.lease };
      await pool.release(r.lease);
      await checker.warmConnection(proxy).catch(() => undefined);
      warmed = true;
      continue;
    }
    if (r.reason === 'no_usable_session')
      return { ok: false, result: 'unknown', detail: 'not checked: its proxy is disabled or gone' };
    const snap = (await pool.snapshot()).sessions.find((s) => s.id === sessionId);
    // Cooling at all means reported, not waited for. (Comparing the cooldown left with the
    // acquire's waitMs raced: the snapshot is read later, so under load it came out smaller.)
    if (snap && snap.cooldownLeftMs > 0)
      return {
        ok: false,
        result: 'cooling',
        detail: `not checked: cooling down for ${Math.ceil(snap.cooldownLeftMs / 1000)} s`,
      };
    if (Date.now() + r.waitMs > deadline)
      return {
        ok: false,
        result: 'busy',
        detail: `not checked: no budget for ${Math.ceil(r.waitMs / 1000)} s`,
      };
    await new Promise((res) => setTimeout(res, r.waitMs));
  }
}

/**
 * `storycheck secret-key --rotate`: with STORYCHECK_SECRET_KEY="new,old[,older]", re-encrypts
 * every stored cookie and proxy password under the new key, in one transaction. Afterwards the
 * old keys can be dropped from the variable.
 */
export async function rotateSecrets(ctx: Context): Promise<void> {
  const ring = keys(ctx);
  const current = ring[0]!;
  const n = await reencryptSecrets(ctx.db.db, (ct, context) =>
    reencryptSecret(ct, ring, current, context),
  );
  process.stdout.write(
    `re-encrypted ${n.sessions} session${n.sessions === 1 ? '' : 's'} and ${n.proxies} proxy password${n.proxies === 1 ? '' : 's'} under key ${current.id}\n`,
  );
}
