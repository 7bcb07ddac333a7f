import { parseRate } from '@storycheck/config';
import { coerceError, registerSecret } from '@storycheck/logger';
import {
  ALLOW_PRIVATE_HINT,
  checkSessionLocally,
  proxyUrlProblem,
} from '@storycheck/story-checker';
import { z } from 'zod';

/**
 * Refused pool input (`proxies import`, `sessions import`) or an unknown label: one line naming
 * the problem, never echoing a cookie or a password. Nothing was written (the CLI exits 2).
 */
export class PoolInputError extends Error {
  override name = 'PoolInputError';
  readonly code = 'pool_input';
}

/** Proxy URL schemes we accept. */
const PROXY_SCHEMES = ['http:', 'https:', 'socks4:', 'socks5:', 'socks:'];
/** The label of a session or a proxy. */
const LABEL = /^[A-Za-z0-9_.-]{1,64}$/;

/** One parsed proxy line. */
export interface ProxyLine {
  label: string;
  /** Without the password. */
  url: string;
  /** Plain text (registered for redaction): encrypted before it is stored. */
  password: string | null;
}

/**
 * Parses `URL` or `label=URL`; throws a one-line reason (never echoing the password). Without
 * `allowPrivate` (ALLOW_PRIVATE_PROXIES) the host must be a public Internet address — the rule
 * of story-checker's proxy-address.ts, which the checker applies again at every connection.
 */
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

/**
 * The proxies of an import: one per line, `URL` or `label=URL`; blank lines and `#` comments
 * skipped. One bad line, no proxy at all or a label twice refuses the whole input.
 */
export function parseProxyList(text: string, allowPrivate: boolean): ProxyLine[] {
  const parsed: ProxyLine[] = [];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (!line || line.startsWith('#')) continue;
    try {
      parsed.push(parseProxyLine(line, allowPrivate));
    } catch (e) {
      throw new PoolInputError(`line ${i + 1}: ${coerceError(e).message}; nothing imported`);
    }
  }
  if (parsed.length === 0) throw new PoolInputError('no proxies in input; nothing imported');
  refuseDuplicateLabels(parsed);
  return parsed;
}

/** One session as imported (CONTRACT.md), validated and trimmed. */
export interface SessionEntry {
  label: string;
  sessionid: string;
  csrftoken?: string;
  ds_user_id?: string;
  /** The label of an imported proxy. */
  proxy?: string;
  /** `N/duration`, overriding SESSION_RATE. */
  rate?: string;
  /** Overrides SESSION_BURST. */
  burst?: number;
}

/** Why a session entry is refused, by field (docs/input.md lists each). */
const REFUSED = {
  label: '"label" must be 1–64 of A-Z a-z 0-9 _ . -',
  sessionid: '"sessionid" is missing',
  ds_user_id: '"ds_user_id" must be digits',
  proxy: '"proxy" must be a proxy label',
  rate: '"rate" must be N/duration',
  burst: '"burst" must be a positive integer',
} as const;

/** A string field, trimmed; `''` counts as absent. */
const optionalText = (reason: string) =>
  z
    .string(reason)
    .trim()
    .optional()
    .transform((v) => v || undefined);

/** Who a session is: checked first, then the cookie's local check, then its settings. */
const sessionIdentity = z.object({
  label: z.string(REFUSED.label).trim().regex(LABEL, REFUSED.label),
  sessionid: z.string(REFUSED.sessionid).trim().min(1, REFUSED.sessionid),
  ds_user_id: z.string(REFUSED.ds_user_id).trim().regex(/^\d+$/, REFUSED.ds_user_id).optional(),
  // Not checked: a csrftoken that is not a string is left out.
  csrftoken: z
    .unknown()
    .optional()
    .transform((v) => (typeof v === 'string' && v.trim()) || undefined),
});

