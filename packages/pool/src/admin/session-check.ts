import type { Config } from '@storycheck/config';
import type { ProxyRow, SessionRow } from '@storycheck/db';
import { coerceError, type Logger } from '@storycheck/logger';
import { StoryChecker, ThrottledError } from '@storycheck/story-checker';
import { decryptSessionCookies, proxyUrlWithPassword } from '../credentials.js';
import type { Lease, Pool } from '../pool.js';
import type { SecretKey } from '../secrets.js';

/** One line of `storycheck sessions check`. */
export interface SessionCheck {
  label: string;
  /** `alive`, `invalid`, `challenge`, `suspended`, `cooling`, `busy` or `unknown`. */
  result: string;
  /** The username, the error code, or why it was not checked. */
  detail: string | null;
}

/** How long `sessions check` waits for a session's budget before it reports it unchecked. */
const CHECK_MAX_WAIT_MS = 10_000;

/**
 * Asks the upstream (accounts/current_user, through the session's proxy) whether each session
 * is logged in. Every request goes under a lease of that session (DESIGN.md: every upstream
 * request spends budget), so a cooling session is not asked (`cooling`, with the time left)
 * and a busy one waits for its budget (up to 10 s; then `busy`). Dead → invalid, challenged →
 * challenge or suspended (told to the pool); a throttled answer cools the session down like
 * any other request's would; a broken proxy says nothing about the session.
 */
export async function checkSessions(opts: {
  config: Config;
  pool: Pool;
  ring: readonly SecretKey[];
  sessions: readonly SessionRow[];
  proxies: readonly ProxyRow[];
  logger?: Logger;
}): Promise<SessionCheck[]> {
  const { config, pool, ring } = opts;
  const proxies = new Map(opts.proxies.map((p) => [p.id, p]));
  const checker = new StoryChecker({
    baseUrl: config.igBaseUrl,
    requestTimeoutMs: config.requestTimeoutMs,
    ...(opts.logger ? { logger: opts.logger } : {}),
    allowPrivateProxies: config.allowPrivateProxies,
  });
  const report: SessionCheck[] = [];
  try {
    for (const r of opts.sessions) {
      const p = r.proxyId === null ? undefined : proxies.get(r.proxyId);
      const proxy = p
        ? { label: p.label, url: proxyUrlWithPassword(p.url, p.passwordEnc, p.label, ring) }
        : undefined;
      const lease = await leaseFor(pool, String(r.id), checker, proxy);
      if (!lease.ok) {
        report.push({ label: r.label, result: lease.result, detail: lease.detail });
        continue;
      }
      report.push({
        label: r.label,
        ...(await checkOne(pool, checker, lease.lease, r, proxy, ring)),
      });
    }
  } finally {
    checker.close();
  }
  return report;
}

/** Asks about one session under `lease` and tells the pool what the answer says. */
async function checkOne(
  pool: Pool,
  checker: StoryChecker,
  lease: Lease,
  r: SessionRow,
  proxy: { label: string; url: string } | undefined,
  ring: readonly SecretKey[],
): Promise<Omit<SessionCheck, 'label'>> {
  try {
    const a = await checker.checkSession({
      session: decryptSessionCookies(r.cookiesEnc, r.label, ring),
      ...(proxy ? { proxy } : {}),
    });
    if (a.state === 'alive') {
      await pool.reportSuccess(lease);
      return { result: 'alive', detail: a.username };
    }
    const kind =
      a.state === 'dead'
        ? 'invalid'
        : (a.error as { kind?: string }).kind === 'suspended'
          ? 'suspended'
          : 'challenge';
    await pool.markSession(String(r.id), kind, a.error.code);
    return { result: kind, detail: a.error.code };
  } catch (e) {
    if (e instanceof ThrottledError)
      await pool.reportThrottled(lease, { retryAfterMs: e.retryAfterMs, code: e.code });
    return {
      result: 'unknown',
      detail: `${coerceError(e).name}: ${(e as { code?: string }).code ?? coerceError(e).message}`,
    };
  }
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
  // The connection first, while no lease is held: a lease given back is budget lost whenever
  // a worker leased the same session or proxy in between (release.lua).
  let warmed = false;
  if (!checker.connectionReady(proxy)) {
    await checker.warmConnection(proxy).catch(() => undefined);
    warmed = true;
  }
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
