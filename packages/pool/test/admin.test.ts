import type { Redis } from 'ioredis';
import { loadConfig, type Config } from '@storycheck/config';
import { loadPoolStore, migrate, openDb, setSessionStatus, type DbHandle } from '@storycheck/db';
import { createRedis } from '@storycheck/queue';
import {
  createTestDatabase,
  createTestPrefix,
  TEST_REDIS_URL,
  type TestDatabase,
  type TestPrefix,
} from '@storycheck/testkit';
import { decryptSessionCookies, parseSecretKeys } from '../src/index.js';
import {
  PoolAdmin,
  PoolInputError,
  mirrorToStore,
  parseSessionList,
  syncFromStore,
} from '../src/admin/index.js';

/**
 * The pool's administration against a real Postgres and Redis: whole inputs refused with
 * nothing written anywhere, secrets only as ciphertext, settings Postgres → Redis, live state
 * Redis → Postgres, and neither direction undoing the other.
 */

const KEY = Buffer.alloc(32, 7).toString('base64');
const COOKIE = '4242424242%3AAbCdEfGhIjKlMn%3A7%3ACANARYcookieValue';
const PASS = 'CANARYproxyP@ss:word';
const session = (label: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ label, sessionid: COOKIE, ds_user_id: '4242424242', ...extra });

let tdb: TestDatabase;
let tp: TestPrefix;
let db: DbHandle;
let redis: Redis;
let config: Config;
let admin: PoolAdmin;

beforeAll(async () => {
  tdb = await createTestDatabase(migrate);
  tp = createTestPrefix();
  db = openDb(tdb.url, { max: 2 });
  redis = createRedis(TEST_REDIS_URL);
  config = loadConfig({
    STORYCHECK_PREFIX: tp.prefix,
    STORYCHECK_SECRET_KEY: KEY,
    ALLOW_PRIVATE_PROXIES: 'true',
  });
  admin = new PoolAdmin({ config, db: db.db, redis });
});
/** Raw SQL on the test database, past the code under test. */
const client = { query: (text: string, values?: unknown[]) => db.pool.query(text, values) };

afterAll(async () => {
  await db.close();
  await redis.quit();
  await tp.clean();
  await tdb.drop();
});

/** Every key and value of this test's pool in Redis, as one string. */
async function redisDump(): Promise<string> {
  const keys = await redis.keys(`${tp.prefix}:*`);
  const out: string[] = [...keys];
  for (const k of keys) {
    const t = await redis.type(k);
    if (t === 'hash') out.push(JSON.stringify(await redis.hgetall(k)));
    else if (t === 'set') out.push(...(await redis.smembers(k)));
    else if (t === 'zset') out.push(...(await redis.zrange(k, 0, -1)));
    else if (t === 'string') out.push(String(await redis.get(k)));
  }
  return out.join('\n');
}

