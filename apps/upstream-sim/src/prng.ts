/**
 * A small seeded pseudo-random generator. The simulated world must be identical, byte for byte,
 * for the same seed, so nothing in it may come from `Math.random`.
 */

/**
 * mulberry32: 32-bit state, fast, good enough statistical quality for fake data (it is not a
 * cryptographic generator). Chosen because it is tiny and its output is identical on every
 * platform and Node version (only 32-bit integer arithmetic, `Math.imul`).
 */
export class Rng {
  private state: number;

  /** @param seed any integer; only its low 32 bits are used. */
  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Next float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform integer in [min, max], both inclusive. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** True with probability `p` (0…1). */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** One element of a non-empty array, uniformly. */
  pick<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.next() * items.length)];
    if (item === undefined) throw new Error('Rng.pick: empty array');
    return item;
  }

  /** A string of `count` decimal digits; the first is never 0 (so its length is exact). */
  digits(count: number): string {
    let out = String(this.int(1, 9));
    for (let i = 1; i < count; i++) out += String(this.int(0, 9));
    return out;
  }

  /** Fisher–Yates shuffle into a new array; the input is left untouched. */
  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(0, i);
      const a = out[i] as T;
      out[i] = out[j] as T;
      out[j] = a;
    }
    return out;
  }
}
