/**
 * One jest run over every app and package, so CI prints one total.
 * TypeScript is compiled by swc in ESM mode (NODE_OPTIONS=--experimental-vm-modules).
 * Workspace packages are imported through their `exports`, never by path, under the custom
 * condition `@storycheck/source` (each package.json maps it to src/index.ts; jest.resolver.cjs
 * adds it; tsc's typecheck uses it too, tsconfig.test.json `customConditions`): in-process imports
 * need no build. Plain node does not know the condition, so the binaries the tests spawn
 * (apps/*\/dist/main.js) and production run the built dist/: those tests still need
 * `turbo run build` first (`npm test` builds before it runs jest).
 * @type {import('jest').Config}
 */
export default {
  testEnvironment: 'node',
  // Adds the `@storycheck/source` condition, except for imports made by built dist/ files.
  resolver: '<rootDir>/jest.resolver.cjs',
  roots: ['<rootDir>/apps', '<rootDir>/packages'],
  testMatch: ['**/test/**/*.test.ts'],
  // The fault-injection suite runs on its own: `npm run test:faults` (jest.faults.config.js).
  testPathIgnorePatterns: ['/node_modules/', '/test/faults/'],
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      { jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'es6' } },
    ],
  },
  testTimeout: 60_000,
  maxWorkers: 2,
};
