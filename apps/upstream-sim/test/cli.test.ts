import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createWorld } from '../src/index.js';

// The CLI is tested as shipped: the built bin (turbo runs `build` before `test`).
const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));

describe('storycheck-sim CLI', () => {
  it('prints one listening line, serves, and exits 0 on SIGTERM', async () => {
    const child = spawn(
      process.execPath,
      [MAIN, '--port', '0', '--seed', '7', '--size', '30', '--log-level', 'error'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    child.stdout.setEncoding('utf8');
    const line = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (chunk: string) => {
        stdout += chunk;
        if (stdout.includes('\n')) resolve(stdout);
      });
      child.once('exit', (code) => reject(new Error(`exited early with ${code}`)));
    });
    const m =
      /^storycheck-sim listening on (http:\/\/127\.0\.0\.1:\d+) \(seed 7, size 30\)\n$/.exec(line);
    expect(m).not.toBeNull();
    const health = await fetch(`${m?.[1]}/__sim/health`);
    expect(await health.json()).toMatchObject({ status: 'ok', seed: 7, size: 30 });
    const exited = new Promise<number | null>((resolve) =>
      child.once('exit', (code) => resolve(code)),
    );
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stdout).toBe(line); // nothing else on stdout
  });

  it('--print-usernames prints the world in generation order', () => {
    const out = spawnSync(
      process.execPath,
      [MAIN, '--print-usernames', '--seed', '42', '--size', '25'],
      { encoding: 'utf8' },
    );
    expect(out.status).toBe(0);
    expect(out.stdout).toBe(
      createWorld({ seed: 42, size: 25, epochSecs: 0 })
        .usernames()
        .map((n) => `${n}\n`)
        .join(''),
    );
  });

  it.each([
    [['--port', 'abc'], '--port'],
    [['--port', '70000'], '--port'],
    [['--size', '-3'], '--size'],
    [['--seed', '1.5'], '--seed'],
    [['--latency-ms', 'x'], '--latency-ms'],
    [['--not-found-style', 'maybe'], '--not-found-style'],
    [['--bogus'], '--bogus'],
  ])('rejects %j with one stderr line naming the flag and exit code 2', (args, flag) => {
    const out = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });
    expect(out.status).toBe(2);
    expect(out.stdout).toBe('');
    const lines = out.stderr.split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(flag);
  });
});
