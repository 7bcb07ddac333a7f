/**
 * Loopback forward proxies for tests and demos: plain HTTP forwarding (absolute-form requests)
 * and CONNECT tunnels, optional basic auth, and — what makes them useful — each proxy opens its
 * outgoing connections from its own loopback address (127.0.0.2, 127.0.0.3, …), so the upstream
 * sees one distinct client IP per proxy, like real egress IPs. Linux routes all of 127/8 to `lo`,
 * so no interface setup is needed. Because egress is a loopback address, a proxy can only reach
 * loopback targets.
 *
 * A proxy can be broken on purpose, at start or at runtime: `407` (rejects every request, right
 * credentials or not), `refuse` (stops listening: connection refused), `silent` (accepts and never
 * answers), `reset` (accepts and resets the connection).
 */
import { Agent, createServer as createHttpServer, request as httpRequest } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { connect, createServer as createNetServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/** How a proxy is broken; null (or `none` on the admin route) means healthy. */
export type ProxyBrokenMode = '407' | 'refuse' | 'silent' | 'reset';

/** All broken modes, for validation. */
export const PROXY_BROKEN_MODES: readonly ProxyBrokenMode[] = ['407', 'refuse', 'silent', 'reset'];

/** Options for {@link startProxies}. */
export interface ProxyPoolOptions {
  /** Number of proxies, 1…1000. */
  count: number;
  /** Require `Proxy-Authorization: Basic` with these credentials. Default: no auth. */
  auth?: { user: string; pass: string };
  /** Initial broken modes keyed by label (`p1`, `p2`, …). Default: all healthy. */
  broken?: Record<string, ProxyBrokenMode>;
  /** Interface the proxies listen on. Default 127.0.0.1. */
  host?: string;
  /** Egress address of the first proxy; the next ones count up from it. Default 127.0.0.2. */
  firstEgress?: string;
}

/** One running proxy, as a client configures it. */
export interface ProxyInfo {
  /** `p1`, `p2`, … */
  label: string;
  /** `http://127.0.0.1:PORT` — without credentials. */
  url: string;
  port: number;
  /** The loopback address its outgoing connections come from: what the upstream sees. */
  egress: string;
}

/** Counters of one proxy since start. */
export interface ProxyStats {
  /** Plain HTTP requests forwarded. */
  requests: number;
  /** CONNECT tunnels opened. */
  tunnels: number;
  /** Requests answered 407 (missing/wrong credentials, or broken `407`). */
  rejected407: number;
  /** Connections or requests dropped by a broken mode (silent/reset/refuse). */
  dropped: number;
  /** Current broken mode, or null. */
  broken: ProxyBrokenMode | null;
}

/** A set of running proxies. */
export interface ProxyPool {
  /** In label order. */
  proxies: ProxyInfo[];
  /** Breaks (mode) or heals (null) a proxy; resolves once it took effect (re-listening included). */
  setBroken(label: string, mode: ProxyBrokenMode | null): Promise<void>;
  /** Counters and current mode per label. */
  stats(): Record<string, ProxyStats>;
  /** Closes every listener, client connection and upstream connection. Idempotent. */
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set([
  'connection',
  'proxy-connection',
  'keep-alive',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Errors meaning "could not reach the upstream at all": answered 502 rather than mirrored. */
const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

const REALM = 'Basic realm="storycheck-sim"';

function ipv4ToInt(addr: string): number {
  const parts = addr.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new RangeError(`not an IPv4 address: ${addr}`);
  }
  return (
    (((parts[0] ?? 0) << 24) |
      ((parts[1] ?? 0) << 16) |
      ((parts[2] ?? 0) << 8) |
      (parts[3] ?? 0)) >>>
    0
  );
}

function intToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/**
 * The egress addresses of `count` proxies: `firstEgress` and the addresses after it, all inside
 * 127.0.0.0/8. Throws when they would leave it.
 */
export function egressAddresses(count: number, firstEgress = '127.0.0.2'): string[] {
  const first = ipv4ToInt(firstEgress);
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const addr = intToIpv4((first + i) >>> 0);
    if (!addr.startsWith('127.') || addr.endsWith('.255.255.255')) {
      throw new RangeError(`proxy egress ${addr} is outside 127.0.0.0/8`);
    }
    out.push(addr);
  }
  return out;
}

function filterHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const connectionTokens = new Set(
    String(headers.connection ?? '')
      .split(',')
      .map((t) => t.trim().toLowerCase())
      .filter((t) => t !== ''),
  );
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || connectionTokens.has(name)) continue;
    out[name] = value;
  }
  return out;
}

