/** @storycheck/upstream-sim: a deterministic simulated Instagram web API for tests, demos and benchmarks. */
export { createWorld, activeItems, reelVisible, truthOf, STORY_LIFETIME_SECS } from './world.js';
export type { World, WorldOptions, SimUser, StoryItem, Truth, TruthStatus } from './world.js';
export { startSim, PATH_KINDS } from './server.js';
export type {
  SimOptions,
  SimServer,
  SimStats,
  PartyStats,
  RequestLogEntry,
  PathKind,
  Outcome,
  SessionView,
} from './server.js';
export {
  SCENARIOS,
  SCENARIO_KEYS,
  SESSION_STATES,
  THROTTLE_STYLES,
  FAULT_KINDS,
  parseScenario,
  loadScenario,
  mergeScenario,
  resolveSettings,
} from './scenario.js';
export type {
  Scenario,
  ScenarioName,
  Settings,
  SessionSpec,
  SessionState,
  BudgetSpec,
  BudgetSettings,
  Budget,
  ThrottleStyle,
  LoggedOutStyle,
  NotFoundStyle,
  PrivateStyle,
  FaultKind,
} from './scenario.js';
export { BudgetBook } from './budget.js';
export type { BudgetVerdict } from './budget.js';
export { startProxies, egressAddresses, PROXY_BROKEN_MODES } from './proxy.js';
export type {
  ProxyPool,
  ProxyPoolOptions,
  ProxyInfo,
  ProxyStats,
  ProxyBrokenMode,
} from './proxy.js';
export { parseRate, parseDurationMs, formatRate } from './units.js';
export type { Rate } from './units.js';
export { buildDemoSample } from './make-sample.js';
export type { DemoSampleOptions } from './make-sample.js';
export { isValidUsername, USERNAME_RE } from './names.js';
export { RawNumber, stringifyJson } from './raw-json.js';
export type { JsonValue } from './raw-json.js';
export { sessionLabel } from './payloads.js';
