/**
 * There is no Docker engine on CI, so this test does what `docker compose up` would do, with
 * local processes: every storycheck service of docker-compose.yml runs exactly the argv its
 * container would (service entrypoint/command, else the Dockerfile's; tini stripped), in the
 * repository root (the image's WORKDIR is laid out like it), with the compose environment
 * interpolated from .env.example plus test secrets. Only what a container network changes is
 * mapped: hosts `redis`/`postgres`/`sim` become the local Redis, a throw-away Postgres database
 * and a free loopback port; the key prefix is unique. The commands run are the README's
 * "Docker compose" lines, in demo mode (COMPOSE_PROFILES=demo, IG_BASE_URL=http://sim:4100), so
 * a wrong command, entry point, variable or README line fails CI. The compose file itself is
 * checked by `docker-compose config` where it is installed (.ci/run installs it) and always by a
 * structural check.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '@storycheck/config';
import {
  TEST_PG_SERVER,
  TEST_REDIS_URL,
  createTestDatabase,
  createTestPrefix,
  waitFor,
  type TestDatabase,
  type TestPrefix,
} from '@storycheck/testkit';
import {
  ROOT,
  composeDurationMs,
  configVariables,
  containerArgv,
  interpolate,
  loadCompose,
  parseDotenv,
  readComposeRaw,
  readImage,
  readRepoFile,
  readmeComposeLines,
  referencedVariables,
  serviceEnv,
  withoutInit,
  type ComposeFile,
  type ComposeService,
  type ImageSpec,
} from './compose-model.js';

/** Services that run our image (the others are stock redis/postgres images). */
const OURS = ['migrate', 'worker', 'board', 'producer', 'sim', 'demo'];
/** Stock images of the `monitoring` profile (deploy/monitoring/, checked in monitoring.test.ts). */
const MONITORING = ['prometheus', 'grafana'];
const FINAL = new Set(['active', 'none', 'private', 'not_found', 'failed']);

let tdb: TestDatabase;
let tp: TestPrefix;
let tmp: string;
let vars: Record<string, string>;
let compose: ComposeFile;
let image: ImageSpec;
const procs: Proc[] = [];

/** The variables compose would see: .env.example as shipped, plus the secrets it leaves empty. */
function testVariables(prefix: string): Record<string, string> {
  return {
    ...parseDotenv(readRepoFile('.env.example')),
    REDIS_PASSWORD: 'c0mp0se7e57redis',
    POSTGRES_PASSWORD: 'c0mp0se7e57pg',
    BOARD_PASSWORD: randomBytes(12).toString('hex'),
    STORYCHECK_PREFIX: prefix,
    // Demo mode, as .env.example describes it: the same `up` also starts the simulator and the
    // demo batch, and the workers ask the simulator.
    COMPOSE_PROFILES: 'demo',
    IG_BASE_URL: 'http://sim:4100',
    LOG_LEVEL: 'warn',
  };
}

beforeAll(async () => {
  tp = createTestPrefix();
  // No migrate here: the compose `migrate` service must create and migrate it.
  tdb = await createTestDatabase();
  tmp = mkdtempSync(join(tmpdir(), 'storycheck-compose-'));
  vars = testVariables(tp.prefix);
  compose = loadCompose(vars);
  image = readImage();
});

afterAll(async () => {
  for (const p of procs) if (p.running()) p.child.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exited));
  await tp.clean();
  await tdb.drop();
  rmSync(tmp, { recursive: true, force: true });
});

const svc = (name: string): ComposeService => {
  const s = compose.services[name];
  if (!s) throw new Error(`docker-compose.yml has no service "${name}"`);
  return s;
};

