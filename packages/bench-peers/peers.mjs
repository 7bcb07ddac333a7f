#!/usr/bin/env node
// Peers, side by side in one run (issue 15): what an engineer would pick instead of this pool to
// share per-session, per-proxy and global budgets across processes, on one private Redis and
// against the same simulator budgets. One peer after the other:
//
//   limiters   4 processes × 16 loops share 1,000 sessions on 200 egress addresses (a session is
//              bound to one, five per address; the simulator sees each as a client IP):
//                pool          this project's pool: createPool with poolDefaults (the worker's
//                              BUDGET_MARGIN 0.03 and LEASE_SPREAD 300 ms), `acquire()` then
//                              send; sleep the returned wait when refused
//                rlf           rate-limiter-flexible RateLimiterRedis, one consume per budget
//                              (session, proxy, global; fixed windows, points = rate × duration),
//                              sessions taken round robin, an earlier consume rewarded back when a
//                              later one refuses
//                bottleneck    Bottleneck clustering on ioredis: a Group of limiters per session
//                              (minTime = interval) chained to a Group per proxy, chained to one
//                              global limiter; one job queued per session, queued again when done
//              Each process sets up (Bottleneck: its 1,201 limiters, timed apart), then all start
//              together; after a warm-up (15 s) the next 20 s are measured → admitted requests/s
//              (answered, not throttled, as the simulator logged them) and their utilization of the
//              100/s the budgets allow; Redis time per admitted request (the private Redis's own
//              CPU time, INFO cpu) and Redis calls per admitted request (every command the
//              processes send, pipelined, rejected and pub/sub ones included, counted in the
//              client); the client processes' CPU per admitted request; requests over budget as
//              the simulator counted them (its throttled answers) and the worst window over budget
//              (lib.mjs worstWindow), over the whole run
//   crawlee    2 processes, HttpCrawler (@crawlee/http) with its SessionPool holding the same
//              1,000 sessions (each bound to its egress address), maxRequestsPerMinute = each
//              process's share of the 100/s → throttled answers, utilization (after 15 s warm-up)
//
// The budgets, the simulator's and the configured ones alike: session 0.1/s burst 2, proxy (per
// egress address) 0.5/s burst 3, global 125/s burst 50 (the simulator has no global budget; a
// safety net above the 100/s the session and proxy budgets allow). The simulator's penalty after
// a throttle is 0: one request over budget costs one throttled answer, not a cascade. Nobody
// reports outcomes back (no reportSuccess), so the Redis numbers are the admission's alone.
// Prints; never asserts.   node packages/bench-peers/peers.mjs [--quick]
// PEERS_ONLY=pool,rlf runs only those limiter peers (empty: crawlee alone); PEERS_DEBUG=1 shows
// crawlee's log and Bottleneck's failed jobs.
import { spawn } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';

