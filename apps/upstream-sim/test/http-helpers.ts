/**
 * Small real-HTTP clients for the simulator tests (node:http, no mocks): direct requests, requests
 * through a forward proxy (absolute-form) and through a CONNECT tunnel. Every request uses its own
 * connection (`agent: false`) so nothing lingers after a test.
 */
import { request as httpRequest } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';

/** The Instagram web app id every real request carries. */
export const APP_ID = '936619743392459';

/** A received answer. */
export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

/** Options of {@link get}. */
export interface GetOptions {
  method?: string;
  /** Send X-IG-App-ID (default true). */
  appId?: boolean;
  /** The sessionid cookie value, if any. */
  session?: string;
  headers?: Record<string, string>;
  /** Reject with Error('timeout') after this long, milliseconds. Default 5000. */
  timeoutMs?: number;
  /** Request body (admin POSTs). */
  body?: string;
}

function headersOf(opts: GetOptions): Record<string, string> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.appId !== false) headers['X-IG-App-ID'] = APP_ID;
  if (opts.session !== undefined) headers.Cookie = `csrftoken=x; sessionid=${opts.session}`;
  return headers;
}

function collect(
  req: ReturnType<typeof httpRequest>,
  timeoutMs: number,
  body: string | undefined,
): Promise<Reply> {
  return new Promise<Reply>((resolve, reject) => {
    const timer = setTimeout(() => {
      req.destroy(new Error('timeout'));
    }, timeoutMs);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          text: Buffer.concat(chunks).toString('utf8'),
        });
      });
      res.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end(body);
  });
}

/** GET (or `method`) `url` directly. */
export function get(url: string, opts: GetOptions = {}): Promise<Reply> {
  const req = httpRequest(url, {
    method: opts.method ?? 'GET',
    headers: headersOf(opts),
    agent: false,
  });
  return collect(req, opts.timeoutMs ?? 5000, opts.body);
}

/** Basic Proxy-Authorization header value for `user:pass`. */
export function proxyAuth(userPass: string): string {
  return `Basic ${Buffer.from(userPass).toString('base64')}`;
}

/** GET `url` through the forward proxy at `proxyUrl` (absolute-form request). */
export function getViaProxy(
  proxyUrl: string,
  url: string,
  opts: GetOptions & { proxyAuthorization?: string } = {},
): Promise<Reply> {
  const proxy = new URL(proxyUrl);
  const target = new URL(url);
  const headers = headersOf(opts);
  headers.Host = target.host;
  if (opts.proxyAuthorization) headers['Proxy-Authorization'] = opts.proxyAuthorization;
  const req = httpRequest({
    host: proxy.hostname,
    port: Number(proxy.port),
    method: opts.method ?? 'GET',
    path: target.href,
    headers,
    agent: false,
  });
  return collect(req, opts.timeoutMs ?? 5000, undefined);
}

/** Opens a CONNECT tunnel to `url`'s host:port; resolves with the status and (on 200) the socket. */
export function connectTunnel(
  proxyUrl: string,
  url: string,
  proxyAuthorization?: string,
  timeoutMs = 5000,
): Promise<{ status: number; headers: IncomingHttpHeaders; socket: Socket }> {
  const proxy = new URL(proxyUrl);
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({
      host: proxy.hostname,
      port: Number(proxy.port),
      method: 'CONNECT',
      path: target.host,
      headers: proxyAuthorization ? { 'Proxy-Authorization': proxyAuthorization } : {},
      agent: false,
    });
    const timer = setTimeout(() => req.destroy(new Error('timeout')), timeoutMs);
    req.on('connect', (res, socket) => {
      clearTimeout(timer);
      resolve({ status: res.statusCode ?? 0, headers: res.headers, socket });
    });
    // A non-200 answer to CONNECT still arrives as 'connect' in node; 'response' is a fallback.
    req.on('response', (res) => {
      clearTimeout(timer);
      res.resume();
      resolve({ status: res.statusCode ?? 0, headers: res.headers, socket: res.socket });
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end();
  });
}

/** GET `url` through a CONNECT tunnel of `proxyUrl`; the tunnel is closed afterwards. */
export async function getViaTunnel(
  proxyUrl: string,
  url: string,
  opts: GetOptions & { proxyAuthorization?: string } = {},
): Promise<Reply> {
  const tunnel = await connectTunnel(proxyUrl, url, opts.proxyAuthorization);
  if (tunnel.status !== 200) {
    tunnel.socket.destroy();
    return { status: tunnel.status, headers: tunnel.headers, text: '' };
  }
  const target = new URL(url);
  const req = httpRequest({
    host: target.hostname,
    port: Number(target.port),
    path: `${target.pathname}${target.search}`,
    headers: { ...headersOf(opts), Connection: 'close' },
    createConnection: () => tunnel.socket,
  });
  try {
    return await collect(req, opts.timeoutMs ?? 5000, undefined);
  } finally {
    tunnel.socket.destroy();
  }
}

/** The error code of a rejected request (ECONNRESET, ECONNREFUSED, …) or its message. */
export async function failureOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  }
  return 'answered';
}
