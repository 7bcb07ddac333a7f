#!/usr/bin/env node
// The README's test command (`npm test`): bootstrap (pnpm, install, build), the checks (tsc,
// eslint, knip), then one jest run over every app and package against the real Redis and
// PostgreSQL, ending with one line: "N passed, N failed".
import { spawnSync } from 'node:child_process';
import { ROOT, bootstrap, requireServices, runJestWithReport, step, turboEnv } from './lib.mjs';

try {
  await requireServices();
  const pnpm = bootstrap();
  // swc does not type-check: the compiler, the linter and knip are checks of their own, and
  // each one that fails counts as one failed test in the totals.
  let checkFailures = 0;
  for (const [what, args, failure] of [
    [
      'typecheck (tsc, src and tests)',
      ['exec', 'turbo', 'run', 'typecheck', '--output-logs=errors-only'],
    ],
    ['lint (eslint)', ['exec', 'eslint', '.']],
    [
      'unused files, exports and dependencies (knip)',
      ['exec', 'knip', '--no-progress'],
      'knip found unused files, exports or dependencies (listed above): remove them, or say why in knip.json',
    ],
  ]) {
    step(what);
    const c = spawnSync(pnpm, args, { cwd: ROOT, stdio: 'inherit', env: turboEnv() });
    if (c.status !== 0) {
      checkFailures++;
      process.stderr.write(`test: ${failure ?? `${what} failed`}\n`);
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
