export {
  Caches,
  encodeResult,
  decodeResult,
  type CacheStats,
  type CacheTtls,
  type UserIdEntry,
  type CacheName,
} from './caches.js';
export { SingleFlight, type SingleFlightOptions } from './single-flight.js';
export { cacheKeys } from './keys.js';
