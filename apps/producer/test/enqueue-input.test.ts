import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { runNode } from '@storycheck/testkit';
import { HEADER_WORDS } from '../src/input.js';
import { CLI, cliWorld } from './cli-world.js';

/**
 * `storycheck enqueue` against hostile and mistaken input, through the real CLI, Postgres and
 * Redis (issue 16): exit 0 only with the names a person would expect, otherwise exit 2 with
 * one line and nothing written (no batch row, no job). Also `--batch-id` of no batch, and a
 * reader that closes the pipe early.
 */

const w = cliWorld('sc-input-');

const cli = (args: string[], stdin?: string) => runNode(CLI, args, w.env, stdin);
const itemNames = async (batchId: string) =>
  (
    await w.client.query('SELECT username FROM items WHERE batch_id = $1 ORDER BY seq', [batchId])
  ).rows.map((r: { username: string }) => r.username);

/** One generated input: its bytes, file name, extra arguments and what a person expects. */
interface Case {
  kind: string;
  file: string;
  content: Buffer;
  args: string[];
  /** The names enqueued, in order; null: refused. */
  names: string[] | null;
}

const username = fc.stringMatching(/^[a-z0-9_]{1,8}(?:\.[a-z0-9_]{1,6}){0,2}$/);
const names = fc.array(username, { minLength: 1, maxLength: 12 });
const distinct = (ns: string[]) => [...new Set(ns)];
const text = (s: string) => Buffer.from(s, 'utf8');

const cases: fc.Arbitrary<Case> = fc.oneof(
  fc
    .tuple(
      fc.uint8Array({ minLength: 64, maxLength: 8_192 }),
      fc.constantFrom('in.txt', 'in.csv', 'in.json', 'in.bin'),
    )
    .map(([bytes, file]) => ({
      kind: 'random bytes',
      file,
      content: Buffer.from(bytes),
      args: [],
      names: null,
    })),
  names.map((ns) => ({
    kind: 'txt',
    file: 'in.txt',
    content: text(ns.join('\n')),
    args: [],
    names: distinct(ns),
  })),
  names.map((ns) => ({
    kind: 'json array',
    file: 'in.json',
    content: text(JSON.stringify(ns)),
    args: [],
    names: distinct(ns),
  })),
  fc.tuple(names, fc.constantFrom('in.txt', 'in.dat')).map(([ns, file]) => ({
    kind: 'json array, other name',
    file,
    content: text(` ${JSON.stringify(ns.map((n) => `@${n.toUpperCase()}`))}`),
    args: [],
    names: distinct(ns),
  })),
  names.map((ns) => ({
    kind: 'json strings among numbers',
    file: 'in.json',
    content: text(JSON.stringify(ns.flatMap((n, i) => [i, n]))),
    args: [],
    names: distinct(ns),
  })),
  fc.tuple(names, fc.constantFrom('in.json', 'in.txt')).map(([ns, file]) => ({
    kind: 'json object',
    file,
    content: text(JSON.stringify({ users: ns })),
    args: [],
    names: null,
  })),
  fc
    .tuple(
      fc.array(fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), names), {
        minLength: 1,
        maxLength: 8,
      }),
    )
    .map(([vals]) => ({
      kind: 'json array without strings',
      file: 'in.json',
      content: text(JSON.stringify(vals)),
      args: [],
      names: null,
    })),
  names.map((ns) => ({
    kind: 'json truncated',
    file: 'in.json',
    content: text(JSON.stringify(ns).slice(0, -1)),
    args: [],
    names: null,
  })),
  fc.tuple(names, fc.integer({ min: 0, max: 3 })).map(([ns, at]) => {
    const cols = ['id', 'note', 'followers'];
    cols.splice(Math.min(at, cols.length), 0, 'username');
    const col = cols.indexOf('username');
    const rows = ns.map((n, i) =>
      cols.map((c, j) => (j === col ? n : c === 'note' ? '"a, b"' : String(i))).join(','),
    );
    return {
      kind: 'csv with username',
      file: 'in.csv',
      content: text([cols.join(','), ...rows].join('\r\n')),
      args: [],
      names: distinct(ns),
    };
  }),
  fc
    .tuple(
      names,
      fc.constantFrom('name,age', 'handle,followers', 'Instagram Handle,Followers'),
      fc.boolean(),
    )
    .map(([ns, header, named]) => ({
      kind: named ? 'csv header, --column' : 'csv header without username',
      file: 'in.csv',
      content: text([header, ...ns.map((n, i) => `${n},${i + 10}`)].join('\n')),
      args: named ? ['--column', header.split(',')[0]!] : [],
      names: named ? distinct(ns) : null,
    })),
  names
    .filter((ns) => !HEADER_WORDS.has(ns[0]!))
    .map((ns) => ({
      kind: 'csv without header',
      file: 'in.csv',
      content: text(ns.map((n, i) => `${n},${i}`).join('\n')),
      args: [],
      names: distinct(ns),
    })),
);

