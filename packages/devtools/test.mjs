#!/usr/bin/env node
// The README's test command (`npm test`): bootstrap (pnpm, install, build), then one jest run
// over every app and package against the real Redis and PostgreSQL, ending with one line:
// "N passed, N failed".
import { spawnSync } from 'node:child_process';
import { ROOT, bootstrap, requireServices, runJestWithReport, step, turboEnv } from './lib.mjs';

try {
  await requireServices();
  const pnpm = bootstrap();
  // swc does not type-check: the compiler and the linter are checks of their own, and each
  // one that fails counts as one failed test in the totals.
  let checkFailures = 0;
  for (const [what, args] of [
    [
      'typecheck (tsc, src and tests)',
      ['exec', 'turbo', 'run', 'typecheck', '--output-logs=errors-only'],
    ],
    ['lint (eslint)', ['exec', 'eslint', '.']],
  ]) {
    step(what);
    const c = spawnSync(pnpm, args, { cwd: ROOT, stdio: 'inherit', env: turboEnv() });
    if (c.status !== 0) {
      checkFailures++;
      process.stderr.write(`test: ${what} failed\n`);
    }
  }
  step('running the test suite (jest)');
  const jest = runJestWithReport(pnpm, ['--ci', ...process.argv.slice(2)], 'storycheck-jest');
  const passed = jest.passed;
  const failed = jest.failed + checkFailures;
  const ok = jest.ok && checkFailures === 0;
  process.stdout.write(`\n${passed} passed, ${failed === 0 && !ok ? 1 : failed} failed\n`);
  process.exit(ok ? 0 : 1);
} catch (e) {
  process.stderr.write(`test: ${e.message}\n`);
  process.stdout.write('0 passed, 1 failed\n');
  process.exit(1);
}
