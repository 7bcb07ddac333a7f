import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { addressKinds } from '@storycheck/story-checker';

/**
 * docs/input.md is the table of every input rule with its message and exit code. This test
 * reads the messages out of the code (every `new InputError(…)`, `new UsageError(…)`, … and
 * every rejected-line `reason:`/`problem:`) and fails when one is missing from the tables, when
 * a table message is no longer in the code, or when an exit code is wrong.
 */

const root = new URL('../../../', import.meta.url);
const read = (path: string) => readFileSync(fileURLToPath(new URL(path, root)), 'utf8');

/**
 * Where messages are made, and which constructors (or keys: the session fields of
 * packages/pool's `REFUSED` table, the `message` of a zod issue) make them there.
 */
const SOURCES: Array<{ path: string; makers: string[]; keys?: string[]; exit: string }> = [
  { path: 'apps/producer/src/input.ts', makers: ['InputError'], exit: '2' },
  { path: 'apps/producer/src/commands/enqueue.ts', makers: ['UsageError'], exit: '2' },
  { path: 'apps/producer/src/commands/pool.ts', makers: ['UsageError'], exit: '2' },
  {
    path: 'packages/pool/src/admin/import.ts',
    makers: ['PoolInputError', 'Error'],
    keys: ['label', 'sessionid', 'ds_user_id', 'proxy', 'rate', 'burst', 'message'],
    exit: '2',
  },
  { path: 'packages/pool/src/admin/pool-admin.ts', makers: ['PoolInputError'], exit: '2' },
  { path: 'apps/producer/src/cli.ts', makers: ['InvalidArgumentError'], exit: '2' },
  { path: 'packages/story-checker/src/proxy-address.ts', makers: ['ProxyAddressError'], exit: '—' },
];
const REASON_SOURCES = ['apps/producer/src/input.ts', 'packages/model/src/username.ts'];

/**
 * The text of the string or template literal at `src[start]`, with every `${…}` as `…`;
 * undefined when no literal starts there.
 */
function literalAt(src: string, start: number): string | undefined {
  const q = src[start];
  if (q !== '`' && q !== "'" && q !== '"') return undefined;
  let text = '';
  let i = start + 1;
  const skipString = (at: number): number => {
    const qq = src[at];
    let j = at + 1;
    while (src[j] !== qq) {
      if (src[j] === '\\') j += 2;
      else if (qq === '`' && src[j] === '$' && src[j + 1] === '{') j = skipExpr(j + 2);
      else j++;
    }
    return j + 1;
  };
  /** Skips a `${ … }` body from `at` (just after `${`); returns the index after its `}`. */
  const skipExpr = (at: number): number => {
    let depth = 1;
    let j = at;
    while (depth > 0) {
      const c = src[j]!;
      if (c === '`' || c === "'" || c === '"') {
        j = skipString(j);
        continue;
      }
      if (c === '{') depth++;
      else if (c === '}') depth--;
      j++;
    }
    return j;
  };
  while (src[i] !== q) {
    if (src[i] === '\\') {
      text += src[i + 1];
      i += 2;
    } else if (q === '`' && src[i] === '$' && src[i + 1] === '{') {
      i = skipExpr(i + 2);
      text += '…';
    } else text += src[i++];
  }
  return text;
}

function messagesIn(src: string, pattern: RegExp): string[] {
  const out: string[] = [];
  for (const m of src.matchAll(pattern)) {
    const text = literalAt(src, m.index + m[0].length);
    if (text !== undefined) out.push(text);
  }
  return out;
}

const fromCode = SOURCES.flatMap(({ path, makers, keys, exit }) =>
  [
    ...messagesIn(read(path), new RegExp(`new (?:${makers.join('|')})\\(\\s*`, 'g')),
    ...(keys ? messagesIn(read(path), new RegExp(`\\b(?:${keys.join('|')}): `, 'g')) : []),
  ].map((text) => ({ text, exit, path })),
);
const reasons = REASON_SOURCES.flatMap((p) => messagesIn(read(p), /(?:reason|problem): /g));

const doc = read('docs/input.md');
const rows = doc
  .split('\n')
  .filter((l) => l.startsWith('|') && !/^\|\s*-/.test(l))
  .map((l) =>
    l
      .slice(1, -1)
      .split(/(?<!\\)\|/)
      .map((c) => c.trim()),
  );
const codeIn = (cell: string | undefined) =>
  [...(cell ?? '').matchAll(/`([^`]+)`/g)].map((m) => m[1]!);

describe('docs/input.md', () => {
  it('finds the messages in the code (the scanner works)', () => {
    expect(fromCode.length).toBeGreaterThan(40);
    expect(fromCode.map((m) => m.text)).toContain('no batch …');
    expect(reasons).toContain("contains '..'");
  });

  it.each(fromCode.map((m) => [m.text, m.exit, m.path] as const))(
    'lists %j with exit %s (%s)',
    (text, exit) => {
      const row = rows.find((r) => r.length >= 3 && codeIn(r[1]).includes(text));
      expect(row).toBeDefined();
      expect(row![row!.length - 1]).toBe(exit);
    },
  );

  it.each(reasons.map((r) => [r]))('lists the rejected-line reason %j', (reason) => {
    expect(rows.some((r) => r.length === 2 && codeIn(r[1])[0] === reason)).toBe(true);
  });

  it('has no message that the code no longer makes', () => {
    const made = new Set([...fromCode.map((m) => m.text), ...reasons]);
    const stale = rows
      .filter((r) => r.length >= 2 && r[0] !== 'rule')
      .map((r) => codeIn(r[1])[0])
      .filter((m): m is string => m !== undefined && !made.has(m));
    expect(stale).toEqual([]);
  });

  it('lists every kind of refused proxy address, and no other', () => {
    const listed = rows
      .filter((r) => r.length === 1 && r[0] !== 'what')
      .map((r) => codeIn(r[0])[0]);
    expect(listed.sort()).toEqual([...addressKinds()].sort());
  });
});
