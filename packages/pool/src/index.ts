export {
  createPool,
  intervalUs,
  PoolError,
  type AcquireResult,
  type AdaptiveOptions,
  type BackoffOptions,
  type CircuitOptions,
  type Lease,
  type Pool,
  type PoolDefaults,
  type PoolOptions,
  type PoolSnapshot,
  type ProxyInfo,
  type ProxyInput,
  type ProxyState,
  type ProxyStatus,
  type SessionDeadKind,
  type SessionInfo,
  type SessionInput,
  type SessionState,
  type SessionStatus,
  type ThrottleResult,
  type UpsertOptions,
} from './pool.js';
export { poolKeys, type PoolKeys } from './keys.js';
export {
  COLLECT_TIMEOUT_MS,
  FleetGauges,
  PROXY_STATUSES,
  SESSION_STATUSES,
  withTimeout,
  type JobCountSource,
} from './gauges.js';
export {
  SECRET_FORMAT,
  SecretError,
  decryptSecret,
  encryptSecret,
  generateSecretKey,
  parseSecretKey,
  parseSecretKeys,
  reencryptSecret,
  secretKeyId,
  type SecretKey,
} from './secrets.js';
export { burstReserve, openPool, poolDefaults } from './defaults.js';
export {
  decryptSessionCookies,
  proxyUrlWithPassword,
  type DecryptedCookies,
} from './credentials.js';
export {
  createTraffic,
  DIRECT,
  TRAFFIC_BUCKET_MS,
  TRAFFIC_TTL_S,
  type Traffic,
  type TrafficBucket,
} from './traffic.js';
