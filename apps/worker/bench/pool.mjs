#!/usr/bin/env node
// Budget utilization (issue 5/10/15): 4 sessions on 2 real loopback proxies, a simulator
// enforcing per-session and per-IP budgets equal to the configured ones. Two scenarios, each on
// a fresh pool (prefix, database, simulator):
//   - steady: 2 workers → the upstream requests achieved against the ceiling the budgets allow;
//   - cold:   4 workers started together; when ~40% of the names are done one is killed
//             (SIGKILL) and another started.
// Each prints the throttled answers (goal 0), the worst window as the simulator counted it
// (requests over what rate and burst allow in any window; goal ≤ 0), and the lease → arrival
// delay measured at the simulator (p50, p99, max; from the workers' LEASE_TRACE_FILE).
// Time is compressed ~100× (8/s per session stands for a few hundred per hour), so the throttle
// backoff is scaled the same way, as in budgets.mjs: THROTTLE_BACKOFF_BASE 600ms, _CAP 18s.
// Prints; never asserts.   node bench/pool.mjs [--quick]
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startProxies, startSim } from '@storycheck/upstream-sim';
import {
  benchLine,
  benchSeries,
  leaseSpread,
  quantile,
  quick,
  scenario,
  WORKER,
  worstWindow,
} from './lib.mjs';

const SESSIONS = 4;
const RATE = quick ? 10 : 8; // requests per second per session; proxies get 2 sessions' worth
const SESSION_BURST = 5;
const PROXY_BURST = 10;
const TIME_SCALE = 100;
const sid = (n) => `${2_000_000 + n}%3Abenchbenchbench%3A${n}`;
const tmp = mkdtempSync(join(tmpdir(), 'scbenchpool-'));

