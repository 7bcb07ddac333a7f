import { execFileSync } from 'node:child_process';
import dns from 'node:dns';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { createLogger, registerSecret } from '@storycheck/logger';
import { startProxies, startSim, type ProxyPool, type SimServer } from '@storycheck/upstream-sim';
import {
  ProxyAddressError,
  ProxyError,
  SessionBlockedError,
  SessionDeadError,
  StoryChecker,
  type LookupFunction,
  type ProxyTarget,
} from '../src/index.js';

const PROXY_PASS = 'CANARYproxyPw77';
const COOKIE = 'CANARYsessionCookie4242';

let sim: SimServer;
let pool: ProxyPool;
let logText = '';
const logger = createLogger({
  level: 'debug',
  format: 'json',
  stream: new Writable({
    write(c, _e, cb) {
      logText += c.toString();
      cb();
    },
  }),
});

/** The proxy with credentials in its URL, as the pool hands it to the checker. */
function target(i: number, pass = PROXY_PASS): ProxyTarget {
  const p = pool.proxies[i]!;
  const u = new URL(p.url);
  u.username = 'tester';
  u.password = pass;
  return { label: p.label, url: u.href };
}

beforeAll(async () => {
  registerSecret(PROXY_PASS);
  registerSecret(COOKIE);
  sim = await startSim({ seed: 3, size: 200 });
  pool = await startProxies({ count: 3, auth: { user: 'tester', pass: PROXY_PASS } });
});
afterAll(async () => {
  await pool.close();
  await sim.close();
});

describe('through a real loopback proxy with credentials', () => {
  it('answers right, and the upstream sees the proxy’s egress address', async () => {
    const checker = new StoryChecker({ baseUrl: sim.url, allowPrivateProxies: true, logger });
    try {
      const now = Math.floor(Date.now() / 1000);
      const names = sim.world.usernames().slice(0, 20);
      for (const u of names) {
        const r = await checker.check(u, {
          proxy: target(1),
          session: { sessionid: COOKIE, csrftoken: 'tok12345' },
        });
        expect(r.status).toBe(sim.world.truth(u, now).status);
      }
      const clients = new Set(
        sim
          .requestLog()
          .slice(-40)
          .map((e) => (e.client ?? '').replace(/^::ffff:/, '')),
      );
      expect(clients).toEqual(new Set([pool.proxies[1]!.egress]));
      const st = pool.stats()[pool.proxies[1]!.label]!;
      // hpagent tunnels (CONNECT) even to http origins; keep-alive reuses the tunnels.
      expect(st.requests + st.tunnels).toBeGreaterThan(0);
    } finally {
      checker.close();
    }
  });

  it.each([{ mode: '407' as const }, { mode: 'refuse' as const }, { mode: 'reset' as const }])(
    'a broken proxy ($mode) gives ProxyError, never a session error',
    async ({ mode }) => {
      const checker = new StoryChecker({
        baseUrl: sim.url,
        allowPrivateProxies: true,
        logger,
        requestTimeoutMs: 2_000,
      });
      await pool.setBroken(pool.proxies[2]!.label, mode);
      try {
        const err = await checker
          .check(sim.world.usernames()[0]!, { proxy: target(2) })
          .catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ProxyError);
        expect(err).not.toBeInstanceOf(SessionDeadError);
        expect(err).not.toBeInstanceOf(SessionBlockedError);
        expect(String((err as Error).message)).not.toContain(PROXY_PASS);
      } finally {
        await pool.setBroken(pool.proxies[2]!.label, null);
        checker.close();
      }
    },
  );

  it('wrong proxy credentials are a ProxyError (407)', async () => {
    const checker = new StoryChecker({ baseUrl: sim.url, allowPrivateProxies: true, logger });
    try {
      const err = await checker
        .check(sim.world.usernames()[0]!, { proxy: target(0, 'wrong-pass') })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ProxyError);
    } finally {
      checker.close();
    }
  });
});

describe('connections ready before a lease is used (warmConnection)', () => {
  it('opens a tunnel without sending a request, and the next request goes out on it', async () => {
    const checker = new StoryChecker({ baseUrl: sim.url, logger });
    try {
      const proxy = target(2);
      const tunnels = () => pool.stats()[proxy.label]!.tunnels;
      const before = sim.requestLog().length;
      const t0 = tunnels();
      expect(checker.connectionReady(proxy)).toBe(false);
      await checker.warmConnection(proxy);
      // A tunnel is open; the upstream got no request.
      expect(tunnels()).toBe(t0 + 1);
      expect(sim.requestLog().length).toBe(before);
      // Ready, and claimed: a second request started in the same tick does not count on it.
      expect(checker.connectionReady(proxy)).toBe(true);
      expect(checker.connectionReady(proxy)).toBe(false);
      const name = sim.world.usernames()[0]!;
      const p = await checker.lookupProfile(name, { proxy });
      expect(p.found).toBe(true);
      // The request used the spare tunnel: no new one was opened.
      expect(tunnels()).toBe(t0 + 1);
      expect(sim.requestLog().length).toBe(before + 1);
      // Its keep-alive socket is idle again: ready for the next one.
      await new Promise((r) => setImmediate(r));
      expect(checker.connectionReady(proxy)).toBe(true);
      // Without a proxy there is nothing to set up.
      expect(checker.connectionReady(undefined)).toBe(true);
    } finally {
      checker.close();
    }
  });

  it('a proxy that never answers the CONNECT gives up after the request timeout', async () => {
    const checker = new StoryChecker({ baseUrl: sim.url, logger, requestTimeoutMs: 300 });
    const proxy = target(1);
    await pool.setBroken(proxy.label, 'silent');
    try {
      await expect(checker.warmConnection(proxy)).rejects.toBeInstanceOf(ProxyError);
    } finally {
      await pool.setBroken(proxy.label, null);
      checker.close();
    }
  });

  it('a proxy that refuses the tunnel is a ProxyError', async () => {
    const checker = new StoryChecker({ baseUrl: sim.url, logger });
    try {
      await expect(checker.warmConnection(target(2, 'wrong'))).rejects.toBeInstanceOf(ProxyError);
    } finally {
      checker.close();
    }
  });
});

