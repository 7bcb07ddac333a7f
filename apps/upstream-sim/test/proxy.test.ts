/**
 * Loopback forward proxies: the simulator sees each proxy's own egress address, basic auth, and
 * broken modes switched at runtime. Real sockets throughout.
 */
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { egressAddresses, startProxies, startSim } from '../src/index.js';
import type { ProxyPool, SimServer } from '../src/index.js';
import {
  connectTunnel,
  failureOf,
  get,
  getViaProxy,
  getViaTunnel,
  proxyAuth,
} from './http-helpers.js';

describe('egress addresses', () => {
  it('count up from 127.0.0.2 and stay inside 127.0.0.0/8', () => {
    expect(egressAddresses(3)).toEqual(['127.0.0.2', '127.0.0.3', '127.0.0.4']);
    expect(egressAddresses(3, '127.0.0.254')).toEqual(['127.0.0.254', '127.0.0.255', '127.0.1.0']);
    expect(() => egressAddresses(3, '127.255.255.254')).toThrow(RangeError);
  });

  it('are really used as source addresses (a raw TCP server sees them)', async () => {
    const seen: string[] = [];
    const server = createServer((socket) => {
      seen.push(socket.remoteAddress ?? '');
      socket.resume(); // read the request, so the peer's FIN is seen and the socket closes
      socket.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const pool = await startProxies({ count: 2 });
    try {
      const target = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
      for (const proxy of pool.proxies) {
        const reply = await getViaProxy(proxy.url, target);
        expect(reply.text).toBe('ok');
      }
      expect(seen).toEqual(['127.0.0.2', '127.0.0.3']);
    } finally {
      await pool.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('proxies in front of the simulator', () => {
  let sim: SimServer;
  let pool: ProxyPool;
  let profileUrl: string;

  beforeAll(async () => {
    sim = await startSim({ seed: 11, size: 100 });
    pool = await startProxies({ count: 3, auth: { user: 'tester', pass: 's3cret' } });
    profileUrl = `${sim.url}/api/v1/users/web_profile_info/?username=${sim.world.users[0]?.username ?? ''}`;
  });
  afterAll(async () => {
    await pool.close();
    await sim.close();
  });
  const AUTH = proxyAuth('tester:s3cret');

  it('lists proxies p1..pN on 127.0.0.1 with egress 127.0.0.2..', () => {
    expect(pool.proxies.map((p) => [p.label, p.egress])).toEqual([
      ['p1', '127.0.0.2'],
      ['p2', '127.0.0.3'],
      ['p3', '127.0.0.4'],
    ]);
    for (const p of pool.proxies) expect(p.url).toBe(`http://127.0.0.1:${p.port}`);
  });

  it('the simulator sees each proxy’s own address, forwarding and CONNECT alike', async () => {
    const before = sim.requestLog().length;
    for (const proxy of pool.proxies) {
      const forwarded = await getViaProxy(proxy.url, profileUrl, {
        proxyAuthorization: AUTH,
        session: 'sess-1',
      });
      expect(forwarded.status).toBe(200);
      expect(JSON.parse(forwarded.text)).toMatchObject({ status: 'ok' });
      const tunnelled = await getViaTunnel(proxy.url, profileUrl, { proxyAuthorization: AUTH });
      expect(tunnelled.status).toBe(200);
    }
    const clients = sim
      .requestLog()
      .slice(before)
      .map((e) => e.client);
    expect(clients).toEqual([
      '127.0.0.2',
      '127.0.0.2',
      '127.0.0.3',
      '127.0.0.3',
      '127.0.0.4',
      '127.0.0.4',
    ]);
    // Headers reach the upstream (the cookie became a session label), proxy credentials do not.
    expect(sim.requestLog().at(before)?.session).toMatch(/^s:[0-9a-f]{6}$/);
    expect(pool.stats().p1).toMatchObject({ requests: 1, tunnels: 1 });
  });

  it('asks for credentials with 407 (forwarding and CONNECT)', async () => {
    const p1 = pool.proxies[0]?.url ?? '';
    for (const auth of [undefined, proxyAuth('tester:wrong')]) {
      const reply = await getViaProxy(p1, profileUrl, { proxyAuthorization: auth });
      expect(reply.status).toBe(407);
      expect(reply.headers['proxy-authenticate']).toBe('Basic realm="storycheck-sim"');
      const tunnel = await connectTunnel(p1, profileUrl, auth);
      tunnel.socket.destroy();
      expect(tunnel.status).toBe(407);
    }
  });

  it('can be broken and healed at runtime: 407, refuse, silent, reset', async () => {
    const p2 = pool.proxies[1];
    if (!p2) throw new Error('p2 missing');
    const viaP2 = (timeoutMs = 2000): Promise<number> =>
      getViaProxy(p2.url, profileUrl, { proxyAuthorization: AUTH, timeoutMs }).then(
        (r) => r.status,
      );

    await pool.setBroken('p2', '407');
    expect(await viaP2()).toBe(407); // right credentials, still 407
    await pool.setBroken('p2', 'refuse');
    expect(await failureOf(viaP2())).toBe('ECONNREFUSED');
    expect(await failureOf(getViaTunnel(p2.url, profileUrl, { proxyAuthorization: AUTH }))).toBe(
      'ECONNREFUSED',
    );
    await pool.setBroken('p2', 'silent');
    expect(await failureOf(viaP2(300))).toBe('timeout');
    await pool.setBroken('p2', 'reset');
    expect(await failureOf(viaP2())).toBe('ECONNRESET');
    await pool.setBroken('p2', null);
    expect(await viaP2()).toBe(200); // same port again
    expect(pool.stats().p2?.broken).toBeNull();
    await expect(pool.setBroken('p9', null)).rejects.toThrow(RangeError);
  });

  it('mirrors an upstream reset and answers 502 when the upstream is unreachable', async () => {
    const p3 = pool.proxies[2]?.url ?? '';
    sim.updateScenario({ faults: { reset: 1 } });
    try {
      expect(await failureOf(getViaProxy(p3, profileUrl, { proxyAuthorization: AUTH }))).toMatch(
        /ECONNRESET|socket hang up/,
      );
    } finally {
      sim.updateScenario({ faults: { reset: 0 } });
    }
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const deadPort = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const reply = await getViaProxy(p3, `http://127.0.0.1:${deadPort}/x`, {
      proxyAuthorization: AUTH,
    });
    expect(reply.status).toBe(502);
    const tunnel = await connectTunnel(p3, `http://127.0.0.1:${deadPort}/`, AUTH);
    tunnel.socket.destroy();
    expect(tunnel.status).toBe(502);
  });
});

describe('startSim({ proxies }) and the admin route', () => {
  it('starts proxies with the simulator and switches them through /__sim/proxies', async () => {
    const sim = await startSim({
      host: '0.0.0.0',
      size: 30,
      proxies: { count: 2, broken: { p2: 'refuse' } },
    });
    try {
      expect(sim.proxies.map((p) => p.egress)).toEqual(['127.0.0.2', '127.0.0.3']);
      const [p1, p2] = sim.proxies;
      if (!p1 || !p2) throw new Error('2 proxies expected');
      const target = `http://127.0.0.1:${sim.port}/api/v1/accounts/current_user/?edit=true`;
      const ok = await getViaProxy(p1.url, target, { session: 'abc' });
      expect(ok.status).toBe(200);
      // Listening on 0.0.0.0, the simulator still sees the proxy's egress address.
      expect(sim.requestLog().at(-1)?.client).toBe('127.0.0.2');
      expect(await failureOf(getViaProxy(p2.url, target))).toBe('ECONNREFUSED');

      const admin = `http://127.0.0.1:${sim.port}/__sim/proxies`;
      const healed = await get(`${admin}/p2?broken=none`, { method: 'POST', appId: false });
      expect(healed.status).toBe(200);
      expect((await getViaProxy(p2.url, target, { session: 'abc' })).status).toBe(200);
      expect(sim.requestLog().at(-1)?.client).toBe('127.0.0.3');
      const broke = await get(`${admin}/p1?broken=407`, { method: 'POST', appId: false });
      expect(JSON.parse(broke.text)).toEqual({ label: 'p1', broken: '407', status: 'ok' });
      expect((await getViaProxy(p1.url, target)).status).toBe(407);
      await sim.setProxyBroken('p1', null);
      const list = JSON.parse((await get(admin, { appId: false })).text) as {
        label: string;
        broken: string | null;
        egress: string;
      }[];
      expect(list.map((p) => [p.label, p.egress, p.broken])).toEqual([
        ['p1', '127.0.0.2', null],
        ['p2', '127.0.0.3', null],
      ]);
      expect((await get(`${admin}/p7?broken=407`, { method: 'POST', appId: false })).status).toBe(
        404,
      );
      expect((await get(`${admin}/p1?broken=maybe`, { method: 'POST', appId: false })).status).toBe(
        400,
      );
    } finally {
      await sim.close();
    }
  });

  it('close() also ends silent proxies holding connections', async () => {
    const sim = await startSim({ size: 10, proxies: { count: 1, broken: { p1: 'silent' } } });
    const p1 = sim.proxies[0]?.url ?? '';
    const pending = failureOf(getViaProxy(p1, `${sim.url}/api/v1/accounts/current_user/`));
    await new Promise((r) => setTimeout(r, 100));
    const started = performance.now();
    await sim.close();
    expect(performance.now() - started).toBeLessThan(1000);
    expect(await pending).toMatch(/ECONNRESET|socket hang up/);
  });
});
