import { fileURLToPath } from 'node:url';
import { runNode, waitFor } from '@storycheck/testkit';
import { startSim, type SimServer } from '@storycheck/upstream-sim';
import { Harness } from './harness.js';

/**
 * No usable session at all: the worker stops taking jobs, says so once, exposes it as a metric,
 * spends no attempt — and resumes by itself when a session is enabled again.
 */
const h = new Harness();
let sim: SimServer;
const KEY = Buffer.alloc(32, 9).toString('base64');
const SID = '5555555555%3AabcdefghijKLMN%3A1%3Asolo';
const CLI = fileURLToPath(new URL('../../producer/dist/main.js', import.meta.url));

beforeAll(async () => {
  await h.setup();
  sim = await startSim({
    seed: 4,
    size: 100,
    requireSession: true,
    sessions: [{ sessionid: SID, label: 'solo', state: 'dead' }],
  });
});
afterAll(async () => {
  await h.teardown();
  await sim.close();
});

const env = () => ({ ...h.env(sim.url), STORYCHECK_SECRET_KEY: KEY });

it('pauses while no session is usable and resumes when one is enabled', async () => {
  const imp = await runNode(
    CLI,
    ['sessions', 'import', '-'],
    env(),
    JSON.stringify({ label: 'solo', sessionid: SID, ds_user_id: '5555555555' }),
  );
  expect(imp.code).toBe(0);
  const names = sim.world.usernames().slice(0, 20);
  const batchId = await h.enqueue(names);
  const port = 21_000 + (process.pid % 20_000);
  const w = h.startWorker(sim, {
    STORYCHECK_SECRET_KEY: KEY,
    WORKER_HTTP_PORT: String(port),
    LOG_LEVEL: 'info',
    SESSION_RATE: '50/1s',
  });
  await waitFor(() => w.stderr().includes('no usable session'), 'the pause line', 30_000);
  const metric = async () =>
    /^storycheck_pool_no_usable_session (\d)/m.exec(
      await (await fetch(`http://127.0.0.1:${port}/metrics`)).text(),
    )?.[1];
  expect(await metric()).toBe('1');
  // One line, not one per job.
  expect(w.stderr().match(/no usable session: every session/g)).toHaveLength(1);
  const mid = await h.batch(batchId);
  expect(mid.done).toBe(0);
  // Jobs wait; none spent an attempt.
  const attempts = (await h.queue.getJobs(['delayed', 'waiting'])).map((j) => j.attemptsMade);
  expect(attempts.every((a) => a === 0)).toBe(true);

  // The account is fixed upstream and the operator enables it again.
  sim.setSessionState('solo', 'ok');
  const en = await runNode(CLI, ['sessions', 'enable', 'solo'], env());
  expect(en.code).toBe(0);
  await waitFor(
    () => w.stderr().includes('a session is usable again; resuming'),
    'resume line',
    30_000,
  ).catch((e: unknown) => {
    process.stderr.write(
      w
        .stderr()
        .split('\n')
        .filter((l) => !l.includes('check delayed'))
        .join('\n'),
    );
    throw e;
  });
  await waitFor(async () => (await h.batch(batchId)).state === 'completed', 'completion', 60_000);
  await h.expectCountersExact(batchId);
  expect(await metric()).toBe('0');
  const failed = await h.client.query(
    "SELECT count(*)::int AS n FROM items WHERE batch_id = $1 AND status = 'failed'",
    [batchId],
  );
  expect(failed.rows[0].n).toBe(0);
}, 120_000);
