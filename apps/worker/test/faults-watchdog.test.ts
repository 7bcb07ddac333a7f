import { fileURLToPath } from 'node:url';
import { freePort, parsePrometheus, runNode, waitFor } from '@storycheck/testkit';
import { startSim, type SimServer } from '@storycheck/upstream-sim';
import { Harness } from './harness.js';

/**
 * Issue 14 item 3: the only session disabled, the worker pauses on purpose ("no usable
 * session"). The watchdog must tell that pause from a stall: with a watchdog limit of 2 s the
 * worker stays up through many watchdog checks (counted by its metric, not by a clock), then
 * resumes when the session is enabled again and completes the batch.
 */
const h = new Harness();
let sim: SimServer;
const KEY = Buffer.alloc(32, 5).toString('base64');
const SID = '6666666666%3AabcdefghijKLMN%3A1%3Asolo';
const CLI = fileURLToPath(new URL('../../producer/dist/main.js', import.meta.url));

beforeAll(async () => {
  await h.setup();
  sim = await startSim({
    seed: 5,
    size: 100,
    requireSession: true,
    sessions: [{ sessionid: SID, label: 'solo', state: 'ok' }],
  });
});
afterAll(async () => {
  await h.teardown();
  await sim.close();
});

const env = () => ({ ...h.env(sim.url), STORYCHECK_SECRET_KEY: KEY });

it('a worker paused for want of a session outlives many watchdog periods', async () => {
  const imp = await runNode(
    CLI,
    ['sessions', 'import', '-'],
    env(),
    JSON.stringify({ label: 'solo', sessionid: SID, ds_user_id: '6666666666' }),
  );
  expect(imp.code).toBe(0);
  expect((await runNode(CLI, ['sessions', 'disable', 'solo'], env())).code).toBe(0);
  // More jobs than job slots: most stay waiting while the worker is paused.
  const batchId = await h.enqueue(sim.world.usernames().slice(0, 60));
  const port = await freePort();
  const w = h.startWorker(sim, {
    STORYCHECK_SECRET_KEY: KEY,
    WORKER_HTTP_PORT: String(port),
    WORKER_WATCHDOG_IDLE: '2s',
    WORKER_CONCURRENCY: '4',
    SESSION_RATE: '50/1s',
    LOG_LEVEL: 'info',
  });
  const checks = async (result: string): Promise<number> => {
    try {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return (
        parsePrometheus(text).find(
          (s) => s.name === 'storycheck_worker_watchdog_checks_total' && s.labels.result === result,
        )?.value ?? 0
      );
    } catch {
      return 0; // not listening (yet, or any more)
    }
  };
  await waitFor(
    () => w.stderr().includes('no usable session') || w.child.exitCode !== null,
    'the pause line',
    60_000,
  );
  // 2 s limit, a check every second: 15 checks while paused are 7 limits' worth.
  await waitFor(
    async () => w.child.exitCode !== null || (await checks('paused')) >= 15,
    '15 watchdog checks while paused',
    120_000,
    250,
  );
  expect(w.child.exitCode).toBeNull();
  expect(w.stderr()).not.toContain('watchdog:');
  expect(await checks('stalled')).toBe(0);
  expect((await h.batch(batchId)).done).toBe(0);

  expect((await runNode(CLI, ['sessions', 'enable', 'solo'], env())).code).toBe(0);
  await waitFor(async () => (await h.batch(batchId)).state === 'completed', 'completion', 90_000);
  await h.expectCountersExact(batchId);
  expect(w.child.exitCode).toBeNull();
}, 240_000);
