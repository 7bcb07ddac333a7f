import type { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { loadConfig } from '@storycheck/config';
import { createRedis, openCheckQueue, type CheckQueue } from '@storycheck/queue';
import { createTestPrefix, TEST_REDIS_URL, parsePrometheus, valueOf } from '@storycheck/testkit';
import { FleetGauges, openPool } from '../src/index.js';

/**
 * FleetGauges (the queue and pool gauges the workers and the board both export) read a real
 * queue and pool in Redis, and report a source that does not answer as down.
 */
const tp = createTestPrefix();
let redis: Redis;
let queue: CheckQueue;

beforeAll(() => {
  redis = createRedis(TEST_REDIS_URL);
  queue = openCheckQueue(redis, tp.prefix);
});
afterAll(async () => {
  await queue.close();
  await tp.clean();
  await redis.quit();
});

async function scrape(registry: Registry) {
  return parsePrometheus(await registry.metrics());
}

it('counts jobs by state (prioritized ones wait) and members by status, zeros included', async () => {
  const payload = { batchId: 'b', username: 'u' };
  await queue.add('check', payload);
  await queue.add('check', payload, { priority: 3 });
  await queue.add('check', payload, { delay: 600_000 });
  const pool = openPool(loadConfig({ STORYCHECK_PREFIX: tp.prefix }), redis);
  await pool.upsertProxy({ id: 'p1', label: 'p1' });
  await pool.upsertSession({ id: 's1', label: 's1', proxyId: 'p1' });
  await pool.upsertSession({ id: 's2', label: 's2', proxyId: null });
  await pool.disableSession('s2');

  const registry = new Registry();
  const gauges = new FleetGauges(registry);
  await gauges.refreshQueues([queue]);
  await gauges.refreshPool(() => pool.snapshot());
  const s = await scrape(registry);
  const jobs = (state: string) => valueOf(s, 'storycheck_queue_jobs', { queue: queue.name, state });
  expect([jobs('waiting'), jobs('active'), jobs('delayed'), jobs('failed')]).toEqual([2, 0, 1, 0]);
  expect(valueOf(s, 'storycheck_pool_sessions', { state: 'active' })).toBe(1);
  expect(valueOf(s, 'storycheck_pool_sessions', { state: 'disabled' })).toBe(1);
  expect(valueOf(s, 'storycheck_pool_sessions', { state: 'invalid' })).toBe(0);
  expect(valueOf(s, 'storycheck_pool_proxies', { state: 'active' })).toBe(1);
  expect(valueOf(s, 'storycheck_pool_proxies', { state: 'broken' })).toBe(0);
  expect(valueOf(s, 'storycheck_metrics_source_up', { source: 'queue' })).toBe(1);
  expect(valueOf(s, 'storycheck_metrics_source_up', { source: 'pool' })).toBe(1);
});

it('a source that fails or does not answer in time is down, and its gauges are left out', async () => {
  const registry = new Registry();
  const gauges = new FleetGauges(registry, 100);
  await gauges.refreshQueues([queue]);
  const silent = {
    name: 'silent',
    getJobCounts: () => new Promise<Record<string, number>>(() => undefined),
  };
  await gauges.refreshQueues([silent]);
  await gauges.refreshPool(() => Promise.reject(new Error('Connection is closed.')));
  const s = await scrape(registry);
  expect(valueOf(s, 'storycheck_metrics_source_up', { source: 'queue' })).toBe(0);
  expect(valueOf(s, 'storycheck_metrics_source_up', { source: 'pool' })).toBe(0);
  expect(s.filter((x) => x.name === 'storycheck_queue_jobs')).toEqual([]);
  expect(s.filter((x) => x.name === 'storycheck_pool_sessions')).toEqual([]);
});
