import type { Caches, SingleFlight, UserIdEntry } from '@storycheck/cache';
import type { StoryResult } from '@storycheck/model';
import type { Credentials, Fleet } from './session-fleet.js';
import type { WorkerMetrics } from './metrics.js';
import type {
  CheckCost,
  CheckResult,
  ProfileLookup,
  StoriesCoalescer,
  StoryChecker,
} from '@storycheck/story-checker';

/**
 * What one check produced, whichever way it was answered: the result record as the checker
 * made it (recorded as it is) and how this job got it — from a cache or a shared lookup, what
 * its own check cost and through which session and proxy. Those are the batch-log row's and the
 * metrics', not the record's, hence the extra fields.
 */
export interface CheckOutcome extends StoryResult, Omit<CheckCost, 'timings'> {
  /** Served from the result cache or borrowed from another asker's lookup. */
  cached: boolean;
  /** Phase timings of an own upstream check; null when none was made. */
  timings: CheckCost['timings'] | null;
  /** Session and proxy of the profile lookup (labels, never secrets); null when none. */
  sessionLabel: string | null;
  proxyLabel: string | null;
}

/** The worker's parts a check goes through. */
export interface CheckingParts {
  checker: StoryChecker;
  coalescer: StoriesCoalescer<Credentials>;
  caches: Caches;
  flight: SingleFlight<StoryResult>;
  fleet: Fleet;
  metrics?: WorkerMetrics;
}

/**
 * The cheapest way to an answer, in order (DESIGN.md data flow): the result cache; else one
 * lookup shared by every concurrent asker of the username (single flight); inside it the
 * user-id cache instead of a profile request, and the stories coalescer instead of a request
 * of one's own. Successful answers are cached; failures never are.
 */
export async function checkUsername(
  parts: CheckingParts,
  username: string,
  signal: AbortSignal,
): Promise<CheckOutcome> {
  const { checker, coalescer, caches, flight } = parts;
  // One round trip for both caches; the user-id entry is used by the first profile lookup.
  const { result: hit, userId: prefetched } = await caches.lookup(username);
  parts.metrics?.cacheLookup('results', hit !== null);
  if (hit) return borrowed(hit);
  let pre: UserIdEntry | null | undefined = prefetched;

  let own: CheckResult | undefined;
  const labels = { sessionLabel: null as string | null, proxyLabel: null as string | null };
  const { value, shared } = await flight.run(
    username,
    async () => {
      own = await checker.check(username, {
        signal,
        loadStories: (id) => coalescer.load(id),
        lookupProfile: (u) => {
          // The prefetched entry serves one lookup of this username; after a stale id (a
          // rename) the checker looks again and must not see it.
          const entry = u === username ? pre : undefined;
          pre = undefined;
          return cachedLookup(parts, u, signal, labels, entry);
        },
        onStaleUserId: (u) => caches.dropUserId(u),
      });
      await caches.setResult(username, own);
      return own;
    },
    signal,
  );
  if (shared || !own) return borrowed(value);
  return { ...own, cached: false, ...labels };
}

async function cachedLookup(
  parts: CheckingParts,
  username: string,
  signal: AbortSignal,
  labels: { sessionLabel: string | null; proxyLabel: string | null },
  /** The entry already read with the result (counted there); undefined: read it now. */
  prefetched: UserIdEntry | null | undefined,
): Promise<ProfileLookup> {
  const entry = prefetched === undefined ? await parts.caches.getUserId(username) : prefetched;
  parts.metrics?.cacheLookup('userIds', entry !== null);
  if (entry) {
    return entry.found
      ? { found: true, userId: entry.userId, username, isPrivate: entry.isPrivate, cached: true }
      : { found: false, cached: true };
  }
  const p = await parts.fleet.withLease(signal, (c) => {
    labels.sessionLabel = c.sessionLabel;
    labels.proxyLabel = c.proxyLabel;
    return parts.checker.lookupProfile(username, {
      signal,
      ...(c.session ? { session: c.session } : {}),
      ...(c.proxy ? { proxy: c.proxy } : {}),
    });
  });
  const seenAtSecs = Math.floor(Date.now() / 1000);
  if (!p.found) await parts.caches.setUserId(username, { found: false, seenAtSecs });
  else if (p.userId)
    await parts.caches.setUserId(username, {
      found: true,
      userId: p.userId,
      isPrivate: p.isPrivate,
      seenAtSecs,
    });
  return p;
}

/** An answer this job did not ask for (result cache, or another asker's lookup). */
function borrowed(r: StoryResult): CheckOutcome {
  return {
    ...r,
    cached: true,
    requests: 0,
    cacheHits: 1,
    timings: null,
    sessionLabel: null,
    proxyLabel: null,
  };
}
