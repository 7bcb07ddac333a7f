import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep } from './sleep.js';

/**
 * A redis-server of the test's own on a free loopback port, for what must never touch the
 * shared 6379: stopping Redis and starting it again. No persistence; its working directory is a
 * temporary folder removed by `stop()`.
 */
export interface PrivateRedis {
  url: string;
  port: number;
  /** Starts it (again) on the same port, empty; resolves once it answers PING. */
  start(): Promise<void>;
  /** Kills it (SIGKILL: connections drop at once, as in a crash) and waits for the exit. */
  kill(): Promise<void>;
  /** Kills it (SIGKILL) and starts it again on the same port, empty. */
  restart(): Promise<void>;
  /** Kills it and removes its folder. Idempotent. */
  stop(): Promise<void>;
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

/** One raw PING over TCP (no client library, so nothing lingers when it fails). */
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

/** Options of {@link startPrivateRedis}. */
export interface PrivateRedisOptions {
  /**
   * More redis-server arguments, e.g. `['--maxmemory', '4mb', '--maxmemory-policy',
   * 'noeviction']` for a Redis that fills up. Settings can also be changed live with CONFIG SET.
   */
  args?: string[];
}

/**
 * The arguments of a throw-away `redis-server` on loopback `port`: files in `dir` (one dump file
 * name per port, so several servers can share it), no persistence.
 */
export function redisServerArgs(port: number, dir: string): string[] {
  return [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--dbfilename',
    `dump-${port}.rdb`,
    '--save',
    '',
    '--appendonly',
    'no',
  ];
}

/** Starts a private `redis-server --port <free> --dir <tmp> --save '' --appendonly no`. */
export async function startPrivateRedis(opts: PrivateRedisOptions = {}): Promise<PrivateRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sc-redis-'));
  let child: ChildProcess | undefined;

  const start = async (): Promise<void> => {
    child = spawn('redis-server', [...redisServerArgs(port, dir), ...(opts.args ?? [])], {
      stdio: 'ignore',
    });
    for (let i = 0; i < 100; i++) {
      if (await pingOnce(port)) return;
      await sleep(50);
    }
    throw new Error(`redis-server on port ${port} did not start`);
  };
  const kill = async (): Promise<void> => {
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
    start,
    kill,
    async restart() {
      await kill();
      await start();
    },
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