describe('docker-compose.yml validates', () => {
  const dockerCompose = spawnSync('docker-compose', ['version', '--short'], { encoding: 'utf8' });
  const haveDockerCompose = !dockerCompose.error && dockerCompose.status === 0;
  const runDockerCompose = (envFile: string, args: string[]) =>
    spawnSync('docker-compose', ['--env-file', envFile, '-f', 'docker-compose.yml', ...args], {
      cwd: ROOT,
      encoding: 'utf8',
      // Only the env file: a developer's own .env or shell variables must not change the result.
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmp },
    });
  const writeEnvFile = (name: string, values: Record<string, string>) => {
    const file = join(tmp, name);
    writeFileSync(
      file,
      Object.entries(values)
        .map(([k, v]) => `${k}=${v}\n`)
        .join(''),
    );
    return file;
  };

  (haveDockerCompose ? it : it.skip)(
    'docker-compose config accepts it, and refuses to run without the secrets',
    () => {
      const ok = runDockerCompose(writeEnvFile('ok.env', vars), ['config', '-q']);
      expect({ status: ok.status, stderr: ok.stderr }).toEqual({ status: 0, stderr: '' });

      const { REDIS_PASSWORD: _r, POSTGRES_PASSWORD: _p, BOARD_PASSWORD: _b, ...rest } = vars;
      const missing = runDockerCompose(writeEnvFile('missing.env', rest), ['config', '-q']);
      expect(missing.status).not.toBe(0);
      expect(missing.stderr).toMatch(/set (REDIS|POSTGRES|BOARD)_PASSWORD in \.env/);
    },
  );

  (haveDockerCompose ? it : it.skip)(
    "docker-compose's interpolation equals the one this test runs the services with",
    () => {
      const r = runDockerCompose(writeEnvFile('cross.env', vars), [
        '--profile',
        'demo',
        '--profile',
        'tools',
        'config',
      ]);
      expect(r.status).toBe(0);
      const theirs = parseYaml(r.stdout) as ComposeFile;
      for (const name of OURS) {
        const t = theirs.services[name]!;
        const mine = svc(name);
        expect({ name, env: serviceEnv(t) }).toEqual({ name, env: serviceEnv(mine) });
        expect({ name, command: t.command }).toEqual({ name, command: mine.command });
        expect({ name, entrypoint: t.entrypoint }).toEqual({ name, entrypoint: mine.entrypoint });
      }
    },
  );

  it('structure: services, scaling, Redis settings, ordering by health, profiles', () => {
    const names = Object.keys(compose.services);
    expect(names.sort()).toEqual([...OURS, ...MONITORING, 'postgres', 'redis'].sort());

    // Every storycheck service runs the one image built from the Dockerfile.
    const images = new Set(OURS.map((n) => svc(n).image));
    expect(images.size).toBe(1);
    for (const n of OURS) expect({ n, build: svc(n).build }).toEqual({ n, build: '.' });

    // The worker scales: nothing that must be unique per container.
    const worker = svc('worker');
    expect(worker.container_name).toBeUndefined();
    expect(worker.ports).toBeUndefined();
    expect(worker.restart).toBe('unless-stopped');
    expect(worker.healthcheck?.test?.length).toBeGreaterThan(1);
    // Docker's SIGKILL must come after the worker's own deadline.
    const shutdownMs = loadConfig(serviceEnv(worker)).workerShutdownTimeoutMs;
    expect(composeDurationMs(worker.stop_grace_period ?? '10s')).toBeGreaterThan(shutdownMs);

    // Redis: AOF on, noeviction, a password that is the one in every REDIS_URL.
    const redisCmd = svc('redis').command as string[];
    const flag = (f: string) => redisCmd[redisCmd.indexOf(f) + 1];
    expect(flag('--appendonly')).toBe('yes');
    expect(flag('--maxmemory-policy')).toBe('noeviction');
    expect(flag('--requirepass')).toBe(vars.REDIS_PASSWORD);
    expect(svc('redis').healthcheck?.test).toBeDefined();
    expect(svc('redis').volumes?.some((v) => v.endsWith(':/data'))).toBe(true);

    // Postgres: a volume and a healthcheck.
    expect(svc('postgres').volumes?.some((v) => v.includes(':/var/lib/postgresql/data'))).toBe(
      true,
    );
    expect(svc('postgres').healthcheck?.test).toBeDefined();

    // The board is published on loopback only, on the port it listens on, with a password.
    const board = svc('board');
    const boardEnv = serviceEnv(board);
    expect(board.ports?.length).toBeGreaterThan(0);
    for (const p of board.ports ?? []) {
      expect(p).toMatch(/^127\.0\.0\.1:\d+:\d+$/);
      expect(p.split(':')[2]).toBe(boardEnv.BOARD_PORT);
    }
    expect(boardEnv.BOARD_PASSWORD).toBe(vars.BOARD_PASSWORD);

    // Ordering by health, never by sleeps.
    const cond = (n: string, dep: string) => svc(n).depends_on?.[dep]?.condition;
    expect(cond('migrate', 'postgres')).toBe('service_healthy');
    for (const n of ['worker', 'board', 'producer', 'demo']) {
      expect({ n, c: cond(n, 'migrate') }).toEqual({ n, c: 'service_completed_successfully' });
      expect({ n, c: cond(n, 'redis') }).toEqual({ n, c: 'service_healthy' });
    }
    expect(cond('demo', 'sim')).toBe('service_healthy');
    for (const [n, s] of Object.entries(compose.services)) {
      for (const [dep, d] of Object.entries(s.depends_on ?? {})) {
        expect({ n, dep, condition: typeof d.condition }).toEqual({
          n,
          dep,
          condition: 'string',
        });
      }
    }
    const raw = readRepoFile('docker-compose.yml');
    expect(raw).not.toMatch(/\bsleep\b/);

    // Profiles: the CLI under `tools`, the simulator and the demo batch under `demo`.
    expect(svc('producer').profiles).toEqual(['tools']);
    expect(svc('sim').profiles).toEqual(['demo']);
    expect(svc('demo').profiles).toEqual(['demo']);
    // Prometheus and Grafana (deploy/monitoring/) only under `monitoring`.
    for (const n of MONITORING) expect({ n, p: svc(n).profiles }).toEqual({ n, p: ['monitoring'] });
    for (const n of ['redis', 'postgres', 'migrate', 'worker', 'board']) {
      expect({ n, profiles: svc(n).profiles }).toEqual({ n, profiles: undefined });
    }

    // Secrets come from .env, never from the file itself.
    const rawServices = readComposeRaw().services;
    for (const [n, s] of Object.entries(rawServices)) {
      for (const [k, v] of Object.entries(s.environment ?? {})) {
        if (/PASSWORD|SECRET|AUTH/.test(k)) {
          expect({ n, k, v: String(v) }).toEqual({ n, k, v: expect.stringMatching(/^\$\{/) });
        }
      }
    }
  });

  it('.env.example covers every variable of the config and of the compose file', () => {
    const example = readRepoFile('.env.example');
    const composeText = readRepoFile('docker-compose.yml');
    const fromEnv = referencedVariables(composeText);
    const assigned = (v: string) => new RegExp(`^(# )?${v}=`, 'm').test(example);
    const named = (v: string) => new RegExp(`\\b${v}\\b`).test(example);
    // A variable compose takes from .env has a line; one compose fixes (REDIS_URL, BOARD_PORT…)
    // is at least named, so an operator knows where it went.
    const missing = [
      ...[...fromEnv].filter((v) => !assigned(v)),
      ...configVariables().filter((v) => (fromEnv.has(v) ? !assigned(v) : !named(v))),
    ];
    expect(missing).toEqual([]);
    // And the storycheck services pass every config variable on (fixed or from .env).
    const missingInCompose = configVariables().filter(
      (v) => !(v in serviceEnv(svc('worker'))) && !(v in serviceEnv(svc('board'))),
    );
    expect(missingInCompose).toEqual([]);
  });
});

