import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createWorld } from '../src/index.js';
import { get, getViaProxy, proxyAuth } from './http-helpers.js';

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

  it.each([
    { args: ['--faults', 'bogus=0.1'], flag: '--faults' },
    { args: ['--faults', 'reset=2'], flag: '--faults' },
    { args: ['--scenario', 'no-such-thing'], flag: '--scenario' },
    { args: ['--throttle-style', 'loud'], flag: '--throttle-style' },
    { args: ['--session-rate', '5 per s'], flag: '--session-rate' },
    { args: ['--session-burst', '3'], flag: '--session-burst' },
    { args: ['--session-state', 'a=dead'], flag: '--session-state' },
    { args: ['--proxies', '1', '--proxy-auth', 'nocolon'], flag: '--proxy-auth' },
    { args: ['--proxy-auth', 'u:p'], flag: '--proxy-auth' },
    { args: ['--proxies', '2', '--proxy-broken', 'p3=refuse'], flag: '--proxy-broken' },
  ])('rejects $args (exit 2, one line naming $flag)', ({ args, flag }) => {
    const out = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });
    expect(out.status).toBe(2);
    expect(out.stdout).toBe('');
    const lines = out.stderr.split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(flag);
  });

  it('--list-scenarios names the shipped scenarios', () => {
    const out = spawnSync(process.execPath, [MAIN, '--list-scenarios'], { encoding: 'utf8' });
    expect(out.status).toBe(0);
    expect(out.stdout.split('\n').map((l) => l.split('\t')[0])).toEqual([
      'demo',
      'strict-budgets',
      'hostile',
      '',
    ]);
  });
});

describe('storycheck-sim CLI with a scenario file and proxies', () => {
  let dir: string;
  let child: ChildProcessWithoutNullStreams | undefined;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'storycheck-sim-cli-'));
  });
  afterAll(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child?.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  });

  it('prints one line per proxy; the simulator sees the proxy egress; flags override the file', async () => {
    const file = join(dir, 'scenario.json');
    await writeFile(
      file,
      JSON.stringify({
        sessions: [{ sessionid: 'dead-cookie', label: 'gone', state: 'dead' }],
        budgets: { session: { rate: '100/1s', burst: 1 } },
      }),
    );
    child = spawn(
      process.execPath,
      [
        MAIN,
        ...['--port', '0', '--seed', '7', '--size', '30', '--log-level', 'error'],
        ...['--scenario', file, '--session-burst', '50', '--proxies', '2'],
        ...['--proxy-auth', 'op:pw', '--session', 'alive=good-cookie'],
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    child.stdin.end();
    let stdout = '';
    child.stdout.setEncoding('utf8');
    const proc = child;
    await new Promise<void>((resolve, reject) => {
      proc.stdout.on('data', (chunk: string) => {
        stdout += chunk;
        if (stdout.split('\n').length >= 4) resolve();
      });
      proc.once('exit', (code) => reject(new Error(`exited early with ${code}`)));
    });
    const lines = stdout.trim().split('\n');
    expect(lines).toHaveLength(3);
    const simUrl =
      /^storycheck-sim listening on (http:\/\/127\.0\.0\.1:\d+) \(seed 7, size 30\)$/.exec(
        lines[0] ?? '',
      )?.[1];
    expect(simUrl).toBeDefined();
    const proxies = lines.slice(1).map((line) => {
      const m =
        /^storycheck-sim proxy (p\d) (http:\/\/127\.0\.0\.1:\d+) egress (127\.0\.0\.\d+)$/.exec(
          line,
        );
      expect(m).not.toBeNull();
      return { label: m?.[1], url: m?.[2] ?? '', egress: m?.[3] };
    });
    expect(proxies.map((p) => [p.label, p.egress])).toEqual([
      ['p1', '127.0.0.2'],
      ['p2', '127.0.0.3'],
    ]);
    expect(stdout).not.toContain('pw');

    const target = `${simUrl}/api/v1/accounts/current_user/?edit=true`;
    const auth = proxyAuth('op:pw');
    expect(
      (await getViaProxy(proxies[1]?.url ?? '', target, { session: 'good-cookie' })).status,
    ).toBe(407);
    const alive = await getViaProxy(proxies[1]?.url ?? '', target, {
      session: 'good-cookie',
      proxyAuthorization: auth,
    });
    expect(alive.status).toBe(200);
    const dead = await getViaProxy(proxies[0]?.url ?? '', target, {
      session: 'dead-cookie',
      proxyAuthorization: auth,
    });
    expect(dead.status).toBe(403);
    // Burst 50 (flag) over the file's burst 1: ten quick requests all pass.
    for (let i = 0; i < 10; i++) {
      expect((await get(target, { session: 'good-cookie' })).status).toBe(200);
    }
    const log = (await get(`${simUrl}/__sim/requests`, { appId: false })).text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { client: string; session: string; status: number });
    expect(log.slice(0, 2)).toEqual([
      expect.objectContaining({ client: '127.0.0.3', session: 'alive', status: 200 }),
      expect.objectContaining({ client: '127.0.0.2', session: 'gone', status: 403 }),
    ]);

    const exited = new Promise<number | null>((resolve) =>
      proc.once('exit', (code) => resolve(code)),
    );
    proc.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
