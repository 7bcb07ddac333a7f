import dns from 'node:dns';
import fc from 'fast-check';
import { registerSecret } from '@storycheck/logger';
import { startProxies, startSim, type ProxyPool, type SimServer } from '@storycheck/upstream-sim';
import {
  ProxyAddressError,
  ProxyError,
  StoryChecker,
  guardedLookup,
  hostProblem,
  specialAddressKind,
  type LookupFunction,
} from '../src/index.js';

const PROXY_PASS = 'CANARYproxyPw16';

describe('specialAddressKind and hostProblem', () => {
  it.each([
    ['169.254.169.254', 'link-local (cloud metadata)'],
    ['fd00:ec2::254', 'unique-local (cloud metadata, AWS)'],
    ['100.100.100.200', 'carrier-grade NAT (cloud metadata, Alibaba)'],
    ['127.0.0.1', 'loopback (127.0.0.0/8)'],
    ['10.1.2.3', 'private (10.0.0.0/8)'],
    ['172.31.255.255', 'private (172.16.0.0/12)'],
    ['192.168.1.1', 'private (192.168.0.0/16)'],
    ['100.64.0.1', 'carrier-grade NAT (100.64.0.0/10)'],
    ['169.254.1.1', 'link-local (169.254.0.0/16)'],
    ['0.0.0.0', 'unspecified ("this network", 0.0.0.0/8)'],
    ['255.255.255.255', 'broadcast'],
    ['224.0.0.1', 'multicast (224.0.0.0/4)'],
    ['240.0.0.1', 'reserved (240.0.0.0/4)'],
    ['192.0.2.1', 'documentation (192.0.2.0/24)'],
    ['198.51.100.7', 'documentation (198.51.100.0/24)'],
    ['203.0.113.9', 'documentation (203.0.113.0/24)'],
    ['198.18.0.1', 'benchmarking (198.18.0.0/15)'],
    ['198.19.255.254', 'benchmarking (198.18.0.0/15)'],
    ['::1', 'loopback'],
    ['::', 'unspecified'],
    ['fe80::1', 'link-local (fe80::/10)'],
    ['fc00::1', 'unique-local (fc00::/7)'],
    ['ff02::1', 'multicast (ff00::/8)'],
    ['2001:db8::1', 'documentation (2001:db8::/32)'],
    ['3fff::1', 'documentation (3fff::/20)'],
    ['2001:2::1', 'benchmarking (2001:2::/48)'],
    ['fec0::1', 'site-local (deprecated, fec0::/10)'],
    ['::ffff:a9fe:a9fe', 'IPv4-mapped 169.254.169.254, which is link-local (cloud metadata)'],
    ['::ffff:7f00:1', 'IPv4-mapped 127.0.0.1, which is loopback (127.0.0.0/8)'],
    ['::7f00:1', 'IPv4-compatible 127.0.0.1, which is loopback (127.0.0.0/8)'],
    ['64:ff9b::a00:1', 'NAT64 for 10.0.0.1, which is private (10.0.0.0/8)'],
    ['2002:7f00:1::1', '6to4 for 127.0.0.1, which is loopback (127.0.0.0/8)'],
    // Teredo: the client's IPv4 address is stored inverted in the last 32 bits.
    [
      '2001:0:4136:e378:8000:63bf:80ff:fffe',
      'Teredo for 127.0.0.1, which is loopback (127.0.0.0/8)',
    ],
    ['::ffff:0:7f00:1', 'reserved (outside 2000::/3 global unicast)'],
  ])('%s is %s', (address, kind) => {
    expect(specialAddressKind(address)).toBe(kind);
  });

  it.each(['8.8.8.8', '1.1.1.1', '2606:4700::1111', '::ffff:808:808', '64:ff9b::808:808'])(
    '%s is public',
    (address) => expect(specialAddressKind(address)).toBeNull(),
  );

  it.each([
    ['localhost', 'localhost is loopback (a localhost name)'],
    ['LOCALHOST.', 'localhost is loopback (a localhost name)'],
    ['Foo.LocalHost.', 'foo.localhost is loopback (a localhost name)'],
    ['printer.local', 'printer.local is link-local (an mDNS .local name)'],
    ['metadata.google.internal.', 'metadata.google.internal is a cloud metadata name'],
    ['db.corp.internal', 'db.corp.internal is private (a .internal name)'],
    ['squid', 'squid is a single-label name (resolves only on a local network)'],
    ['0x7f.1', '127.0.0.1 is loopback (127.0.0.0/8)'],
    [
      '[::FFFF:127.0.0.1]',
      '::ffff:7f00:1 is IPv4-mapped 127.0.0.1, which is loopback (127.0.0.0/8)',
    ],
  ])('host %s: %s', (host, reason) => {
    expect(hostProblem(host)).toBe(reason);
  });

  it.each(['proxy.example.com', 'PROXY.Example.COM.', '8.8.8.8'])('host %s is fine', (host) => {
    expect(hostProblem(host)).toBeNull();
  });
});