function parseConnectTarget(target: string): { host: string; port: number } | null {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(target);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (!host || !Number.isInteger(port) || port < 1 || port > 65_535) return null;
  return { host, port };
}

interface RunningProxy {
  info: ProxyInfo;
  stats: ProxyStats;
  front: ReturnType<typeof createNetServer>;
  sockets: Set<Socket>;
  agent: Agent;
  listening: boolean;
}

/** What one proxy's request and tunnel handlers use. */
interface ProxyParts {
  label: string;
  egressAddr: string;
  stats: ProxyStats;
  sockets: Set<Socket>;
  agent: Agent;
  /** The `Proxy-Authorization` value required, or null without auth. */
  expectedAuth: string | null;
}

/** What the proxies of one pool share. */
interface PoolState {
  closed: boolean;
}

function authorised(p: ProxyParts, headers: IncomingHttpHeaders): boolean {
  return p.expectedAuth === null || headers['proxy-authorization'] === p.expectedAuth;
}

function track(p: ProxyParts, socket: Socket): void {
  const sockets = p.sockets;
  if (sockets.has(socket)) return; // keep-alive upstream sockets come back for every request
  sockets.add(socket);
  socket.once('close', () => sockets.delete(socket));
  // Errors on client or upstream sockets (resets) are expected here; never crash on them.
  socket.on('error', () => {});
}

/** Plain HTTP forwarding of an absolute-form request. */
function onRequest(p: ProxyParts, req: IncomingMessage, res: ServerResponse): void {
  const { stats, label, egressAddr, agent } = p;
  const mode = stats.broken;
  if (mode === 'silent') {
    stats.dropped++;
    return; // never answered; close() destroys the socket
  }
  if (mode === 'reset') {
    stats.dropped++;
    req.socket.resetAndDestroy();
    return;
  }
  if (mode === '407' || !authorised(p, req.headers)) {
    stats.rejected407++;
    req.resume();
    res.writeHead(407, {
      'proxy-authenticate': REALM,
      'content-type': 'text/plain; charset=utf-8',
      'content-length': 29,
    });
    res.end('Proxy Authentication Required');
    return;
  }
  let target: URL;
  try {
    target = new URL(req.url ?? '');
  } catch {
    target = new URL('invalid:');
  }
  if (target.protocol !== 'http:') {
    req.resume();
    const body = 'this proxy forwards absolute http:// URLs; use CONNECT for anything else';
    res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(body);
    return;
  }
  stats.requests++;
  const upstream = httpRequest({
    host: target.hostname.replace(/^\[|\]$/g, ''),
    port: target.port === '' ? 80 : Number(target.port),
    method: req.method,
    path: `${target.pathname}${target.search}`,
    headers: filterHeaders(req.headers),
    localAddress: egressAddr,
    family: 4,
    agent,
  });
  upstream.on('socket', (s) => track(p, s));
  upstream.on('response', (up) => {
    const headers = filterHeaders(up.headers);
    res.writeHead(up.statusCode ?? 502, up.statusMessage, headers);
    up.pipe(res);
    up.on('error', () => res.destroy());
  });
  upstream.on('error', (err: NodeJS.ErrnoException) => {
    if (!res.headersSent && UNREACHABLE.has(err.code ?? '')) {
      res.writeHead(502, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`proxy ${label}: upstream unreachable (${err.code})`);
      return;
    }
    // The upstream reset or dropped the connection: mirror that to the client.
    req.socket.destroy();
  });
  // The client went away before the answer was complete: drop the upstream request too.
  res.on('close', () => {
    if (!res.writableFinished) upstream.destroy();
  });
  req.pipe(upstream);
}

