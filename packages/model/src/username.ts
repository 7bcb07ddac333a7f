/**
 * The username rule (CONTRACT.md), written once: the producer refuses input lines by it and the
 * job catalog's payload schema (packages/queue) accepts jobs by it.
 */

/** Most characters in a username. */
export const USERNAME_MAX_LENGTH = 30;

/** Why a string is not a username: one short phrase (docs/input.md lists each). */
export interface UsernameProblem {
  reason: string;
}

/**
 * Checks a normalised name (trimmed, `@` and URL stripped, lower-cased) against the rule: 1–30
 * of a-z 0-9 . _, not starting or ending with `.`, no `..`. Returns the first rule it breaks, in
 * that order, or null for a username. Hot (every input line of an enqueue): no allocation for
 * a valid name.
 */
export function usernameProblem(s: string): UsernameProblem | null {
  if (s.length === 0) return { reason: 'empty' };
  if (s.length > USERNAME_MAX_LENGTH)
    return { reason: `too long (${s.length} characters, at most 30)` };
  const bad = /[^a-z0-9._]/.exec(s);
  if (bad) {
    const ch = bad[0];
    const code = ch.codePointAt(0)!;
    const shown =
      code < 32 || code > 126 ? `U+${code.toString(16).toUpperCase().padStart(4, '0')}` : `'${ch}'`;
    return { reason: `invalid character ${shown} (allowed: a-z 0-9 . _)` };
  }
  if (s.startsWith('.')) return { reason: "starts with '.'" };
  if (s.endsWith('.')) return { reason: "ends with '.'" };
  if (s.includes('..')) return { reason: "contains '..'" };
  return null;
}

/** True when `s` is a username by {@link usernameProblem}'s rule. */
export function isUsername(s: string): boolean {
  return usernameProblem(s) === null;
}
