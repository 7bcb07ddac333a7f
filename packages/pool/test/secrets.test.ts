import { createHash, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { clearRegisteredSecrets, redactString } from '@storycheck/logger';
import { spawnNode } from '@storycheck/testkit';
import {
  decryptSecret,
  encryptSecret,
  generateSecretKey,
  parseSecretKey,
  parseSecretKeys,
  reencryptSecret,
  SecretError,
  secretKeyId,
} from '../src/index.js';

// URL-safe canaries (encodeURIComponent leaves them alone), checked in this process.
const CANARY_COOKIE = 'sessionid-CANARY-7f3a9c2e1b4d5e6f';
const CANARY_PASSWORD = 'pr0xy-CANARY-pa55';
// Realistic ones: Instagram session ids carry %3A, passwords carry @ and :. Checked in a child
// process (see the last test).
const REAL_COOKIE = '4213370815%3ACANARYq9Zx7Ab%3A12%3AAYdk-CANARY';
const REAL_PASSWORD = 'p@ss:CANARY/w0rd';
const DECRYPT = fileURLToPath(new URL('./fixtures/decrypt.mjs', import.meta.url));
/**
 * A key in url-safe base64 without padding: registering it for redaction in this process is
 * safe whatever the logger does with URL-encoded forms. Standard base64 (with + / =) is
 * checked in the child process.
 */
const urlSafeKeyText = () => randomBytes(32).toString('base64url');

afterEach(() => clearRegisteredSecrets());

describe('secrets at rest (AES-256-GCM, key id in the ciphertext)', () => {
  it('round-trips, names the key, and never shows the plaintext', () => {
    const text = urlSafeKeyText();
    const key = parseSecretKey(text);
    expect(key.id).toBe(
      createHash('sha256').update(Buffer.from(text, 'base64url')).digest('hex').slice(0, 8),
    );
    expect(Buffer.from(generateSecretKey(), 'base64')).toHaveLength(32);
    const ct = encryptSecret(CANARY_COOKIE, key);
    expect(ct).toMatch(/^v1\.[0-9a-f]{8}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]+$/);
    expect(ct.split('.')[1]).toBe(key.id);
    expect(secretKeyId(ct)).toBe(key.id);
    expect(ct).not.toContain('CANARY');
    expect(Buffer.from(ct.split('.')[4]!, 'base64url').toString('latin1')).not.toContain('CANARY');
    // A fresh IV every time.
    expect(encryptSecret(CANARY_COOKIE, key)).not.toBe(ct);
    expect(decryptSecret(ct, key)).toBe(CANARY_COOKIE);
  });

  it('registers every decrypted value (and the key) for redaction', () => {
    const text = urlSafeKeyText();
    const key = parseSecretKey(text);
    expect(redactString(`key=${text}`)).not.toContain(text);
    const ct = encryptSecret(CANARY_PASSWORD, key);
    expect(redactString(`proxy said ${CANARY_PASSWORD}`)).toContain('CANARY');
    decryptSecret(ct, [key]);
    expect(redactString(`proxy said ${CANARY_PASSWORD}`)).toBe('proxy said [redacted]');
    decryptSecret(encryptSecret(CANARY_COOKIE, key), key);
    expect(redactString(`x=${CANARY_COOKIE}`)).not.toContain('CANARY');
  });

  it('rotation: old ciphertexts decrypt with the ring and re-encrypt to the new key', () => {
    const oldKey = parseSecretKey(urlSafeKeyText());
    const newKey = parseSecretKey(urlSafeKeyText());
    const old = encryptSecret(CANARY_COOKIE, oldKey, 'session:7:cookies');
    const ring = [newKey, oldKey];
    expect(decryptSecret(old, ring, 'session:7:cookies')).toBe(CANARY_COOKIE);
    const rotated = reencryptSecret(old, ring, newKey, 'session:7:cookies');
    expect(secretKeyId(rotated)).toBe(newKey.id);
    expect(decryptSecret(rotated, [newKey], 'session:7:cookies')).toBe(CANARY_COOKIE);
    // Already under the new key: unchanged, so a rotation pass rewrites only old rows.
    expect(reencryptSecret(rotated, ring, newKey, 'session:7:cookies')).toBe(rotated);
    // Without the old key, an old row names the missing key and nothing else.
    const err = (() => {
      try {
        decryptSecret(old, [newKey], 'session:7:cookies');
      } catch (e) {
        return e as SecretError;
      }
      throw new Error('expected a failure');
    })();
    expect(err).toBeInstanceOf(SecretError);
    expect(err.code).toBe('unknown_key');
    expect(err.message).toContain(oldKey.id);
    expect(err.message).not.toContain('CANARY');
  });

  it('rejects tampering, a wrong context, and garbage, with stable codes and no secret', () => {
    const key = parseSecretKey(urlSafeKeyText());
    const ct = encryptSecret(CANARY_PASSWORD, key, 'proxy:1:password');
    const parts = ct.split('.');
    const body = Buffer.from(parts[4]!, 'base64url');
    body[0] = body[0]! ^ 1;
    const tampered = [...parts.slice(0, 4), body.toString('base64url')].join('.');
    const codeOf = (fn: () => unknown) => {
      try {
        fn();
        return 'no error';
      } catch (e) {
        expect((e as Error).message).not.toContain('CANARY');
        return (e as SecretError).code;
      }
    };
    expect(codeOf(() => decryptSecret(tampered, key, 'proxy:1:password'))).toBe('tampered');
    expect(codeOf(() => decryptSecret(ct, key, 'proxy:2:password'))).toBe('tampered');
    expect(codeOf(() => decryptSecret('v1.abc', key))).toBe('malformed');
    expect(codeOf(() => decryptSecret(`v2.${parts.slice(1).join('.')}`, key))).toBe('malformed');
    expect(codeOf(() => decryptSecret(CANARY_PASSWORD, key))).toBe('malformed');
    // Nothing was registered by the failures.
    expect(redactString(CANARY_PASSWORD)).toBe(CANARY_PASSWORD);
  });

  it.each([
    { input: '', why: /is empty/ },
    { input: 'not base64!!', why: /is not base64/ },
    { input: randomBytes(16).toString('base64'), why: /must be 32 bytes in base64, got 16 bytes/ },
    { input: randomBytes(33).toString('base64'), why: /got 33 bytes/ },
  ])('parseSecretKey refuses "$input" in one line without echoing it', ({ input, why }) => {
    let msg = '';
    try {
      parseSecretKey(input);
    } catch (e) {
      expect(e).toBeInstanceOf(SecretError);
      msg = (e as Error).message;
    }
    expect(msg).toMatch(why);
    expect(msg).toMatch(/^STORYCHECK_SECRET_KEY /);
    expect(msg).not.toContain('\n');
    if (input.length > 4) expect(msg).not.toContain(input);
  });

  it('accepts url-safe base64 and a comma-separated ring (first = current)', () => {
    const raw = randomBytes(32);
    const url = parseSecretKey(raw.toString('base64url'));
    expect(url.key.equals(raw)).toBe(true);
    const other = urlSafeKeyText();
    const ring = parseSecretKeys(` ${raw.toString('base64url')} , ${other}`);
    expect(ring.map((k) => k.id)).toEqual([url.id, parseSecretKey(other).id]);
    expect(() => parseSecretKeys(' , ')).toThrow(/is empty/);
  });

  it.each([{ value: REAL_COOKIE }, { value: REAL_PASSWORD }])(
    'a standard base64 key and a realistic value ($value) are registered without hanging',
    async ({ value }) => {
      const text = generateSecretKey();
      // Encrypt here without registering the key text (the child parses and registers it).
      const raw = Buffer.from(text, 'base64');
      const id = createHash('sha256').update(raw).digest('hex').slice(0, 8);
      const ct = encryptSecret(value, { id, key: raw }, 'ctx');
      const p = spawnNode(DECRYPT, [ct, 'ctx'], {
        SECRET_KEY: text,
        NODE_OPTIONS: '--max-old-space-size=96',
      });
      p.child.stdin!.end();
      const timer = setTimeout(() => void p.kill(), 15_000);
      const code = await p.exited;
      clearTimeout(timer);
      const oom = /heap out of memory|Maximum call stack/.test(p.stderr());
      const why =
        code === 0
          ? ''
          : `decrypt.mjs exited ${String(code)}${oom ? ' (ran out of memory registering the secret: does @storycheck/logger registerSecret recurse on URL-encoded forms?)' : ''}: ${p.stderr().slice(-300)}`;
      expect(why).toBe('');
      const out = JSON.parse(p.stdout()) as { keyId: string; length: number; redacted: string };
      expect(out.keyId).toBe(id);
      expect(out.length).toBe(value.length);
      expect(out.redacted).not.toContain('CANARY');
      expect(out.redacted).not.toContain(text);
    },
  );
});