/** CONNECT tunnels. */
function onConnect(p: ProxyParts, req: IncomingMessage, clientSocket: Duplex, head: Buffer): void {
  const { stats, egressAddr } = p;
  const client = clientSocket as Socket;
  const mode = stats.broken;
  if (mode === 'silent') {
    stats.dropped++;
    return;
  }
  if (mode === 'reset') {
    stats.dropped++;
    client.resetAndDestroy();
    return;
  }
  if (mode === '407' || !authorised(p, req.headers)) {
    stats.rejected407++;
    client.end(
      `HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: ${REALM}\r\n` +
        'Content-Length: 0\r\nConnection: close\r\n\r\n',
    );
    return;
  }
  const target = parseConnectTarget(req.url ?? '');
  if (!target) {
    client.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    return;
  }
  stats.tunnels++;
  const upstream = connect({ ...target, localAddress: egressAddr, family: 4 });
  track(p, upstream);
  let established = false;
  upstream.once('connect', () => {
    established = true;
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length > 0) upstream.write(head);
    upstream.pipe(client);
    client.pipe(upstream);
  });
  upstream.on('error', (err: NodeJS.ErrnoException) => {
    if (!established) {
      client.end(
        `HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n` +
          `X-Proxy-Error: ${err.code ?? 'error'}\r\n\r\n`,
      );
    } else {
      client.destroy();
    }
  });
  upstream.on('close', () => client.destroy());
  client.on('close', () => upstream.destroy());
}

/** One proxy, not yet listening: its HTTP handling behind a net server that acts on broken modes. */
function makeProxy(
  label: string,
  egressAddr: string,
  opts: ProxyPoolOptions,
  expectedAuth: string | null,
  pool: PoolState,
): RunningProxy {
  const p: ProxyParts = {
    label,
    egressAddr,
    stats: {
      requests: 0,
      tunnels: 0,
      rejected407: 0,
      dropped: 0,
      broken: opts.broken?.[label] ?? null,
    },
    sockets: new Set<Socket>(),
    agent: new Agent({ keepAlive: true }),
    expectedAuth,
  };
  const { stats } = p;

  const http = createHttpServer({ keepAlive: true }, (req, res) => onRequest(p, req, res));
  http.on('connect', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
    onConnect(p, req, socket, head),
  );
  http.on('clientError', (_err, socket) => socket.destroy());

  // The listener is a plain net server so broken modes can act before any HTTP parsing.
  const front = createNetServer((socket) => {
    track(p, socket);
    if (pool.closed) {
      socket.destroy();
      return;
    }
    if (stats.broken === 'silent') {
      stats.dropped++;
      socket.pause();
      return;
    }
    if (stats.broken === 'reset') {
      stats.dropped++;
      socket.resetAndDestroy();
      return;
    }
    http.emit('connection', socket);
  });

  return {
    info: { label, url: '', port: 0, egress: egressAddr },
    stats,
    front,
    sockets: p.sockets,
    agent: p.agent,
    listening: false,
  };
}

function listen(proxy: RunningProxy, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    proxy.front.once('error', reject);
    proxy.front.listen(port, host, () => {
      proxy.front.off('error', reject);
      proxy.listening = true;
      resolve();
    });
  });
}

function stopListening(proxy: RunningProxy): Promise<void> {
  return new Promise<void>((resolve) => {
    if (!proxy.listening) {
      resolve();
      return;
    }
    proxy.listening = false;
    proxy.front.close(() => resolve());
    for (const socket of proxy.sockets) socket.destroy();
  });
}

