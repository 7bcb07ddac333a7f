import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

/**
 * The pool's Lua scripts (src/lua/*.lua, copied to dist/lua by the build). Each file starts
 * with a header naming its KEYS and ARGV. lib.lua's helpers are prepended to every script, and
 * rescore.lua's (the ready-set upkeep) to every script that moves a next-send time other than
 * acquire, and adaptive.lua's (what adaptive mode learns) to the two report scripts that learn: a helper costs a closure on every call, so the hot acquire script carries only what
 * it uses. They are registered with ioredis `defineCommand`, which sends EVALSHA and falls back
 * to EVAL on NOSCRIPT, so they survive `SCRIPT FLUSH` and a Redis restart without any reload step.
 */
export const SCRIPTS = {
  acquire: { file: 'acquire.lua', keys: 4, rescore: false },
  release: { file: 'release.lua', keys: 3, rescore: true },
  reportSuccess: { file: 'report-success.lua', keys: 2, rescore: true, adaptive: true },
  reportThrottled: { file: 'report-throttled.lua', keys: 2, rescore: true, adaptive: true },
  reportProxyBroken: { file: 'report-proxy-broken.lua', keys: 2, rescore: true },
  setSessionState: { file: 'set-session-state.lua', keys: 1, rescore: true },
  setProxyState: { file: 'set-proxy-state.lua', keys: 2, rescore: true },
  upsertSession: { file: 'upsert-session.lua', keys: 3, rescore: true },
  upsertProxy: { file: 'upsert-proxy.lua', keys: 2, rescore: true },
  remove: { file: 'remove.lua', keys: 5, rescore: true },
  rebind: { file: 'rebind.lua', keys: 1, rescore: true },
  snapshot: { file: 'snapshot.lua', keys: 4, rescore: false },
} as const;

/** Name of one pool script. */
export type ScriptName = keyof typeof SCRIPTS;

/** Calls one script: KEYS first (exactly as many as the script declares), then ARGV. */
export type ScriptRunner = (
  name: ScriptName,
  keys: readonly string[],
  args: readonly (string | number)[],
) => Promise<unknown>;

let sources: Map<ScriptName, string> | undefined;

/**
 * Reads every script once per process (lib.lua [+ rescore.lua] [+ adaptive.lua] + the script's
 * own file).
 */
function loadSources(): Map<ScriptName, string> {
  if (sources) return sources;
  const read = (file: string) => readFileSync(new URL(`./lua/${file}`, import.meta.url), 'utf8');
  const lib = read('lib.lua');
  const rescore = read('rescore.lua');
  const adaptive = read('adaptive.lua');
  sources = new Map(
    (Object.keys(SCRIPTS) as ScriptName[]).map((name) => [
      name,
      [
        lib,
        ...(SCRIPTS[name].rescore ? [rescore] : []),
        ...('adaptive' in SCRIPTS[name] ? [adaptive] : []),
        read(SCRIPTS[name].file),
      ].join('\n'),
    ]),
  );
  return sources;
}

/** ioredis command name of a script; namespaced so it never clashes with BullMQ's commands. */
const commandName = (name: ScriptName) => `storycheckPool_${name}`;

/**
 * Registers the scripts on a connection (idempotent) and returns a typed runner. Command
 * names are namespaced (`storycheckPool_*`) so they never clash with BullMQ's.
 */
export function defineScripts(redis: Redis): ScriptRunner {
  const commands = redis as unknown as Record<
    string,
    (...args: (string | number)[]) => Promise<unknown>
  >;
  for (const [name, source] of loadSources()) {
    if (typeof commands[commandName(name)] !== 'function')
      redis.defineCommand(commandName(name), { numberOfKeys: SCRIPTS[name].keys, lua: source });
  }
  return (name, keys, args) => {
    if (keys.length !== SCRIPTS[name].keys)
      throw new Error(`script ${name} takes ${SCRIPTS[name].keys} keys, got ${keys.length}`);
    return commands[commandName(name)]!.call(redis, ...keys, ...args);
  };
}