/** A resolver that answers `names` from the table and asks the system for anything else. */
function fakeDns(names: Record<string, string>): LookupFunction {
  return (hostname, options, callback) => {
    const address = names[hostname];
    if (address === undefined)
      return (dns.lookup as unknown as LookupFunction)(hostname, options, callback);
    const family = address.includes(':') ? 6 : 4;
    if (options.all) callback(null, [{ address, family }]);
    else callback(null, address, family);
  };
}

const lookupOnce = (lookup: LookupFunction, host: string, all: boolean) =>
  new Promise<{ err: Error | null; address: unknown }>((resolve) =>
    lookup(host, { all }, (err, address) => resolve({ err, address })),
  );

describe('guardedLookup', () => {
  const special = fc.oneof(
    fc.constantFrom('127.0.0.1', '10.0.0.7', '169.254.169.254', '::1', 'fd00:ec2::254'),
    fc
      .tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }))
      .map(([a, b]) => `192.168.${a}.${b}`),
    fc.integer({ min: 0, max: 0xffff }).map((n) => `fe80::${n.toString(16)}`),
  );
  it('refuses every name that resolves to a special-purpose address, with or without `all`', async () => {
    await fc.assert(
      fc.asyncProperty(special, fc.boolean(), async (address, all) => {
        const lookup = guardedLookup(fakeDns({ 'public.example.net': address }));
        const r = await lookupOnce(lookup, 'public.example.net', all);
        expect(r.err).toBeInstanceOf(ProxyAddressError);
        expect((r.err as ProxyAddressError).code).toBe('proxy_address_refused');
        expect(r.err!.message).toContain(`public.example.net resolves to ${address}, which is`);
      }),
      { numRuns: 100 },
    );
  });

  it('passes a name that resolves to a public address through unchanged', async () => {
    const lookup = guardedLookup(fakeDns({ 'public.example.net': '93.184.215.14' }));
    expect(await lookupOnce(lookup, 'public.example.net', false)).toEqual({
      err: null,
      address: '93.184.215.14',
    });
    expect(await lookupOnce(lookup, 'public.example.net', true)).toEqual({
      err: null,
      address: [{ address: '93.184.215.14', family: 4 }],
    });
  });
});

describe('connecting through a proxy whose name resolves inside', () => {
  let sim: SimServer;
  let pool: ProxyPool;
  beforeAll(async () => {
    registerSecret(PROXY_PASS);
    sim = await startSim({ seed: 16, size: 50 });
    pool = await startProxies({ count: 1, auth: { user: 'tester', pass: PROXY_PASS } });
  });
  afterAll(async () => {
    await pool.close();
    await sim.close();
  });

  /** The loopback proxy under another host: a public-looking name, or a literal form. */
  const proxyAt = (host: string) => {
    const u = new URL(pool.proxies[0]!.url);
    u.hostname = host;
    u.username = 'tester';
    u.password = PROXY_PASS;
    return { label: 'px-public-looking', url: u.href };
  };
  const touched = () => {
    const s = pool.stats()[pool.proxies[0]!.label]!;
    return s.requests + s.tunnels + s.rejected407 + s.dropped;
  };
  // The loopback proxy's address (127.0.0.x) under a public-looking name.
  const lookup = () => fakeDns({ 'proxy.example.net': new URL(pool.proxies[0]!.url).hostname });

  it('is refused (ProxyAddressError, nothing sent, no password) without ALLOW_PRIVATE_PROXIES', async () => {
    const checker = new StoryChecker({ baseUrl: sim.url, lookup: lookup() });
    const before = touched();
    try {
      for (const host of [
        'proxy.example.net',
        new URL(pool.proxies[0]!.url).hostname,
        '[::ffff:7f00:2]',
      ]) {
        const err = await checker
          .check(sim.world.usernames()[0]!, { proxy: proxyAt(host) })
          .catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ProxyAddressError);
        expect(err).toBeInstanceOf(ProxyError); // the worker opens the proxy's circuit
        expect((err as ProxyAddressError).code).toBe('proxy_address_refused');
        expect((err as Error).message).toMatch(/loopback \(127\.0\.0\.0\/8\)/);
        if (host === 'proxy.example.net')
          expect((err as Error).message).toMatch(/proxy\.example\.net resolves to 127\.0\.0\.\d+/);
        for (let c: unknown = err; c instanceof Error; c = c.cause) {
          expect(c.message).not.toContain(PROXY_PASS);
          expect(c.stack ?? '').not.toContain(PROXY_PASS);
        }
      }
      expect(touched()).toBe(before);
    } finally {
      checker.close();
    }
  });

  it('is used with ALLOW_PRIVATE_PROXIES (the same name reaches the same proxy)', async () => {
    const checker = new StoryChecker({
      baseUrl: sim.url,
      lookup: lookup(),
      allowPrivateProxies: true,
    });
    const before = touched();
    try {
      const r = await checker.check(sim.world.usernames()[0]!, {
        proxy: proxyAt('proxy.example.net'),
      });
      expect(['active', 'none', 'private', 'not_found']).toContain(r.status);
      expect(touched()).toBeGreaterThan(before);
    } finally {
      checker.close();
    }
  });
});
