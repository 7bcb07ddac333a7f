export * from './errors.js';
export { classifyAnswer, retryAfterMs, type AnswerFacts, type Classified } from './classify.js';
export {
  parseCurrentUser,
  parseJsonKeepingIds,
  parseProfile,
  parseReelsMedia,
  type Profile,
  type StoryState,
} from './parse.js';
export {
  StoryChecker,
  checkSessionLocally,
  type LocalSessionVerdict,
  IG_APP_ID,
  DEFAULT_USER_AGENT,
  type CheckCost,
  type CheckOptions,
  type CheckResult,
  type PhaseTiming,
  type ProxyTarget,
  type SessionCookies,
  type StoryCheckerOptions,
} from './checker.js';
export { StoriesCoalescer, type CoalescerOptions } from './coalescer.js';
export { storyResult, type ProfileLookup } from './checker.js';
export {
  ALLOW_PRIVATE_HINT,
  addressKinds,
  canonicalHost,
  guardedLookup,
  hostProblem,
  proxyUrlProblem,
  specialAddressKind,
  type LookupFunction,
} from './proxy-address.js';
