import http from 'node:http';
import https from 'node:https';
import http2wrapper from 'http2-wrapper';
import type { LookupFunction } from './proxy-address.js';
import { SpareHttpProxyAgent, SpareHttpsProxyAgent, idleSockets } from './warm.js';

/**
 * Connection agents: one keep-alive set per proxy (and one for direct traffic), created on first
 * use and kept, so every session's requests reuse the sockets of its own egress.
 * - http origins: plain forwarding through the proxy (or direct);
 * - https origins, HTTP/1.1: CONNECT tunnels;
 * - https origins, HTTP/2 (default): h2 inside a CONNECT tunnel (http2-wrapper's
 *   Http2OverHttp), or direct h2. HTTP/2 is used without an ALPN probe: a probe would open a
 *   direct connection from our own address, bypassing the proxy.
 */
export interface AgentSet {
  http: http.Agent;
  https: https.Agent;
  http2: http2wrapper.Agent;
  /** Idle connections promised to requests about to start (see {@link AgentPool.claimIdle}). */
  claimed?: number;
}

/** Sockets per agent: enough for a worker's concurrency, bounded so one proxy is not flooded. */
const MAX_SOCKETS = 64;

/** Builds and caches {@link AgentSet}s by proxy URL ('' = direct). */
export class AgentPool {
  private readonly sets = new Map<string, AgentSet>();

  /**
   * @param lookup DNS lookup used for connections to proxies (the address guard,
   *   proxy-address.ts); node's default when undefined.
   */
  constructor(private readonly lookup?: LookupFunction) {}

  /** The agents for `proxyUrl` (with credentials, never logged), or direct when undefined. */
  get(proxyUrl: string | undefined): AgentSet {
    const key = proxyUrl ?? '';
    let set = this.sets.get(key);
    if (!set) {
      set = proxyUrl ? proxied(proxyUrl, this.lookup) : direct();
      this.sets.set(key, set);
    }
    return set;
  }

  /**
   * True when a request to `origin` through `proxyUrl` would find a connection ready (an idle
   * HTTP/1.1 socket or spare tunnel, or an HTTP/2 session), and claims it until the next
   * macrotask, by which time the request has taken it: so two requests started in the same
   * tick do not both count on one idle socket. Direct traffic is always ready (no proxy).
   */
  claimIdle(proxyUrl: string | undefined, origin: URL, http2: boolean): boolean {
    if (!proxyUrl) return true;
    const set = this.get(proxyUrl);
    if (http2)
      return Object.keys((set.http2 as unknown as { sessions: object }).sessions).length > 0;
    const agent = (origin.protocol === 'https:' ? set.https : set.http) as unknown as Parameters<
      typeof idleSockets
    >[0];
    const claimed = set.claimed ?? 0;
    if (idleSockets(agent) - claimed <= 0) return false;
    set.claimed = claimed + 1;
    setImmediate(() => {
      set.claimed = Math.max(0, (set.claimed ?? 1) - 1);
    });
    return true;
  }

  /**
   * Opens one connection to `origin` through `proxyUrl` without sending a request: a spare
   * CONNECT tunnel (HTTP/1.1) or an HTTP/2 session. Rejects when the proxy fails.
   */
  async warm(
    proxyUrl: string | undefined,
    origin: URL,
    http2: boolean,
    /** TLS options as got passes them (they key HTTP/2 sessions), e.g. `ca`. */
    tls: object = {},
    /** Gives up (rejects) when the connection is not up within this long, ms. */
    timeoutMs = 15_000,
  ): Promise<void> {
    if (!proxyUrl) return;
    const set = this.get(proxyUrl);
    if (http2) {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          (
            set.http2 as unknown as {
              getSession(origin: string, options?: object): Promise<unknown>;
            }
          ).getSession(origin.origin, tls),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error('Proxy timeout')), timeoutMs);
          }),
        ]);
      } finally {
        clearTimeout(timer);
      }
      return;
    }
    const port = Number(origin.port) || (origin.protocol === 'https:' ? 443 : 80);
    const agent = origin.protocol === 'https:' ? set.https : set.http;
    await (agent as unknown as SpareHttpProxyAgent).openSpare(origin.hostname, port, timeoutMs);
  }

  /** Closes every socket of every agent. */
  destroy(): void {
    for (const s of this.sets.values()) {
      s.http.destroy();
      s.https.destroy();
      s.http2.destroy();
      for (const a of [s.http, s.https] as unknown as Array<{ spares?: { destroy(): void }[] }>)
        for (const sock of a.spares?.splice(0) ?? []) sock.destroy();
    }
    this.sets.clear();
  }
}

function direct(): AgentSet {
  return {
    http: new http.Agent({ keepAlive: true, maxSockets: MAX_SOCKETS }),
    https: new https.Agent({ keepAlive: true, maxSockets: MAX_SOCKETS }),
    http2: new http2wrapper.Agent({ maxEmptySessions: 2 }),
  };
}

function proxied(proxyUrl: string, lookup: LookupFunction | undefined): AgentSet {
  // The lookup reaches the connection to the proxy: hpagent spreads proxyRequestOptions into
  // its CONNECT request, http2-wrapper spreads proxyOptions into its own.
  const viaLookup = lookup ? { lookup } : {};
  const common = {
    keepAlive: true,
    maxSockets: MAX_SOCKETS,
    proxy: proxyUrl,
    // hpagent's types list only ca/headers/rejectUnauthorized; it passes every option through.
    proxyRequestOptions: viaLookup as { headers?: object },
  };
  return {
    http: new SpareHttpProxyAgent(common),
    https: new SpareHttpsProxyAgent(common),
    http2: new (new URL(proxyUrl).protocol === 'https:'
      ? http2wrapper.proxies.Http2OverHttps
      : http2wrapper.proxies.Http2OverHttp)({
      proxyOptions: { url: proxyUrl, ...viaLookup },
      maxEmptySessions: 2,
    }),
  };
}
