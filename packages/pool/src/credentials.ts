import { registerSecret } from '@storycheck/logger';
import { decryptSecret, type SecretKey } from './secrets.js';

/** Cookies of a session, as decrypted for a request (memory only). */
export interface DecryptedCookies {
  sessionid: string;
  csrftoken?: string;
  dsUserId?: string;
}

/**
 * Decrypts a session's stored cookies (ciphertext bound to `session:<label>`) and registers
 * every value with the logger's redaction. The one decoding of the stored cookie JSON.
 */
export function decryptSessionCookies(
  cookiesEnc: string,
  label: string,
  ring: readonly SecretKey[],
): DecryptedCookies {
  const c = JSON.parse(decryptSecret(cookiesEnc, ring, `session:${label}`)) as {
    sessionid: string;
    csrftoken: string | null;
    ds_user_id: string | null;
  };
  registerSecret(c.sessionid);
  if (c.csrftoken) registerSecret(c.csrftoken);
  return {
    sessionid: c.sessionid,
    ...(c.csrftoken ? { csrftoken: c.csrftoken } : {}),
    ...(c.ds_user_id ? { dsUserId: c.ds_user_id } : {}),
  };
}

/** A proxy URL with its password put back (memory only); unchanged when it has none. */
export function proxyUrlWithPassword(
  url: string,
  passwordEnc: string | null,
  label: string,
  ring: readonly SecretKey[],
): string {
  if (!passwordEnc) return url;
  const u = new URL(url);
  u.password = encodeURIComponent(decryptSecret(passwordEnc, ring, `proxy:${label}`));
  return u.href.replace(/\/$/, '');
}
