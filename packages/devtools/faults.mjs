#!/usr/bin/env node
// `npm run test:faults`: the fault-injection suite (docs/architecture.md "Faults"). Bootstraps
// like `npm test` (pnpm, install, build; skipped with --no-build when that just ran, as in
// .ci/run), then one jest run over apps/*/test/faults/ (jest.faults.config.js): each file starts
// its own redis-server and PostgreSQL on free ports (never the shared 6379/5432), the simulator
// and real workers, and breaks them on purpose. Ends with one line: "N passed, N failed".
// Needs redis-server on PATH and PostgreSQL's initdb/pg_ctl (PG_BIN, default
// /usr/lib/postgresql/15/bin), run as the `postgres` user through runuser (so: as root).
import { bootstrap, ensurePnpm, runJestWithReport, step } from './lib.mjs';

try {
  const args = process.argv.slice(2);
  const noBuild = args.includes('--no-build');
  const jestArgs = args.filter((a) => a !== '--no-build');
  const pnpm = noBuild ? ensurePnpm() : bootstrap();
  step('running the fault-injection suite (jest -c jest.faults.config.js)');
  const { passed, failed, ok } = runJestWithReport(
    pnpm,
    ['-c', 'jest.faults.config.js', '--ci', '--verbose', ...jestArgs],
    'storycheck-faults',
  );
  process.stdout.write(`\n${passed} passed, ${failed === 0 && !ok ? 1 : failed} failed\n`);
  process.exit(ok ? 0 : 1);
} catch (e) {
  process.stderr.write(`test:faults: ${e.message}\n`);
  process.stdout.write('0 passed, 1 failed\n');
  process.exit(1);
}
