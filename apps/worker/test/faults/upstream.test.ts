import { sleep, waitFor } from '@storycheck/testkit';
import { BATCH_NAMES, FaultWorld } from './world.js';

// Upstream and pool faults (docs/architecture.md "Faults"): half the answers wrong in every way
// the simulator knows, and the only session disabled mid-batch.

const w = new FaultWorld();
let names: string[];
const KEY = Buffer.alloc(32, 7).toString('base64');
const SID = '6666666666%3AabcdefghijKLMN%3A1%3Afaults';

beforeAll(async () => {
  await w.setup({ seed: 24, size: BATCH_NAMES * 2, latencyMs: 5 });
  names = w.sim.world.usernames();
}, 180_000);
afterAll(() => w.teardown(), 120_000);
afterEach(() => w.stopWorkers(), 60_000);

it('a 50 % upstream fault mix (5xx, malformed, fail-200, missing keys, resets): every result right', async () => {
  w.sim.updateScenario({
    faults: { error5xx: 0.2, malformedJson: 0.1, fail200: 0.08, missingKeys: 0.07, reset: 0.05 },
  });
  try {
    // Half a batch: with retries 2–16 s apart its tail is long whatever its size.
    const batch = names.slice(0, Math.ceil(BATCH_NAMES / 2));
    const batchId = await w.enqueue(batch);
    w.startWorker('a');
    w.startWorker('b');
    await w.waitCompleted(batchId, 'completion through the faults', 400_000);
    // A name may end `failed` with an upstream error code after its 5 attempts (the upstream
    // never answered it right); never with a wrong status, never with an internal error.
    const { failed } = await w.check(batchId, batch, { upstreamFaults: true });
    expect(failed).toBeLessThan(batch.length / 4);
  } finally {
    w.sim.updateScenario({
      faults: { error5xx: 0, malformedJson: 0, fail200: 0, missingKeys: 0, reset: 0 },
    });
  }
});

it('the only session disabled mid-batch: workers pause without crash-looping, resume when it is enabled', async () => {
  w.sim.updateScenario({
    requireSession: true,
    sessions: [{ sessionid: SID, label: 'solo', state: 'ok' }],
  });
  const env = {
    STORYCHECK_SECRET_KEY: KEY,
    SESSION_RATE: '200/1s',
    WORKER_WATCHDOG_IDLE: '4s',
  };
  const imp = await w.cli(
    ['sessions', 'import', '-'],
    JSON.stringify({ label: 'solo', sessionid: SID, ds_user_id: '6666666666' }),
    env,
  );
  expect(imp.code).toBe(0);
  const batch = names.slice(BATCH_NAMES, BATCH_NAMES * 2);
  const batchId = await w.enqueue(batch);
  const a = w.startWorker('a', { ...env, LOG_LEVEL: 'info' });
  w.startWorker('b', { ...env, LOG_LEVEL: 'info' });
  await w.waitDone(batchId, Math.floor(BATCH_NAMES / 10), 'progress before the session goes');
  expect((await w.cli(['sessions', 'disable', 'solo'], undefined, env)).code).toBe(0);
  await waitFor(() => a.stderr().includes('no usable session'), 'the pause line', 60_000);
  // Paused for five watchdog periods: a watchdog that took the pause for a stall would have
  // exited the workers by now.
  await sleep(20_000);
  w.expectWorkersAlive();
  expect((await w.batch(batchId)).state).toBe('running');
  expect((await w.cli(['sessions', 'enable', 'solo'], undefined, env)).code).toBe(0);
  await w.waitCompleted(batchId, 'completion after the session came back', 300_000);
  await w.check(batchId, batch);
});
