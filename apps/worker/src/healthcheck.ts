#!/usr/bin/env node
/**
 * The worker container's healthcheck (`node apps/worker/dist/healthcheck.js`, no arguments):
 * exit 0 when healthy, 1 otherwise. An exec-form check whose arguments hold no space, because
 * some engines (podman's Docker API) split healthcheck arguments on spaces.
 *
 * - With WORKER_HTTP_PORT set (docker-compose.yml sets it): `GET /healthz` on the worker's own
 *   health server answers 200 (the event loop keeps up).
 * - Without it (the image run by hand): the worker's Redis (REDIS_URL) answers PING.
 *
 * Reads the environment only, never the command line, and prints no URL: REDIS_URL carries the
 * Redis password. Dependency-free so that it starts in a few tens of milliseconds.
 */
import net from 'node:net';
import tls from 'node:tls';

/** Why a request failed, without its message: fetch's cause code (ECONNREFUSED…) or the name. */
function reason(e: unknown): string {
  const code = (e as { cause?: { code?: unknown } }).cause?.code;
  return typeof code === 'string' ? code : ((e as Error).name ?? 'error');
}

/** How long either check may take before it counts as failed (ms). */
const TIMEOUT_MS = 4_000;

/** Resolves true when `GET http://host:port/healthz` answers 200 within {@link TIMEOUT_MS}. */
async function httpHealthy(host: string, port: string): Promise<boolean> {
  // The server may listen on every address; the check runs inside the container, so loopback.
  const target = host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '::' ? '::1' : host;
  const url = new URL('http://localhost/healthz');
  url.hostname = target.includes(':') ? `[${target}]` : target;
  url.port = port;
  const res = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
  return res.status === 200;
}

/** Resolves true when the Redis of `redisUrl` answers PING (after AUTH when it has a password). */
function redisHealthy(redisUrl: string): Promise<boolean> {
  const u = new URL(redisUrl);
  const port = Number(u.port) || 6379;
  return new Promise((resolve) => {
    const s =
      u.protocol === 'rediss:'
        ? tls.connect({ host: u.hostname, port, servername: u.hostname })
        : net.connect(port, u.hostname);
    let buf = '';
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(TIMEOUT_MS, () => done(false));
    s.on('error', () => done(false));
    s.on('data', (d: Buffer) => {
      buf += d.toString();
      if (/^-/m.test(buf)) done(false);
      else if (buf.includes('+PONG')) done(true);
    });
    const auth = u.password
      ? `AUTH ${u.username ? `${decodeURIComponent(u.username)} ` : ''}${decodeURIComponent(u.password)}\r\n`
      : '';
    s.write(`${auth}PING\r\n`);
  });
}

const env = process.env;
const port = env.WORKER_HTTP_PORT?.trim();
const check = port
  ? httpHealthy(env.WORKER_HTTP_HOST?.trim() || '127.0.0.1', port)
  : redisHealthy(env.REDIS_URL || 'redis://127.0.0.1:6379');
check.then(
  (ok) => {
    process.stdout.write(ok ? 'healthy\n' : 'unhealthy\n');
    process.exit(ok ? 0 : 1);
  },
  (e: unknown) => {
    // The error's code or name only: a message could quote the URL (and with it the password).
    process.stdout.write(`unhealthy (${reason(e)})\n`);
    process.exit(1);
  },
);
