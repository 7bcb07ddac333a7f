import { Readable } from 'node:stream';
import fc from 'fast-check';
import {
  HEADER_WORDS,
  InputError,
  normaliseUsername,
  precheckInput,
  readEntries,
  scanText,
  type InputFormat,
  type ReadOptions,
} from '../src/input.js';

/** The input as a stream of small chunks, so parsers see values split across reads. */
const streamOf = (content: string | Uint8Array, chunk = 7) => {
  const buf = typeof content === 'string' ? Buffer.from(content, 'utf8') : Buffer.from(content);
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; i += chunk) parts.push(buf.subarray(i, i + chunk));
  return Readable.from(parts);
};

/**
 * What enqueue does with an input, in process: the whole-input checks, then every entry
 * normalised. Returns the accepted names in order (duplicates dropped) or the one-line refusal.
 */
async function enqueueView(
  content: string | Uint8Array,
  format: InputFormat = 'auto',
  opts: ReadOptions = {},
  chunk = 7,
): Promise<{ names: string[] } | { refused: string }> {
  try {
    await precheckInput(() => streamOf(content, chunk), format, opts);
    const names: string[] = [];
    for await (const e of readEntries(streamOf(content, chunk), format, opts)) {
      if (e.problem) continue;
      const n = normaliseUsername(e.input);
      if (n.ok && !names.includes(n.username)) names.push(n.username);
    }
    return names.length ? { names } : { refused: 'no usernames in input' };
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    expect(e.message).not.toContain('\n');
    return { refused: e.message };
  }
}

describe('not text', () => {
  it.each([
    ['a NUL byte', Buffer.from('anna\nb\u0000b\n'), /^input is not text \(a NUL byte at byte 7\)$/],
    ['UTF-16', Buffer.from('\ufeffanna\n', 'utf16le'), /^input is UTF-16 text; save it as UTF-8$/],
    [
      'Latin-1',
      Buffer.from('josé\nrené\n', 'latin1'),
      /^input is not UTF-8 text \(2 of 10 bytes are invalid UTF-8 or control characters\)$/,
    ],
  ])('%s is refused with one line', async (_what, bytes, message) => {
    await expect(scanText(streamOf(bytes))).rejects.toThrow(message);
  });

  it('random bytes are always refused, whatever their length and chunking', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 100, maxLength: 5_000 }),
        fc.integer({ min: 1, max: 4_096 }),
        async (bytes, chunk) => {
          await expect(scanText(streamOf(bytes, chunk))).rejects.toThrow(/^input is (not|UTF-16)/);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('any UTF-8 text is accepted, however its characters are split across chunks', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc
          .string({ unit: 'grapheme', maxLength: 300 })
          // Control characters other than whitespace count as not text.
          .filter(
            (s) => ![...s].some((c) => (c < ' ' && !'\t\n\v\f\r'.includes(c)) || c === '\u007f'),
          ),
        fc.integer({ min: 1, max: 5 }),
        async (text, chunk) => {
          await expect(scanText(streamOf(text, chunk))).resolves.toBeUndefined();
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a few stray bytes in a long list reject only their lines', async () => {
    const lines = Array.from({ length: 400 }, (_, i) => `user_${i}`);
    const bytes = Buffer.concat([
      Buffer.from(lines.join('\n') + '\n'),
      Buffer.from('josé\n', 'latin1'),
    ]);
    const r = await enqueueView(bytes);
    expect(r).toEqual({ names: lines });
  });
});

describe('CSV header rows', () => {
  it.each([
    [
      'name,age\nalice,30\nbob,41\n',
      'CSV has a header row ("name", "age") but no "username" column; name the column with --column <name>',
    ],
    [
      'handle,followers\nalice,120\n',
      'CSV has a header row ("handle", "followers") but no "username" column; name the column with --column <name>',
    ],
    [
      'Instagram Handle;Followers\nalice;3\nbob;4\n',
      'CSV has a header row ("Instagram Handle", "Followers") but no "username" column; name the column with --column <name>',
    ],
    [
      'name\n',
      'CSV has a header row ("name") but no "username" column; name the column with --column <name>',
    ],
    [
      'who,count\nanna,120\n',
      'CSV has a header row ("who", "count") but no "username" column; name the column with --column <name>',
    ],
  ])('%j is refused', async (csv, message) => {
    expect(await enqueueView(csv, 'csv')).toEqual({ refused: message });
    if (csv.includes(',')) expect(await enqueueView(csv)).toEqual({ refused: message }); // auto
  });

  it.each([
    ['alice,30\nbob,41\n', {}, ['alice', 'bob']],
    // A name may be all digits: text over numbers in the names' column is not a header.
    ['_0,0\n0,1\n', {}, ['_0', '0']],
    ['alice\nbob\n', {}, ['alice', 'bob']],
    ['id,UserName,note\n1,Alice,x\n2,bob,y\n', {}, ['alice', 'bob']],
    ['name,age\nalice,30\nbob,41\n', { column: 'NAME' }, ['alice', 'bob']],
    ['x,handle\n1,alice\n2,bob\n', { column: 'handle' }, ['alice', 'bob']],
    ['1,alice\n2,bob\n', { column: '2' }, ['alice', 'bob']],
    ['name\nbob\n', { column: '1' }, ['name', 'bob']],
  ] as const)('%j with %j gives %j', async (csv, opts, names) => {
    expect(await enqueueView(csv, 'auto', { ...opts })).toEqual({ names });
  });

  it('--column names a column the header lacks, or applies to non-CSV input: one line', async () => {
    expect(await enqueueView('name,age\nalice,3\n', 'auto', { column: 'handle' })).toEqual({
      refused: 'CSV has no column "handle" (first row: "name", "age")',
    });
    expect(await enqueueView('["alice"]', 'auto', { column: 'x' })).toEqual({
      refused: '--column applies to CSV input; this input is JSON',
    });
    expect(await enqueueView('alice\n', 'txt', { column: 'x' })).toEqual({
      refused: '--column applies to CSV input; this input is plain text (--format txt)',
    });
    expect(await enqueueView('a,b\n', 'csv', { column: '0' })).toEqual({
      refused: '--column must be a header name or a number from 1',
    });
  });

  it('judges the header on the rows read ahead, then streams the rest', async () => {
    // 30 rows: the decision waits for at most 20 below the first, and no row is lost.
    const rows = Array.from({ length: 30 }, (_, i) => `user_${i},${i}`);
    expect(await enqueueView(`handle,n\n${rows.join('\n')}\n`, 'csv')).toMatchObject({
      refused: expect.stringMatching(/^CSV has a header row/),
    });
    expect(await enqueueView(`${rows.join('\n')}\n`, 'csv')).toEqual({
      names: rows.map((r) => r.split(',')[0]),
    });
  });
});

