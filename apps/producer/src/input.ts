import { isUtf8 } from 'node:buffer';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { usernameProblem } from '@storycheck/model';

/**
 * Reading operator input (CONTRACT.md "enqueue"): txt, CSV and JSON arrays, streamed so a
 * million lines never sit in memory at once, with per-line normalisation and validation.
 */

/** Input formats; `auto` picks by file extension, then by the first bytes. */
export type InputFormat = 'auto' | 'txt' | 'csv' | 'json';

/** One raw entry of the input: its line number (JSON: 1-based array position) and text. */
export interface RawEntry {
  line: number;
  input: string;
  /** Set when the entry cannot be a username whatever its text (e.g. a JSON number). */
  problem?: string;
}

/** Longest line accepted before it is rejected unread (bytes of text). */
export const MAX_LINE_LENGTH = 1_000;

/** Result of normalising one entry. */
export type Normalised = { ok: true; username: string } | { ok: false; reason: string };

const PROFILE_URL = /^(?:https?:\/\/)?(?:www\.|m\.)?instagram\.com\/([^/?#\s]+)\/?(?:[?#].*)?$/i;

/**
 * Normalises one entry: trims, strips a BOM, one leading `@` and surrounding quotes, reduces an
 * instagram.com profile URL to its name, lower-cases; then validates by the username rule of
 * packages/model (1–30 of a-z 0-9 . _, not starting or ending with `.`, no `..`). The reason of
 * a rejection is one short phrase.
 */
export function normaliseUsername(raw: string): Normalised {
  let s = raw.replace(/^\uFEFF/, '').trim();
  if (
    s.length >= 2 &&
    ((s.startsWith('"') && s.endsWith('"')) || (s.startsWith("'") && s.endsWith("'")))
  ) {
    s = s.slice(1, -1).trim();
  }
  if (s.includes('\u0000') || s.includes('\uFFFD'))
    return { ok: false, reason: 'not text (binary data)' };
  if (/^(https?:\/\/|www\.|instagram\.com)/i.test(s)) {
    const m = PROFILE_URL.exec(s);
    if (!m) return { ok: false, reason: 'not an instagram.com profile URL' };
    s = decodeURIComponent(m[1]!);
    if (['p', 'reel', 'reels', 'stories', 'explore', 'accounts', 'tv'].includes(s.toLowerCase())) {
      return { ok: false, reason: 'URL is not a profile' };
    }
  }
  if (s.startsWith('@')) s = s.slice(1);
  s = s.toLowerCase();
  const problem = usernameProblem(s);
  return problem ? { ok: false, reason: problem.reason } : { ok: true, username: s };
}

/** Picks a format from a file name's extension; `auto` when it says nothing. */
export function formatFromName(name: string | undefined): InputFormat {
  const m = /\.([a-z0-9]+)$/i.exec(name ?? '');
  const ext = m?.[1]?.toLowerCase();
  if (ext === 'csv') return 'csv';
  if (ext === 'json') return 'json';
  if (ext === 'txt' || ext === 'lst' || ext === 'list') return 'txt';
  return 'auto';
}

/** How to read an input besides its format. */
export interface ReadOptions {
  /**
   * CSV only: the column holding the names — a header name (case-insensitive; the first row
   * must be a header that has it) or a 1-based number (the file has no header row).
   */
  column?: string;
  /** Format suggested by the file name (`formatFromName`), used by `auto` after the content. */
  hint?: InputFormat;
  /** Told the format once it is decided (`auto` resolved). */
  onFormat?: (format: Exclude<InputFormat, 'auto'>) => void;
}

/**
 * Decides the format of `auto` input from its first characters (after a BOM and blanks) and
 * the file name's hint: `[` or `{` is JSON whatever the name; else a `.json` name is JSON, a
 * `.csv` name or `--column` is CSV, a `.txt` name is text; else a first line with a comma or a
 * lone `username` header is CSV, anything else text.
 */
export function sniffFormat(head: string, opts: ReadOptions = {}): Exclude<InputFormat, 'auto'> {
  const trimmed = head.replace(/^\uFEFF/, '').trimStart();
  if (trimmed.startsWith('[') || trimmed.startsWith('{')) return 'json';
  if (opts.hint === 'json') return 'json';
  if (opts.hint === 'csv' || opts.column !== undefined) return 'csv';
  if (opts.hint === 'txt') return 'txt';
  const firstLine = (trimmed.split(/\r?\n/, 1)[0] ?? '').trim();
  if (firstLine.includes(',') || /^"?username"?$/i.test(firstLine)) return 'csv';
  return 'txt';
}

/**
 * Reads entries from a stream in the given format (`auto`: {@link sniffFormat}). Blank lines
 * are skipped (they are no one's username). Input that cannot be a name list at all (JSON of
 * another shape, a CSV header without the names' column, `--column` on non-CSV input) throws
 * an {@link InputError}; the not-text check is {@link scanText}'s, on the bytes.
 */
export async function* readEntries(
  stream: Readable,
  format: InputFormat,
  opts: ReadOptions = {},
): AsyncGenerator<RawEntry> {
  const decoder = new StringDecoder('utf8');
  const it = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
  try {
    // Sniff: read chunks until something non-blank is seen.
    let head = '';
    for (;;) {
      if (format !== 'auto' && head.length > 0) break;
      const n = await it.next();
      if (n.done) break;
      head += typeof n.value === 'string' ? n.value : decoder.write(n.value);
      if (format !== 'auto') break;
      const firstNl = head.indexOf('\n');
      if (/\S/.test(head) && (firstNl >= 0 || head.length > 4096)) break;
    }
    head = head.replace(/^\uFEFF/, '');
    const fmt = format === 'auto' ? sniffFormat(head, opts) : format;
    opts.onFormat?.(fmt);
    if (opts.column !== undefined && fmt !== 'csv' && /\S/.test(head)) {
      throw new InputError(
        `--column applies to CSV input; this input is ${fmt === 'json' ? 'JSON' : 'plain text (--format txt)'}`,
      );
    }
    // Re-join the sniffed head with the rest of the stream as one text iterator.
    async function* text(): AsyncGenerator<string> {
      if (head) yield head;
      for (;;) {
        const n = await it.next();
        if (n.done) break;
        const s = typeof n.value === 'string' ? n.value : decoder.write(n.value);
        if (s) yield s;
      }
      const rest = decoder.end();
      if (rest) yield rest;
    }
    if (fmt === 'json') yield* readJsonArray(text());
    else if (fmt === 'csv') yield* readCsv(text(), opts.column);
    else yield* readTxt(text());
  } finally {
    // A reader that stops early (a limit, an error) releases the file too.
    await it.return?.();
  }
}

async function* lines(
  chunks: AsyncIterable<string>,
): AsyncGenerator<{ line: number; text: string }> {
  const rl = createInterface({ input: toReadable(chunks), crlfDelay: Infinity });
  let n = 0;
  for await (const l of rl) {
    n += 1;
    yield { line: n, text: l.replace(/\r$/, '') };
  }
}

async function* readTxt(chunks: AsyncIterable<string>): AsyncGenerator<RawEntry> {
  for await (const { line, text } of lines(chunks)) {
    if (!/\S/.test(text)) continue;
    yield tooLong(line, text) ?? { line, input: text };
  }
}

/** Rows read ahead of the first to decide whether it is a header. */
const HEADER_SAMPLE_ROWS = 20;

/**
 * Header words that are not names: a first row holding one of them is a header row even when
 * every cell would be a valid username (`name,age`). Compared lower-cased, trimmed.
 */
export const HEADER_WORDS: ReadonlySet<string> = new Set([
  'name',
  'names',
  'user',
  'users',
  'user_name',
  'usernames',
  'handle',
  'handles',
  'ig_handle',
  'instagram_handle',
  'account',
  'accounts',
  'login',
  'ig',
  'insta',
  'instagram',
  'profile',
  'profiles',
  'url',
  'link',
  'id',
  'email',
  'e-mail',
  'screen_name',
  'nick',
  'nickname',
  'first_name',
  'last_name',
  'full_name',
  'fullname',
  'age',
  'followers',
  'following',
  'date',
  'note',
  'notes',
  'comment',
  'status',
  'phone',
  'country',
  'city',
]);

const headerCell = (c: string) =>
  c
    .replace(/^\uFEFF/, '')
    .trim()
    .toLowerCase();
const NUMERIC = /^[-+]?(?:\d[\d,._ ]*)?\d(?:[.,]\d+)?%?$/;

/**
 * Whether the first CSV row (which has no `username` cell) is a header, judged on it and up to
 * {@link HEADER_SAMPLE_ROWS} rows below: it is when one of its cells is a {@link HEADER_WORDS}
 * word; or when its first cell is not a valid name but most cells below it are; or when a column
 * other than the first holds text in the first row and only numbers below (`who,count` over
 * `anna,120`).
 */
export function looksLikeHeader(first: string[], below: string[][]): boolean {
  if (first.some((c) => HEADER_WORDS.has(headerCell(c)))) return true;
  if (below.length === 0) return false;
  const c0 = first[0] ?? '';
  const validBelow = below.filter((r) => normaliseUsername(r[0] ?? '').ok).length;
  if (/\S/.test(c0) && !normaliseUsername(c0).ok && validBelow * 2 > below.length) return true;
  // Not the first column: it holds the names, and a name may be all digits (`_0` over `0` is
  // two names, not a header over a number).
  return first.some((c, j) => {
    const h = c.trim();
    if (j === 0 || !h || NUMERIC.test(h)) return false;
    return below.every((r) => NUMERIC.test((r[j] ?? '').trim()));
  });
}

/** The header cells for a message: at most 6, each at most 20 characters, one line. */
function shownHeader(cells: string[]): string {
  const shown = cells.slice(0, 6).map((c) => JSON.stringify(c.trim().slice(0, 20)));
  return shown.join(', ') + (cells.length > 6 ? ', …' : '');
}

async function* readCsv(
  chunks: AsyncIterable<string>,
  columnOpt: string | undefined,
): AsyncGenerator<RawEntry> {
  type Row = { line: number; text: string; cells: string[]; long?: RawEntry };
  let column = -1;
  // The rows read ahead to judge the first one, until the column is decided.
  let pending: Row[] | null = [];
  const entry = (r: Row): RawEntry => {
    if (r.long) return r.long;
    const cell = r.cells[column];
    if (cell === undefined)
      return { line: r.line, input: r.text, problem: `no column ${column + 1}` };
    if (!/\S/.test(cell)) return { line: r.line, input: r.text, problem: 'empty' };
    return { line: r.line, input: cell };
  };
  /** Decides the column from the first row and those read ahead; returns the header row. */
  const decide = (rows: Row[]): Row | undefined => {
    const data = rows.filter((r) => !r.long);
    const firstRow = data[0];
    const first = firstRow?.cells ?? [];
    const names = first.map(headerCell);
    if (columnOpt !== undefined) {
      const col = columnOpt.trim();
      if (/^\d+$/.test(col)) {
        column = Number(col) - 1;
        if (column < 0) throw new InputError('--column must be a header name or a number from 1');
        return undefined;
      }
      column = names.indexOf(headerCell(col));
      if (column < 0) {
        throw new InputError(
          `CSV has no column ${JSON.stringify(col)} (first row: ${shownHeader(first)})`,
        );
      }
      return firstRow;
    }
    column = names.indexOf('username');
    if (column >= 0) return firstRow;
    column = 0;
    if (
      firstRow &&
      looksLikeHeader(
        first,
        data.slice(1).map((r) => r.cells),
      )
    ) {
      throw new InputError(
        `CSV has a header row (${shownHeader(first)}) but no "username" column; name the column with --column <name>`,
      );
    }
    return undefined;
  };
  function* flushPending(): Generator<RawEntry> {
    const rows = pending!;
    pending = null;
    const header = decide(rows);
    for (const r of rows) if (r !== header) yield entry(r);
  }
  for await (const { line, text } of lines(chunks)) {
    if (!/\S/.test(text)) continue;
    const long = tooLong(line, text);
    const row: Row = long
      ? { line, text, cells: [], long }
      : { line, text, cells: splitCsvLine(text) };
    if (!pending) {
      yield entry(row);
      continue;
    }
    pending.push(row);
    // A `username` cell or --column decides at once; otherwise read ahead to judge the row.
    const data = pending.filter((r) => !r.long);
    const quick =
      data.length > 0 &&
      (columnOpt !== undefined || data[0]!.cells.map(headerCell).includes('username'));
    if (quick || data.length > HEADER_SAMPLE_ROWS) yield* flushPending();
  }
  if (pending && pending.length) yield* flushPending();
}

/** Splits one CSV line (RFC 4180 quoting within the line; `""` is a literal quote). */
export function splitCsvLine(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"' && cur.trim() === '') {
      quoted = true;
      cur = '';
    } else if (ch === ',' || ch === ';' || ch === '\t') {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

function tooLong(line: number, text: string): RawEntry | null {
  return text.length > MAX_LINE_LENGTH
    ? { line, input: `${text.slice(0, 40)}…`, problem: `line too long (${text.length} characters)` }
    : null;
}

/**
 * A streaming reader for a JSON array of strings: constant memory whatever the array size.
 * Non-string elements are reported as problems; anything that is not an array stops the read
 * with an error naming the position.
 *
 * Over 80 lines, on purpose: one state machine over characters, its states sharing the cursor
 * and the current string; split into functions it would pass that state through every call
 * in the hottest loop of `enqueue` (the enqueue bench measures it).
 */
// eslint-disable-next-line max-lines-per-function -- the reason is in the comment above
async function* readJsonArray(chunks: AsyncIterable<string>): AsyncGenerator<RawEntry> {
  type State = 'start' | 'value' | 'string' | 'escape' | 'other' | 'after' | 'end';
  let state: State = 'start';
  let index = 0;
  let buf = '';
  let depth = 0;
  let unicode = '';
  let pos = 0;
  let strings = 0;
  let kind = '';
  let inString = false;
  let escaped = false;
  const others = new Set<string>();
  const fail = (msg: string): never => {
    throw new InputError(`JSON input: ${msg} at character ${pos}`);
  };
  for await (const chunk of chunks) {
    for (const ch of chunk) {
      pos++;
      switch (state) {
        case 'start':
          if (ch === '[') state = 'value';
          else if (!/\s/.test(ch)) {
            const got = jsonKind(ch);
            throw new InputError(
              `JSON input must be an array of strings; got ${got ? withArticle(got) : `text starting with ${JSON.stringify(ch)}`}`,
            );
          }
          break;
        case 'value':
          if (/\s/.test(ch)) break;
          if (ch === ']' && index === 0) state = 'end';
          else if (ch === '"') {
            state = 'string';
            buf = '';
            index++;
            strings++;
          } else if (ch === ']' || ch === ',') fail(`unexpected '${ch}'`);
          else {
            state = 'other';
            kind = jsonKind(ch) ?? 'invalid value';
            inString = false;
            escaped = false;
            others.add(kind);
            buf = ch;
            depth = ch === '[' || ch === '{' ? 1 : 0;
            index++;
          }
          break;
        case 'string':
          if (unicode) {
            unicode += ch;
            if (unicode.length === 5) {
              buf += String.fromCharCode(parseInt(unicode.slice(1), 16));
              unicode = '';
            }
          } else if (ch === '\\') state = 'escape';
          else if (ch === '"') {
            yield buf.length > MAX_LINE_LENGTH
              ? {
                  line: index,
                  input: `${buf.slice(0, 40)}…`,
                  problem: `entry too long (${buf.length} characters)`,
                }
              : { line: index, input: buf };
            state = 'after';
          } else buf += ch;
          break;
        case 'escape': {
          const map: Record<string, string> = {
            n: '\n',
            t: '\t',
            r: '\r',
            b: '\b',
            f: '\f',
            '"': '"',
            '\\': '\\',
            '/': '/',
          };
          if (ch === 'u') unicode = 'u';
          else buf += map[ch] ?? ch;
          state = 'string';
          break;
        }
        case 'other':
          // A non-string element, skipped to its end: strings inside it may hold brackets.
          if (inString) {
            if (escaped) escaped = false;
            else if (ch === '\\') escaped = true;
            else if (ch === '"') inString = false;
          } else if (ch === '"') inString = true;
          else if (ch === '[' || ch === '{') depth++;
          else if ((ch === ']' || ch === '}') && depth > 0) depth--;
          else if (depth === 0 && (ch === ',' || ch === ']')) {
            yield {
              line: index,
              input: buf.trim().slice(0, 40),
              problem: `not a string (${withArticle(kind)})`,
            };
            state = ch === ']' ? 'end' : 'value';
            break;
          }
          if (buf.length < 64) buf += ch;
          break;
        case 'after':
          if (/\s/.test(ch)) break;
          if (ch === ',') state = 'value';
          else if (ch === ']') state = 'end';
          else fail(`expected ',' or ']' but found '${ch}'`);
          break;
        case 'end':
          if (!/\s/.test(ch)) fail('trailing data after the array');
          break;
      }
    }
  }
  if (state === 'start') return; // empty input
  if (state !== 'end') fail('unterminated array');
  if (strings === 0 && others.size > 0) {
    const plural = [...others].sort().map((k) => (k === 'null' ? 'nulls' : `${k}s`));
    throw new InputError(
      `JSON input must be an array of strings; got an array of ${plural.length > 1 ? `${plural.slice(0, -1).join(', ')} and ${plural.at(-1)}` : plural[0]}`,
    );
  }
}

/** "an object", "a number", "null". */
function withArticle(kind: string): string {
  if (kind === 'null') return 'null';
  return `${/^[aeiou]/.test(kind) ? 'an' : 'a'} ${kind}`;
}

/** What a JSON value starting with `ch` is ("object", "number"…), or null if none is. */
function jsonKind(ch: string): string | null {
  if (ch === '{') return 'object';
  if (ch === '[') return 'array';
  if (ch === '"') return 'string';
  if (ch === 't' || ch === 'f') return 'boolean';
  if (ch === 'n') return 'null';
  if (ch === '-' || (ch >= '0' && ch <= '9')) return 'number';
  return null;
}

/**
 * Share of bytes that may be invalid UTF-8 or control characters (other than tab, CR, LF, FF,
 * VT) before an input is refused as not text: 1%. A few stray Latin-1 bytes in a long list
 * only reject their own lines; a binary file or a whole Latin-1 file is refused at once.
 */
export const NOT_TEXT_SHARE = 0.01;
/** Bytes after which the share is judged while reading (so a huge binary fails early). */
const EARLY_VERDICT_BYTES = 64 * 1024;

/**
 * Refuses input that is not UTF-8 text, reading its bytes once (streamed, constant memory):
 * a UTF-16 byte-order mark, any NUL byte, or more than {@link NOT_TEXT_SHARE} of the bytes in
 * invalid UTF-8 sequences or control characters. Throws an {@link InputError}.
 */
export async function scanText(stream: AsyncIterable<Buffer | string>): Promise<void> {
  let bytes = 0;
  let bad = 0;
  let carry: Buffer = Buffer.alloc(0);
  const verdict = () => {
    if (bad > bytes * NOT_TEXT_SHARE) {
      throw new InputError(
        `input is not UTF-8 text (${bad} of ${bytes} bytes are invalid UTF-8 or control characters)`,
      );
    }
  };
  for await (const c of stream) {
    const chunk = typeof c === 'string' ? Buffer.from(c, 'utf8') : c;
    if (bytes === 0 && carry.length === 0 && chunk.length >= 2) {
      if ((chunk[0] === 0xff && chunk[1] === 0xfe) || (chunk[0] === 0xfe && chunk[1] === 0xff))
        throw new InputError('input is UTF-16 text; save it as UTF-8');
    }
    const nul = chunk.indexOf(0);
    if (nul >= 0)
      throw new InputError(
        `input is not text (a NUL byte at byte ${bytes + carry.length + nul + 1})`,
      );
    const buf = carry.length ? Buffer.concat([carry, chunk]) : chunk;
    const cut = incompleteTail(buf);
    const whole = buf.subarray(0, cut);
    carry = Buffer.from(buf.subarray(cut));
    bytes += whole.length;
    bad += controlBytes(whole) + (isUtf8(whole) ? 0 : invalidSequences(whole));
    if (bytes >= EARLY_VERDICT_BYTES) verdict();
  }
  bad += carry.length; // a sequence cut off by the end of the input
  bytes += carry.length;
  verdict();
}

/** Where an incomplete UTF-8 sequence at the end of `buf` starts (buf.length if none). */
function incompleteTail(buf: Buffer): number {
  for (let i = buf.length - 1; i >= 0 && i >= buf.length - 3; i--) {
    const b = buf[i]!;
    if ((b & 0xc0) === 0x80) continue; // continuation byte: look further back
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return buf.length - i < need ? i : buf.length;
  }
  return buf.length;
}

// eslint-disable-next-line no-control-regex -- control characters are what it finds
const CONTROL = /[\x00-\x08\x0e-\x1f\x7f]/g;

/** Control bytes other than tab, LF, VT, FF, CR (a native regex over a latin1 view: fast). */
function controlBytes(buf: Buffer): number {
  return buf.toString('latin1').match(CONTROL)?.length ?? 0;
}

/** Invalid sequences: U+FFFD from decoding, less the U+FFFD characters that were in the text. */
function invalidSequences(buf: Buffer): number {
  const decoded = buf.toString('utf8');
  let replaced = 0;
  for (let i = decoded.indexOf('\uFFFD'); i !== -1; i = decoded.indexOf('\uFFFD', i + 1))
    replaced++;
  let literal = 0;
  const fffd = Buffer.from([0xef, 0xbf, 0xbd]);
  for (let i = buf.indexOf(fffd); i !== -1; i = buf.indexOf(fffd, i + 3)) literal++;
  return replaced - literal;
}

/**
 * Every reason to refuse an input whole, checked before anything is written: not text
 * ({@link scanText}); JSON read to its end (shape, syntax, an array without a single string);
 * a CSV's first rows (a header without the names' column, an unknown `--column`). `open` is
 * called once per pass (the input is a file, read again).
 */
export async function precheckInput(
  open: () => Readable,
  format: InputFormat,
  opts: ReadOptions = {},
): Promise<void> {
  await scanText(open());
  let fmt: InputFormat = format;
  for await (const _ of readEntries(open(), format, { ...opts, onFormat: (f) => (fmt = f) })) {
    if (fmt !== 'json') break; // text and CSV fail only at their start
  }
}

/** Input that cannot be read at all (not per-line): exit 2 with this one line. */
export class InputError extends Error {
  override name = 'InputError';
}

/** readline wants a stream; Readable.from keeps backpressure. */
function toReadable(chunks: AsyncIterable<string>): Readable {
  return Readable.from(chunks, { objectMode: false });
}
