import { Writable } from 'node:stream';
import {
  REDACTED,
  clearRegisteredSecrets,
  createLogger,
  redact,
  redactString,
  registerSecret,
  withScope,
} from '../src/index.js';

/** Canary values: unique strings that must never appear in any output. */
const COOKIE = 'CANARYsessionid9f8e7d6c5b4a';
const CSRF = 'CANARYcsrf1234567890';
const PROXY_PASS = 'CANARYpr0xyPa55';

function capture(format: 'json' | 'pretty') {
  let out = '';
  const stream = new Writable({
    write(chunk, _enc, cb) {
      out += chunk.toString();
      cb();
    },
  });
  return { logger: createLogger({ level: 'debug', format, stream }), text: () => out };
}

afterEach(() => clearRegisteredSecrets());

describe('redaction', () => {
  it.each(['json', 'pretty'] as const)(
    'keeps canaries out of every %s log line at every level',
    (format) => {
      registerSecret(PROXY_PASS);
      const { logger, text } = capture(format);
      const child = withScope(logger, { batchId: 'b1', session: 'acct-1' });
      const cause = new Error(`connect failed via http://user:${PROXY_PASS}@127.0.0.2:8080`);
      const err = new Error('request failed', { cause });
      for (const level of ['error', 'warn', 'info', 'debug'] as const) {
        child.log(level, `cookie header was sessionid=${COOKIE}; csrftoken=${CSRF}`, {
          headers: {
            cookie: `sessionid=${COOKIE}`,
            'x-csrftoken': CSRF,
            authorization: 'Basic dXNlcjpwYXNz',
          },
          proxy: `http://user:${PROXY_PASS}@127.0.0.2:8080`,
          error: err,
          nested: { deeper: [{ sessionid: COOKIE }] },
        });
      }
      const out = text();
      expect(out).toContain('acct-1');
      for (const canary of [COOKIE, CSRF, PROXY_PASS, 'dXNlcjpwYXNz'])
        expect(out).not.toContain(canary);
      expect(out).toContain(REDACTED);
      // The cause chain is kept (redacted), not dropped.
      expect(out).toContain('connect failed via http://user:');
    },
  );

  it('redacts URL credentials, cookie pairs and registered values in plain strings', () => {
    registerSecret('s3cr3t-value');
    expect(redactString('http://bob:pw@h:1/x')).toBe(`http://bob:${REDACTED}@h:1/x`);
    expect(redactString('a sessionid=abc123; ds_user_id=42')).toBe(
      `a sessionid=${REDACTED}; ds_user_id=${REDACTED}`,
    );
    expect(redactString('value s3cr3t-value and s3cr3t%2Dvalue')).not.toContain('s3cr3t-value');
    expect(redactString('nothing to hide')).toBe('nothing to hide');
  });

  it('redacts by key name and survives cycles', () => {
    const o: Record<string, unknown> = { password: 'x1', user: 'bob', sessionid: COOKIE };
    o.self = o;
    expect(redact(o)).toEqual({
      password: REDACTED,
      user: 'bob',
      sessionid: REDACTED,
      self: '[circular]',
    });
  });
});

describe('registerSecret with values URL-encoding changes', () => {
  it('registers a real-looking sessionid, a password with @ and : and a base64 key, and redacts both forms', () => {
    const sid = '1234567890%3AAbCdEfGh%3A12%3AAYdCANARY';
    const pw = 'p@ss:w0rd/CANARY';
    const key = 'q83vEjRWeJCrze8SNFZ4kA+/CANARY==';
    for (const v of [sid, pw, key]) registerSecret(v);
    const text = `${sid} ${encodeURIComponent(sid)} ${pw} ${encodeURIComponent(pw)} ${key}`;
    const out = redactString(text);
    expect(out).not.toContain('CANARY');
  });
});
