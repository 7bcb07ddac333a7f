/**
 * What Docker would do with docker-compose.yml, the Dockerfile and .env, computed without Docker:
 * .env parsing, compose variable interpolation, the final image's ENTRYPOINT/CMD/ENV/HEALTHCHECK,
 * each service's argv, and the `docker compose …` lines of the README. compose.test.ts uses it to
 * start every service's command as a local process; where `docker-compose` is installed, the
 * test cross-checks this interpolation against `docker-compose config`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';

/** Repository root (the image's WORKDIR /app is laid out like it). */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export const readRepoFile = (path: string): string => readFileSync(join(ROOT, path), 'utf8');

/** One compose service, as much of the compose spec as these files use. */
export interface ComposeService {
  image?: string;
  build?: unknown;
  command?: string[] | string;
  entrypoint?: string[] | string;
  environment?: Record<string, string | number | boolean | null>;
  ports?: string[];
  volumes?: string[];
  profiles?: string[];
  depends_on?: Record<string, { condition?: string }>;
  healthcheck?: {
    test?: string[] | string;
    disable?: boolean;
    interval?: string;
    timeout?: string;
    retries?: number;
    start_period?: string;
  };
  stop_grace_period?: string;
  restart?: string;
  container_name?: string;
  scale?: number;
}

export interface ComposeFile {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
}

/** Parses a .env file the way compose does for the simple `KEY=value` lines these files use. */
export function parseDotenv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) throw new Error(`.env: cannot parse line "${line}"`);
    let value = m[2]!.trim();
    const quoted = /^(['"])(.*)\1$/.exec(value);
    if (quoted) value = quoted[2]!;
    out[m[1]!] = value;
  }
  return out;
}

/**
 * Compose variable interpolation: `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
 * `${VAR:?error}`, `${VAR?error}`. A missing required variable throws with compose's message.
 */
export function interpolate(value: string, vars: Record<string, string | undefined>): string {
  return value.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (whole, braced: string | undefined, op: string | undefined, arg: string | undefined, bare) => {
      if (whole === '$$') return '$';
      const name = (braced ?? bare) as string;
      const v = vars[name];
      const unset = op?.startsWith(':') ? v === undefined || v === '' : v === undefined;
      if (op === ':-' || op === '-') return unset ? (arg ?? '') : (v ?? '');
      if (op === ':?' || op === '?') {
        if (unset) throw new Error(`required variable ${name} is missing a value: ${arg ?? ''}`);
        return v ?? '';
      }
      return v ?? '';
    },
  );
}

function interpolateDeep(node: unknown, vars: Record<string, string | undefined>): unknown {
  if (typeof node === 'string') return interpolate(node, vars);
  if (Array.isArray(node)) return node.map((n) => interpolateDeep(n, vars));
  if (node && typeof node === 'object') {
    return Object.fromEntries(
      Object.entries(node).map(([k, v]) => [k, interpolateDeep(v, vars)] as const),
    );
  }
  return node;
}

/** docker-compose.yml parsed (anchors and `<<` merges resolved), without interpolation. */
export function readComposeRaw(): ComposeFile {
  return parseYaml(readRepoFile('docker-compose.yml'), { merge: true }) as ComposeFile;
}

/** docker-compose.yml parsed and interpolated with `vars` (extension fields `x-*` dropped). */
export function loadCompose(vars: Record<string, string | undefined>): ComposeFile {
  const raw = readComposeRaw() as unknown as Record<string, unknown>;
  const kept = Object.fromEntries(Object.entries(raw).filter(([k]) => !k.startsWith('x-')));
  return interpolateDeep(kept, vars) as ComposeFile;
}

/** Every `${VAR…}` / `$VAR` a text refers to. */
export function referencedVariables(text: string): Set<string> {
  const out = new Set<string>();
  for (const m of text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)|\$([A-Za-z_][A-Za-z0-9_]*)/g)) {
    out.add((m[1] ?? m[2])!);
  }
  return out;
}

/** The environment entries of a service as strings (compose passes values as strings). */
export function serviceEnv(s: ComposeService): Record<string, string> {
  return Object.fromEntries(
    Object.entries(s.environment ?? {}).map(([k, v]) => [k, v === null ? '' : String(v)]),
  );
}

/** The final stage of the Dockerfile: what a container of the image starts with. */
export interface ImageSpec {
  stages: string[];
  workdir: string;
  user: string | undefined;
  env: Record<string, string>;
  entrypoint: string[];
  cmd: string[];
  healthcheck: string[] | undefined;
  /** Every instruction of the final stage, continuation lines joined. */
  finalInstructions: string[];
  /** Every instruction of every stage. */
  allInstructions: string[];
}

