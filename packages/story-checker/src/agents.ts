import http from 'node:http';
import https from 'node:https';
import { HttpProxyAgent, HttpsProxyAgent } from 'hpagent';
import http2wrapper from 'http2-wrapper';
import type { LookupFunction } from './proxy-address.js';

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

  /** Closes every socket of every agent. */
  destroy(): void {
    for (const s of this.sets.values()) {
      s.http.destroy();
      s.https.destroy();
      s.http2.destroy();
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
    http: new HttpProxyAgent(common),
    https: new HttpsProxyAgent(common),
    http2: new (new URL(proxyUrl).protocol === 'https:'
      ? http2wrapper.proxies.Http2OverHttps
      : http2wrapper.proxies.Http2OverHttp)({
      proxyOptions: { url: proxyUrl, ...viaLookup },
      maxEmptySessions: 2,
    }),
  };
}
