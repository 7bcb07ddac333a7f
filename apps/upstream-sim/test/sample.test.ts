import { readFile } from 'node:fs/promises';
import { buildDemoSample, createWorld, isValidUsername } from '../src/index.js';

const SAMPLE_FILE = new URL('../../../packages/devtools/samples/demo-200.txt', import.meta.url);

/** What an operator-facing normaliser is expected to do with a pasted line. */
function normalise(line: string): string {
  return line
    .trim()
    .toLowerCase()
    .replace(/^https?:\/\/(www\.)?instagram\.com\//, '')
    .replace(/\/+$/, '')
    .replace(/^@/, '');
}

describe('demo-200.txt', () => {
  const world = createWorld({ seed: 42, size: 1000, epochSecs: 1_767_225_600 });

  it('is what buildDemoSample produces for the seed 42 / size 1000 world', async () => {
    const text = await readFile(SAMPLE_FILE, 'utf8');
    expect(text).toBe(
      buildDemoSample(world)
        .map((l) => `${l}\n`)
        .join(''),
    );
  });

  it('holds 185 world names and 15 missing ones, all distinct and valid once normalised', async () => {
    const lines = (await readFile(SAMPLE_FILE, 'utf8')).split('\n').slice(0, -1);
    expect(lines).toHaveLength(200);
    const names = lines.map(normalise);
    expect(new Set(names).size).toBe(200);
    for (const name of names) expect(isValidUsername(name)).toBe(true);
    const statuses = names.map((n) => world.truth(n, world.epochSecs).status);
    const count = (s: string): number => statuses.filter((x) => x === s).length;
    expect(count('not_found')).toBe(15);
    expect(count('active')).toBeGreaterThan(40);
    expect(count('none')).toBeGreaterThan(40);
    expect(count('private')).toBeGreaterThan(10);
    // Some lines are dressed the way operators paste them.
    expect(lines.some((l) => l.startsWith('@'))).toBe(true);
    expect(lines.some((l) => l.startsWith('https://www.instagram.com/'))).toBe(true);
    expect(lines.some((l) => l !== l.trim() && l.trim() === l.trim().toUpperCase())).toBe(true);
    expect(lines.filter((l) => l !== normalise(l)).length).toBeGreaterThanOrEqual(6);
  });
});
