import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { registerSecret } from '@storycheck/logger';

/**
 * Encryption at rest of cookies and proxy passwords (DESIGN.md invariant 3): AES-256-GCM with a
 * random 96-bit IV per value and the key's id inside the ciphertext, so a key can be rotated
 * while old rows still decrypt:
 *
 *     v1.<keyId>.<iv>.<tag>.<ciphertext>      (iv, tag, ciphertext: base64url, no padding)
 *
 * keyId is the first 8 hex digits of sha256(key) — it names the key without revealing it. An
 * optional `context` (e.g. `session:42:cookies`) is bound as additional authenticated data, so
 * a ciphertext copied into another row does not decrypt there. Every decrypted value is
 * registered with the logger's redaction the moment it exists.
 */

/** The version tag of the ciphertext format. */
export const SECRET_FORMAT = 'v1';

/** A parsed key: 32 bytes and its public id. */
export interface SecretKey {
  /** First 8 hex digits of sha256(key). */
  readonly id: string;
  readonly key: Buffer;
}

/** Why a secret could not be used; `code` is stable, the message never holds secret material. */
export class SecretError extends Error {
  override name = 'SecretError';
  /** bad_key | malformed | unknown_key | tampered. */
  readonly code: 'bad_key' | 'malformed' | 'unknown_key' | 'tampered';
  constructor(code: SecretError['code'], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

const keyIdOf = (key: Buffer) => createHash('sha256').update(key).digest('hex').slice(0, 8);
const b64u = (b: Buffer) => b.toString('base64url');

/** A fresh random key, base64 (what `storycheck secret-key` prints). */
export function generateSecretKey(): string {
  return randomBytes(32).toString('base64');
}

/**
 * Parses STORYCHECK_SECRET_KEY: 32 bytes in base64 (standard or url-safe). Throws a
 * {@link SecretError} with a one-line message that never echoes the value. The key text is
 * registered for redaction.
 */
export function parseSecretKey(text: string, variable = 'STORYCHECK_SECRET_KEY'): SecretKey {
  const t = text.trim();
  if (t === '')
    throw new SecretError('bad_key', `${variable} is empty (storycheck secret-key prints one)`);
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(t))
    throw new SecretError(
      'bad_key',
      `${variable} is not base64 (storycheck secret-key prints one)`,
    );
  const key = Buffer.from(t.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (key.length !== 32)
    throw new SecretError(
      'bad_key',
      `${variable} must be 32 bytes in base64, got ${key.length} bytes (storycheck secret-key prints one)`,
    );
  registerSecret(t);
  return { id: keyIdOf(key), key };
}

/**
 * Parses a key ring: comma-separated keys, the first one current (encrypts), the rest old
 * ones that still decrypt during a rotation. E.g. `STORYCHECK_SECRET_KEY=<new>,<old>`.
 */
export function parseSecretKeys(text: string, variable = 'STORYCHECK_SECRET_KEY'): SecretKey[] {
  const keys = text
    .split(',')
    .filter((s) => s.trim() !== '')
    .map((s) => parseSecretKey(s, variable));
  if (keys.length === 0)
    throw new SecretError('bad_key', `${variable} is empty (storycheck secret-key prints one)`);
  return keys;
}

/** Encrypts one value under `key`; `context` (if given) must be given again to decrypt. */
export function encryptSecret(plaintext: string, key: SecretKey, context = ''): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key.key, iv);
  cipher.setAAD(Buffer.from(context, 'utf8'));
  const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return [SECRET_FORMAT, key.id, b64u(iv), b64u(cipher.getAuthTag()), b64u(ct)].join('.');
}

/** The key id inside a ciphertext (to find rows still under an old key); throws if malformed. */
export function secretKeyId(ciphertext: string): string {
  return split(ciphertext).keyId;
}

function split(ciphertext: string) {
  const parts = ciphertext.split('.');
  const [version, keyId, iv, tag, ct] = parts;
  if (
    parts.length !== 5 ||
    version !== SECRET_FORMAT ||
    !keyId ||
    !/^[0-9a-f]{8}$/.test(keyId) ||
    iv === undefined ||
    tag === undefined ||
    ct === undefined
  )
    throw new SecretError('malformed', `not a ${SECRET_FORMAT} ciphertext`);
  return { keyId, iv, tag, ct };
}

/**
 * Decrypts with whichever of `keys` the ciphertext names, registers the plaintext for
 * redaction, and returns it. Throws {@link SecretError}: `unknown_key` (no such key in the
 * ring: the message names the key id only), `malformed`, `tampered` (wrong context or
 * modified bytes).
 */
export function decryptSecret(
  ciphertext: string,
  keys: SecretKey | readonly SecretKey[],
  context = '',
): string {
  const ring = Array.isArray(keys) ? (keys as readonly SecretKey[]) : [keys as SecretKey];
  const { keyId, iv, tag, ct } = split(ciphertext);
  const key = ring.find((k) => k.id === keyId);
  if (!key)
    throw new SecretError(
      'unknown_key',
      `secret was encrypted with key ${keyId}, which is not in STORYCHECK_SECRET_KEY (have ${ring.map((k) => k.id).join(', ') || 'none'})`,
    );
  const ivBuf = Buffer.from(iv, 'base64url');
  const tagBuf = Buffer.from(tag, 'base64url');
  if (ivBuf.length !== 12 || tagBuf.length !== 16)
    throw new SecretError('malformed', `not a ${SECRET_FORMAT} ciphertext (bad iv or tag)`);
  let plaintext: string;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key.key, ivBuf);
    decipher.setAAD(Buffer.from(context, 'utf8'));
    decipher.setAuthTag(tagBuf);
    plaintext = Buffer.concat([
      decipher.update(Buffer.from(ct, 'base64url')),
      decipher.final(),
    ]).toString('utf8');
  } catch (e) {
    throw new SecretError('tampered', `secret under key ${keyId} failed authentication`, {
      cause: e,
    });
  }
  registerSecret(plaintext);
  return plaintext;
}

/**
 * Rotation: decrypts with the ring and encrypts again under `current`. Returns the input
 * unchanged when it is already under `current` (so a rotation pass only rewrites old rows).
 */
export function reencryptSecret(
  ciphertext: string,
  keys: readonly SecretKey[],
  current: SecretKey,
  context = '',
): string {
  if (secretKeyId(ciphertext) === current.id) return ciphertext;
  return encryptSecret(decryptSecret(ciphertext, [current, ...keys], context), current, context);
}