describe('Dockerfile', () => {
  it('is multi-stage, deploys production dependencies only, runs as non-root under tini', () => {
    expect(image.stages.length).toBeGreaterThanOrEqual(2);
    expect(image.user).toBeDefined();
    expect(['root', '0']).not.toContain(image.user);
    expect(image.entrypoint).toEqual(['/usr/bin/tini', '--']);
    expect(image.finalInstructions.join('\n')).toMatch(/apt-get install .*\btini\b/);
    expect(image.allInstructions.join('\n')).toMatch(/pnpm .*deploy --prod/);
    // The final stage takes only the deployed output from the build stage.
    const copies = image.finalInstructions.filter((l) => /^COPY\s/i.test(l));
    for (const c of copies) expect(c).toMatch(/^COPY --from=build \/prod /);
    expect(image.workdir).toBe('/app');
    for (const k of Object.keys(image.env)) expect(k).not.toMatch(/PASSWORD|SECRET|KEY|TOKEN/);
    // The image's healthcheck (for its default command, a worker) is the compose worker's.
    expect(['CMD', ...(image.healthcheck ?? [])]).toEqual(svc('worker').healthcheck?.test);
  });
});

// ---- the smoke test -------------------------------------------------------------------------

interface Proc {
  name: string;
  child: ChildProcess;
  out(): string;
  err(): string;
  exited: Promise<number | string>;
  running(): boolean;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** The apps the Dockerfile deploys into the image (`for app in …; do pnpm … deploy`). */
function deployedApps(): string[] {
  const m = /for app in ([^;]+);\s*do\s+pnpm[^;]*deploy/.exec(image.allInstructions.join('\n'));
  if (!m) throw new Error('cannot find the deploy loop in the Dockerfile');
  return m[1]!.trim().split(/\s+/);
}

/**
 * Starts what a container would run. The argv must be `node [--v8-flags…] apps/<app>/dist/main.js …`
 * for an app the image contains, relative to WORKDIR (= the repository root here); node's own
 * flags (the worker's heap flags) are passed on as given.
 */
function start(name: string, argv: string[], env: Record<string, string>): Proc {
  const [cmd, ...args] = argv;
  const nodeFlags: string[] = [];
  while (args[0]?.startsWith('--')) nodeFlags.push(args.shift()!);
  const [script, ...rest] = args;
  expect({ name, cmd }).toEqual({ name, cmd: 'node' });
  const app = /^apps\/([^/]+)\/dist\/main\.js$/.exec(script ?? '')?.[1];
  expect({ name, script, deployed: app !== undefined && deployedApps().includes(app) }).toEqual({
    name,
    script,
    deployed: true,
  });
  expect(existsSync(join(ROOT, script!))).toBe(true);
  const child = spawn(process.execPath, [...nodeFlags, script!, ...rest], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | string>((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)),
  );
  const p: Proc = {
    name,
    child,
    out: () => out,
    err: () => err,
    exited,
    running: () => child.exitCode === null && child.signalCode === null,
  };
  procs.push(p);
  return p;
}

async function finish(p: Proc, timeoutMs = 60_000): Promise<number | string> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((r) => {
    timer = setTimeout(() => r(`still running after ${timeoutMs} ms`), timeoutMs);
  });
  const code = await Promise.race([p.exited, timeout]);
  clearTimeout(timer);
  if (code !== 0) {
    throw new Error(`${p.name} exited ${code}\nstdout: ${p.out()}\nstderr: ${p.err()}`);
  }
  return code;
}

