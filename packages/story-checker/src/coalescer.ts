import { UpstreamError } from './errors.js';
import type { StoryState } from './parse.js';

/** Options of a {@link StoriesCoalescer}; `C` is what `withContext` hands to `fetch` (a lease). */
export interface CoalescerOptions<C = undefined> {
  /**
   * One upstream request for many user ids: returns the state of those with a visible reel
   * (absent ids have none).
   */
  fetch: (userIds: string[], ctx: C) => Promise<Map<string, StoryState>>;
  /**
   * Runs a request inside a context, e.g. under a lease of the session pool. The ids are bound
   * only once the context is granted, so ids that arrive while a request waits for budget ride
   * along in it (up to the chunk size) instead of needing a request of their own.
   */
  withContext?: <T>(fn: (ctx: C) => Promise<T>) => Promise<T>;
  /** Most ids per request. Default 20 (UPSTREAM.md: clients use 5–50). */
  chunkSize?: number;
  /** How long the first id of a request waits for company, in ms. Default 100: a request saved
   * is budget saved, and 100 ms is small beside the upstream's latency. */
  maxWaitMs?: number;
  /** Called when the upstream said "too many reels" and the chunk size was halved. */
  onShrink?: (chunkSize: number) => void;
  /** Called after each request with the number of ids it carried. */
  onRequest?: (ids: number) => void;
  /**
   * Given how many callers wait here for a request not yet sent, true when nobody else can join
   * them (e.g. a worker whose every job slot is such a caller: no job can finish and make room
   * for one that would). What waits is then sent at once instead of after `maxWaitMs`.
   * Default: never (always wait).
   */
  nothingMoreExpected?: (waiting: number) => boolean;
}

interface Waiter {
  resolve: (s: StoryState | undefined) => void;
  reject: (e: unknown) => void;
}

/**
 * DataLoader-style micro-batching of story lookups: the ids asked by jobs in flight are
 * gathered for up to `maxWaitMs` or until `chunkSize` ids wait, then sent as one reels_media
 * request; each caller gets its own user's answer. A failing request fails only the callers
 * in it. "Too many reels requested" halves the chunk size (down to 1) and the same ids are
 * asked again in halves, so no caller pays for the upstream's limit.
 */
export class StoriesCoalescer<C = undefined> {
  private readonly fetchFn: CoalescerOptions<C>['fetch'];
  private readonly withContext: <T>(fn: (ctx: C) => Promise<T>) => Promise<T>;
  private readonly maxWaitMs: number;
  private readonly onShrink: CoalescerOptions<C>['onShrink'];
  private readonly onRequest: CoalescerOptions<C>['onRequest'];
  private readonly nothingMoreExpected: (waiting: number) => boolean;
  private chunk: number;
  private pending = new Map<string, Waiter[]>();
  /** Requests waiting for their context (lease): ids that wait meanwhile ride along in them. */
  private awaiting = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(opts: CoalescerOptions<C>) {
    this.fetchFn = opts.fetch;
    this.withContext = opts.withContext ?? (<T>(fn: (ctx: C) => Promise<T>) => fn(undefined as C));
    this.chunk = Math.max(1, opts.chunkSize ?? 20);
    this.maxWaitMs = opts.maxWaitMs ?? 100;
    this.onShrink = opts.onShrink;
    this.onRequest = opts.onRequest;
    this.nothingMoreExpected = opts.nothingMoreExpected ?? (() => false);
  }

  /** Current ids per request (shrinks after "too many reels"). */
  get chunkSize(): number {
    return this.chunk;
  }

  /** The story state of `userId` (undefined: no visible reel), via a shared request. */
  load(userId: string): Promise<StoryState | undefined> {
    return new Promise((resolve, reject) => {
      const list = this.pending.get(userId);
      if (list) list.push({ resolve, reject });
      else this.pending.set(userId, [{ resolve, reject }]);
      if (this.pending.size >= this.chunk || this.nothingMoreExpected(this.waiting())) this.flush();
      else this.timer ??= setTimeout(() => this.flush(), this.maxWaitMs);
    });
  }

  /** Callers waiting for a request not yet sent (an id asked twice counts twice). */
  private waiting(): number {
    let n = 0;
    for (const w of this.pending.values()) n += w.length;
    return n;
  }

  /** Sends what waits now (also used on shutdown so no caller is left hanging). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    while (this.pending.size > 0) {
      // A request already waits for its lease and will take these ids when it goes.
      if (this.awaiting > 0 && this.pending.size < this.chunk) break;
      const batch = new Map<string, Waiter[]>();
      for (const [id, waiters] of this.pending) {
        batch.set(id, waiters);
        this.pending.delete(id);
        if (batch.size >= this.chunk) break;
      }
      void this.send(batch);
    }
  }

  private async send(batch: Map<string, Waiter[]>): Promise<void> {
    // Tops the batch up from what waits now, up to the chunk size: called when the request
    // actually goes (after its lease was granted).
    const take = (): string[] => {
      for (const [id, waiters] of this.pending) {
        if (batch.size >= this.chunk) break;
        batch.set(id, waiters);
        this.pending.delete(id);
      }
      if (this.pending.size === 0) {
        clearTimeout(this.timer);
        this.timer = undefined;
      }
      return [...batch.keys()];
    };
    let ids: string[] = [...batch.keys()];
    let granted = false;
    this.awaiting++;
    const settle = () => {
      if (!granted) {
        granted = true;
        this.awaiting--;
      }
      // Whatever still waits (over the chunk size, or no request took it) goes on its own.
      if (this.pending.size > 0) this.timer ??= setTimeout(() => this.flush(), this.maxWaitMs);
    };
    try {
      const states = await this.withContext((ctx) => {
        if (!granted) {
          granted = true;
          this.awaiting--;
        }
        ids = take();
        if (this.pending.size > 0) this.timer ??= setTimeout(() => this.flush(), this.maxWaitMs);
        this.onRequest?.(ids.length);
        return this.fetchFn(ids, ctx);
      });
      settle();
      for (const [id, waiters] of batch) for (const w of waiters) w.resolve(states.get(id));
    } catch (e) {
      settle();
      if (e instanceof UpstreamError && e.code === 'too_many_reels' && ids.length > 1) {
        this.chunk = Math.max(1, Math.min(this.chunk, Math.floor(ids.length / 2)));
        this.onShrink?.(this.chunk);
        const half = Math.ceil(ids.length / 2);
        const first = new Map(ids.slice(0, half).map((id) => [id, batch.get(id)!]));
        const second = new Map(ids.slice(half).map((id) => [id, batch.get(id)!]));
        await Promise.all([this.send(first), this.send(second)]);
        return;
      }
      for (const waiters of batch.values()) for (const w of waiters) w.reject(e);
    }
  }
}
