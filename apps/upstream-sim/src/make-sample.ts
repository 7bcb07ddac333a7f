/**
 * Builds the demo input list (packages/devtools/samples/demo-200.txt): usernames an operator
 * might paste, drawn from the world so that every answer can be checked against its truth.
 */
import { uniqueUsername } from './names.js';
import { Rng } from './prng.js';
import type { World } from './world.js';

/** Options for {@link buildDemoSample}. */
export interface DemoSampleOptions {
  /** Number of lines. Default 200. */
  total?: number;
  /** How many of them are valid names absent from the world. Default 15. */
  missing?: number;
  /** How many lines are dressed as operators paste them ("@name", " NAME ", profile URL). Default 9. */
  dressed?: number;
}

const DRESSINGS: ReadonlyArray<(name: string) => string> = [
  (name) => `@${name}`,
  (name) => ` ${name.toUpperCase()} `,
  (name) => `https://www.instagram.com/${name}/`,
];

/**
 * Lines of the demo sample: `total − missing` world usernames taken at an even stride over the
 * generation order (so they cover active, none and private accounts), plus `missing` valid names
 * the world does not have, shuffled; a few are dressed. Every line normalises (trim, lowercase,
 * strip "@" and the profile URL) to a distinct valid username. Deterministic for a given world.
 */
export function buildDemoSample(world: World, opts: DemoSampleOptions = {}): string[] {
  const total = opts.total ?? 200;
  const missing = opts.missing ?? 15;
  const dressed = opts.dressed ?? 9;
  const existing = total - missing;
  const names = world.usernames();
  if (existing < 0 || existing > names.length) {
    throw new RangeError(`need ${existing} existing names, the world has ${names.length}`);
  }
  const rng = new Rng(world.seed ^ 0x0de70200);
  const picked: string[] = [];
  for (let i = 0; i < existing; i++) {
    const name = names[Math.floor((i * names.length) / existing)];
    if (name !== undefined) picked.push(name);
  }
  const taken = new Set(names);
  for (let i = 0; i < missing; i++) picked.push(uniqueUsername(rng, taken));
  const lines = rng.shuffle(picked);
  const dressedAt = rng.shuffle(lines.map((_, i) => i)).slice(0, dressed);
  dressedAt.forEach((index, n) => {
    const dress = DRESSINGS[n % DRESSINGS.length];
    const line = lines[index];
    if (dress && line !== undefined) lines[index] = dress(line);
  });
  return lines;
}
