/**
 * Key layout of the caches, all under STORYCHECK_PREFIX:
 *   <prefix>:cache:uid:<username>   user-id entry (string, TTL USER_ID_CACHE_TTL / not-found TTL)
 *   <prefix>:cache:res:<username>   last result (string, TTL STORY_CACHE_TTL)
 *   <prefix>:cache:sf:<username>    single-flight lock: the leader's token (PX)
 *   <prefix>:cache:sfr:<token>      the leader's answer for its waiters (PX)
 *   <prefix>:cache:stats            hit/miss counters (hash) and `since`
 */
export function cacheKeys(prefix: string) {
  return {
    uid: (u: string) => `${prefix}:cache:uid:${u}`,
    res: (u: string) => `${prefix}:cache:res:${u}`,
    flight: (u: string) => `${prefix}:cache:sf:${u}`,
    flightResult: (token: string) => `${prefix}:cache:sfr:${token}`,
    stats: `${prefix}:cache:stats`,
    pattern: (kind: 'uid' | 'res') => `${prefix}:cache:${kind}:*`,
  };
}