describe('storycheck enqueue over generated input (fuzz)', () => {
  it('exits 0 with the expected names, or 2 with one line and nothing written', async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(cases, async (c) => {
        n++;
        const path = join(w.dir, `${n}-${c.file}`);
        await writeFile(path, c.content);
        const batches = await w.batchCount();
        const jobs = await w.jobCount();
        const r = await cli(['enqueue', path, '--json', ...c.args]);
        if (c.names) {
          expect({ kind: c.kind, code: r.code, stderr: r.stderr }).toEqual({
            kind: c.kind,
            code: 0,
            stderr: '',
          });
          const out = JSON.parse(r.stdout) as { batchId: string; accepted: number };
          expect(await itemNames(out.batchId)).toEqual(c.names);
          expect(await w.jobCount()).toBe(jobs + c.names.length);
        } else {
          expect({ kind: c.kind, code: r.code }).toEqual({ kind: c.kind, code: 2 });
          expect(r.stderr).toMatch(/^storycheck: [^\n]+\n$/);
          expect(r.stdout).toBe('');
          expect(await w.batchCount()).toBe(batches);
          expect(await w.jobCount()).toBe(jobs);
        }
      }),
      { numRuns: 30, endOnFailure: true },
    );
  }, 600_000); // ~1 s per CLI run here, far more on a loaded machine

  it('100 KB of random bytes: one line, exit 2, nothing written (the case issue 16 found)', async () => {
    const bytes = Buffer.alloc(100_000);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 2654435761) >>> 24;
    const batches = await w.batchCount();
    const r = await cli(['enqueue', await writeAndPath('random.bin', bytes)]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^storycheck: input is not (UTF-8 )?text \([^\n]*\)\n$/);
    expect(await w.batchCount()).toBe(batches);
  });
});

async function writeAndPath(name: string, content: Buffer | string): Promise<string> {
  const p = join(w.dir, name);
  await writeFile(p, content);
  return p;
}

describe('enqueue --batch-id of a batch that does not exist', () => {
  it('exits 2 with "no batch <id>" and writes nothing, from a file or stdin', async () => {
    const id = '3f0c1c0e-1111-4111-8111-111111111111';
    const batches = await w.batchCount();
    const jobs = await w.jobCount();
    const fromFile = await cli([
      'enqueue',
      await writeAndPath('x.txt', 'anna\n'),
      '--batch-id',
      id,
    ]);
    const fromStdin = await cli(['enqueue', '-', '--batch-id', id], 'anna\n');
    for (const r of [fromFile, fromStdin]) {
      expect(r).toEqual({ code: 2, stdout: '', stderr: `storycheck: no batch ${id}\n` });
    }
    expect(await w.batchCount()).toBe(batches);
    expect(await w.jobCount()).toBe(jobs);
  });
});

/**
 * Runs the CLI with stdout on a pipe whose reader stops after the first line (like
 * `storycheck … | head -1`); returns that line, the exit code and stderr.
 */
function readFirstLineThenClose(
  args: string[],
): Promise<{ first: string; code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...w.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    let first = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0 && !first) {
        first = out.slice(0, nl);
        child.stdout.destroy(); // the reader goes away
      }
    });
    child.on('exit', (code) => resolve({ first, code, stderr: err }));
  });
}

describe('a reader that closes the pipe early', () => {
  let batchId: string;
  beforeAll(async () => {
    // Large enough that the output (~1.5 MB) cannot sit in the pipe's buffer.
    const many = Array.from({ length: 25_000 }, (_, i) => `epipe_user_${i}`).join('\n');
    const r = await cli(['enqueue', await writeAndPath('many.txt', many), '--json']);
    expect(r.code).toBe(0);
    batchId = JSON.parse(r.stdout).batchId;
  });

  it.each([['csv'], ['ndjson'], ['json']])(
    'results --format %s | head -1 ends quietly with exit 0',
    async (format) => {
      const r = await readFirstLineThenClose(['results', batchId, '--format', format]);
      expect(r.first.length).toBeGreaterThan(0);
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    },
  );
});
