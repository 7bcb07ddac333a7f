import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { Redis } from 'ioredis';
import { migrate } from '@storycheck/db';
import { createPool } from '@storycheck/pool';
import { createRedis } from '@storycheck/queue';
import {
  TEST_REDIS_URL,
  createTestDatabase,
  createTestPrefix,
  runNode,
  type TestDatabase,
  type TestPrefix,
} from '@storycheck/testkit';
import { startProxies, startSim, type ProxyPool, type SimServer } from '@storycheck/upstream-sim';

/**
 * `storycheck sessions check` sends every request under a lease of its session (issue 15): a
 * cooling session is not asked at all (so checking it cannot earn it another 429), a session
 * whose budget is spent is not asked either, and an answered check spends the session's budget.
 */
const CLI = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const KEY = Buffer.alloc(32, 5).toString('base64');
const sid = (n: number) => `${5_000_000 + n}%3AsessionsCheckTest%3A${n}`;

let tdb: TestDatabase;
let tp: TestPrefix;
let client: pg.Client;
let redis: Redis;
let sim: SimServer;
let proxies: ProxyPool;

beforeAll(async () => {
  tdb = await createTestDatabase(migrate);
  tp = createTestPrefix();
  client = new pg.Client({ connectionString: tdb.url });
  await client.connect();
  redis = createRedis(TEST_REDIS_URL);
  proxies = await startProxies({ count: 1 });
  sim = await startSim({
    seed: 5,
    size: 50,
    requireSession: true,
    sessions: [
      { sessionid: sid(1), label: 'alive1' },
      { sessionid: sid(2), label: 'alive2' },
    ],
  });
});
afterAll(async () => {
  redis.disconnect();
  await client.end();
  await tp.clean();
  await tdb.drop();
  await sim.close();
  await proxies.close();
});

const cli = (args: string[], stdin = '') =>
  runNode(
    CLI,
    args,
    {
      DATABASE_URL: tdb.url,
      REDIS_URL: TEST_REDIS_URL,
      STORYCHECK_PREFIX: tp.prefix,
      LOG_LEVEL: 'warn',
      STORYCHECK_SECRET_KEY: KEY,
      ALLOW_PRIVATE_PROXIES: 'true',
      IG_BASE_URL: sim.url,
      // One request per session a minute: a second check within the minute has no budget.
      SESSION_RATE: '1/1m',
      SESSION_BURST: '1',
      BUDGET_MARGIN: '0',
    },
    stdin,
  );

const asked = (label: string) =>
  sim.requestLog().filter((e) => e.kind === 'current_user' && e.session === label).length;

async function check(...labels: string[]): Promise<Record<string, string>> {
  const r = await cli(['sessions', 'check', '--json', ...labels]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return Object.fromEntries(
    (JSON.parse(r.stdout) as Array<{ label: string; result: string }>).map((x) => [
      x.label,
      x.result,
    ]),
  );
}

describe('sessions check under a lease', () => {
  it('asks each session once within its budget; never a cooling one or one without budget', async () => {
    expect((await cli(['proxies', 'import', '-'], `p1=${proxies.proxies[0]!.url}\n`)).code).toBe(0);
    const imp = await cli(
      ['sessions', 'import', '-'],
      [1, 2]
        .map((n) =>
          JSON.stringify({
            label: `alive${n}`,
            sessionid: sid(n),
            ds_user_id: String(5_000_000 + n),
            proxy: 'p1',
          }),
        )
        .join('\n'),
    );
    expect(imp.stderr).toBe('');

    // alive2 is cooling down after a 429 (as a worker would have reported it).
    const id2 = String(
      (await client.query("SELECT id FROM sessions WHERE label = 'alive2'")).rows[0].id,
    );
    const pool = createPool({
      redis,
      prefix: tp.prefix,
      defaults: {
        sessionRate: { count: 1, periodMs: 60_000 },
        sessionBurst: 1,
        proxyRate: { count: 600, periodMs: 60_000 },
        proxyBurst: 10,
      },
    });
    const l = await pool.acquire(id2);
    if (!l.ok) throw new Error(`expected a lease of alive2, got ${JSON.stringify(l)}`);
    await pool.reportThrottled(l.lease, { retryAfterMs: 10 * 60_000 });

    // alive1 is asked (it has its burst); alive2 is not: it is cooling.
    expect(await check()).toEqual({ alive1: 'alive', alive2: 'cooling' });
    expect(asked('alive1')).toBe(1);
    expect(asked('alive2')).toBe(0);

    // Again at once: alive1 spent its one request a minute, so it is not asked a second time.
    expect(await check('alive1')).toEqual({ alive1: 'busy' });
    expect(asked('alive1')).toBe(1);
    expect(sim.requestLog().filter((e) => e.status === 429)).toEqual([]);
  });
});