const count = async (table: string) =>
  (await client.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n as number;

/** The refusal `fn` throws: a PoolInputError, one line, never a secret. */
async function refusal(fn: () => Promise<unknown>): Promise<string> {
  const e = await fn().then(
    () => {
      throw new Error('expected a refusal');
    },
    (e: unknown) => e,
  );
  expect(e).toBeInstanceOf(PoolInputError);
  const message = (e as Error).message;
  expect(message).not.toContain('\n');
  expect(message).not.toContain('CANARY');
  return message;
}

describe('PoolAdmin', () => {
  it('refuses a bad input whole: nothing in Postgres, nothing in Redis', async () => {
    const secretLine = `p1=http://u:${encodeURIComponent(PASS)}@127.0.0.2:8080`;
    expect(await refusal(() => admin.importProxies(`${secretLine}\nftp://x:1\n`))).toBe(
      'line 2: scheme ftp not supported (http, https, socks); nothing imported',
    );
    expect(await refusal(() => admin.importProxies(`${secretLine}\n${secretLine}\n`))).toBe(
      'label p1 appears twice; nothing imported',
    );
    const strict = new PoolAdmin({
      config: loadConfig({ STORYCHECK_PREFIX: tp.prefix, STORYCHECK_SECRET_KEY: KEY }),
      db: db.db,
      redis,
    });
    expect(await refusal(() => strict.importProxies(secretLine))).toBe(
      'line 1: 127.0.0.2 is loopback (127.0.0.0/8) (set ALLOW_PRIVATE_PROXIES=true to allow); nothing imported',
    );
    expect(
      await refusal(() =>
        admin.importSessions([session('a'), session('b', { burst: 0 })].join('\n')),
      ),
    ).toBe('entry 2 (b): "burst" must be a positive integer; nothing imported');
    expect(await refusal(() => admin.importSessions(session('a', { proxy: 'nope' })))).toBe(
      'session a: no proxy labelled nope (import it first); nothing imported',
    );
    const noKey = new PoolAdmin({
      config: loadConfig({ STORYCHECK_PREFIX: tp.prefix }),
      db: db.db,
      redis: () => {
        throw new Error('a refused input must not open Redis');
      },
    });
    expect(await refusal(() => noKey.importSessions(session('a')))).toMatch(
      /^STORYCHECK_SECRET_KEY is not set/,
    );
    expect(await refusal(() => noKey.importProxies('ftp://x:1'))).toMatch(/^line 1: scheme ftp/);
    expect(await count('proxies')).toBe(0);
    expect(await count('sessions')).toBe(0);
    expect(await redisDump()).toBe('');
  });

  it('checks entries in a fixed order, the first problem named', () => {
    const first = (o: Record<string, unknown>) => {
      try {
        parseSessionList(JSON.stringify([o]));
        return 'accepted';
      } catch (e) {
        return (e as Error).message;
      }
    };
    // Every field wrong at once: the label is named first, then the cookie before the settings.
    const all = { label: 'bad label', sessionid: 'short', proxy: 3, rate: 'x', burst: -1 };
    expect(first(all)).toBe('entry 1: "label" must be 1–64 of A-Z a-z 0-9 _ . -; nothing imported');
    expect(first({ ...all, label: 'ok' })).toBe(
      'entry 1 (ok): sessionid is too short to be real; nothing imported',
    );
    expect(first({ ...all, label: 'ok', sessionid: COOKIE })).toBe(
      'entry 1 (ok): "proxy" must be a proxy label; nothing imported',
    );
    expect(first({ label: 'ok', sessionid: COOKIE, rate: 'x' })).toMatch(
      /^entry 1 \(ok\): rate .+; nothing imported$/,
    );
    expect(first({ label: 'ok', sessionid: COOKIE, ds_user_id: '12' })).toBe(
      'entry 1 (ok): sessionid belongs to another account than ds_user_id; nothing imported',
    );
    expect(first({ label: ' ok ', sessionid: ` ${COOKIE} `, proxy: '', rate: '', x: 1 })).toBe(
      'accepted',
    );
    expect(
      parseSessionList(JSON.stringify([{ label: ' ok ', sessionid: COOKIE, proxy: '' }])),
    ).toEqual([{ label: 'ok', sessionid: COOKIE }]);
  });

  it('imports with secrets only as ciphertext, and lists live state from Redis', async () => {
    expect(
      await admin.importProxies(`p1=http://u:${encodeURIComponent(PASS)}@127.0.0.2:8080\n`),
    ).toEqual({ imported: 1, created: 1 });
    expect(
      await admin.importSessions([session('a', { proxy: 'p1' }), session('b')].join('\n')),
    ).toEqual({ imported: 2, created: 2 });
    const rows = await client.query(
      'SELECT cookies_enc AS v FROM sessions UNION ALL SELECT password_enc FROM proxies',
    );
    for (const r of rows.rows) expect(String(r.v)).toMatch(/^v1\./);
    expect(JSON.stringify(rows.rows)).not.toContain('CANARY');
    const a = await client.query("SELECT cookies_enc, label FROM sessions WHERE label = 'a'");
    expect(decryptSessionCookies(a.rows[0].cookies_enc, 'a', parseSecretKeys(KEY))).toEqual({
      sessionid: COOKIE,
      dsUserId: '4242424242',
    });
    expect(await admin.proxies()).toEqual([
      expect.objectContaining({
        label: 'p1',
        url: 'http://u:***@127.0.0.2:8080',
        status: 'active',
      }),
    ]);

    // A throttled lease of b: the list shows it cooling, read from Redis.
    const b = (await admin.pool.snapshot()).sessions.find((s) => s.label === 'b')!;
    const l = await admin.pool.acquire(b.id);
    if (!l.ok) throw new Error('expected a lease of b');
    await admin.pool.reportThrottled(l.lease, { retryAfterMs: 60_000 });
    const list = await admin.sessions();
    expect(list.map((s) => [s.label, s.status, s.proxy])).toEqual([
      ['a', 'active', 'p1'],
      ['b', 'cooling', null],
    ]);
    expect(list[1]!.cooldownLeftMs).toBeGreaterThan(50_000);
    expect(list[1]!.usage).toBe(1);
    expect(await redisDump()).not.toContain('CANARY');
    expect(JSON.stringify([list, await admin.proxies()])).not.toContain('CANARY');
  });

  it('enable/disable: Postgres then Redis; an unknown label changes nothing', async () => {
    expect(await refusal(() => admin.setSessionEnabled('nope', false))).toBe(
      'no session labelled nope',
    );
    await admin.setSessionEnabled('a', false);
    const status = async (label: string) => ({
      pg: (await client.query('SELECT status FROM sessions WHERE label = $1', [label])).rows[0]
        .status as string,
      redis: (await admin.pool.snapshot()).sessions.find((s) => s.label === label)!.status,
    });
    expect(await status('a')).toEqual({ pg: 'disabled', redis: 'disabled' });
    // The operator's word beats a live state: an invalid session enabled is active again.
    const id = (await admin.pool.snapshot()).sessions.find((s) => s.label === 'a')!.id;
    await admin.pool.markSession(id, 'invalid', 'session_dead');
    await admin.setSessionEnabled('a', true);
    expect(await status('a')).toEqual({ pg: 'active', redis: 'active' });
  });

  it('settings flow Postgres → Redis only, live state Redis → Postgres only', async () => {
    const snap = async () => (await admin.pool.snapshot()).sessions;
    const idOf = async (label: string) => (await snap()).find((s) => s.label === label)!.id;
    const pgRow = async (label: string) =>
      (
        await client.query(
          'SELECT status, usage_count, rate_limited, last_error FROM sessions WHERE label = $1',
          [label],
        )
      ).rows[0];

    // Live state reaches the rows through the mirror.
    await admin.pool.markSession(await idOf('a'), 'invalid', 'session_dead');
    await mirrorToStore(admin.pool, db.db);
    expect(await pgRow('a')).toMatchObject({ status: 'invalid', last_error: 'session_dead' });
    expect(await pgRow('b')).toMatchObject({
      status: 'cooling',
      usage_count: 1,
      rate_limited: true,
    });

    // A state in a row never goes back to Redis: a sync does not make `a` invalid again
    // once an operator revived it in Redis, nor revive it while Redis says invalid.
    await admin.pool.enableSession(await idOf('a'));
    await syncFromStore(admin.pool, config, await loadPoolStore(db.db));
    expect((await snap()).find((s) => s.label === 'a')!.status).toBe('active');
    await admin.pool.markSession(await idOf('a'), 'invalid', 'session_dead');
    await client.query("UPDATE sessions SET status = 'active' WHERE label = 'a'");
    await syncFromStore(admin.pool, config, await loadPoolStore(db.db));
    expect((await snap()).find((s) => s.label === 'a')!.status).toBe('invalid');

    // `disabled` is the operator's: a mirror neither overwrites it (Redis not yet told)…
    await setSessionStatus(db.db, 'b', 'disabled');
    await mirrorToStore(admin.pool, db.db);
    expect((await pgRow('b')).status).toBe('disabled');
    await syncFromStore(admin.pool, config, await loadPoolStore(db.db));
    expect((await snap()).find((s) => s.label === 'b')!.status).toBe('disabled');
    // …nor writes it from a stale snapshot: `sessions enable` wrote Postgres, Redis still says
    // disabled (the race of a worker's mirror with the CLI); the next sync keeps it enabled.
    await setSessionStatus(db.db, 'b', 'active');
    await mirrorToStore(admin.pool, db.db);
    expect((await pgRow('b')).status).toBe('active');
    await admin.setSessionEnabled('b', true);
    await mirrorToStore(admin.pool, db.db);
    expect((await pgRow('b')).status).not.toBe('disabled');
  });

  it('rotates every secret to the new key, in one step', async () => {
    const NEW = Buffer.alloc(32, 9).toString('base64');
    const rotating = new PoolAdmin({
      config: loadConfig({ STORYCHECK_PREFIX: tp.prefix, STORYCHECK_SECRET_KEY: `${NEW},${KEY}` }),
      db: db.db,
      redis: () => {
        throw new Error('a rotation must not open Redis');
      },
    });
    const r = await rotating.rotateSecrets();
    expect(r).toEqual({ sessions: 2, proxies: 1, keyId: parseSecretKeys(NEW)[0]!.id });
    expect(await rotating.rotateSecrets()).toMatchObject({ sessions: 0, proxies: 0 });
    const row = await client.query("SELECT cookies_enc FROM sessions WHERE label = 'a'");
    expect(() =>
      decryptSessionCookies(row.rows[0].cookies_enc, 'a', parseSecretKeys(KEY)),
    ).toThrow();
    expect(
      decryptSessionCookies(row.rows[0].cookies_enc, 'a', parseSecretKeys(NEW)).sessionid,
    ).toBe(COOKIE);
  });
});
