#!/usr/bin/env node
// `pnpm bench` (issue 10): builds once, runs every benchmark script as a child process, reads the
// `BENCH {json}` lines (numbers) and `BENCH_SERIES {json}` lines (per-second series for the chart)
// each prints beside its human lines, takes the median over runs (the worst run for a number
// whose goal must hold in each run, `"each": true`), prints one table against the
// issue's goals and writes bench-results/latest.{json,md} and bench-results/benchmarks-throughput.svg.
// A full default run (no --quick, --only or --runs; no failed run) also rewrites the generated
// section of docs/benchmarks.md and docs/benchmarks-throughput.svg; --write-docs forces that.
// The benchmarks never assert; this exits non-zero only when a benchmark could not run.
//   pnpm bench [--quick] [--only id,id] [--runs N] [--write-docs]
// --quick: tiny sizes, one run each (CI keeps them working, < 2 minutes).
// Works without pnpm on PATH (`node packages/devtools/bench.mjs`): the build uses lib.mjs's pnpm.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import {
  CHART_FILE,
  chartsFromResults,
  docsDecision,
  markdownTable,
  medianRunIndex,
  parseBenchOutput,
  renderResultsSection,
  renderThroughputSvg,
  replaceResultsSection,
  resultRows,
  summarize,
} from './bench-report.mjs';
import { ROOT, ensurePnpm, turboEnv } from './lib.mjs';

const USAGE = 'usage: pnpm bench [--quick] [--only id,id] [--runs N] [--write-docs]';
const args = process.argv.slice(2);
const flag = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--only' || args[i] === '--runs') i++;
  else if (!['--quick', '--write-docs'].includes(args[i])) {
    console.error(`bench: unknown argument ${args[i]}\n${USAGE}`);
    process.exit(2);
  }
}
const quick = args.includes('--quick');
const writeDocs = args.includes('--write-docs');
const only = flag('--only')?.split(',');
const runsOverride = flag('--runs') ? Number(flag('--runs')) : undefined;
if (runsOverride !== undefined && !(Number.isInteger(runsOverride) && runsOverride >= 1)) {
  console.error(`bench: --runs takes an integer >= 1\n${USAGE}`);
  process.exit(2);
}

// runs: how many times the full (non-quick) script runs; the median of each number is reported.
// Scripts that already take the median of several runs inside one process, or that take long,
// run once (see `why`).
const BENCHES = [
  {
    id: 'sim',
    dir: 'apps/upstream-sim',
    argv: ['dist/bench.js'],
    quickArgv: ['--requests', '2000', '--max-secs', '1'],
    runs: 3,
  },
  { id: 'limiter', dir: 'packages/pool', argv: ['bench/limiter.mjs'], runs: 3 },
  {
    id: 'enqueue',
    dir: 'apps/producer',
    argv: ['bench/enqueue.mjs'],
    runs: 1,
    why: 'median of 3 inside the script; the 1M-line memory run is a single run (~1 min)',
  },
  {
    id: 'requests',
    dir: 'apps/worker',
    argv: ['bench/requests.mjs'],
    runs: 1,
    why: 'request counts, not timings: one run',
  },
  {
    id: 'pool',
    dir: 'apps/worker',
    argv: ['bench/pool.mjs'],
    runs: 3,
  },
  {
    id: 'budgets',
    dir: 'apps/worker',
    argv: ['bench/budgets.mjs'],
    runs: 1,
    why: 'long (budget-bound by design): one run',
  },
  {
    id: 'budgets-hold',
    dir: 'apps/worker',
    argv: ['bench/budgets-hold.mjs'],
    runs: 1,
    why: '20 cold starts inside the script (the test suite runs 3)',
  },
  {
    id: 'overhead',
    dir: 'apps/worker',
    argv: ['bench/overhead.mjs'],
    runs: 1,
    why: 'median of 3 triples (bare, cold, warm) inside the script',
  },
  { id: 'scaling', dir: 'apps/worker', argv: ['bench/scaling.mjs'], runs: 3 },
  {
    id: 'peers',
    dir: 'packages/bench-peers',
    argv: ['peers.mjs'],
    runs: 1,
    why: 'four peers one after the other in one process tree (~3 min): one run',
  },
  {
    id: 'capacity',
    dir: 'apps/worker',
    argv: ['bench/capacity.mjs'],
    runs: 1,
    why: 'Redis counters per check, not timings: one run',
  },
];