/** A session's settings: its proxy and budget overrides. */
const sessionSettings = z.object({
  proxy: optionalText(REFUSED.proxy),
  rate: optionalText(REFUSED.rate).superRefine((v, ctx) => {
    if (!v) return;
    try {
      parseRate(v);
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: `rate ${coerceError(e).message}` });
    }
  }),
  burst: z.number(REFUSED.burst).int(REFUSED.burst).min(1, REFUSED.burst).optional(),
});

/**
 * Validates one session object (`where` names it in a refusal, e.g. `entry 3`); the cookies are
 * registered for redaction. Throws a {@link PoolInputError} with the first problem, in the
 * order label, sessionid, ds_user_id, the local cookie check, proxy, rate, burst.
 */
export function validateSessionEntry(v: unknown, where: string): SessionEntry {
  if (!v || typeof v !== 'object' || Array.isArray(v))
    throw new PoolInputError(`${where}: not an object; nothing imported`);
  const who = sessionIdentity.safeParse(v);
  if (!who.success && who.error.issues[0]!.path[0] === 'label')
    throw new PoolInputError(`${where}: ${who.error.issues[0]!.message}; nothing imported`);
  const label = (v as { label: string }).label.trim();
  const refuse = (reason: string) =>
    new PoolInputError(`${where} (${label}): ${reason}; nothing imported`);
  if (!who.success) throw refuse(who.error.issues[0]!.message);
  const { sessionid, ds_user_id, csrftoken } = who.data;
  registerSecret(sessionid);
  if (csrftoken) registerSecret(csrftoken);
  const local = checkSessionLocally({ sessionid, ...(ds_user_id ? { dsUserId: ds_user_id } : {}) });
  if (!local.ok) throw refuse(local.reason);
  const set = sessionSettings.safeParse(v);
  if (!set.success) throw refuse(set.error.issues[0]!.message);
  const { proxy, rate, burst } = set.data;
  return {
    label,
    sessionid,
    ...(csrftoken ? { csrftoken } : {}),
    ...(ds_user_id ? { ds_user_id } : {}),
    ...(proxy ? { proxy } : {}),
    ...(rate ? { rate } : {}),
    ...(burst !== undefined ? { burst } : {}),
  };
}

/**
 * The sessions of an import: a JSON array or NDJSON of session objects (a leading BOM, blank
 * lines and `#` comments allowed), each validated by {@link validateSessionEntry}. No session
 * at all or a label twice refuses the whole input.
 */
export function parseSessionList(text: string): SessionEntry[] {
  const t = text.replace(/^\uFEFF/, '').trim();
  let items: unknown[] = [];
  if (t.startsWith('[')) {
    let v: unknown;
    try {
      v = JSON.parse(t);
    } catch (e) {
      throw new PoolInputError(
        `input is not JSON: ${coerceError(e).message.split('\n')[0]}; nothing imported`,
      );
    }
    if (!Array.isArray(v)) throw new PoolInputError('expected a JSON array of session objects');
    items = v;
  } else if (t) {
    items = t
      .split(/\r?\n/)
      .map((l, i) => ({ l: l.trim(), i }))
      .filter(({ l }) => l && !l.startsWith('#'))
      .map(({ l, i }) => {
        try {
          return JSON.parse(l) as unknown;
        } catch {
          throw new PoolInputError(`line ${i + 1}: not a JSON object; nothing imported`);
        }
      });
  }
  if (items.length === 0) throw new PoolInputError('no sessions in input; nothing imported');
  const rows = items.map((v, i) => validateSessionEntry(v, `entry ${i + 1}`));
  refuseDuplicateLabels(rows);
  return rows;
}

function refuseDuplicateLabels(rows: ReadonlyArray<{ label: string }>): void {
  const dupe = rows.find((r, i) => rows.findIndex((q) => q.label === r.label) !== i);
  if (dupe) throw new PoolInputError(`label ${dupe.label} appears twice; nothing imported`);
}
