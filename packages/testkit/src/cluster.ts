import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, redisServerArgs } from './private-redis.js';
import { sleep } from './sleep.js';

/** One redis-server (or sentinel) process of a private setup. */
export interface RedisProcess {
  port: number;
  /** SIGKILL, as in a crash; resolves when it has exited. */
  kill(): Promise<void>;
}

/**
 * A private Redis Cluster or Sentinel setup on free loopback ports (never 6379), in a temporary
 * folder; `url` is the REDIS_URL that selects it (redis+cluster:// or redis+sentinel://).
 */
export interface PrivateRedisSetup {
  url: string;
  /** Every process, by port. */
  processes: Map<number, RedisProcess>;
  /** Port of the current primary (Sentinel) or of the primary serving `key` (Cluster). */
  primaryPort(key?: string): Promise<number>;
  /** Kills everything and removes the folder. Idempotent. */
  stop(): Promise<void>;
}

/** Sends one command over raw RESP and returns the raw reply text (no client library). */
export function rawCommand(port: number, args: string[], timeoutMs = 2_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let buf = '';
    // Declared before `done` uses it; set right after (the timeout needs `done`).
    const timer: { t?: NodeJS.Timeout } = {};
    const done = (err: Error | null) => {
      clearTimeout(timer.t);
      sock.destroy();
      if (err) reject(err);
      else resolve(buf);
    };
    timer.t = setTimeout(() => done(buf ? null : new Error(`no answer on ${port}`)), timeoutMs);
    sock.on('error', (e) => done(e));
    sock.on('connect', () =>
      sock.write(
        `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`,
      ),
    );
    sock.on('data', (d) => {
      buf += d.toString();
      if (complete(buf)) done(null);
    });
  });
}

/** True when `s` holds one whole RESP reply (enough for the replies used here). */
function complete(s: string): boolean {
  const parse = (i: number): number => {
    const eol = s.indexOf('\r\n', i);
    if (eol < 0) return -1;
    const t = s[i];
    const n = Number(s.slice(i + 1, eol));
    if (t === '+' || t === '-' || t === ':') return eol + 2;
    if (t === '$') return n < 0 ? eol + 2 : s.length >= eol + 2 + n + 2 ? eol + 2 + n + 2 : -1;
    if (t === '*') {
      let j = eol + 2;
      for (let k = 0; k < n; k++) {
        j = parse(j);
        if (j < 0) return -1;
      }
      return j;
    }
    return -1;
  };
  return parse(0) === s.length;
}

function startProcess(args: string[]): ChildProcess {
  return spawn('redis-server', args, { stdio: 'ignore' });
}

async function waitPing(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      if ((await rawCommand(port, ['PING'], 500)).startsWith('+PONG')) return;
    } catch {
      // not up yet
    }
    await sleep(50);
  }
  throw new Error(`redis on port ${port} did not start`);
}

