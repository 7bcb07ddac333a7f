// `@storycheck/pool/admin`: the pool's administration, apart from the limiter so that importing
// the pool (the board, the limiter's hammer processes) does not load Postgres, zod and the HTTP
// client. Used by the CLI (`PoolAdmin`) and the worker (`syncFromStore`, `mirrorToStore`).
export {
  PoolAdmin,
  type ImportCount,
  type ImportInput,
  type PoolAdminOptions,
  type ProxyView,
  type SessionView,
} from './pool-admin.js';
export {
  PoolInputError,
  parseProxyLine,
  parseProxyList,
  parseSessionList,
  validateSessionEntry,
  type ProxyLine,
  type SessionEntry,
} from './import.js';
export { mirrorToStore, syncFromStore } from './sync.js';
export { type SessionCheck } from './session-check.js';
