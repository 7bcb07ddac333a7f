import { clusterPrefixProblem, loadConfig, parseRedisUrl, slotTag } from '../src/index.js';

describe('REDIS_URL kinds', () => {
  it('redis:// and rediss:// are one node, passed through as written', () => {
    expect(parseRedisUrl('redis://:pw@127.0.0.1:6380/2')).toEqual({
      kind: 'single',
      url: 'redis://:pw@127.0.0.1:6380/2',
    });
    expect(parseRedisUrl('rediss://h:6379').kind).toBe('single');
  });

  it('redis+cluster:// lists seed nodes, with credentials and TLS', () => {
    expect(parseRedisUrl('redis+cluster://u:p%40ss@10.0.0.1:7000,node-b:7001,[::1]:7002')).toEqual({
      kind: 'cluster',
      nodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: 'node-b', port: 7001 },
        { host: '::1', port: 7002 },
      ],
      username: 'u',
      password: 'p@ss',
      tls: false,
    });
    expect(parseRedisUrl('rediss+cluster://a:7000')).toMatchObject({
      tls: true,
      nodes: [{ host: 'a', port: 7000 }],
    });
    expect(parseRedisUrl('redis+cluster://a')).toMatchObject({
      nodes: [{ host: 'a', port: 6379 }],
    });
  });

  it('redis+sentinel:// lists sentinels and names the primary (and a db)', () => {
    expect(parseRedisUrl('redis+sentinel://:pw@s1:26379,s2,s3:26380/mymaster/3')).toEqual({
      kind: 'sentinel',
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26379 },
        { host: 's3', port: 26380 },
      ],
      name: 'mymaster',
      db: 3,
      username: undefined,
      password: 'pw',
      tls: false,
    });
  });

  it.each([
    ['http://x', /scheme redis, rediss, redis\+cluster or redis\+sentinel/],
    ['redis+cluster://a:7000/1', /only database 0/],
    ['redis+sentinel://s1:26379', /ends in \/<primary name>/],
    ['redis+sentinel://s1:26379/m/x', /not a number/],
    ['redis+cluster://a:99999', /bad port/],
  ])('%s is refused with a reason and without echoing the URL', (url, reason) => {
    expect(() => parseRedisUrl(url)).toThrow(reason);
    let err: unknown;
    try {
      loadConfig({ REDIS_URL: url.replace('//', '//user:SECRETpw@') });
    } catch (e) {
      err = e;
    }
    expect((err as Error).message).toMatch(/^invalid REDIS_URL: /);
    expect((err as Error).message).not.toContain('SECRETpw');
  });

  it('loadConfig accepts cluster and sentinel URLs', () => {
    expect(loadConfig({ REDIS_URL: 'redis+cluster://a:7000,b:7001' }).redisUrl).toBe(
      'redis+cluster://a:7000,b:7001',
    );
    expect(loadConfig({ REDIS_URL: 'redis+sentinel://s:26379/m' }).redisUrl).toBe(
      'redis+sentinel://s:26379/m',
    );
  });
});

describe('the cluster rule', () => {
  it('slotTag wraps one part in a hash tag and refuses braces', () => {
    expect(slotTag('storycheck:pool')).toBe('{storycheck:pool}');
    expect(() => slotTag('a{b}')).toThrow(/braces/);
  });

  it('a prefix with its own hash tag cannot work on a cluster', () => {
    expect(clusterPrefixProblem('storycheck')).toBeNull();
    expect(clusterPrefixProblem('app{x}')).toMatch(/must not contain \{ or \}/);
  });
});