describe('HTTP/2 for https origins', () => {
  let dir: string;
  let front: http2.Http2SecureServer;
  let frontUrl: string;
  let ca: string;
  const protocols: string[] = [];

  beforeAll(async () => {
    // A TLS front that speaks HTTP/2 only (like the upstream since 2026) and relays to the sim.
    dir = mkdtempSync(join(tmpdir(), 'sc-h2-'));
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    ca = readFileSync(join(dir, 'cert.pem'), 'utf8');
    front = http2.createSecureServer({
      key: readFileSync(join(dir, 'key.pem')),
      cert: ca,
      allowHTTP1: false,
    });
    front.on('stream', (stream, headers) => {
      protocols.push('h2');
      const path = String(headers[':path']);
      const fwd: Record<string, string> = {};
      for (const [k, v] of Object.entries(headers))
        if (!k.startsWith(':') && typeof v === 'string') fwd[k] = v;
      fetch(`${sim.url}${path}`, { headers: fwd, redirect: 'manual' })
        .then(async (r) => {
          const body = await r.text();
          stream.respond({
            ':status': r.status,
            'content-type': r.headers.get('content-type') ?? 'text/plain',
          });
          stream.end(body);
        })
        .catch(() => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
    });
    await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
    frontUrl = `https://127.0.0.1:${(front.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((r) => front.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('is used by default, directly and inside a proxy’s CONNECT tunnel', async () => {
    const checker = new StoryChecker({ baseUrl: frontUrl, ca, logger, allowPrivateProxies: true });
    try {
      const now = Math.floor(Date.now() / 1000);
      const u = sim.world.users.find(
        (x) => !x.isPrivate && sim.world.truth(x.username, now).status === 'active',
      )!;
      const direct = await checker.check(u.username);
      expect(direct.status).toBe('active');
      const tunnelsBefore = pool.stats()[pool.proxies[0]!.label]!.tunnels;
      const viaProxy = await checker.check(u.username, { proxy: target(0) });
      expect(viaProxy.status).toBe('active');
      expect(pool.stats()[pool.proxies[0]!.label]!.tunnels).toBeGreaterThan(tunnelsBefore);
      expect(protocols.length).toBeGreaterThanOrEqual(4);
      // warmConnection opens the HTTP/2 session a request will use (through another proxy).
      const other = target(1);
      expect(checker.connectionReady(other)).toBe(false);
      const t1 = pool.stats()[other.label]!.tunnels;
      await checker.warmConnection(other);
      expect(pool.stats()[other.label]!.tunnels).toBe(t1 + 1);
      expect(checker.connectionReady(other)).toBe(true);
      expect((await checker.check(u.username, { proxy: other })).status).toBe('active');
      expect(pool.stats()[other.label]!.tunnels).toBe(t1 + 1);
    } finally {
      checker.close();
    }
  });

  it('the proxy address guard also holds for HTTP/2 inside a tunnel (connect-time lookup)', async () => {
    const loopback = new URL(pool.proxies[0]!.url).hostname;
    const lookup: LookupFunction = (hostname, options, callback) => {
      if (hostname !== 'proxy.example.net')
        return (dns.lookup as unknown as LookupFunction)(hostname, options, callback);
      if (options.all) callback(null, [{ address: loopback, family: 4 }]);
      else callback(null, loopback, 4);
    };
    const viaName = () => {
      const t = target(0);
      const u = new URL(t.url);
      u.hostname = 'proxy.example.net';
      return { label: t.label, url: u.href };
    };
    const u = sim.world.usernames()[0]!;
    const tunnels = () => pool.stats()[pool.proxies[0]!.label]!.tunnels;
    const guarded = new StoryChecker({ baseUrl: frontUrl, ca, logger, lookup });
    const allowed = new StoryChecker({
      baseUrl: frontUrl,
      ca,
      logger,
      lookup,
      allowPrivateProxies: true,
    });
    try {
      const before = tunnels();
      const err = await guarded.check(u, { proxy: viaName() }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ProxyAddressError);
      expect((err as Error).message).toMatch(/proxy\.example\.net resolves to 127\./);
      expect(tunnels()).toBe(before);
      await allowed.check(u, { proxy: viaName() });
      expect(tunnels()).toBeGreaterThan(before);
    } finally {
      guarded.close();
      allowed.close();
    }
  });

  it('HTTP/1.1 is refused by such an origin (why HTTP/2 is the default)', async () => {
    const checker = new StoryChecker({
      baseUrl: frontUrl,
      ca,
      http2: false,
      logger,
      requestTimeoutMs: 3_000,
    });
    try {
      await expect(checker.check(sim.world.usernames()[0]!)).rejects.toThrow();
    } finally {
      checker.close();
    }
  });
});

describe('secrets', () => {
  it('no proxy password or cookie in any log line, error message or cause chain', () => {
    expect(logText.length).toBeGreaterThan(0);
    expect(logText).not.toContain(PROXY_PASS);
    expect(logText).not.toContain(COOKIE);
  });
});
