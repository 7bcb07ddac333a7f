#!/usr/bin/env node
// `npm run test:faults`: the fault-injection suite (docs/architecture.md "Faults"). Bootstraps
// like `npm test` (pnpm, install, build; skipped with --no-build when that just ran, as in
// .ci/run), then one jest run over apps/*/test/faults/ (jest.faults.config.js): each file starts
// its own redis-server and PostgreSQL on free ports (never the shared 6379/5432), the simulator
// and real workers, and breaks them on purpose. Ends with one line: "N passed, N failed".
// Needs redis-server on PATH and PostgreSQL's initdb/pg_ctl (PG_BIN, default
// /usr/lib/postgresql/15/bin), run as the `postgres` user through runuser (so: as root).
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { ROOT, bootstrap, ensurePnpm, step } from './lib.mjs';

try {
  const args = process.argv.slice(2);
  const noBuild = args.includes('--no-build');
  const jestArgs = args.filter((a) => a !== '--no-build');
  const pnpm = noBuild ? ensurePnpm() : bootstrap();
  step('running the fault-injection suite (jest -c jest.faults.config.js)');
  const report = join(tmpdir(), `storycheck-faults-${process.pid}.json`);
  const r = spawnSync(
    pnpm,
    [
      'exec',
      'jest',
      '-c',
      'jest.faults.config.js',
      '--ci',
      '--verbose',
      '--json',
      `--outputFile=${report}`,
      ...jestArgs,
    ],
    {
      cwd: ROOT,
      stdio: 'inherit',
      env: { ...process.env, NODE_OPTIONS: '--experimental-vm-modules --no-warnings' },
    },
  );
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
  const ok = r.status === 0 && ran && failed === 0 && passed > 0;
  process.stdout.write(`\n${passed} passed, ${failed === 0 && !ok ? 1 : failed} failed\n`);
  process.exit(ok ? 0 : 1);
} catch (e) {
  process.stderr.write(`test:faults: ${e.message}\n`);
  process.stdout.write('0 passed, 1 failed\n');
  process.exit(1);
}