async function run(kind) {
  const N = kind === 'steady' ? (quick ? 200 : 2000) : quick ? 200 : 1200;
  const tag = `scbenchpool_${kind}_${process.pid}`;
  const trace = join(tmp, `${kind}.ndjson`);
  const proxies = await startProxies({ count: 2 });
  const sim = await startSim({
    seed: 99,
    size: N + 10,
    latencyMs: 30,
    requireSession: true,
    sessions: Array.from({ length: SESSIONS }, (_, i) => ({ sessionid: sid(i), label: `s${i}` })),
    budgets: {
      session: { rate: `${RATE}/1s`, burst: SESSION_BURST },
      ip: { rate: `${2 * RATE}/1s`, burst: PROXY_BURST },
      penaltyMs: 10_000,
    },
  });
  const s = await scenario(tag, {
    IG_BASE_URL: sim.url,
    STORYCHECK_SECRET_KEY: Buffer.alloc(32, 3).toString('base64'),
    ALLOW_PRIVATE_PROXIES: 'true',
    SESSION_RATE: `${RATE}/1s`,
    SESSION_BURST: String(SESSION_BURST),
    PROXY_RATE: `${2 * RATE}/1s`,
    PROXY_BURST: String(PROXY_BURST),
    THROTTLE_BACKOFF_BASE: `${60_000 / TIME_SCALE}ms`,
    THROTTLE_BACKOFF_CAP: `${1_800_000 / TIME_SCALE}ms`,
    LEASE_TRACE_FILE: trace,
    // A killed worker's jobs come back after about twice this (the default 30 s would make the
    // cold run measure the wait).
    WORKER_LOCK_DURATION: '2s',
  });
  const extra = [];
  try {
    await s.cli(
      ['proxies', 'import', '-'],
      proxies.proxies.map((p) => `${p.label}=${p.url}`).join('\n'),
    );
    await s.cli(
      ['sessions', 'import', '-'],
      Array.from({ length: SESSIONS }, (_, i) =>
        JSON.stringify({
          label: `s${i}`,
          sessionid: sid(i),
          ds_user_id: String(2_000_000 + i),
          proxy: `p${(i % 2) + 1}`,
        }),
      ).join('\n'),
    );
    const workers = kind === 'steady' ? 2 : 4;
    s.startWorkers(workers);
    let churn;
    if (kind === 'cold') {
      // When ~40% of the names have been asked: kill one worker, start another.
      churn = (async () => {
        while (sim.requestLog().length < 0.4 * N) await new Promise((r) => setTimeout(r, 50));
        process.kill(s.pids()[0], 'SIGKILL');
        const w = spawn(process.execPath, [WORKER], {
          env: s.env,
          stdio: ['ignore', 'ignore', 'inherit'],
        });
        extra.push(w);
      })();
    }
    const secs = await s.checks(sim.world.usernames().slice(0, N));
    await churn;
    const log = sim.requestLog();
    const first = Math.min(...log.map((e) => e.timeMs));
    const last = Math.max(...log.map((e) => e.timeMs));
    const window = (last - first) / 1000;
    const ceiling = SESSIONS * (SESSION_BURST + RATE * window);
    const thr = log.filter(
      (e) => e.status === 429 || (e.status === 401 && e.kind !== 'current_user'),
    );
    const throttled = thr.length;
    const why = {};
    for (const e of thr) why[e.outcome] = (why[e.outcome] ?? 0) + 1;
    const ws = worstWindow(log, (e) => e.session, RATE, SESSION_BURST);
    const wp = worstWindow(log, (e) => e.client, 2 * RATE, PROXY_BURST);
    const traceText = readFileSync(trace, 'utf8');
    const spread = leaseSpread(traceText, log);
    // The worker's own part: lease → the moment it started the request.
    const toSend = traceText
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))
      .map((t) => t.sentAtMs - t.atUs / 1000)
      .sort((a, b) => a - b);
    const q = (x) => Math.round(quantile(spread, x));
    const label = kind === 'steady' ? 'pool' : 'pool cold start';
    console.log(
      `${label}: ${workers} workers${kind === 'cold' ? ' (one killed, one started at 40%)' : ''}, ${N} names in ${secs.toFixed(1)} s; ` +
        `${log.length} upstream requests in ${window.toFixed(1)} s; ceiling ${Math.floor(ceiling)}; utilization ${(log.length / ceiling).toFixed(3)}; ` +
        `throttled ${throttled} ${JSON.stringify(why)}; worst window over budget: session ${ws.over} (${ws.count} in ${ws.windowMs} ms), proxy ${wp.over} (${wp.count} in ${wp.windowMs} ms); ` +
        `lease → arrival ms p50 ${q(0.5)} p99 ${q(0.99)} max ${Math.round(spread.at(-1))} (min ${Math.round(spread[0])}, ${spread.length} matched); ` +
        `of which lease → send p50 ${Math.round(quantile(toSend, 0.5))} p99 ${Math.round(quantile(toSend, 0.99))} max ${Math.round(toSend.at(-1))}`,
    );
    if (kind === 'steady') {
      benchLine('pool checks/s', N / secs, 'checks/s');
      benchLine('pool upstream requests/s', log.length / window, 'requests/s');
      benchLine('pool ceiling requests/s', ceiling / window, 'requests/s');
      benchLine('pool utilization', log.length / ceiling, 'ratio', '>= 0.95', { each: true });
    }
    benchLine(`${label} throttled answers`, throttled, 'count', '== 0', { each: true });
    benchLine(`${label} worst window over budget`, Math.max(ws.over, wp.over), 'requests', '<= 0', {
      each: true,
    });
    benchLine(`${label} lease → arrival p50`, q(0.5), 'ms');
    benchLine(`${label} lease → arrival p99`, q(0.99), 'ms');
    benchLine(`${label} lease → arrival max`, Math.round(spread.at(-1)), 'ms');
    if (kind === 'steady')
      benchSeries('pool', log, {
        title: `pool: ${SESSIONS} sessions on 2 proxies, 2 workers, ${N} names`,
        ceilings: [{ value: SESSIONS * RATE, label: `budgets allow ${SESSIONS} × ${RATE}/s` }],
      });
  } finally {
    const running = (w) => w.exitCode === null && w.signalCode === null;
    for (const w of extra) if (running(w)) w.kill('SIGTERM');
    await Promise.all(extra.map((w) => (running(w) ? new Promise((r) => w.on('exit', r)) : null)));
    await s.close();
    await sim.close();
    await proxies.close();
  }
}

try {
  await run('steady');
  await run('cold');
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
