import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * onShutdownSignals in a real process (fixtures/shutdown-child.mjs, on the built dist): the
 * exit codes and log lines of a signal, a failed close, the deadline and a second signal.
 */
const CHILD = fileURLToPath(new URL('./fixtures/shutdown-child.mjs', import.meta.url));

interface Child {
  proc: ChildProcess;
  stderr: () => string;
  exited: Promise<number | null>;
}

/** Starts the child and resolves once its handlers are installed. */
async function start(mode: string, env: Record<string, string> = {}): Promise<Child> {
  const proc = spawn(process.execPath, [CHILD, mode], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  await new Promise<void>((resolve, reject) => {
    proc.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    proc.on('exit', () => reject(new Error(`child exited early: ${err}`)));
  });
  return { proc, stderr: () => err, exited };
}

/** The JSON log lines the child wrote. */
function lines(text: string): Array<Record<string, unknown>> {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 20));
}

it('closes and exits 0 at SIGTERM', async () => {
  const c = await start('ok');
  c.proc.kill('SIGTERM');
  expect(await c.exited).toBe(0);
  expect(lines(c.stderr())).toContainEqual(
    expect.objectContaining({ level: 'info', message: 'shutting down', signal: 'SIGTERM' }),
  );
});

it('exits 1 with one line when close fails', async () => {
  const c = await start('fail');
  c.proc.kill('SIGINT');
  expect(await c.exited).toBe(1);
  expect(lines(c.stderr())).toContainEqual(
    expect.objectContaining({ level: 'error', message: 'shutdown failed', error: 'boom' }),
  );
});

it('exits 1 when the deadline passes', async () => {
  const c = await start('hang', { DEADLINE_MS: '200' });
  c.proc.kill('SIGTERM');
  expect(await c.exited).toBe(1);
  expect(lines(c.stderr())).toContainEqual(
    expect.objectContaining({ message: 'shutdown deadline passed, exiting', deadlineMs: 200 }),
  );
});

it('exits 1 at once on a second signal', async () => {
  const c = await start('hang');
  c.proc.kill('SIGTERM');
  await until(() => c.stderr().includes('shutting down'));
  c.proc.kill('SIGTERM');
  expect(await c.exited).toBe(1);
  expect(lines(c.stderr())).toContainEqual(
    expect.objectContaining({ level: 'warn', message: 'second signal, exiting now' }),
  );
});

it('with repeatClose, a second signal closes again (forcing) and exits 0', async () => {
  const c = await start('hang-once', { REPEAT: '1' });
  c.proc.kill('SIGTERM');
  await until(() => c.stderr().includes('shutting down'));
  c.proc.kill('SIGINT');
  expect(await c.exited).toBe(0);
  const messages = lines(c.stderr()).map((l) => l.message);
  expect(messages).toEqual(['shutting down', 'second signal, exiting now', 'closed now']);
});
