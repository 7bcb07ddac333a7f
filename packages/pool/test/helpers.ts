import { spawn, type ChildProcess } from 'node:child_process';
import { connect, createServer } from 'node:net';
import type { Redis } from 'ioredis';
import { sleep } from '@storycheck/testkit';

/** One admission from the hammer's log: session, proxy ("" = none), Redis time µs. */
export type Admission = [session: string, proxy: string, atUs: number];

/** One throttle report: session, proxy, Redis µs of the report, cooldown ends (-1 = none). */
export type ThrottleRecord = [
  session: string,
  proxy: string,
  nowUs: number,
  sessionUntilUs: number,
  proxyUntilUs: number,
];

/**
 * Checks the budget invariant on one key's admission times (any order): for every window
 * anchored at two admissions t_i <= t_j, the admissions in it (j - i + 1) must not exceed
 * burst + floor((t_j - t_i) / interval). Returns the first violation, or null.
 */
export function firstViolation(
  timesUs: readonly number[],
  intervalUs: number,
  burst: number,
): { from: number; to: number; admitted: number; allowed: number } | null {
  const t = [...timesUs].sort((a, b) => a - b);
  for (let i = 0; i < t.length; i++) {
    for (let j = i; j < t.length; j++) {
      const allowed = burst + Math.floor((t[j]! - t[i]!) / intervalUs);
      if (j - i + 1 > allowed) return { from: t[i]!, to: t[j]!, admitted: j - i + 1, allowed };
    }
  }
  return null;
}

/** Admissions a key could have had between its first and last one: burst + floor(span / T). */
export function capacity(timesUs: readonly number[], intervalUs: number, burst: number): number {
  if (timesUs.length === 0) return 0;
  const span = Math.max(...timesUs) - Math.min(...timesUs);
  return burst + Math.floor(span / intervalUs);
}

/** Jain's fairness index of shares: 1 = perfectly equal, 1/n = one takes everything. */
export function jain(xs: readonly number[]): number {
  const sum = xs.reduce((a, b) => a + b, 0);
  const sq = xs.reduce((a, b) => a + b * b, 0);
  return sq === 0 ? 1 : (sum * sum) / (xs.length * sq);
}

/** Groups admission times by a key function. */
export function groupTimes(log: readonly Admission[], key: (a: Admission) => string) {
  const out = new Map<string, number[]>();
  for (const a of log) {
    const k = key(a);
    if (k === '') continue;
    const list = out.get(k) ?? [];
    list.push(a[2]);
    out.set(k, list);
  }
  return out;
}

/** Every key under a prefix with its DUMP (hex) and whether it has a TTL: the pool's state. */
export async function dumpKeys(redis: Redis, prefix: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    for (const k of keys) {
      const d = await redis.dumpBuffer(k);
      const ttl = await redis.pttl(k);
      out[k] = `${d?.toString('hex') ?? 'none'} ttl=${ttl >= 0 ? 'yes' : String(ttl)}`;
    }
  } while (cursor !== '0');
  return out;
}

/** A redis-server of our own, for what must not touch the shared one (SCRIPT FLUSH, restart). */
export interface PrivateRedis {
  url: string;
  port: number;
  /** Stops it (SIGKILL) and starts it again on the same port, empty. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

/** One raw PING over TCP (no client library: nothing left behind when it fails). */
function pingOnce(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(500, () => done(false));
    sock.on('error', () => done(false));
    sock.on('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

/** Starts `redis-server` on a free loopback port, no persistence. Stop it in afterAll. */
export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    );
    for (let i = 0; i < 100; i++) {
      if (await pingOnce(port)) return;
      await sleep(50);
    }
    throw new Error(`redis-server on port ${port} did not start`);
  };
  const stop = async () => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async restart() {
      await stop();
      await start();
    },
    stop,
  };
}