/** The child running now, so a SIGINT/SIGTERM (a CI timeout) stops it and its workers too. */
let current;
for (const sig of ['SIGINT', 'SIGTERM'])
  process.once(sig, () => {
    if (current && current.exitCode === null) current.kill('SIGTERM');
    console.error(`bench: ${sig}; stopped`);
    process.exit(130);
  });

/** Runs one script; echoes its human lines, collects its BENCH and BENCH_SERIES lines. */
function runOnce(bench) {
  return new Promise((resolve) => {
    const argv = [...bench.argv, ...(quick ? (bench.quickArgv ?? ['--quick']) : [])];
    const t0 = performance.now();
    const child = spawn(process.execPath, argv, {
      cwd: join(ROOT, bench.dir),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    current = child;
    let out = '';
    let err = '';
    let partial = '';
    child.stdout.setEncoding('utf8').on('data', (d) => {
      out += d;
      partial += d;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines)
        if (line.trim() && !/^BENCH(_SERIES)? /.test(line)) process.stdout.write(`  ${line}\n`);
    });
    child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
    child.on('exit', (code, signal) => {
      current = undefined;
      if (partial.trim() && !/^BENCH(_SERIES)? /.test(partial))
        process.stdout.write(`  ${partial}\n`);
      resolve({
        code: code ?? signal,
        secs: (performance.now() - t0) / 1000,
        ...parseBenchOutput(out),
        stderrTail: code === 0 ? undefined : err.split('\n').slice(-20).join('\n'),
      });
    });
  });
}

/** The command line as typed, for the record: `pnpm bench …`, `npm run bench -- …` or node. */
function commandLine() {
  const quote = (a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  const viaScript = process.env.npm_lifecycle_event === 'bench';
  const agent = process.env.npm_config_user_agent ?? '';
  const base = !viaScript
    ? 'node packages/devtools/bench.mjs'
    : agent.startsWith('pnpm')
      ? 'pnpm bench'
      : `npm run bench${args.length ? ' --' : ''}`;
  return [base, ...args.map(quote)].join(' ');
}

const started = new Date();
const loadStart = loadavg();
const t0 = performance.now();
console.log(`storycheck bench${quick ? ' --quick' : ''}: building…`);
const build = spawnSync(
  ensurePnpm(),
  ['exec', 'turbo', 'run', 'build', '--output-logs=errors-only'],
  {
    cwd: ROOT,
    stdio: 'inherit',
    env: turboEnv(),
  },
);
if (build.status !== 0) {
  console.error('bench: build failed');
  process.exit(1);
}

const results = [];
let failed = 0;
for (const bench of BENCHES) {
  if (only && !only.includes(bench.id)) continue;
  const runs = quick ? 1 : (runsOverride ?? bench.runs);
  const r = {
    id: bench.id,
    runs,
    why: bench.why,
    secs: 0,
    lines: [],
    errors: [],
    metrics: [],
    series: [],
  };
  const byName = new Map();
  const seriesPerRun = [];
  for (let i = 0; i < runs; i++) {
    console.log(`${bench.id}: run ${i + 1}/${runs}`);
    const one = await runOnce(bench);
    r.secs += one.secs;
    r.lines.push(...one.lines);
    if (one.code !== 0) {
      r.errors.push(`run ${i + 1} exited ${one.code}\n${one.stderrTail}`);
      console.error(`${bench.id}: run ${i + 1} exited ${one.code}\n${one.stderrTail}`);
      failed++;
      seriesPerRun.push([]);
      continue;
    }
    seriesPerRun.push(one.series);
    for (const m of one.metrics) {
      if (!byName.has(m.name)) byName.set(m.name, { ...m, values: [] });
      byName.get(m.name).values.push(m.value);
    }
  }
  for (const m of byName.values()) {
    const { value, met } = summarize(m.values, m.goal, m.each);
    r.metrics.push({
      name: m.name,
      value,
      unit: m.unit,
      goal: m.goal,
      ...(m.each ? { each: true } : {}),
      met,
      values: m.values,
    });
  }
  const chosen = medianRunIndex(seriesPerRun);
  if (chosen >= 0) {
    r.series = seriesPerRun[chosen];
    r.seriesRun = chosen + 1;
  }
  results.push(r);
}
const totalSecs = (performance.now() - t0) / 1000;

// The console table: bench, number, value, goal, met/MISSED, runs.
const rows = results.flatMap((r) =>
  resultRows([r]).map((row, i) => [
    ...row.slice(0, 4),
    row[4] === 'missed' ? 'MISSED' : row[4],
    String(r.metrics[i].values.length),
  ]),
);
const cols = ['bench', 'metric', 'value', 'goal', 'status', 'runs'];
const width = cols.map((c, i) => Math.max(c.length, ...rows.map((row) => row[i].length)));
const line = (row) => row.map((c, i) => c.padEnd(width[i])).join('  ');
console.log(`\n${line(cols)}`);
for (const row of rows) console.log(line(row));
console.log(
  `\n${rows.length} numbers, ${rows.filter((r) => r[4] === 'met').length} goals met, ` +
    `${rows.filter((r) => r[4] === 'MISSED').length} missed; ${failed} failed run(s); ${totalSecs.toFixed(0)} s`,
);

const report = {
  date: started.toISOString(),
  command: commandLine(),
  quick,
  totalSecs,
  machine: {
    cpus: cpus().length,
    model: cpus()[0]?.model.trim() ?? 'unknown',
    memGb: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    loadavgStart: loadStart.map((x) => Number(x.toFixed(2))),
    loadavg: loadavg().map((x) => Number(x.toFixed(2))),
  },
  failed,
  benches: results,
};
const svg = renderThroughputSvg(chartsFromResults(results), {
  subtitle: `${report.date.replace(/\.\d+Z$/, 'Z')} · ${report.command} · ${report.machine.cpus} × ${report.machine.model}`,
});

const outDir = join(ROOT, 'bench-results');
await mkdir(outDir, { recursive: true });
await writeFile(join(outDir, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`);
await writeFile(join(outDir, CHART_FILE), svg);
const md = [
  `# storycheck benchmarks — ${report.date}`,
  '',
  renderResultsSection(report, { chartFile: CHART_FILE }),
  '',
  '## Each number over its runs',
  '',
  markdownTable(
    ['bench', 'number', 'runs'],
    results.flatMap((r) => r.metrics.map((m) => [r.id, m.name, m.values.join(', ')])),
  ),
  '',
  '## Output',
  '',
  ...results.flatMap((r) => [`### ${r.id}`, '', '```', ...r.lines, ...r.errors, '```', '']),
].join('\n');
await writeFile(join(outDir, 'latest.md'), md);
console.log(`wrote bench-results/latest.json, latest.md and ${CHART_FILE}`);

// docs/benchmarks.md: only a full default run rewrites its generated section (see docsDecision).
const decision = docsDecision({ quick, only, runs: runsOverride, writeDocs, failed });
if (decision.write) {
  const page = join(ROOT, 'docs', 'benchmarks.md');
  const doc = await readFile(page, 'utf8');
  await writeFile(page, replaceResultsSection(doc, renderResultsSection(report)));
  await writeFile(join(ROOT, 'docs', CHART_FILE), svg);
  // The section is generated prettier-clean; this only guards against odd metric names.
  const prettier = join(ROOT, 'node_modules', '.bin', 'prettier');
  if (existsSync(prettier))
    spawnSync(prettier, ['--write', '--log-level=warn', page], { stdio: 'inherit' });
  console.log(
    `wrote docs/benchmarks.md (generated section) and docs/${CHART_FILE} (${decision.why})`,
  );
} else {
  console.log(`docs/benchmarks.md left as it is: ${decision.why}`);
}
process.exitCode = failed ? 1 : 0;
