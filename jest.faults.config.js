import base from './jest.config.js';

/**
 * The fault-injection suite (`npm run test:faults`, docs/architecture.md "Faults"): the files
 * under apps/*\/test/faults/, one at a time (each starts its own Redis, PostgreSQL, simulator
 * and workers, and kills them on purpose), with long per-test deadlines.
 * @type {import('jest').Config}
 */
export default {
  ...base,
  roots: ['<rootDir>/apps'],
  testMatch: ['**/test/faults/**/*.test.ts'],
  // The base config leaves the fault files out of `npm test`; here they are the suite.
  testPathIgnorePatterns: ['/node_modules/'],
  testTimeout: 600_000,
  maxWorkers: 1,
  // A killed server can leave a socket jest waits on; every process is killed in afterAll.
  forceExit: true,
};
