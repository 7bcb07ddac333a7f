import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';

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
 * instagram.com profile URL to its name, lower-cases; then validates (1–30 of a-z 0-9 . _, not
 * starting or ending with `.`, no `..`). The reason of a rejection is one short phrase.
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
  if (s.length === 0) return { ok: false, reason: 'empty' };
  if (s.length > 30) return { ok: false, reason: `too long (${s.length} characters, at most 30)` };
  const bad = /[^a-z0-9._]/.exec(s);
  if (bad) {
    const ch = bad[0];
    const code = ch.codePointAt(0)!;
    const shown =
      code < 32 || code > 126 ? `U+${code.toString(16).toUpperCase().padStart(4, '0')}` : `'${ch}'`;
    return { ok: false, reason: `invalid character ${shown} (allowed: a-z 0-9 . _)` };
  }
  if (s.startsWith('.')) return { ok: false, reason: "starts with '.'" };
  if (s.endsWith('.')) return { ok: false, reason: "ends with '.'" };
  if (s.includes('..')) return { ok: false, reason: "contains '..'" };
  return { ok: true, username: s };
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

/**
 * Reads entries from a stream in the given format. `auto` sniffs the first non-blank
 * character: `[` is JSON, otherwise a first line with a comma or a `username` header is CSV,
 * otherwise plain text. Blank lines are skipped (they are no one's username).
 */
export async function* readEntries(
  stream: Readable,
  format: InputFormat,
): AsyncGenerator<RawEntry> {
  const decoder = new StringDecoder('utf8');
  const it = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
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
  let fmt = format;
  if (fmt === 'auto') {
    const trimmed = head.trimStart();
    const firstLine = (trimmed.split(/\r?\n/, 1)[0] ?? '').trim();
    if (trimmed.startsWith('[')) fmt = 'json';
    else if (firstLine.includes(',') || /^"?username"?$/i.test(firstLine)) fmt = 'csv';
    else fmt = 'txt';
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
  try {
    if (fmt === 'json') yield* readJsonArray(text());
    else if (fmt === 'csv') yield* readCsv(text());
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

async function* readCsv(chunks: AsyncIterable<string>): AsyncGenerator<RawEntry> {
  let column = -1;
  for await (const { line, text } of lines(chunks)) {
    if (!/\S/.test(text)) continue;
    const long = tooLong(line, text);
    if (long) {
      yield long;
      continue;
    }
    const cells = splitCsvLine(text);
    if (column === -1) {
      const idx = cells.findIndex(
        (c) =>
          c
            .trim()
            .replace(/^\uFEFF/, '')
            .toLowerCase() === 'username',
      );
      column = idx >= 0 ? idx : 0;
      if (idx >= 0) continue; // header row
    }
    const cell = cells[column];
    if (cell === undefined) yield { line, input: text, problem: `no column ${column + 1}` };
    else if (!/\S/.test(cell)) yield { line, input: text, problem: 'empty' };
    else yield { line, input: cell };
  }
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
 */
async function* readJsonArray(chunks: AsyncIterable<string>): AsyncGenerator<RawEntry> {
  type State = 'start' | 'value' | 'string' | 'escape' | 'other' | 'after' | 'end';
  let state: State = 'start';
  let index = 0;
  let buf = '';
  let depth = 0;
  let unicode = '';
  let pos = 0;
  const fail = (msg: string): never => {
    throw new InputError(`JSON input: ${msg} at character ${pos}`);
  };
  for await (const chunk of chunks) {
    for (const ch of chunk) {
      pos++;
      switch (state) {
        case 'start':
          if (ch === '[') state = 'value';
          else if (!/\s/.test(ch)) fail('expected an array of strings');
          break;
        case 'value':
          if (/\s/.test(ch)) break;
          if (ch === ']' && index === 0) state = 'end';
          else if (ch === '"') {
            state = 'string';
            buf = '';
            index++;
          } else if (ch === ']' || ch === ',') fail(`unexpected '${ch}'`);
          else {
            state = 'other';
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
          if (ch === '[' || ch === '{') depth++;
          if ((ch === ']' || ch === '}') && depth > 0) depth--;
          if (depth === 0 && (ch === ',' || ch === ']')) {
            yield { line: index, input: buf.trim().slice(0, 40), problem: 'not a string' };
            state = ch === ']' ? 'end' : 'value';
          } else if (buf.length < 64) buf += ch;
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
}

/** Input that cannot be read at all (not per-line): exit 2 with this one line. */
export class InputError extends Error {
  override name = 'InputError';
}

/** readline wants a stream; Readable.from keeps backpressure. */
function toReadable(chunks: AsyncIterable<string>): Readable {
  return Readable.from(chunks, { objectMode: false });
}
