/** @storycheck/upstream-sim: a deterministic simulated Instagram web API for tests, demos and benchmarks. */
export { createWorld, activeItems, reelVisible, truthOf, STORY_LIFETIME_SECS } from './world.js';
export type { World, WorldOptions, SimUser, StoryItem, Truth, TruthStatus } from './world.js';
export { startSim, PATH_KINDS } from './server.js';
export type { SimOptions, SimServer, SimStats, RequestLogEntry, PathKind } from './server.js';
export { buildDemoSample } from './make-sample.js';
export type { DemoSampleOptions } from './make-sample.js';
export { isValidUsername, USERNAME_RE } from './names.js';
export { RawNumber, stringifyJson } from './raw-json.js';
export type { JsonValue } from './raw-json.js';
export { sessionLabel } from './payloads.js';
