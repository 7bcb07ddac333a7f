import { Readable } from 'node:stream';
import {
  normaliseUsername,
  readEntries,
  splitCsvLine,
  type InputFormat,
  type RawEntry,
} from '../src/input.js';

async function entries(
  text: string | Buffer,
  format: InputFormat = 'auto',
  chunk = 7,
): Promise<RawEntry[]> {
  // Small chunks so that parsers see values split across reads.
  const buf = Buffer.isBuffer(text) ? text : Buffer.from(text, 'utf8');
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; i += chunk) parts.push(buf.subarray(i, i + chunk));
  const out: RawEntry[] = [];
  for await (const e of readEntries(Readable.from(parts), format)) out.push(e);
  return out;
}

describe('normaliseUsername', () => {
  it.each([
    ['anna', 'anna'],
    ['  @Anna.K_1  ', 'anna.k_1'],
    ['\uFEFFbob', 'bob'],
    ['https://www.instagram.com/Some.One/', 'some.one'],
    ['instagram.com/some_one?igsh=abc', 'some_one'],
    ['"quoted"', 'quoted'],
    ['a'.repeat(30), 'a'.repeat(30)],
  ])('accepts %j as %j', (input, expected) => {
    expect(normaliseUsername(input)).toEqual({ ok: true, username: expected });
  });

  it.each([
    ['a'.repeat(31), /too long \(31/],
    ['a..b', /contains '\.\.'/],
    ['.ab', /starts with '\.'/],
    ['ab.', /ends with '\.'/],
    ['anna-k', /invalid character '-'/],
    ['аnna', /invalid character U\+0430/], // Cyrillic 'а' look-alike
    ['@', /empty/],
    ['https://example.com/anna', /not an instagram.com profile URL/],
    ['https://www.instagram.com/p/Cxyz/', /not an instagram.com profile URL/],
    ['https://www.instagram.com/explore/', /URL is not a profile/],
    ['ab\u0000cd', /binary/],
  ])('rejects %j', (input, reason) => {
    const r = normaliseUsername(input);
    expect(r.ok).toBe(false);
    expect(r.ok ? '' : r.reason).toMatch(reason);
  });
});

describe('readEntries', () => {
  it('reads txt with CRLF, BOM and blank lines, keeping line numbers', async () => {
    const e = await entries('\uFEFFanna\r\n\r\n  bob \r\ncarl');
    expect(e).toEqual([
      { line: 1, input: 'anna' },
      { line: 3, input: '  bob ' },
      { line: 4, input: 'carl' },
    ]);
  });

  it('reads a CSV by its username column, header detected', async () => {
    const e = await entries('id,username,note\n1,anna,"x, y"\n2,"bob",\n3,,z\n');
    expect(e).toEqual([
      { line: 2, input: 'anna' },
      { line: 3, input: 'bob' },
      { line: 4, input: '3,,z', problem: 'empty' },
    ]);
  });

  it('reads a CSV without header by its first column', async () => {
    expect(await entries('anna,1\nbob,2\n', 'csv')).toEqual([
      { line: 1, input: 'anna' },
      { line: 2, input: 'bob' },
    ]);
  });

  it('streams a JSON array, reporting non-strings by position', async () => {
    const e = await entries(' [ "anna", "b\\u00f6b", 42, {"x":[1,2]}, "carl" ] ');
    expect(e).toEqual([
      { line: 1, input: 'anna' },
      { line: 2, input: 'böb' },
      { line: 3, input: '42', problem: 'not a string (a number)' },
      { line: 4, input: '{"x":[1,2]}', problem: 'not a string (an object)' },
      { line: 5, input: 'carl' },
    ]);
  });

  it('rejects JSON that is not an array of strings with one line', async () => {
    await expect(entries('{"a":1}', 'json')).rejects.toThrow(
      /^JSON input must be an array of strings; got an object$/,
    );
    await expect(entries('["a", "b"', 'json')).rejects.toThrow(/unterminated array/);
  });

  it('yields nothing for an empty input', async () => {
    expect(await entries('')).toEqual([]);
    expect(await entries('\n\n  \n')).toEqual([]);
  });

  it('flags overlong lines without keeping them', async () => {
    const e = await entries(`anna\n${'x'.repeat(5000)}\n`);
    expect(e[1]).toMatchObject({ line: 2, problem: 'line too long (5000 characters)' });
    expect(e[1]!.input.length).toBeLessThan(50);
  });

  it('splits CSV lines with quotes', () => {
    expect(splitCsvLine('a,"b,""c""",d')).toEqual(['a', 'b,"c"', 'd']);
  });
});
