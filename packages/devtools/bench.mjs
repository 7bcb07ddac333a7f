#!/usr/bin/env node
// `pnpm bench` (issue 10): builds once, runs every benchmark script as a child process, reads the
// `BENCH {json}` line each prints beside its human lines, takes the median over runs, prints one
// table against the issue's goals and writes bench-results/latest.json and latest.md.
// The benchmarks never assert; this exits non-zero only when a benchmark could not run.
//   pnpm bench [--quick] [--only id,id] [--runs N]
// --quick: tiny sizes, one run each (CI keeps them working, < 2 minutes).
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const flag = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const only = flag('--only')?.split(',');
const runsOverride = flag('--runs') ? Number(flag('--runs')) : undefined;

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
    id: 'overhead',
    dir: 'apps/worker',
    argv: ['bench/overhead.mjs'],
    runs: 1,
    why: 'median of 3 pairs inside the script',
  },
  { id: 'scaling', dir: 'apps/worker', argv: ['bench/scaling.mjs'], runs: 3 },
];

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

function meets(value, goal) {
  const m = /^(<=|>=|<|>|==)\s*(-?[\d.]+)/.exec(goal ?? '');
  if (!m) return undefined;
  const g = Number(m[2]);
  return { '<=': value <= g, '>=': value >= g, '<': value < g, '>': value > g, '==': value === g }[
    m[1]
  ];
}

const show = (v) =>
  Math.abs(v) >= 100
    ? Math.round(v).toLocaleString('en-US')
    : Number(v.toPrecision(3)).toLocaleString('en-US', { maximumFractionDigits: 3 });

/** Runs one script; echoes its human lines, collects its BENCH lines. */
function runOnce(bench) {
  return new Promise((resolve) => {
    const argv = [...bench.argv, ...(quick ? (bench.quickArgv ?? ['--quick']) : [])];
    const t0 = performance.now();
    const child = spawn(process.execPath, argv, {
      cwd: join(ROOT, bench.dir),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d) => {
      out += d;
      for (const line of d.split('\n'))
        if (line.trim() && !line.startsWith('BENCH ')) process.stdout.write(`  ${line}\n`);
    });
    child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
    child.on('exit', (code) => {
      const metrics = [];
      for (const line of out.split('\n')) {
        if (!line.startsWith('BENCH ')) continue;
        try {
          metrics.push(JSON.parse(line.slice(6)));
        } catch {
          // a malformed line is ignored; the human line is still in `lines`
        }
      }
      resolve({
        code,
        secs: (performance.now() - t0) / 1000,
        lines: out.split('\n').filter((l) => l.trim() && !l.startsWith('BENCH ')),
        metrics,
        stderrTail: code === 0 ? undefined : err.split('\n').slice(-20).join('\n'),
      });
    });
  });
}

const started = new Date();
const t0 = performance.now();
console.log(`storycheck bench${quick ? ' --quick' : ''}: building…`);
const build = spawnSync('pnpm', ['exec', 'turbo', 'run', 'build', '--output-logs=errors-only'], {
  cwd: ROOT,
  stdio: 'inherit',
});
if (build.status !== 0) {
  console.error('bench: build failed');
  process.exit(1);
}

const results = [];
let failed = 0;
for (const bench of BENCHES) {
  if (only && !only.includes(bench.id)) continue;
  const runs = quick ? 1 : (runsOverride ?? bench.runs);
  const r = { id: bench.id, runs, why: bench.why, secs: 0, lines: [], errors: [], metrics: [] };
  const byName = new Map();
  for (let i = 0; i < runs; i++) {
    console.log(`${bench.id}: run ${i + 1}/${runs}`);
    const one = await runOnce(bench);
    r.secs += one.secs;
    r.lines.push(...one.lines);
    if (one.code !== 0) {
      r.errors.push(`run ${i + 1} exited ${one.code}\n${one.stderrTail}`);
      console.error(`${bench.id}: run ${i + 1} exited ${one.code}\n${one.stderrTail}`);
      failed++;
      continue;
    }
    for (const m of one.metrics) {
      if (!byName.has(m.name)) byName.set(m.name, { ...m, values: [] });
      byName.get(m.name).values.push(m.value);
    }
  }
  for (const m of byName.values()) {
    const value = median(m.values);
    r.metrics.push({
      name: m.name,
      value,
      unit: m.unit,
      goal: m.goal,
      met: meets(value, m.goal),
      values: m.values,
    });
  }
  results.push(r);
}
const totalSecs = (performance.now() - t0) / 1000;

const rows = results.flatMap((r) =>
  r.metrics.map((m) => ({
    bench: r.id,
    metric: m.name,
    value: `${show(m.value)} ${m.unit}`,
    goal: m.goal ?? '',
    status: m.met === undefined ? '' : m.met ? 'met' : 'MISSED',
    runs: String(m.values.length),
  })),
);
const cols = ['bench', 'metric', 'value', 'goal', 'status', 'runs'];
const width = Object.fromEntries(
  cols.map((c) => [c, Math.max(c.length, ...rows.map((row) => row[c].length))]),
);
const line = (row) => cols.map((c) => row[c].padEnd(width[c])).join('  ');
console.log(`\n${line(Object.fromEntries(cols.map((c) => [c, c])))}`);
for (const row of rows) console.log(line(row));
console.log(
  `\n${rows.length} numbers, ${rows.filter((r) => r.status === 'met').length} goals met, ` +
    `${rows.filter((r) => r.status === 'MISSED').length} missed; ${failed} failed run(s); ${totalSecs.toFixed(0)} s`,
);

const machine = {
  cpus: cpus().length,
  model: cpus()[0]?.model ?? 'unknown',
  memGb: Math.round(totalmem() / 2 ** 30),
  node: process.version,
  loadavg: loadavg().map((x) => Number(x.toFixed(2))),
};
const command = `pnpm bench${quick ? ' --quick' : ''}`;
const outDir = join(ROOT, 'bench-results');
await mkdir(outDir, { recursive: true });
await writeFile(
  join(outDir, 'latest.json'),
  `${JSON.stringify({ date: started.toISOString(), command, quick, totalSecs, machine, failed, benches: results }, null, 2)}\n`,
);
const md = [
  `# storycheck benchmarks — ${started.toISOString()}`,
  '',
  `Command: \`${command}\` · ${totalSecs.toFixed(0)} s · ${machine.cpus} × ${machine.model}, ${machine.memGb} GB, node ${machine.node}, load ${machine.loadavg.join(' ')} (shared, noisy machine; ratios are computed within one run)`,
  '',
  `| ${cols.join(' | ')} |`,
  `| ${cols.map(() => '---').join(' | ')} |`,
  ...rows.map((row) => `| ${cols.map((c) => row[c]).join(' | ')} |`),
  '',
  '## Runs',
  '',
  ...results.map(
    (r) =>
      `- **${r.id}**: ${r.runs} run(s), ${r.secs.toFixed(0)} s${r.why ? ` (${r.why})` : ''}${r.errors.length ? `; ${r.errors.length} failed` : ''}`,
  ),
  '',
  '## Output',
  '',
  ...results.flatMap((r) => [`### ${r.id}`, '', '```', ...r.lines, '```', '']),
].join('\n');
await writeFile(join(outDir, 'latest.md'), md);
console.log('wrote bench-results/latest.json and bench-results/latest.md');
process.exitCode = failed ? 1 : 0;
