import { UpstreamError } from './errors.js';
import type { StoryState } from './parse.js';

/** Options of a {@link StoriesCoalescer}. */
export interface CoalescerOptions {
  /**
   * One upstream request for many user ids: returns the state of those with a visible reel
   * (absent ids have none). It acquires its own lease, so budgets see one request.
   */
  fetch: (userIds: string[]) => Promise<Map<string, StoryState>>;
  /** Most ids per request. Default 20 (UPSTREAM.md: clients use 5–50). */
  chunkSize?: number;
  /** How long the first id of a request waits for company, in ms. Default 100: a request saved
   * is budget saved, and 100 ms is small beside the upstream's latency. */
  maxWaitMs?: number;
  /** Called when the upstream said "too many reels" and the chunk size was halved. */
  onShrink?: (chunkSize: number) => void;
  /** Called after each request with the number of ids it carried. */
  onRequest?: (ids: number) => void;
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
export class StoriesCoalescer {
  private readonly fetchFn: CoalescerOptions['fetch'];
  private readonly maxWaitMs: number;
  private readonly onShrink: CoalescerOptions['onShrink'];
  private readonly onRequest: CoalescerOptions['onRequest'];
  private chunk: number;
  private pending = new Map<string, Waiter[]>();
  private timer: NodeJS.Timeout | undefined;

  constructor(opts: CoalescerOptions) {
    this.fetchFn = opts.fetch;
    this.chunk = Math.max(1, opts.chunkSize ?? 20);
    this.maxWaitMs = opts.maxWaitMs ?? 100;
    this.onShrink = opts.onShrink;
    this.onRequest = opts.onRequest;
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
      if (this.pending.size >= this.chunk) this.flush();
      else this.timer ??= setTimeout(() => this.flush(), this.maxWaitMs);
    });
  }

  /** Sends what waits now (also used on shutdown so no caller is left hanging). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    while (this.pending.size > 0) {
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
    const ids = [...batch.keys()];
    try {
      this.onRequest?.(ids.length);
      const states = await this.fetchFn(ids);
      for (const [id, waiters] of batch) for (const w of waiters) w.resolve(states.get(id));
    } catch (e) {
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