function handle(port: number, child: ChildProcess): RedisProcess {
  return {
    port,
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Waits until `check` resolves true, polling every 200 ms, or throws after `ms`. */
async function until(what: string, ms: number, check: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // keep waiting
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/** The port of the cluster primary serving `key`'s slot, asking the nodes on `ports`. */
async function clusterPrimaryPort(ports: number[], key: string): Promise<number> {
  // Ask any node that answers (one of them may be the primary a test just killed).
  let slot = -1;
  for (const p of ports) {
    try {
      slot = Number(/:(\d+)/.exec(await rawCommand(p, ['CLUSTER', 'KEYSLOT', key]))?.[1]);
      break;
    } catch {
      continue;
    }
  }
  for (const p of ports) {
    let nodes: string;
    try {
      nodes = await rawCommand(p, ['CLUSTER', 'NODES']);
    } catch {
      continue;
    }
    for (const line of nodes.split('\n')) {
      const f = line.trim().split(' ');
      if (!f[2]?.includes('master') || f[2].includes('fail')) continue;
      for (const range of f.slice(8)) {
        const [a, b = a] = range.split('-').map(Number);
        if (slot >= a! && slot <= b!) return Number(/:(\d+)@/.exec(f[1]!)?.[1]);
      }
    }
    break;
  }
  throw new Error(`no primary serves slot ${slot}`);
}

/** Writes the config file of the sentinel on `port` monitoring `primary` as `name`. */
function writeSentinelConf(
  dir: string,
  port: number,
  name: string,
  primary: number,
  downAfterMs: number,
): string {
  const conf = join(dir, `sentinel-${port}.conf`);
  writeFileSync(
    conf,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor ${name} 127.0.0.1 ${primary} 2`,
      `sentinel down-after-milliseconds ${name} ${downAfterMs}`,
      `sentinel failover-timeout ${name} 10000`,
      `sentinel parallel-syncs ${name} 1`,
      '',
    ].join('\n'),
  );
  return conf;
}

/**
 * Starts a real Redis Cluster of `primaries` primaries with one replica each (default 3 + 3)
 * on free loopback ports, created with `redis-cli --cluster create`. A small
 * `cluster-node-timeout` (default 2000 ms) makes a replica take over within seconds of its
 * primary being killed. Resolves once every slot is served (`cluster_state:ok`).
 */
export async function startRedisCluster(
  opts: { primaries?: number; nodeTimeoutMs?: number } = {},
): Promise<PrivateRedisSetup> {
  const primaries = opts.primaries ?? 3;
  const dir = mkdtempSync(join(tmpdir(), 'sc-cluster-'));
  const processes = new Map<number, RedisProcess>();
  const ports: number[] = [];
  try {
    for (let i = 0; i < primaries * 2; i++) {
      let port = await freePort();
      while (ports.includes(port) || port === 6379) port = await freePort();
      ports.push(port);
      const child = startProcess([
        ...redisServerArgs(port, dir),
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        join(dir, `nodes-${port}.conf`),
        '--cluster-node-timeout',
        String(opts.nodeTimeoutMs ?? 2_000),
      ]);
      processes.set(port, handle(port, child));
    }
    await Promise.all(ports.map(waitPing));
    const r = spawnSync(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...ports.map((p) => `127.0.0.1:${p}`),
        '--cluster-replicas',
        '1',
        '--cluster-yes',
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    if (r.status !== 0)
      throw new Error(`redis-cli --cluster create failed: ${r.stdout}${r.stderr}`);
    await until('cluster_state:ok on every node', 60_000, async () => {
      for (const p of ports)
        if (!(await rawCommand(p, ['CLUSTER', 'INFO'])).includes('cluster_state:ok')) return false;
      return true;
    });
  } catch (err) {
    await Promise.all([...processes.values()].map((p) => p.kill()));
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    url: `redis+cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`,
    processes,
    primaryPort: (key = '') => clusterPrimaryPort(ports, key),
    async stop() {
      await Promise.all([...processes.values()].map((p) => p.kill()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Starts a real Sentinel setup: one primary, one replica and three sentinels
 * (`redis-server <conf> --sentinel`) monitoring it as `name` (default `scprimary`), with
 * `down-after-milliseconds` small (default 1000) so a killed primary is replaced within
 * seconds. Resolves once every sentinel knows the replica and the other sentinels.
 */
export async function startRedisSentinel(
  opts: { name?: string; downAfterMs?: number } = {},
): Promise<PrivateRedisSetup> {
  const name = opts.name ?? 'scprimary';
  const dir = mkdtempSync(join(tmpdir(), 'sc-sentinel-'));
  const processes = new Map<number, RedisProcess>();
  try {
    const primary = await freePort();
    let replica = await freePort();
    while (replica === primary) replica = await freePort();
    const data = (port: number, extra: string[] = []) =>
      startProcess([...redisServerArgs(port, dir), ...extra]);
    processes.set(primary, handle(primary, data(primary)));
    await waitPing(primary);
    processes.set(
      replica,
      handle(replica, data(replica, ['--replicaof', '127.0.0.1', String(primary)])),
    );
    await waitPing(replica);
    await until('the replica in sync', 30_000, async () =>
      (await rawCommand(replica, ['INFO', 'replication'])).includes('master_link_status:up'),
    );
    const sentinels: number[] = [];
    for (let i = 0; i < 3; i++) {
      let port = await freePort();
      while ([primary, replica, ...sentinels].includes(port)) port = await freePort();
      sentinels.push(port);
      const conf = writeSentinelConf(dir, port, name, primary, opts.downAfterMs ?? 1_000);
      processes.set(port, handle(port, startProcess([conf, '--sentinel'])));
    }
    await Promise.all(sentinels.map(waitPing));
    await until('sentinels that see the replica and each other', 60_000, async () => {
      for (const s of sentinels) {
        const info = await rawCommand(s, ['INFO', 'sentinel']);
        if (!/slaves=1,sentinels=3/.test(info)) return false;
      }
      return true;
    });
    return {
      url: `redis+sentinel://${sentinels.map((p) => `127.0.0.1:${p}`).join(',')}/${name}`,
      processes,
      async primaryPort() {
        for (const s of sentinels) {
          try {
            const r = await rawCommand(s, ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name]);
            const m = /\$\d+\r\n[^\r]+\r\n\$\d+\r\n(\d+)\r\n/.exec(r);
            if (m) return Number(m[1]);
          } catch {
            // ask the next one
          }
        }
        throw new Error('no sentinel names a primary');
      },
      async stop() {
        await Promise.all([...processes.values()].map((p) => p.kill()));
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await Promise.all([...processes.values()].map((p) => p.kill()));
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
