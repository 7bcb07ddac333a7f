import { ConfigError, formatRate, loadConfig, parseDurationMs, parseRate } from '../src/index.js';

describe('loadConfig', () => {
  it('gives the documented defaults on an empty environment', () => {
    const c = loadConfig({});
    expect(c.redisUrl).toBe('redis://127.0.0.1:6379');
    expect(c.databaseUrl).toBe('postgres://postgres@127.0.0.1:5432/storycheck');
    expect(c.prefix).toBe('storycheck');
    expect(c.igBaseUrl).toBe('https://www.instagram.com');
    expect(c.sessionRate).toEqual({ count: 200, periodMs: 660_000 });
    expect(c.storyCacheTtlMs).toBe(60_000);
    expect(c.board.readonly).toBe(true);
    expect(c.workerHttpPort).toBeUndefined();
    expect(c.throttleBackoffBaseMs).toBe(60_000);
    expect(c.throttleBackoffCapMs).toBe(1_800_000);
    expect(c.adaptiveRates).toBe(false);
    expect(loadConfig({ ADAPTIVE_RATES: 'true' }).adaptiveRates).toBe(true);
  });

  it('IP_THROTTLE_WINDOW (default 60s, 0s = never), LEASE_SPREAD (default 300ms), LEASE_TRACE_FILE', () => {
    expect(loadConfig({})).toMatchObject({
      ipThrottleWindowMs: 60_000,
      leaseSpreadMs: 300,
      leaseTraceFile: undefined,
    });
    expect(
      loadConfig({ IP_THROTTLE_WINDOW: '0s', LEASE_SPREAD: '1s', LEASE_TRACE_FILE: '/tmp/t' }),
    ).toMatchObject({ ipThrottleWindowMs: 0, leaseSpreadMs: 1000, leaseTraceFile: '/tmp/t' });
    expect(() => loadConfig({ IP_THROTTLE_WINDOW: 'a minute' })).toThrow(
      /^invalid IP_THROTTLE_WINDOW: /,
    );
  });

  it('THROTTLE_BACKOFF_BASE must be at least 1ms and THROTTLE_BACKOFF_CAP at least the base', () => {
    expect(
      loadConfig({ THROTTLE_BACKOFF_BASE: '600ms', THROTTLE_BACKOFF_CAP: '18s' }),
    ).toMatchObject({ throttleBackoffBaseMs: 600, throttleBackoffCapMs: 18_000 });
    expect(() => loadConfig({ THROTTLE_BACKOFF_BASE: '2m', THROTTLE_BACKOFF_CAP: '1m' })).toThrow(
      /^invalid THROTTLE_BACKOFF_CAP: must be at least THROTTLE_BACKOFF_BASE/,
    );
    expect(() => loadConfig({ THROTTLE_BACKOFF_BASE: '0s' })).toThrow(
      /^invalid THROTTLE_BACKOFF_BASE: /,
    );
  });

  it('parses durations, rates, booleans and trims a trailing slash from the base URL', () => {
    const c = loadConfig({
      IG_BASE_URL: 'http://127.0.0.1:4100/',
      SESSION_RATE: '10/1s',
      STORY_CACHE_TTL: '90s',
      ALLOW_PRIVATE_PROXIES: 'true',
      WORKER_CONCURRENCY: '4',
    });
    expect(c.igBaseUrl).toBe('http://127.0.0.1:4100');
    expect(c.sessionRate).toEqual({ count: 10, periodMs: 1000 });
    expect(c.storyCacheTtlMs).toBe(90_000);
    expect(c.allowPrivateProxies).toBe(true);
    expect(c.workerConcurrency).toBe(4);
  });

  it.each([
    ['REDIS_URL', 'http://x'],
    ['DATABASE_URL', 'not a url'],
    ['SESSION_RATE', '200 per hour'],
    ['STORY_CACHE_TTL', '10 minutes'],
    ['WORKER_CONCURRENCY', '0'],
    ['BOARD_READONLY', 'maybe'],
    ['LOG_LEVEL', 'loud'],
    ['STORYCHECK_PREFIX', 'has space'],
    ['THROTTLE_BACKOFF_BASE', 'a minute'],
  ])('a bad %s stops with one line naming it', (variable, value) => {
    let err: unknown;
    try {
      loadConfig({ [variable]: value });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe(variable);
    expect((err as Error).message).toMatch(new RegExp(`^invalid ${variable}: `));
    expect((err as Error).message).not.toContain('\n');
  });
});

describe('units', () => {
  it('parses durations to integer ms', () => {
    expect(parseDurationMs('250ms')).toBe(250);
    expect(parseDurationMs('1.5s')).toBe(1500);
    expect(parseDurationMs('7d')).toBe(604_800_000);
    expect(() => parseDurationMs('7 weeks')).toThrow(/not a duration/);
  });
  it('parses and formats rates', () => {
    expect(parseRate('200/11m')).toEqual({ count: 200, periodMs: 660_000 });
    expect(formatRate(parseRate('200/11m'))).toBe('200/11m');
    expect(() => parseRate('0/1s')).toThrow(/positive/);
    expect(() => parseRate('5')).toThrow(/not a rate/);
  });
});
