// Shared by bootstrap/test/demo. Plain node (no dependencies): these run before `pnpm install`.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { delimiter, dirname, join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';

/** Repository root. */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The pnpm version pinned in package.json's packageManager field. */
export const PNPM_VERSION = '12.4.2';
/**
 * Node flags the worker runs with, as in the Dockerfile's CMD and docker-compose.yml: its live
 * heap is ~30-40 MB, but an uncapped V8 grows it to ~200 MB RSS under load (docs/deploy.md).
 */
export const WORKER_HEAP_FLAGS = ['--max-old-space-size=128', '--max-semi-space-size=8'];
const LOCAL_PNPM = join(ROOT, '.tools', 'node_modules', '.bin', 'pnpm');

/** Prints a step line. */
export function step(msg) {
  process.stderr.write(`\n▸ ${msg}\n`);
}

/** Runs a command inheriting stdio; throws with the command line on a non-zero exit. */
export function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: ROOT, ...opts });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`);
  }
}

/**
 * The pnpm to use: the one on PATH when it is the pinned version, else a private copy installed
 * with npm into .tools/ (no global install, no corepack — it fails signature checks here).
 */
export function ensurePnpm() {
  const onPath = spawnSync('pnpm', ['--version'], { encoding: 'utf8' });
  if (onPath.status === 0 && onPath.stdout.trim() === PNPM_VERSION) return 'pnpm';
  if (!existsSync(LOCAL_PNPM)) {
    step(`installing pnpm ${PNPM_VERSION} into .tools/ (npm)`);
    run('npm', [
      'install',
      '--no-save',
      '--no-audit',
      '--no-fund',
      '--prefix',
      join(ROOT, '.tools'),
      `pnpm@${PNPM_VERSION}`,
    ]);
  }
  // turbo and pnpm scripts look pnpm up on PATH: put the private copy first for every child.
  process.env.PATH = `${dirname(LOCAL_PNPM)}${delimiter}${process.env.PATH ?? ''}`;
  return LOCAL_PNPM;
}

/**
 * Environment for a spawned turbo: the caller's, with turborepo's anonymous telemetry (and the
 * notice it prints on a first run) turned off.
 */
export function turboEnv(env = process.env) {
  return { ...env, TURBO_TELEMETRY_DISABLED: '1' };
}

/** Installs dependencies (frozen lockfile) and builds every package; returns the pnpm path. */
export function bootstrap() {
  const pnpm = ensurePnpm();
  step('installing dependencies (pnpm install --frozen-lockfile)');
  run(pnpm, ['install', '--frozen-lockfile', '--reporter=append-only'], {
    env: { ...process.env, CI: 'true' },
  });
  step('building (turbo run build)');
  run(pnpm, ['exec', 'turbo', 'run', 'build', '--output-logs=errors-only'], { env: turboEnv() });
  return pnpm;
}

/** True when something accepts TCP connections on host:port within `timeoutMs`. */
export function portAnswers(port, host = '127.0.0.1', timeoutMs = 1000) {
  return new Promise((resolve) => {
    const s = net.connect({ port, host });
    const done = (ok) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** A free TCP port on loopback. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Fails with a clear line when Redis or Postgres does not answer. */
export async function requireServices(env = process.env) {
  const redis = new URL(env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  const pg = new URL(env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/storycheck');
  const missing = [];
  if (!(await portAnswers(Number(redis.port || 6379), redis.hostname)))
    missing.push(`Redis at ${redis.hostname}:${redis.port || 6379}`);
  if (!(await portAnswers(Number(pg.port || 5432), pg.hostname)))
    missing.push(`PostgreSQL at ${pg.hostname}:${pg.port || 5432}`);
  if (missing.length) {
    throw new Error(
      `${missing.join(' and ')} not answering; start ${missing.length > 1 ? 'them' : 'it'} first (see README "Requirements")`,
    );
  }
}

/** Spawns a long-running child (stdio piped to a prefixing logger) and returns it. */
export function startChild(label, cmd, args, env, { quiet = false } = {}) {
  const child = spawn(cmd, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const prefix = (stream, out) => {
    let buf = '';
    stream.on('data', (d) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (!quiet) out.write(`[${label}] ${line}\n`);
      }
    });
  };
  prefix(child.stdout, process.stderr);
  prefix(child.stderr, process.stderr);
  child.exitPromise = new Promise((resolve) =>
    child.on('exit', (code, sig) => resolve(code ?? sig)),
  );
  return child;
}

/**
 * Runs `pnpm exec jest <args>` with a JSON report and reads its counts: `failed` includes test
 * files that could not run. `ok` only when jest exited 0, wrote its report, and at least one test
 * passed with none failed (so an empty run is not a green one). Shared by test.mjs and faults.mjs.
 */
export function runJestWithReport(pnpm, args, reportName) {
  const report = join(tmpdir(), `${reportName}-${process.pid}.json`);
  const r = spawnSync(pnpm, ['exec', 'jest', ...args, '--json', `--outputFile=${report}`], {
    cwd: ROOT,
    stdio: 'inherit',
    env: { ...process.env, NODE_OPTIONS: '--experimental-vm-modules --no-warnings' },
  });
  let passed = 0;
  let failed = 0;
  let ran = false;
  try {
    const j = JSON.parse(readFileSync(report, 'utf8'));
    passed = j.numPassedTests;
    failed = j.numFailedTests + (j.numRuntimeErrorTestSuites ?? 0);
    ran = true;
    rmSync(report, { force: true });
  } catch {
    // jest died before writing its report
  }
  return { passed, failed, ok: r.status === 0 && ran && failed === 0 && passed > 0 };
}