export function readImage(): ImageSpec {
  const text = readRepoFile('Dockerfile').replace(/\\\r?\n/g, ' ');
  const instructions = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const froms = instructions.map((l, i) => (/^FROM\s/i.test(l) ? i : -1)).filter((i) => i >= 0);
  const final = instructions.slice(froms.at(-1) ?? 0);
  const spec: ImageSpec = {
    stages: froms.map((i) => instructions[i]!),
    workdir: '/',
    user: undefined,
    env: {},
    entrypoint: [],
    cmd: [],
    healthcheck: undefined,
    finalInstructions: final,
    allInstructions: instructions,
  };
  const execForm = (rest: string, what: string): string[] => {
    const json = /(\[.*\])\s*$/.exec(rest);
    if (!json) throw new Error(`Dockerfile ${what} must use the exec (JSON) form: ${rest}`);
    return JSON.parse(json[1]!) as string[];
  };
  for (const line of final) {
    const [, word, rest = ''] = /^(\w+)\s*(.*)$/.exec(line) ?? [];
    switch (word?.toUpperCase()) {
      case 'WORKDIR':
        spec.workdir = rest;
        break;
      case 'USER':
        spec.user = rest;
        break;
      case 'ENV':
        for (const m of rest.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S*)/g)) {
          spec.env[m[1]!] = m[2]!.replace(/^"(.*)"$/, '$1');
        }
        break;
      case 'ENTRYPOINT':
        spec.entrypoint = execForm(rest, 'ENTRYPOINT');
        break;
      case 'CMD':
        spec.cmd = execForm(rest, 'CMD');
        break;
      case 'HEALTHCHECK': {
        const m = /\bCMD\s+(\[.*\])\s*$/.exec(rest);
        spec.healthcheck = m ? (JSON.parse(m[1]!) as string[]) : undefined;
        break;
      }
    }
  }
  return spec;
}

const asArray = (v: string[] | string | undefined): string[] | undefined =>
  v === undefined ? undefined : Array.isArray(v) ? v.map(String) : v.split(/\s+/).filter(Boolean);

/**
 * What Docker executes for a service: its entrypoint (or the image's) followed by its command
 * (or the image's CMD — which a service-level entrypoint resets, as in Docker), then `args`
 * instead of the command for `docker compose run <service> args…`.
 */
export function containerArgv(s: ComposeService, image: ImageSpec, args?: string[]): string[] {
  const entrypoint = asArray(s.entrypoint) ?? image.entrypoint;
  const cmd = args ?? asArray(s.command) ?? (s.entrypoint === undefined ? image.cmd : []);
  return [...entrypoint, ...cmd];
}

/**
 * The process behind an init: `tini -- node …` runs `node …` as tini's child, so locally the
 * test runs the child directly. Anything else is returned unchanged.
 */
export function withoutInit(argv: string[]): string[] {
  const i = argv.indexOf('--');
  if (i > 0 && /(^|\/)tini$/.test(argv[0]!)) return argv.slice(i + 1);
  return argv;
}

/** A Go-style duration as docker compose accepts it (`30s`, `1m30s`, `1h`) in milliseconds. */
export function composeDurationMs(text: string): number {
  const units: Record<string, number> = {
    ns: 1e-6,
    us: 1e-3,
    ms: 1,
    s: 1_000,
    m: 60_000,
    h: 3_600_000,
  };
  let total = 0;
  let rest = text.trim();
  if (rest === '') throw new Error('empty duration');
  while (rest !== '') {
    const m = /^(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)/.exec(rest);
    if (!m) throw new Error(`not a compose duration: "${text}"`);
    total += Number(m[1]) * units[m[2]!]!;
    rest = rest.slice(m[0].length);
  }
  return total;
}

/** One `docker compose …` line of the README, split into words (comments and `> file` apart). */
export interface ReadmeComposeLine {
  line: string;
  words: string[];
  redirect: string | undefined;
}

/** The `docker compose` lines of the README's "Docker compose" section, in order. */
export function readmeComposeLines(): ReadmeComposeLine[] {
  const readme = readRepoFile('README.md');
  const start = readme.indexOf('\n## Docker compose');
  if (start < 0) throw new Error('README.md has no "## Docker compose" section');
  const next = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, next < 0 ? undefined : next);
  const out: ReadmeComposeLine[] = [];
  for (const block of section.matchAll(/```sh\n([\s\S]*?)```/g)) {
    for (const raw of block[1]!.split('\n')) {
      const line = raw.replace(/\s+#.*$/, '').trim();
      if (!line.startsWith('docker compose ')) continue;
      const [cmd, redirect] = line.split(/\s+>\s+/);
      out.push({ line, words: cmd!.trim().split(/\s+/).slice(2), redirect: redirect?.trim() });
    }
  }
  return out;
}

/**
 * The variables of the config schema (packages/config/src/index.ts, `envSchema`), read from the
 * source: the schema is not exported, and this list is what .env.example and compose must cover.
 */
export function configVariables(): string[] {
  const src = readRepoFile('packages/config/src/index.ts');
  const start = src.indexOf('const envSchema = z.object({');
  const end = src.indexOf('\n});', start);
  if (start < 0 || end < 0) throw new Error('cannot find envSchema in packages/config');
  return [...src.slice(start, end).matchAll(/^ {2}([A-Z][A-Z0-9_]*):/gm)].map((m) => m[1]!);
}
