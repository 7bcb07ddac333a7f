import fc from 'fast-check';
import {
  CHECK_STATUSES,
  FINAL_STATUSES,
  ITEM_STATUSES,
  isUsername,
  usernameProblem,
} from '../src/index.js';

/** CONTRACT.md's username rule as one regular expression, the reference for the property. */
const CONTRACT_RULE = /^(?!\.)(?!.*\.$)(?!.*\.\.)[a-z0-9._]{1,30}$/;

/** Strings near the rule's edges: mostly its own characters, dots, some others, any length. */
const nameLike = fc.oneof(
  fc.string({ unit: fc.constantFrom(...'ab9._'), maxLength: 34 }),
  fc.string({ unit: fc.constantFrom(...'az09._-A é\u0000\uFFFD'), maxLength: 34 }),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 8 }),
);

describe('the username rule', () => {
  it('accepts exactly what the CONTRACT regex accepts', () => {
    fc.assert(
      fc.property(nameLike, (s) => {
        expect(isUsername(s)).toBe(CONTRACT_RULE.test(s));
      }),
      { numRuns: 5_000 },
    );
  });

  it('names the first rule broken, in the documented order', () => {
    const reason = (s: string) => usernameProblem(s)?.reason;
    expect(reason('')).toBe('empty');
    expect(reason('a'.repeat(31))).toBe('too long (31 characters, at most 30)');
    expect(reason('a'.repeat(30))).toBeUndefined();
    expect(reason('.a-b')).toBe("invalid character '-' (allowed: a-z 0-9 . _)");
    expect(reason('Anna')).toBe("invalid character 'A' (allowed: a-z 0-9 . _)");
    expect(reason('a\tb')).toBe('invalid character U+0009 (allowed: a-z 0-9 . _)');
    expect(reason('é')).toBe('invalid character U+00E9 (allowed: a-z 0-9 . _)');
    expect(reason('.a.')).toBe("starts with '.'");
    expect(reason('a.')).toBe("ends with '.'");
    expect(reason('a..b')).toBe("contains '..'");
    expect(reason('anna.k_1')).toBeUndefined();
  });
});

describe('the result statuses', () => {
  it('are declared once and derived: checks ⊂ final ⊂ item', () => {
    expect(CHECK_STATUSES).toEqual(['active', 'none', 'private', 'not_found']);
    expect(FINAL_STATUSES).toEqual([...CHECK_STATUSES, 'failed']);
    expect(ITEM_STATUSES).toEqual(['pending', ...FINAL_STATUSES]);
  });
});