describe('JSON by content, and of the wrong shape', () => {
  it.each([
    ['{"users":["alice"]}', 'auto', 'JSON input must be an array of strings; got an object'],
    ['  {"a":1}', 'txt-named', 'JSON input must be an array of strings; got an object'],
    ['"alice"', 'json', 'JSON input must be an array of strings; got a string'],
    ['42', 'json', 'JSON input must be an array of strings; got a number'],
    ['null', 'json', 'JSON input must be an array of strings; got null'],
    [
      'alice\nbob\n',
      'json-named',
      'JSON input must be an array of strings; got text starting with "a"',
    ],
    ['[1, 2, 3]', 'auto', 'JSON input must be an array of strings; got an array of numbers'],
    [
      '[["alice"], {"u":"]"}, null, true]',
      'auto',
      'JSON input must be an array of strings; got an array of arrays, booleans, nulls and objects',
    ],
    ['["alice", "bob"', 'auto', 'JSON input: unterminated array at character 15'],
    ['["alice"] x', 'auto', 'JSON input: trailing data after the array at character 11'],
  ])('%j (%s) is refused: %s', async (json, how, message) => {
    const opts: ReadOptions =
      how === 'txt-named' ? { hint: 'txt' } : how === 'json-named' ? { hint: 'json' } : {};
    const format: InputFormat = how === 'json' ? 'json' : 'auto';
    expect(await enqueueView(json, format, opts)).toEqual({ refused: message });
  });

  it('a .txt or .csv file holding a JSON array is read as JSON', async () => {
    expect(await enqueueView('["Alice", "@bob"]', 'auto', { hint: 'txt' })).toEqual({
      names: ['alice', 'bob'],
    });
    expect(await enqueueView('\ufeff ["alice"]', 'auto', { hint: 'csv' })).toEqual({
      names: ['alice'],
    });
  });

  it('strings among other values: the strings are names, the rest rejected lines', async () => {
    const out = [];
    for await (const e of readEntries(streamOf('["alice", 3, [1, "]"], "bob"]'), 'auto'))
      out.push(e);
    expect(out).toEqual([
      { line: 1, input: 'alice' },
      { line: 2, input: '3', problem: 'not a string (a number)' },
      { line: 3, input: '[1, "]"]', problem: 'not a string (an array)' },
      { line: 4, input: 'bob' },
    ]);
  });
});

/** Valid usernames, as a person would write them in a list (maybe with `@`, in upper case). */
const username = fc.stringMatching(/^[a-z0-9_]{1,8}(?:\.[a-z0-9_]{1,6}){0,2}$/);
const written = fc.tuple(username, fc.constantFrom('', '@'), fc.boolean());

describe('generated name lists in every format', () => {
  it('are read as exactly the names in them, whatever the format and chunking', async () => {
    const input = fc.record({
      names: fc.array(written, { minLength: 1, maxLength: 30 }),
      kind: fc.constantFrom('txt', 'csv-header', 'csv-plain', 'json'),
      crlf: fc.boolean(),
      chunk: fc.integer({ min: 1, max: 64 }),
      extra: fc.array(fc.constantFrom('42', 'x y', 'note'), { minLength: 0, maxLength: 3 }),
    });
    await fc.assert(
      fc.asyncProperty(input, async ({ names, kind, crlf, chunk, extra }) => {
        // A header word in the first row of a CSV without header is read as a header (docs).
        fc.pre(kind !== 'csv-plain' || !HEADER_WORDS.has(names[0]![0]));
        const nl = crlf ? '\r\n' : '\n';
        const shown = names.map(([n, at, upper]) => `${at}${upper ? n.toUpperCase() : n}`);
        let text: string;
        if (kind === 'txt') text = shown.join(nl);
        else if (kind === 'json') text = JSON.stringify(shown);
        else if (kind === 'csv-header') {
          const header = ['id', ...extra.map((_, i) => `col${i}`), 'username'].join(',');
          const rows = shown.map((n, i) => [String(i), ...extra.map(() => '7'), n].join(','));
          text = [header, ...rows].join(nl);
        } else text = shown.map((n, i) => `${n},${i}`).join(nl);
        const expected = [...new Set(names.map(([n]) => n))];
        expect(await enqueueView(text, 'auto', {}, chunk)).toEqual({ names: expected });
      }),
      { numRuns: 300 },
    );
  });
});
