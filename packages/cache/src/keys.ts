import { slotTag } from '@storycheck/config';

/**
 * Key layout of the caches, all under STORYCHECK_PREFIX. The per-username keys carry the
 * username as their Redis Cluster hash tag (config `slotTag`): the entries of one username
 * share a slot (one MGET reads both caches; one script publishes and releases a flight), and
 * different usernames spread over the whole cluster.
 *   <prefix>:cache:uid:{<username>}            user-id entry (string, TTL USER_ID_CACHE_TTL / not-found TTL)
 *   <prefix>:cache:res:{<username>}            last result (string, TTL STORY_CACHE_TTL)
 *   <prefix>:cache:sf:{<key>}                  single-flight lock: the leader's token (PX)
 *   <prefix>:cache:sfr:{<key>}:<token>         the leader's answer for its waiters (PX)
 *   <prefix>:cache:stats                       hit/miss counters (hash) and `since`
 * Before the Cluster support (issue 19) the per-username keys had no braces: the old entries
 * are simply not found (a cold cache) and expire by their TTL; `storycheck cache clear`
 * removes old and new alike (its patterns match both).
 */
export function cacheKeys(prefix: string) {
  return {
    uid: (u: string) => `${prefix}:cache:uid:${slotTag(u)}`,
    res: (u: string) => `${prefix}:cache:res:${slotTag(u)}`,
    flight: (key: string) => `${prefix}:cache:sf:${slotTag(key)}`,
    /** Same slot as `flight(key)`, so publish-and-release is one script. */
    flightResult: (key: string, token: string) => `${prefix}:cache:sfr:${slotTag(key)}:${token}`,
    stats: `${prefix}:cache:stats`,
    pattern: (kind: 'uid' | 'res') => `${prefix}:cache:${kind}:*`,
  };
}