/** Checks the options of {@link startProxies}; throws RangeError. */
function checkPoolOptions(opts: ProxyPoolOptions): void {
  if (!Number.isInteger(opts.count) || opts.count < 1 || opts.count > 1000) {
    throw new RangeError(`proxy count must be an integer in 1..1000, got ${opts.count}`);
  }
}

/** Checks the initial broken modes of {@link startProxies}; throws RangeError. */
function checkBroken(opts: ProxyPoolOptions): void {
  for (const [label, mode] of Object.entries(opts.broken ?? {})) {
    const index = Number(label.replace(/^p/, ''));
    if (!/^p\d+$/.test(label) || index < 1 || index > opts.count) {
      throw new RangeError(`broken: no proxy "${label}" (p1..p${opts.count})`);
    }
    if (!PROXY_BROKEN_MODES.includes(mode)) throw new RangeError(`broken: bad mode "${mode}"`);
  }
}

/** Breaks (mode) or heals (null) one proxy; see ProxyPool.setBroken. */
async function setBroken(
  proxy: RunningProxy,
  mode: ProxyBrokenMode | null,
  host: string,
): Promise<void> {
  const was = proxy.stats.broken;
  proxy.stats.broken = mode;
  if (mode === 'refuse' && was !== 'refuse') {
    await stopListening(proxy);
  } else if (mode !== 'refuse' && was === 'refuse') {
    await listen(proxy, proxy.info.port, host);
  }
  if (mode === 'silent' || mode === 'reset') {
    // Existing keep-alive connections die too, like a proxy that just went bad.
    for (const socket of proxy.sockets) socket.destroy();
  }
}

/**
 * Starts `count` forward proxies on `host` (default 127.0.0.1), port chosen by the OS, labelled
 * p1…pN, egress 127.0.0.2… (see {@link egressAddresses}). Resolves once all listen.
 */
export async function startProxies(opts: ProxyPoolOptions): Promise<ProxyPool> {
  checkPoolOptions(opts);
  const host = opts.host ?? '127.0.0.1';
  const egress = egressAddresses(opts.count, opts.firstEgress);
  const expectedAuth = opts.auth
    ? `Basic ${Buffer.from(`${opts.auth.user}:${opts.auth.pass}`).toString('base64')}`
    : null;
  checkBroken(opts);

  const running: RunningProxy[] = [];
  const state: PoolState = { closed: false };

  const close = async (): Promise<void> => {
    if (state.closed) return;
    state.closed = true;
    await Promise.all(
      running.map(async (proxy) => {
        proxy.agent.destroy();
        await stopListening(proxy);
        for (const socket of proxy.sockets) socket.destroy();
      }),
    );
  };

  try {
    for (let i = 0; i < opts.count; i++) {
      const proxy = makeProxy(`p${i + 1}`, egress[i] ?? '', opts, expectedAuth, state);
      running.push(proxy);
      await listen(proxy, 0, host);
      const port = (proxy.front.address() as AddressInfo).port;
      proxy.info.port = port;
      proxy.info.url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
      if (proxy.stats.broken === 'refuse') await stopListening(proxy);
    }
  } catch (err) {
    await close();
    throw err;
  }

  const byLabel = new Map(running.map((p) => [p.info.label, p]));

  return {
    proxies: running.map((p) => ({ ...p.info })),
    setBroken: async (label, mode) => {
      const proxy = byLabel.get(label);
      if (!proxy) throw new RangeError(`no proxy "${label}"`);
      if (mode !== null && !PROXY_BROKEN_MODES.includes(mode)) {
        throw new RangeError(`bad broken mode "${String(mode)}"`);
      }
      if (state.closed) return;
      await setBroken(proxy, mode, host);
    },
    stats: () => {
      const out: Record<string, ProxyStats> = {};
      for (const p of running) out[p.info.label] = { ...p.stats };
      return out;
    },
    close,
  };
}
