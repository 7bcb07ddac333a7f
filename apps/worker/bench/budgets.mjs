#!/usr/bin/env node
// Unknown budgets (issue 10 §2): 2 sessions on 2 loopback proxies, 1 worker, the simulator's
// real per-session budget (REAL/s) BELOW the configured SESSION_RATE (CONFIGURED/s), no per-IP
// budget → throttled answers (429, throttling 401) per 1,000 upstream requests and the requests
// answered against the ceiling the REAL budgets allow over the whole (capped) run. Once with
// fixed rates, once with ADAPTIVE_RATES=true (the pool's AIMD mode); each on a fresh simulator,
// prefix and database. No convergence time is measured yet.
// Prints; never asserts.   node bench/budgets.mjs [--quick]   600 names (--quick: 60)
import { spawn } from 'node:child_process';
import { startProxies, startSim } from '@storycheck/upstream-sim';
import { CLI, benchLine, benchSeries, fmt, quick, scenario } from './lib.mjs';

const N = quick ? 60 : 600;
const CAP_S = quick ? 5 : 60; // stop measuring after this long (sessions parked after 429s are slow)
const SESSIONS = 2;
const CONFIGURED = 10;
const REAL = 6;
const BURST = 5;
const sid = (n) => `${3_000_000 + n}%3Abenchbudgets%3A${n}`;
async function run(adaptive) {
  const proxies = await startProxies({ count: 2 });
  const sim = await startSim({
    seed: 98,
    size: N + 10,
    latencyMs: 30,
    requireSession: true,
    sessions: Array.from({ length: SESSIONS }, (_, i) => ({ sessionid: sid(i), label: `s${i}` })),
    budgets: { session: { rate: `${REAL}/1s`, burst: BURST }, penaltyMs: 2_000 },
  });
  let s;
  try {
    s = await scenario(`scbenchbud_${process.pid}_${adaptive ? 'a' : 'f'}`, {
      ADAPTIVE_RATES: String(adaptive),
      IG_BASE_URL: sim.url,
      STORYCHECK_SECRET_KEY: Buffer.alloc(32, 3).toString('base64'),
      ALLOW_PRIVATE_PROXIES: 'true',
      SESSION_RATE: `${CONFIGURED}/1s`,
      SESSION_BURST: String(BURST),
      PROXY_RATE: `${4 * CONFIGURED}/1s`,
      PROXY_BURST: '20',
    });
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
          ds_user_id: String(3_000_000 + i),
          proxy: `p${i + 1}`,
        }),
      ).join('\n'),
    );
    s.startWorkers(1);
    // enqueue --wait, stopped after CAP_S seconds: the numbers are over the requests sent so far.
    const t0 = performance.now();
    const finished = await new Promise((resolve) => {
      const p = spawn(process.execPath, [CLI, 'enqueue', '-', '--wait'], {
        env: s.env,
        stdio: ['pipe', 'ignore', 'ignore'],
      });
      const timer = setTimeout(() => p.kill('SIGTERM'), CAP_S * 1000);
      p.on('exit', (code) => {
        clearTimeout(timer);
        resolve(code === 0);
      });
      p.stdin.end(sim.world.usernames().slice(0, N).join('\n'));
    });
    const secs = (performance.now() - t0) / 1000;
    const log = sim.requestLog().filter((e) => e.kind !== 'current_user');
    const first = Math.min(...log.map((e) => e.timeMs));
    const last = Math.max(...log.map((e) => e.timeMs));
    const window = Math.max((last - first) / 1000, secs); // the whole run, idle time included
    const ceiling = SESSIONS * (BURST + REAL * window);
    const throttled = log.filter((e) => e.status === 429 || e.status === 401).length;
    const ok = log.length - throttled;
    const mode = adaptive ? 'adaptive' : 'fixed';
    const per1000 = (throttled / log.length) * 1000;
    console.log(
      `unknown budgets (${adaptive ? 'ADAPTIVE_RATES=true' : 'fixed rates'}): real ${REAL}/s per session < configured ${CONFIGURED}/s, ${SESSIONS} sessions: ` +
        `${fmt(N)} names ${finished ? 'done' : 'NOT done (stopped)'} after ${secs.toFixed(1)} s; ${log.length} upstream requests in ${window.toFixed(1)} s, ` +
        `${throttled} throttled = ${per1000.toFixed(0)} per 1,000 (goal 0); ` +
        `answered ${ok} of a real ceiling ${Math.floor(ceiling)}: utilization of the real budgets ${(ok / ceiling).toFixed(3)} (goal >= 0.95)`,
    );
    benchLine(`unknown budgets ${mode} throttled per 1,000 requests`, per1000, 'per 1,000', '== 0');
    benchLine(
      `unknown budgets ${mode} utilization of real budgets`,
      ok / ceiling,
      'ratio',
      '>= 0.95',
    );
    benchLine(`unknown budgets ${mode} upstream requests/s`, log.length / window, 'requests/s');
    benchSeries('budgets', log, {
      title: `unknown budgets: ${SESSIONS} sessions, real ${REAL}/s each < configured ${CONFIGURED}/s, 1 worker`,
      group: adaptive ? 'ADAPTIVE_RATES=true' : 'fixed rates',
      spanSecs: window,
      ceilings: [
        { value: SESSIONS * REAL, label: `real budgets ${SESSIONS} × ${REAL}/s` },
        { value: SESSIONS * CONFIGURED, label: `configured ${SESSIONS} × ${CONFIGURED}/s` },
      ],
    });
  } finally {
    await s?.close();
    await sim.close();
    await proxies.close();
  }
}
await run(false);
await run(true);
