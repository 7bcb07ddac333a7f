import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { migrate } from '@storycheck/db';
import {
  TEST_REDIS_URL,
  createTestDatabase,
  createTestPrefix,
  runNode,
  type TestDatabase,
  type TestPrefix,
} from '@storycheck/testkit';

const CLI = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const OLD = Buffer.alloc(32, 1).toString('base64');
const NEW = Buffer.alloc(32, 2).toString('base64');
const COOKIE = '4242424242%3AAbCdEfGhIjKlMn%3A7%3ACANARYcookieValue';
const PASS = 'CANARYproxyP@ss:word';

let tdb: TestDatabase;
let tp: TestPrefix;
let client: pg.Client;
beforeAll(async () => {
  tdb = await createTestDatabase(migrate);
  tp = createTestPrefix();
  client = new pg.Client({ connectionString: tdb.url });
  await client.connect();
});
afterAll(async () => {
  await client.end();
  await tp.clean();
  await tdb.drop();
});

const cli = (args: string[], stdin = '', env: Record<string, string> = {}) =>
  runNode(
    CLI,
    args,
    {
      DATABASE_URL: tdb.url,
      REDIS_URL: TEST_REDIS_URL,
      STORYCHECK_PREFIX: tp.prefix,
      LOG_LEVEL: 'warn',
      STORYCHECK_SECRET_KEY: OLD,
      ...env,
    },
    stdin,
  );
const everywhere = (r: { stdout: string; stderr: string }) => r.stdout + r.stderr;

describe('proxies and sessions from the CLI', () => {
  it('refuses private proxies unless allowed, and bad lines with nothing written', async () => {
    const priv = await cli(
      ['proxies', 'import', '-'],
      `p1=http://u:${encodeURIComponent(PASS)}@127.0.0.2:8080\n`,
    );
    expect(priv.code).toBe(2);
    expect(priv.stderr).toBe(
      'storycheck: line 1: 127.0.0.2 is loopback (127.0.0.0/8) (set ALLOW_PRIVATE_PROXIES=true to allow); nothing imported\n',
    );
    // The forms issue 16 found imported: IPv4-mapped IPv6 (rewritten to hex by the URL parser),
    // a trailing dot, an explicit default port (once misreported as "no port").
    for (const [line, reason] of [
      [
        `http://u:${encodeURIComponent(PASS)}@[::ffff:169.254.169.254]:8080`,
        '::ffff:a9fe:a9fe is IPv4-mapped 169.254.169.254, which is link-local (cloud metadata)',
      ],
      ['ok=http://proxy.example.com:3128\nhttp://localhost.:8080', 'localhost is loopback'],
      ['http://169.254.169.254:80', '169.254.169.254 is link-local (cloud metadata)'],
    ] as const) {
      const r = await cli(['proxies', 'import', '-'], `${line}\n`);
      expect(r.code).toBe(2);
      expect(r.stderr.split('\n')).toHaveLength(2); // one line
      expect(r.stderr).toContain(reason);
      expect(everywhere(r)).not.toContain('CANARY');
    }
    const bad = await cli(['proxies', 'import', '-'], 'p1=http://1.2.3.4:8080\nftp://x:1\n', {
      ALLOW_PRIVATE_PROXIES: 'true',
    });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/line 2: scheme ftp not supported/);
    expect((await client.query('SELECT count(*)::int AS n FROM proxies')).rows[0].n).toBe(0);
    for (const r of [priv, bad]) expect(everywhere(r)).not.toContain('CANARY');
  });

  it('imports, lists without secrets, disables and enables, and rotates the key', async () => {
    const p = await cli(
      ['proxies', 'import', '-'],
      `p1=http://u:${encodeURIComponent(PASS)}@127.0.0.2:8080\n`,
      { ALLOW_PRIVATE_PROXIES: 'true' },
    );
    expect(p).toMatchObject({ code: 0, stdout: 'imported 1 proxy (1 new, 0 updated)\n' });
    const s = await cli(
      ['sessions', 'import', '-'],
      JSON.stringify([{ label: 'acct', sessionid: COOKIE, ds_user_id: '4242424242', proxy: 'p1' }]),
    );
    expect(s).toMatchObject({ code: 0, stdout: 'imported 1 session (1 new, 0 updated)\n' });
    const missingProxy = await cli(
      ['sessions', 'import', '-'],
      JSON.stringify({ label: 'x', sessionid: COOKIE, proxy: 'nope' }),
    );
    expect(missingProxy.code).toBe(2);
    expect(missingProxy.stderr).toMatch(/no proxy labelled nope/);

    const list = await cli(['sessions', 'list', '--json']);
    expect(JSON.parse(list.stdout)).toEqual([
      expect.objectContaining({ label: 'acct', status: 'active', proxy: 'p1' }),
    ]);
    const plist = await cli(['proxies', 'list']);
    expect(plist.stdout).toContain('http://u:***@127.0.0.2:8080');
    expect((await cli(['sessions', 'disable', 'acct'])).code).toBe(0);
    expect(JSON.parse((await cli(['sessions', 'list', '--json'])).stdout)[0].status).toBe(
      'disabled',
    );
    expect((await cli(['sessions', 'enable', 'acct'])).code).toBe(0);
    expect(JSON.parse((await cli(['sessions', 'list', '--json'])).stdout)[0].status).toBe('active');

    // At rest: ciphertext only, in Postgres and Redis.
    const rows = await client.query(
      'SELECT cookies_enc FROM sessions UNION ALL SELECT password_enc FROM proxies',
    );
    for (const r of rows.rows) expect(String(r.cookies_enc)).toMatch(/^v1\./);
    const dump = JSON.stringify(rows.rows);
    expect(dump).not.toContain('CANARY');

    const rot = await cli(['secret-key', '--rotate'], '', {
      STORYCHECK_SECRET_KEY: `${NEW},${OLD}`,
    });
    expect(rot.stdout).toMatch(
      /^re-encrypted 1 session and 1 proxy password under key [0-9a-f]{8}\n$/,
    );
    // Only the new key is needed now.
    const after = await cli(['secret-key', '--rotate'], '', { STORYCHECK_SECRET_KEY: NEW });
    expect(after.stdout).toMatch(/^re-encrypted 0 sessions and 0 proxy passwords/);
    for (const r of [p, s, list, plist, rot]) expect(everywhere(r)).not.toContain('CANARY');
  });
});
