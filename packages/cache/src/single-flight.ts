import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { cacheKeys } from './keys.js';

/** Options of {@link SingleFlight}. */
export interface SingleFlightOptions<T> {
  /**
   * The leader's lease on a lookup, in ms: its lock's TTL, renewed every `lockMs / 3` while the
   * leader's process is alive (a heartbeat) and released as soon as it is done. A leader that
   * dies or freezes (SIGSTOP, a stuck event loop) stops renewing: its lock lapses within
   * `lockMs` and a follower takes the lookup over. Default 5 000.
   */
  lockMs?: number;
  /**
   * Upper bound on a follower's wait for a live leader, in ms, before it asks itself
   * (SINGLE_FLIGHT_WAIT). A dead or frozen leader is given up on sooner: when its lease lapses.
   * Default 15 000.
   */
  waitMs?: number;
  /** Follower poll interval in ms. Default 25. */
  pollMs?: number;
  /** Serialises an answer for followers in other processes. */
  encode: (v: T) => string;
  /** Inverse of encode; null when unreadable. */
  decode: (s: string) => T | null;
}

/** Compare-and-delete: release the lock only if it is still ours. KEYS[1] lock; ARGV[1] token. */
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;
/**
 * Publish and release in one round trip: SET the answer for followers (KEYS[2], ARGV[2] value,
 * ARGV[3] ttl ms), then compare-and-delete the lock (KEYS[1], ARGV[1] token).
 */
const PUBLISH_RELEASE = `redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])\n${RELEASE}`;
/** Heartbeat: extend the lock's TTL to ARGV[2] ms only if it is still ours (ARGV[1] token). */
const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;
type FlightRedis = Redis & {
  storycheckFlightRelease(lock: string, token: string): Promise<number>;
  storycheckFlightRenew(lock: string, token: string, ttlMs: number): Promise<number>;
  storycheckFlightPublish(
    lock: string,
    result: string,
    token: string,
    value: string,
    ttlMs: number,
  ): Promise<number>;
};

/**
 * One upstream lookup for many askers of the same key, in one process (a shared promise) and
 * across processes (a Redis lock; the leader publishes its answer under its token and the
 * followers poll for it). The leader holds a short lease it renews while alive (`lockMs`), so a
 * follower waits only as long as the leader lives: if the leader fails, gives up, dies or
 * freezes, its lock goes (released or lapsed) and a follower takes over; `waitMs` bounds the
 * wait even on a live leader. Errors are not shared: each asker retries on its own terms.
 */
export class SingleFlight<T> {
  private readonly local = new Map<string, Promise<{ value: T; shared: boolean }>>();
  private readonly keys: ReturnType<typeof cacheKeys>;
  private readonly lockMs: number;
  private readonly waitMs: number;
  private readonly pollMs: number;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    private readonly opts: SingleFlightOptions<T>,
  ) {
    this.keys = cacheKeys(prefix);
    // EVALSHA with a fallback to EVAL (ioredis defineCommand): the script text is sent once.
    const r = redis as unknown as Partial<FlightRedis>;
    if (typeof r.storycheckFlightRelease !== 'function')
      redis.defineCommand('storycheckFlightRelease', { numberOfKeys: 1, lua: RELEASE });
    if (typeof r.storycheckFlightRenew !== 'function')
      redis.defineCommand('storycheckFlightRenew', { numberOfKeys: 1, lua: RENEW });
    if (typeof r.storycheckFlightPublish !== 'function')
      redis.defineCommand('storycheckFlightPublish', { numberOfKeys: 2, lua: PUBLISH_RELEASE });
    this.lockMs = opts.lockMs ?? 5_000;
    this.waitMs = opts.waitMs ?? 15_000;
    this.pollMs = opts.pollMs ?? 25;
  }

  /** Runs `fn` for `key` unless someone else is already running it; `shared` marks a borrowed answer. */
  async run(
    key: string,
    fn: () => Promise<T>,
    signal?: AbortSignal,
  ): Promise<{ value: T; shared: boolean }> {
    const inProcess = this.local.get(key);
    if (inProcess) return inProcess.then((r) => ({ value: r.value, shared: true }));
    const p = this.lead(key, fn, signal);
    this.local.set(key, p);
    try {
      return await p;
    } finally {
      this.local.delete(key);
    }
  }

  private async lead(
    key: string,
    fn: () => Promise<T>,
    signal?: AbortSignal,
  ): Promise<{ value: T; shared: boolean }> {
    const lockKey = this.keys.flight(key);
    const deadline = Date.now() + this.waitMs;
    for (;;) {
      const token = randomBytes(9).toString('base64url');
      if ((await this.redis.set(lockKey, token, 'PX', this.lockMs, 'NX')) === 'OK') {
        const r = this.redis as unknown as FlightRedis;
        let value: T;
        // The heartbeat: renew the lease while this process is alive and the lookup runs.
        const heartbeat = setInterval(
          () => {
            r.storycheckFlightRenew(lockKey, token, this.lockMs).catch(() => undefined);
          },
          Math.max(50, Math.floor(this.lockMs / 3)),
        );
        heartbeat.unref();
        try {
          value = await fn();
        } catch (err) {
          clearInterval(heartbeat);
          await r.storycheckFlightRelease(lockKey, token);
          throw err;
        } finally {
          clearInterval(heartbeat);
        }
        await r
          .storycheckFlightPublish(
            lockKey,
            this.keys.flightResult(key, token),
            token,
            this.opts.encode(value),
            Math.max(this.waitMs, 5_000),
          )
          .catch(async (err: unknown) => {
            await r.storycheckFlightRelease(lockKey, token).catch(() => undefined);
            throw err;
          });
        return { value, shared: false };
      }
      // Someone else leads: wait for its answer, or for its lock to go.
      const leader = await this.redis.get(lockKey);
      if (!leader) continue; // released in between: try to lead again
      while (Date.now() < deadline) {
        if (signal?.aborted) throw signal.reason;
        const answer = await this.redis.get(this.keys.flightResult(key, leader));
        if (answer !== null) {
          const value = this.opts.decode(answer);
          if (value !== null) return { value, shared: true };
        }
        // Leader finished, failed, or its lease lapsed (dead or frozen): stop waiting for it.
        if ((await this.redis.get(lockKey)) !== leader) break;
        await new Promise((r) => setTimeout(r, this.pollMs));
      }
      const answer = await this.redis.get(this.keys.flightResult(key, leader));
      const value = answer === null ? null : this.opts.decode(answer);
      if (value !== null) return { value, shared: true };
      if (Date.now() >= deadline) return { value: await fn(), shared: false }; // bounded wait
    }
  }
}
