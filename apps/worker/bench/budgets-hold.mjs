#!/usr/bin/env node
// Budgets hold at every moment, repeated (issue 15, "What it must show"): the cold start of
// apps/worker/test/faults/budgets-hold.test.ts — 3 workers started together against the simulator, 4
// sessions on 2 loopback proxies, budgets equal to the simulator's — 20 times (once with --quick)
// instead of the suite's 3. It runs that test file through jest (BUDGETS_HOLD_RUNS sets the
// count, BUDGETS_HOLD_REPORT collects one JSON line per run) and prints, per run, the throttled
// answers, the worst window over budget (arrivals beyond burst + floor(W / interval) in any
// window W, per session and per proxy egress, from the simulator's log) and the most arrivals
// in any 1 s window against what the budgets allow in one (burst + rate). Prints; never asserts
// (a failed expectation of the test is reported here as numbers, not as a failed bench).
//   node bench/budgets-hold.mjs [--quick]
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../../../packages/devtools/lib.mjs';
import { benchLine, quick } from './lib.mjs';

const RUNS = quick ? 1 : 20;
// The test's budgets: session 2/s burst 3, proxy 4/s burst 5 → at most 5 and 9 in any second.
const ALLOWED_PER_SECOND = { session: 3 + 2, proxy: 5 + 4 };
const tmp = mkdtempSync(join(tmpdir(), 'scbenchhold-'));
const report = join(tmp, 'runs.ndjson');
try {
  const code = await new Promise((resolve) => {
    const jest = spawn(
      process.execPath,
      [
        join(ROOT, 'node_modules', 'jest', 'bin', 'jest.js'),
        '--config',
        'jest.faults.config.js',
        '--maxWorkers=1',
        '--silent',
        '-t',
        '3 workers started together',
        'apps/worker/test/faults/budgets-hold.test.ts',
      ],
      {
        cwd: ROOT,
        env: {
          ...process.env,
          NODE_OPTIONS: '--experimental-vm-modules --no-warnings',
          BUDGETS_HOLD_RUNS: String(RUNS),
          BUDGETS_HOLD_REPORT: report,
        },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let err = '';
    jest.stderr.setEncoding('utf8').on('data', (d) => (err += d));
    jest.on('exit', (c) => {
      // A failed expectation is in the numbers below; jest's own output only when a run did not
      // finish (a batch that never completed, a crash).
      const finished = existsSync(report)
        ? readFileSync(report, 'utf8').split('\n').filter(Boolean).length
        : 0;
      if (c !== 0 && finished < RUNS) process.stderr.write(err.slice(-4000));
      resolve(c);
    });
  });
  const runs = existsSync(report)
    ? readFileSync(report, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l))
    : [];
  if (runs.length === 0) {
    console.error(`budgets-hold: jest exited ${code} before any run finished`);
    process.exit(1);
  }
  for (const r of runs)
    console.log(
      `budgets-hold run ${String(r.run).padStart(2)}: 3 workers started together, ${r.requests} upstream requests; ` +
        `throttled ${r.throttled.length}${r.throttled.length ? ` (${r.throttled.join(', ')})` : ''}; worst window over budget ${r.worstOver}; ` +
        `most in any 1 s: session ${r.peakPerSecond.session} of ${ALLOWED_PER_SECOND.session}, proxy ${r.peakPerSecond.proxy} of ${ALLOWED_PER_SECOND.proxy}`,
    );
  const throttled = runs.map((r) => r.throttled.length);
  console.log(
    `budgets-hold: ${runs.length} of ${RUNS} runs finished (jest exited ${code}); ${throttled.filter((n) => n > 0).length} with throttled answers, ` +
      `${throttled.reduce((a, b) => a + b, 0)} throttled in all; ${runs.filter((r) => r.worstOver > 0).length} with a window over budget`,
  );
  benchLine('budgets-hold runs', runs.length, 'runs');
  benchLine(
    'budgets-hold runs with throttled answers',
    throttled.filter((n) => n > 0).length,
    'runs',
    '== 0',
  );
  benchLine('budgets-hold throttled answers, worst run', Math.max(...throttled), 'count', '== 0');
  benchLine(
    'budgets-hold worst window over budget, worst run',
    Math.max(...runs.map((r) => r.worstOver)),
    'requests',
    '<= 0',
  );
  benchLine(
    'budgets-hold most per session in any 1 s',
    Math.max(...runs.map((r) => r.peakPerSecond.session)),
    'requests',
    `<= ${ALLOWED_PER_SECOND.session}`,
  );
  benchLine(
    'budgets-hold most per proxy in any 1 s',
    Math.max(...runs.map((r) => r.peakPerSecond.proxy)),
    'requests',
    `<= ${ALLOWED_PER_SECOND.proxy}`,
  );
  if (runs.length < RUNS) process.exitCode = 1;
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
