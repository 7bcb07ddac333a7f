/**
 * `npm run demo` end to end, as the README runs it (node packages/devtools/demo.mjs), on a
 * throw-away database and Redis prefix: it must finish the 200-name batch through the real pool
 * and say so — at least one throttle handled, the two sessions the simulator logs out and
 * challenges retired, requests that waited for budget — then stop everything it started.
 */
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import {
  createTestDatabase,
  createTestPrefix,
  freePort,
  spawnNode,
  type TestDatabase,
  type TestPrefix,
} from '@storycheck/testkit';

const DEMO = fileURLToPath(new URL('../demo.mjs', import.meta.url));

let tdb: TestDatabase;
let tp: TestPrefix;
beforeAll(async () => {
  tdb = await createTestDatabase();
  tp = createTestPrefix();
});
afterAll(async () => {
  await tp?.clean();
  await tdb?.drop();
});

const answers = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });

it('runs the pool: throttles handled, two sessions retired, the limiter at work; stops all it started', async () => {
  const boardPort = await freePort();
  const demo = spawnNode(DEMO, [], {
    DATABASE_URL: tdb.url,
    STORYCHECK_PREFIX: tp.prefix,
    BOARD_PORT: String(boardPort),
  });
  demo.child.stdin!.end();
  const code = await demo.exited;
  const out = demo.stdout();
  if (code !== 0) process.stderr.write(`${out}\n${demo.stderr()}`);
  expect(code).toBe(0);
  expect(out).toMatch(/completed, 200\/200 done/);
  const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? NaN);
  expect(num(/^upstream requests: (\d+)/m)).toBeGreaterThanOrEqual(200);
  expect(num(/^throttles handled: (\d+)/m)).toBeGreaterThanOrEqual(1);
  expect(out).toMatch(
    /^sessions retired: 2 \(acct5-logged-out: invalid, acct6-challenged: challenge\)/m,
  );
  expect(num(/^limiter: (\d+) of \d+ leases waited/m)).toBeGreaterThanOrEqual(1);
  // Everything it started is gone: the board's port no longer answers.
  expect(await answers(boardPort)).toBe(false);
}, 600_000);
