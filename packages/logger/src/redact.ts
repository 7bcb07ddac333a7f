/**
 * Secret redaction, applied to every log record and usable on any string or object
 * (error messages, CLI output). Three nets, because one is never enough:
 *  1. by key name: cookie, authorization, sessionid, csrftoken, password, secret, …;
 *  2. by shape: credentials inside URLs (`http://user:pass@host`), `sessionid=…` pairs;
 *  3. by value: any string registered with {@link registerSecret} (decrypted cookies and
 *     proxy passwords are registered the moment they exist in memory).
 */

/** What a redacted value is replaced with. */
export const REDACTED = '[redacted]';

const SECRET_KEY =
  /^(cookie|set-cookie|cookies|authorization|proxy-authorization|x-csrftoken|csrftoken|csrf|sessionid|session_id|password|passwd|pass|secret|secretkey|secret_key|token|access_token|refresh_token|ds_user_id_cookie)$/i;
const SECRET_KEY_SUBSTR = /(password|secret|cookie|sessionid|csrftoken|authorization)/i;

const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s:/@]+)(?::([^\s/@]*))?@/gi;
const COOKIE_PAIR = /\b(sessionid|csrftoken|ds_user_id|rur|mid|ig_did|shbid|shbts)=([^;\s,"']+)/gi;
const BEARER = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{6,}/g;

const knownSecrets = new Set<string>();
let knownSecretsRegex: RegExp | null = null;

/**
 * Registers a secret value (a cookie, a proxy password) so that it is redacted wherever it
 * appears, whatever key it hides under. Values shorter than 4 characters are ignored: they
 * would redact ordinary text.
 */
export function registerSecret(value: string | undefined | null): void {
  if (!value || value.length < 4 || knownSecrets.has(value)) return;
  knownSecrets.add(value);
  // URL-encoded forms travel in cookies and query strings (a sessionid holds %3A already, so
  // its encoding differs again: add one form, never recurse).
  const encoded = encodeURIComponent(value);
  if (encoded !== value) knownSecrets.add(encoded);
  const escaped = [...knownSecrets]
    .sort((a, b) => b.length - a.length)
    .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  knownSecretsRegex = new RegExp(escaped.join('|'), 'g');
}

/** Forgets every registered secret (tests only need this between cases). */
export function clearRegisteredSecrets(): void {
  knownSecrets.clear();
  knownSecretsRegex = null;
}

/** Redacts secrets from one string: URL credentials, cookie pairs, auth headers, known values. */
export function redactString(input: string): string {
  let out = input;
  if (knownSecretsRegex) out = out.replace(knownSecretsRegex, REDACTED);
  out = out.replace(URL_CREDENTIALS, (_m, scheme: string, user: string, pass?: string) =>
    pass === undefined ? `${scheme}${user}@` : `${scheme}${user}:${REDACTED}@`,
  );
  out = out.replace(COOKIE_PAIR, (_m, name: string) => `${name}=${REDACTED}`);
  out = out.replace(BEARER, (_m, kind: string) => `${kind} ${REDACTED}`);
  return out;
}

/** True when a key name says its value is a secret. */
export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key) || SECRET_KEY_SUBSTR.test(key);
}

/**
 * Returns a deep copy of `value` with secrets redacted by key and by content. Errors become
 * plain objects that keep name, message, code, stack and the whole `cause` chain (redacted).
 * Cycles are cut; depth is capped at 8.
 */
export function redact(value: unknown, depth = 0, seen = new WeakSet<object>()): unknown {
  if (typeof value === 'string') return redactString(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth > 8) return '[depth]';
  if (seen.has(value)) return '[circular]';
  seen.add(value);
  if (value instanceof Error) {
    const out: Record<string, unknown> = { name: value.name, message: redactString(value.message) };
    const extra = value as unknown as Record<string, unknown>;
    for (const k of Object.keys(extra)) {
      if (k === 'cause') continue;
      out[k] = isSecretKey(k) ? REDACTED : redact(extra[k], depth + 1, seen);
    }
    if (value.stack) out.stack = redactString(value.stack);
    if (value.cause !== undefined) out.cause = redact(value.cause, depth + 1, seen);
    return out;
  }
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1, seen));
  if (value instanceof Date) return value.toISOString();
  if (value instanceof URL) return redactString(value.href);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] =
      isSecretKey(k) && v !== undefined && v !== null && v !== ''
        ? REDACTED
        : redact(v, depth + 1, seen);
  }
  return out;
}