describe('every service as a local process (docker compose up, in demo mode)', () => {
  it('migrate, two workers, the board, the simulator, the demo batch and the README producer commands; then SIGTERM stops everything with exit 0', async () => {
    const simPort = await freePort();
    const boardPort = await freePort();
    const simContainerPort = (() => {
      const cmd = containerArgv(svc('sim'), image);
      return cmd[cmd.indexOf('--port') + 1]!;
    })();
    // Container paths of bind mounts → a scratch directory (the repository's ./data stays alone).
    const mounts = new Map<string, string>();

    /** The environment of a service's container, mapped onto the local servers. */
    function envOf(name: string): Record<string, string> {
      const composeEnv = serviceEnv(svc(name));
      // What the container's process would do first: parse its configuration.
      expect(() => loadConfig(composeEnv)).not.toThrow();
      const env: Record<string, string> = { PATH: process.env.PATH ?? '', ...image.env };
      for (const [k, v] of Object.entries(composeEnv)) {
        let url: URL | undefined;
        try {
          url = new URL(v);
        } catch {
          url = undefined;
        }
        if (url?.hostname === 'redis') {
          expect(decodeURIComponent(url.password)).toBe(vars.REDIS_PASSWORD);
          env[k] = TEST_REDIS_URL;
        } else if (url?.hostname === 'postgres') {
          expect(decodeURIComponent(url.password)).toBe(vars.POSTGRES_PASSWORD);
          env[k] = `${TEST_PG_SERVER}/${tdb.name}`;
        } else if (url?.hostname === 'sim') {
          expect(url.port).toBe(simContainerPort);
          env[k] = `http://127.0.0.1:${simPort}`;
        } else {
          env[k] = v;
        }
      }
      if (env.BOARD_PORT !== undefined) env.BOARD_PORT = String(boardPort);
      expect(env.STORYCHECK_PREFIX ?? tp.prefix).toBe(tp.prefix);
      return env;
    }

    /** A service's argv with container-only values mapped: sim host/port, bind-mount paths. */
    function argvOf(name: string, args?: string[]): string[] {
      const s = svc(name);
      for (const v of s.volumes ?? []) {
        const [, target] = v.split(':');
        if (target && !mounts.has(target)) mounts.set(target, mkdtempSync(join(tmp, 'mount-')));
      }
      const argv = withoutInit(containerArgv(s, image, args)).map((a) => {
        for (const [target, local] of mounts) {
          if (a === target || a.startsWith(`${target}/`)) return local + a.slice(target.length);
        }
        return a;
      });
      if (name === 'sim') {
        argv[argv.indexOf('--port') + 1] = String(simPort);
        argv[argv.indexOf('--host') + 1] = '127.0.0.1';
      }
      return argv;
    }

    /**
     * Runs a service's healthcheck command (exec form) in the environment of one of its
     * processes; resolves true on 0. Each argument is free of spaces: podman's Docker API splits
     * exec-form healthcheck arguments on spaces.
     */
    async function healthy(name: string, env: Record<string, string>): Promise<boolean> {
      const test = svc(name).healthcheck?.test;
      expect(Array.isArray(test) && test[0] === 'CMD' && test[1] === 'node').toBe(true);
      for (const a of test as string[]) {
        expect({ name, arg: a, space: /\s/.test(a) }).toEqual({ name, arg: a, space: false });
      }
      const args = (test as string[])
        .slice(2)
        .map((a) => (name === 'sim' ? a.replace(`:${simContainerPort}/`, `:${simPort}/`) : a));
      const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: 'ignore' });
      const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
      return code === 0;
    }

    // -- docker compose up -d --scale worker=N, from the README --------------------------------
    const lines = readmeComposeLines();
    const up = lines.find((l) => l.words.includes('up'));
    expect(up?.words).toEqual(expect.arrayContaining(['up', '-d']));
    const scale = new Map<string, number>();
    const profiles = new Set((vars.COMPOSE_PROFILES ?? '').split(',').filter(Boolean));
    up!.words.forEach((w, i) => {
      if (w === '--scale') {
        const [n, k] = up!.words[i + 1]!.split('=');
        scale.set(n!, Number(k));
      }
      if (w === '--profile') profiles.add(up!.words[i + 1]!);
    });
    expect(scale.get('worker')).toBeGreaterThanOrEqual(2);

    // Services `up` starts, in dependency order; one-shots (no restart policy) that others wait
    // for must exit 0 first; long-running ones must pass their healthcheck.
    const selected = OURS.filter((n) => {
      const p = svc(n).profiles;
      return !p || p.some((x) => profiles.has(x));
    });
    expect(selected.sort()).toEqual(['board', 'demo', 'migrate', 'sim', 'worker']);
    const order: string[] = [];
    const visit = (n: string) => {
      if (order.includes(n) || !selected.includes(n)) return;
      for (const dep of Object.keys(svc(n).depends_on ?? {})) visit(dep);
      order.push(n);
    };
    selected.forEach(visit);

    const longRunning: Proc[] = [];
    const oneShots: Proc[] = [];
    for (const name of order) {
      const s = svc(name);
      const awaitedToComplete = selected.some(
        (o) => svc(o).depends_on?.[name]?.condition === 'service_completed_successfully',
      );
      if (!s.restart) {
        const p = start(name, argvOf(name), envOf(name));
        if (awaitedToComplete) await finish(p);
        else oneShots.push(p);
        continue;
      }
      expect(awaitedToComplete).toBe(false);
      const envs: Record<string, string>[] = [];
      for (let i = 1; i <= (scale.get(name) ?? 1); i++) {
        const env = envOf(name);
        // A worker's health port is per container (its own loopback); here they share one host.
        if (env.WORKER_HTTP_PORT) env.WORKER_HTTP_PORT = String(await freePort());
        envs.push(env);
        longRunning.push(start(`${name}-${i}`, argvOf(name), env));
      }
      for (const [i, env] of envs.entries()) {
        await waitFor(() => healthy(name, env), `${name}-${i + 1} healthcheck`, 20_000, 200);
      }
    }
    for (const p of longRunning)
      expect({ name: p.name, running: p.running() }).toEqual({
        name: p.name,
        running: true,
      });

    // The board: listening, /healthz without auth, everything else behind the password.
    const board = longRunning.find((p) => p.name === 'board-1')!;
    await waitFor(() => /listening on/.test(board.out()), 'board listening', 10_000);
    const boardUrl = `http://127.0.0.1:${boardPort}`;
    expect((await fetch(`${boardUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${boardUrl}/`)).status).toBe(401);
    const auth = Buffer.from(`${vars.BOARD_USER ?? 'admin'}:${vars.BOARD_PASSWORD}`).toString(
      'base64',
    );
    expect(
      (await fetch(`${boardUrl}/`, { headers: { authorization: `Basic ${auth}` } })).status,
    ).toBe(200);

    // -- docker compose run --rm producer …, every README line in order ------------------------
    const sim = longRunning.find((p) => p.name === 'sim-1')!;
    expect(sim.out()).toMatch(/storycheck-sim listening on/);
    const listed = spawnSync(
      process.execPath,
      [join(ROOT, 'apps/upstream-sim/dist/main.js'), '--print-usernames', '--size', '1000'],
      { encoding: 'utf8' },
    );
    const names = [...listed.stdout.trim().split('\n').slice(500, 530), 'nobody.here_42'];
    let batchId: string | undefined;
    let resultsFile: string | undefined;
    const runs = lines.filter((l) => l.words[0] === 'run');
    expect(runs.length).toBeGreaterThanOrEqual(2);
    for (const l of runs) {
      const words = l.words.slice(1);
      while (words[0]?.startsWith('-')) words.shift(); // --rm, -T
      const [service, ...args] = words;
      expect({ line: l.line, service }).toEqual({ line: l.line, service: 'producer' });
      const mapped = args.map((a) => {
        if (a !== '<batchId>') return a;
        expect(batchId).toBeDefined();
        return batchId!;
      });
      const argv = argvOf(service!, mapped);
      if (mapped[0] === 'enqueue') {
        // The README's input file, in the directory its bind mount maps to.
        writeFileSync(argv[argv.indexOf('enqueue') + 1]!, `${names.join('\n')}\n`);
      }
      const p = start(l.line, argv, envOf(service!));
      await finish(p);
      if (mapped[0] === 'enqueue') batchId = /batch ([0-9a-f-]{36})/.exec(p.out())?.[1];
      if (l.redirect) {
        resultsFile = join(tmp, l.redirect);
        writeFileSync(resultsFile, p.out());
      }
    }
    expect(batchId).toBeDefined();

    // Every name of the README's batch is final, as the results export says.
    expect(resultsFile).toBeDefined();
    const csv = readFileSync(resultsFile!, 'utf8').trim().split('\n');
    const header = csv[0]!.split(',');
    const rows = csv.slice(1).map((r) => r.split(','));
    expect(rows.map((r) => r[header.indexOf('username')])).toEqual(names);
    for (const r of rows) expect(FINAL.has(r[header.indexOf('status')]!)).toBe(true);
    const col = (r: string[], name: string) => r[header.indexOf(name)];
    expect(
      rows.find((r) => col(r, 'username') === 'nobody.here_42')?.[header.indexOf('status')],
    ).toBe('not_found');

    // The demo batch (200 names) finished as well.
    for (const p of oneShots) await finish(p, 45_000);
    expect(oneShots.map((p) => p.name)).toEqual(['demo']);
    expect(oneShots[0]!.out()).toMatch(/200 accepted/);

    // -- docker compose stop: SIGTERM, and each process exits 0 on its own ---------------------
    for (const p of longRunning) p.child.kill('SIGTERM');
    const shutdownMs = loadConfig(serviceEnv(svc('worker'))).workerShutdownTimeoutMs;
    for (const p of longRunning) await finish(p, shutdownMs + 5_000);
  }, 120_000);
});

// Keep the model honest about compose's own rules (cheap, no processes).
describe('compose model', () => {
  it('interpolates like compose', () => {
    const v = { A: 'a', E: '' };
    expect(interpolate('$$A ${A} $A ${B:-d} ${E:-d} ${E-d} ${B-d}', v)).toBe('$A a a d d  d');
    expect(() => interpolate('${E:?need E}', v)).toThrow(/need E/);
    expect(interpolate('${E?need E}', v)).toBe('');
  });
  it('runs a service entrypoint without the image CMD, like docker', () => {
    const img = { ...image, entrypoint: ['/usr/bin/tini', '--'], cmd: ['node', 'x.js'] };
    expect(withoutInit(containerArgv({}, img))).toEqual(['node', 'x.js']);
    expect(containerArgv({ entrypoint: ['node', 'y.js'] }, img)).toEqual(['node', 'y.js']);
    expect(containerArgv({ entrypoint: ['node', 'y.js'] }, img, ['a'])).toEqual([
      'node',
      'y.js',
      'a',
    ]);
  });
});