const SESSIONS = 1000;
const PROXIES = 200;
const SESSION = { rate: 0.1, burst: 2 }; // per second
const PROXY = { rate: 0.5, burst: 3 };
const GLOBAL = { rate: 125, burst: 50 };
const CEILING = Math.min(SESSIONS * SESSION.rate, PROXIES * PROXY.rate); // 100/s
const sid = (i) => `${5_000_000 + i}%3Apeersbench%3A${i}`;
const proxyOf = (i) => i % PROXIES;
const egressOf = (p) => `127.0.${2 + Math.floor(p / 250)}.${2 + (p % 250)}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const SELF = fileURLToPath(import.meta.url);

// ---- child: one process of one peer -----------------------------------------------------------

/** Sends one profile request as session `i` from its egress address; resolves the status. */
function makeSender(simUrl) {
  const u = new URL(simUrl);
  const agents = new Map();
  const agentOf = (p) => {
    if (!agents.has(p))
      agents.set(p, new http.Agent({ keepAlive: true, maxSockets: 8, localAddress: egressOf(p) }));
    return agents.get(p);
  };
  const { names } = JSON.parse(process.env.PEERS_ARGS);
  let n = Number(process.env.PEERS_CHILD) * 7;
  return (i) =>
    new Promise((resolve) => {
      const req = http.get(
        {
          host: u.hostname,
          port: u.port,
          path: `/api/v1/users/web_profile_info/?username=${names[n++ % names.length]}`,
          agent: agentOf(proxyOf(i)),
          localAddress: egressOf(proxyOf(i)),
          headers: { 'x-ig-app-id': '936619743392459', cookie: `sessionid=${sid(i)}` },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', () => resolve(0));
    });
}

/**
 * Tells the parent this process is ready (modules loaded) and resolves the end of the run, epoch
 * ms, once the parent says go: on a loaded machine starting 4 processes takes seconds, and no
 * process should run alone meanwhile.
 */
async function ready() {
  process.stdout.write('ready\n');
  let buf = '';
  for await (const d of process.stdin) {
    buf += d;
    if (buf.includes('\n')) return Number(buf.trim());
  }
  throw new Error('the parent went away');
}

/** ms from `since` to the simulator's first logged request after it (Infinity: none). */
function firstRequestMs(sim, since) {
  const times = sim
    .requestLog()
    .filter((e) => e.timeMs >= since)
    .map((e) => e.timeMs);
  return Math.min(...times) - since;
}

async function child() {
  const { peer, redisUrl, simUrl, loops, warmMs = 0 } = JSON.parse(process.env.PEERS_ARGS);
  const send = makeSender(simUrl);
  // Loaded before the go, so that the run measures the peers, not module loading.
  const mod = await import(
    {
      pool: '@storycheck/pool',
      rlf: 'rate-limiter-flexible',
      bottleneck: 'bottleneck',
      crawlee: '@crawlee/http',
    }[peer]
  );
  // Every command this process sends to Redis after the warm-up, pipelined ones and the
  // subscriber's included.
  let redisCalls = 0;
  let measureFrom = Infinity;
  const sendCommand = Redis.prototype.sendCommand;
  Redis.prototype.sendCommand = function (...args) {
    if (Date.now() >= measureFrom) redisCalls++;
    return sendCommand.apply(this, args);
  };
  // Set up before the go (seconds on a loaded machine, timed apart): crawlee builds its crawler
  // and fills its queue; Bottleneck creates its 1,201 limiters and registers them in Redis.
  const setupT0 = Date.now();
  const crawl = peer === 'crawlee' ? await crawleeChild(mod, simUrl) : undefined;
  const bn = peer === 'bottleneck' ? await bottleneckSetup(mod.default, redisUrl) : undefined;
  const setupMs = Date.now() - setupT0;
  const untilMs = await ready();
  measureFrom = untilMs - (JSON.parse(process.env.PEERS_ARGS).runMs ?? 0) + warmMs;
  // This process's CPU time over the measured part: what the peer costs its client.
  let cpu0;
  setTimeout(() => (cpu0 = process.cpuUsage()), Math.max(0, measureFrom - Date.now()));
  const live = () => Date.now() < untilMs;
  let sent = 0;
  if (peer === 'pool') {
    const { createPool, poolDefaults } = mod;
    const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
    const pool = createPool({ redis, prefix: 'peers', defaults: poolDefaultsFor(poolDefaults) });
    await Promise.all(
      Array.from({ length: loops }, async () => {
        while (live()) {
          const a = await pool.acquire();
          if (!a.ok) {
            await sleep(a.reason === 'budget' ? a.waitMs : 50);
            continue;
          }
          sent++;
          await send(Number(a.lease.sessionId.slice(1)));
        }
      }),
    );
    redis.disconnect();
  } else if (peer === 'rlf') {
    const { RateLimiterRedis } = mod;
    const redis = new Redis(redisUrl, { maxRetriesPerRequest: null, enableOfflineQueue: false });
    await new Promise((r) => redis.once('ready', r));
    const limiter = (keyPrefix, rate) =>
      // points per duration: the integer number of requests in the shortest whole-second window.
      new RateLimiterRedis({
        storeClient: redis,
        keyPrefix,
        points: Math.max(1, Math.round(rate)),
        duration: Math.max(1, Math.round(1 / rate)),
      });
    const session = limiter('rlf_s', SESSION.rate);
    const proxy = limiter('rlf_p', PROXY.rate);
    const global = limiter('rlf_g', GLOBAL.rate);
    let next = Math.floor(Math.random() * SESSIONS);
    await Promise.all(
      Array.from({ length: loops }, async () => {
        while (live()) {
          const i = next;
          next = (next + 1) % SESSIONS;
          try {
            await session.consume(`s${i}`);
          } catch (r) {
            if (r instanceof Error) throw r;
            // This session is spent: the next one (a short pause when a whole round is refused).
            if (i === SESSIONS - 1) await sleep(5);
            continue;
          }
          try {
            await proxy.consume(`p${proxyOf(i)}`);
          } catch (r) {
            if (r instanceof Error) throw r;
            await session.reward(`s${i}`, 1);
            continue;
          }
          try {
            await global.consume('all');
          } catch (r) {
            if (r instanceof Error) throw r;
            await Promise.all([session.reward(`s${i}`, 1), proxy.reward(`p${proxyOf(i)}`, 1)]);
            await sleep(r.msBeforeNext);
            continue;
          }
          sent++;
          await send(i);
        }
      }),
    );
    redis.disconnect();
  } else if (peer === 'bottleneck') {
    const { sessions, connection } = bn;
    // One job queued per session, queued again when it is done: every session always has work.
    const start = Math.floor(Math.random() * SESSIONS);
    const stopped = new Promise((resolve) => setTimeout(resolve, untilMs - Date.now()));
    const queue = (i) => {
      if (!live()) return;
      sessions
        .key(`s${i}`)
        .schedule({ expiration: 30_000 }, async () => {
          if (!live()) return;
          sent++;
          await send(i);
        })
        .then(
          () => queue(i),
          (e) => {
            if (process.env.PEERS_DEBUG) console.error('bottleneck job failed:', e);
          },
        );
    };
    for (let k = 0; k < SESSIONS; k++) queue((start + k) % SESSIONS);
    await stopped;
    await sleep(200);
    await connection.disconnect(false).catch(() => undefined);
  } else if (peer === 'crawlee') {
    sent = await crawl(untilMs);
  }
  const cpu = process.cpuUsage(cpu0);
  process.stdout.write(
    `${JSON.stringify({ sent, redisCalls, setupMs, cpuMs: (cpu.user + cpu.system) / 1000 })}\n`,
  );
  process.exit(0);
}

/**
 * Bottleneck clustering on ioredis: a Group of session limiters (minTime = the interval), each
 * chained to its proxy's limiter in a Group of proxy limiters, each chained to one global
 * limiter; all created and ready in Redis before it returns.
 */
async function bottleneckSetup(Bottleneck, redisUrl) {
  const connection = new Bottleneck.IORedisConnection({ client: new Redis(redisUrl), Redis });
  connection.on('error', () => {});
  const opts = (id, rate) => ({
    id,
    datastore: 'ioredis',
    connection,
    minTime: Math.round(1000 / rate),
  });
  const global = new Bottleneck(opts('bn_g', GLOBAL.rate));
  const proxies = new Bottleneck.Group(opts('bn_p', PROXY.rate));
  proxies.on('created', (l) => l.chain(global));
  const sessions = new Bottleneck.Group(opts('bn_s', SESSION.rate));
  sessions.on('created', (l, key) => l.chain(proxies.key(`p${proxyOf(Number(key.slice(1)))}`)));
  for (const l of [global, proxies, sessions]) l.on('error', () => {});
  const all = [global];
  for (let i = 0; i < SESSIONS; i++) all.push(sessions.key(`s${i}`));
  for (let p = 0; p < PROXIES; p++) all.push(proxies.key(`p${p}`));
  await Promise.all(all.map((l) => l.ready()));
  return { sessions, connection };
}

/** What the worker gives createPool for these budgets (BUDGET_MARGIN, LEASE_SPREAD defaults). */
function poolDefaultsFor(poolDefaults) {
  const r = (perSec) => ({ count: Math.round(perSec * 1000), periodMs: 1_000_000 });
  return poolDefaults({
    budgetMargin: 0.03,
    leaseSpreadMs: 300,
    sessionRate: r(SESSION.rate),
    sessionBurst: SESSION.burst,
    proxyRate: r(PROXY.rate),
    proxyBurst: PROXY.burst,
    globalRate: r(GLOBAL.rate),
    globalBurst: GLOBAL.burst,
  });
}

/**
 * One crawlee process: HttpCrawler, SessionPool of the 1,000 sessions, its share per minute.
 * Builds the crawler and fills its queue; returns `run(untilMs)`, resolving the requests handled.
 */
async function crawleeChild(mod, simUrl) {
  const { share, index, names } = JSON.parse(process.env.PEERS_ARGS);
  const { HttpCrawler, Configuration, Session, log } = mod;
  log.setLevel(process.env.PEERS_DEBUG ? log.LEVELS.DEBUG : log.LEVELS.OFF);
  const config = new Configuration({ persistStorage: false, purgeOnStart: true });
  let nextIndex = index * 500; // the two processes start on different halves
  const indexOf = new Map();
  let finished = 0;
  let untilMs = Infinity;
  const crawler = new HttpCrawler(
    {
      maxRequestsPerMinute: share * 60,
      minConcurrency: 10,
      maxConcurrency: 50,
      maxRequestRetries: 1,
      useSessionPool: true,
      persistCookiesPerSession: false,
      sessionPoolOptions: {
        maxPoolSize: SESSIONS,
        createSessionFunction: (pool) => {
          const s = new Session({ sessionPool: pool, maxUsageCount: 1e9, maxErrorScore: 3 });
          indexOf.set(s.id, nextIndex);
          nextIndex = (nextIndex + 1) % SESSIONS;
          return s;
        },
      },
      additionalHttpErrorStatusCodes: [],
      ignoreSslErrors: true,
      preNavigationHooks: [
        ({ session }, gotOptions) => {
          const i = indexOf.get(session.id) ?? 0;
          gotOptions.headers = {
            ...gotOptions.headers,
            'x-ig-app-id': '936619743392459',
            cookie: `sessionid=${sid(i)}`,
          };
          gotOptions.localAddress = egressOf(proxyOf(i));
          gotOptions.useHeaderGenerator = false;
        },
      ],
      requestHandler: async () => {
        finished++;
        if (Date.now() >= untilMs) await crawler.autoscaledPool?.abort();
      },
      failedRequestHandler: async () => {
        if (Date.now() >= untilMs) await crawler.autoscaledPool?.abort();
      },
    },
    config,
  );
  // More than the run can send at its share (the crawler is stopped at the end of the run).
  const { maxMs } = JSON.parse(process.env.PEERS_ARGS);
  const n = Math.ceil((share * 1.5 * maxMs) / 1000) + 100;
  await crawler.addRequests(
    Array.from({ length: n }, (_, k) => ({
      url: `${simUrl}/api/v1/users/web_profile_info/?username=${names[k % names.length]}&k=${index}x${k}`,
    })),
    { waitForAllRequestsToBeAdded: true },
  );
  return async (until) => {
    untilMs = until;
    const stop = setTimeout(() => void crawler.autoscaledPool?.abort(), untilMs - Date.now());
    await crawler.run();
    clearTimeout(stop);
    return finished;
  };
}

if (process.env.PEERS_CHILD !== undefined) {
  await child();
} else {
  await parent();
}

// ---- parent: Redis, simulator, the phases, the numbers ----------------------------------------

async function parent() {
  const { startPrivateRedis } = await import('@storycheck/testkit');
  const { startSim } = await import('@storycheck/upstream-sim');
  const { createPool, poolDefaults } = await import('@storycheck/pool');
  const { benchLine, worstWindow } = await import('../../apps/worker/bench/lib.mjs');
  const quick = process.argv.includes('--quick');
  const WARM_MS = quick ? 2_000 : 15_000;
  const PHASE_MS = quick ? 3_000 : 20_000;
  const CRAWLEE_WARM_MS = quick ? 3_000 : 15_000;
  const CRAWLEE_MS = quick ? 3_000 : 25_000;
  const budget = (b) => ({ rate: `${b.rate * 1000}/1000s`, burst: b.burst });
  const redisServer = await startPrivateRedis();
  const sim = await startSim({
    seed: 15,
    size: 100,
    latencyMs: 20,
    requireSession: true,
    requestLogLimit: 1_000_000,
    sessions: Array.from({ length: SESSIONS }, (_, i) => ({ sessionid: sid(i), label: `s${i}` })),
    budgets: { session: budget(SESSION), ip: budget(PROXY), penaltyMs: 0 },
  });
  const admin = new Redis(redisServer.url);
  const tmp = mkdtempSync(join(tmpdir(), 'scpeers-'));
  /** Redis's own CPU time (user + sys), µs: what the peer's commands cost the server. */
  const redisCpuUs = async () => {
    const info = await admin.info('cpu');
    return ['used_cpu_sys', 'used_cpu_user']
      .map((k) => Number(new RegExp(`${k}:([\\d.]+)`).exec(info)?.[1] ?? 0) * 1e6)
      .reduce((x, y) => x + y, 0);
  };
  /**
   * Starts `n` processes of `peer`, waits until all are ready, then lets them run for `ms`.
   * Resolves { since (epoch ms of the go), per: each process's last JSON line }.
   */
  const runChildren = async (peer, n, ms, extra, onGo = () => undefined) => {
    const children = Array.from({ length: n }, (_, index) => {
      const c = spawn(process.execPath, [SELF], {
        env: {
          ...process.env,
          PEERS_CHILD: String(index),
          PEERS_ARGS: JSON.stringify({
            peer,
            redisUrl: redisServer.url,
            simUrl: sim.url,
            names: sim.world.usernames(),
            index,
            ...extra,
          }),
          CRAWLEE_STORAGE_DIR: join(tmp, `crawlee-${index}`),
        },
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      let out = '';
      let onReady;
      const isReady = new Promise((r) => (onReady = r));
      c.stdout.setEncoding('utf8').on('data', (d) => {
        out += d;
        if (out.startsWith('ready\n')) onReady();
      });
      const done = new Promise((resolve, reject) => {
        c.on('exit', (code) => {
          onReady();
          const last = out.trim().split('\n').at(-1) ?? '';
          if (code === 0 && last.startsWith('{')) resolve(JSON.parse(last));
          else reject(new Error(`${peer} process ${index} exited ${code}: ${out.slice(-500)}`));
        });
      });
      done.catch(() => undefined);
      return { c, isReady, done };
    });
    await Promise.all(children.map((x) => x.isReady));
    const since = Date.now();
    for (const x of children) if (x.c.exitCode === null) x.c.stdin.end(`${since + ms}\n`);
    onGo(since);
    return { since, per: await Promise.all(children.map((x) => x.done)) };
  };
  /**
   * The simulator's view of the requests from `sinceMs` (answered, throttled, worst windows,
   * utilization of what the budgets allow from the first request to the last).
   */
  const verdict = (sinceMs, { steady = false } = {}) => {
    const log = sim.requestLog().filter((e) => e.timeMs >= sinceMs && e.status !== 0);
    if (log.length === 0)
      return { requests: 0, answered: 0, throttled: 0, windowSecs: 0, utilization: 0, over: 0 };
    const thr = log.filter((e) => e.status === 429 || e.outcome.startsWith('throttled'));
    const first = Math.min(...log.map((e) => e.timeMs));
    const last = Math.max(...log.map((e) => e.timeMs));
    const windowSecs = (last - first) / 1000;
    const ws = worstWindow(log, (e) => e.session, SESSION.rate, SESSION.burst);
    const wp = worstWindow(log, (e) => e.client, PROXY.rate, PROXY.burst);
    // What the budgets allow over the window: the binding one of sessions and proxies; after a
    // warm-up (`steady`) the bursts were spent long ago, so the rates alone.
    const ceiling = steady
      ? CEILING * windowSecs
      : Math.min(
          SESSIONS * (SESSION.burst + SESSION.rate * windowSecs),
          PROXIES * (PROXY.burst + PROXY.rate * windowSecs),
        );
    return {
      requests: log.length,
      answered: log.length - thr.length,
      throttled: thr.length,
      windowSecs,
      utilization: (log.length - thr.length) / ceiling,
      over: Math.max(ws.over, wp.over),
    };
  };
  try {
    console.log(
      `peers: ${SESSIONS} sessions on ${PROXIES} egress addresses; budgets session ${SESSION.rate}/s burst ${SESSION.burst}, proxy ${PROXY.rate}/s burst ${PROXY.burst}, global ${GLOBAL.rate}/s burst ${GLOBAL.burst}; ceiling ${CEILING}/s${quick ? ' (quick)' : ''}`,
    );
    for (const peer of (process.env.PEERS_ONLY ?? 'pool,rlf,bottleneck')
      .split(',')
      .filter(Boolean)) {
      await admin.flushall();
      sim.resetBudgets();
      if (peer === 'pool') {
        const pool = createPool({
          redis: admin,
          prefix: 'peers',
          defaults: poolDefaultsFor(poolDefaults),
        });
        for (let p = 0; p < PROXIES; p++) await pool.upsertProxy({ id: `p${p}`, label: `p${p}` });
        for (let i = 0; i < SESSIONS; i++)
          await pool.upsertSession({ id: `s${i}`, label: `s${i}`, proxyId: `p${proxyOf(i)}` });
      }
      // Measured after a warm-up: Bottleneck takes seconds to set up its 1,200 limiters per
      // process on a loaded machine; the time to the first answer is printed apart.
      let cpu0;
      const { since, per } = await runChildren(
        peer,
        4,
        WARM_MS + PHASE_MS,
        { loops: 16, warmMs: WARM_MS, runMs: WARM_MS + PHASE_MS },
        (go) => (cpu0 = sleep(go + WARM_MS - Date.now()).then(redisCpuUs)),
      );
      const cpu1 = await redisCpuUs();
      cpu0 = await cpu0;
      const whole = verdict(since);
      const v = verdict(since + WARM_MS, { steady: true });
      const firstMs = firstRequestMs(sim, since);
      const calls = per.reduce((a, p) => a + p.redisCalls, 0);
      const row = {
        peer,
        admittedPerSec: v.windowSecs > 0 ? v.answered / v.windowSecs : 0,
        usecPerAdmitted: (cpu1 - cpu0) / Math.max(1, v.answered),
        callsPerAdmitted: calls / Math.max(1, v.answered),
        clientCpuMsPerAdmitted: per.reduce((a, p) => a + p.cpuMs, 0) / Math.max(1, v.answered),
        setupSecs: Math.max(...per.map((p) => p.setupMs)) / 1000,
      };
      console.log(
        `${peer.padEnd(10)} 4 processes × 16 loops, set up in ${row.setupSecs.toFixed(1)} s, ${firstMs < Infinity ? `first request ${(firstMs / 1000).toFixed(1)} s after the go` : 'NO REQUEST in the whole run'}; measured ${(PHASE_MS / 1000).toFixed(0)} s after a ${(WARM_MS / 1000).toFixed(0)} s warm-up: ` +
          `${v.requests} requests at the simulator in ${v.windowSecs.toFixed(1)} s, admitted ${row.admittedPerSec.toFixed(1)}/s of ${CEILING}/s (utilization ${v.utilization.toFixed(3)}); ` +
          (v.answered > 0
            ? `Redis ${row.usecPerAdmitted.toFixed(0)} µs (server CPU) and ${row.callsPerAdmitted.toFixed(2)} calls per admitted request, client CPU ${row.clientCpuMsPerAdmitted.toFixed(2)} ms; `
            : `nothing admitted: Redis ${(row.usecPerAdmitted / 1000).toFixed(0)} ms of CPU and ${calls} calls, client CPU ${(row.clientCpuMsPerAdmitted / 1000).toFixed(1)} s, all the same; `) +
          `whole run (warm-up too): ${whole.requests} requests, over budget (throttled by the simulator) ${whole.throttled}, worst window over budget ${whole.over}`,
      );
      const name = { pool: 'pool', rlf: 'rate-limiter-flexible', bottleneck: 'bottleneck' }[peer];
      benchLine(`peers ${name} admitted requests/s`, row.admittedPerSec, 'requests/s');
      benchLine(`peers ${name} utilization`, v.utilization, 'ratio');
      // Per admitted request only when some were (none: the costs have no denominator).
      if (v.answered > 0) {
        benchLine(`peers ${name} Redis µs per admitted`, row.usecPerAdmitted, 'µs');
        benchLine(`peers ${name} Redis calls per admitted`, row.callsPerAdmitted, 'calls');
        benchLine(`peers ${name} client CPU per admitted`, row.clientCpuMsPerAdmitted, 'ms');
      }
      benchLine(
        `peers ${name} over budget (simulator)`,
        whole.throttled,
        'requests',
        peer === 'pool' ? '== 0' : undefined,
      );
      benchLine(`peers ${name} worst window over budget`, whole.over, 'requests');
      if (firstMs < Infinity) benchLine(`peers ${name} first request after`, firstMs / 1000, 's');
    }

    {
      sim.resetBudgets();
      const share = CEILING / 2;
      let crawleeError;
      const ms = CRAWLEE_WARM_MS + CRAWLEE_MS;
      const args = { share, maxMs: ms, warmMs: CRAWLEE_WARM_MS, runMs: ms };
      const { since, per } = await runChildren('crawlee', 2, ms, args).catch((e) => {
        crawleeError = e;
        return { since: 0, per: [] };
      });
      if (crawleeError) {
        console.log(`crawlee    could not run here: ${crawleeError.message.split('\n')[0]}`);
      } else {
        const whole = verdict(since);
        const v = verdict(since + CRAWLEE_WARM_MS, { steady: true });
        const firstMs = firstRequestMs(sim, since);
        console.log(
          `crawlee    2 processes, HttpCrawler + SessionPool, maxRequestsPerMinute ${share * 60} each, set up in ${(Math.max(...per.map((p) => p.setupMs)) / 1000).toFixed(1)} s, ${firstMs < Infinity ? `first request ${(firstMs / 1000).toFixed(1)} s after the go` : 'NO REQUEST in the whole run'}; ` +
            `measured ${(CRAWLEE_MS / 1000).toFixed(0)} s after a ${(CRAWLEE_WARM_MS / 1000).toFixed(0)} s warm-up: ${v.requests} requests at the simulator in ${v.windowSecs.toFixed(1)} s, ` +
            `answered ${(v.windowSecs > 0 ? v.answered / v.windowSecs : 0).toFixed(1)}/s of ${CEILING}/s (utilization ${v.utilization.toFixed(3)}), throttled ${v.throttled} (${((1000 * v.throttled) / Math.max(1, v.requests)).toFixed(0)} per 1,000); ` +
            `client CPU ${(per.reduce((a, p) => a + p.cpuMs, 0) / Math.max(1, v.answered)).toFixed(2)} ms per answered request; whole run: ${whole.requests} requests (handled ${per.reduce((a, p) => a + p.sent, 0)}), throttled ${whole.throttled}, worst window over budget ${whole.over}`,
        );
        benchLine('peers crawlee throttled answers', whole.throttled, 'count');
        benchLine(
          'peers crawlee throttled per 1,000',
          (1000 * v.throttled) / Math.max(1, v.requests),
          'per 1,000',
        );
        benchLine('peers crawlee utilization', v.utilization, 'ratio');
        if (firstMs < Infinity) benchLine('peers crawlee first request after', firstMs / 1000, 's');
      }
    }
  } finally {
    admin.disconnect();
    await sim.close();
    await redisServer.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}
