import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openDb, recordResult } from '@storycheck/db';
import { runNode, spawnNode } from '@storycheck/testkit';
import { CLI, cliWorld } from './cli-world.js';

const w = cliWorld('sc-cli-');

const cli = (args: string[], stdin?: string, extraEnv: Record<string, string> = {}) =>
  runNode(CLI, args, { ...w.env, ...extraEnv }, stdin);
const file = async (name: string, content: string | Buffer) => {
  const p = join(w.dir, name);
  await writeFile(p, content);
  return p;
};

describe('storycheck enqueue', () => {
  it('reports invalid lines with line numbers and enqueues only valid, distinct names', async () => {
    const before = await w.jobCount();
    const p = await file(
      'mixed.txt',
      'anna\r\n@Bob\r\nbad..name\r\nanna\r\n' +
        'x'.repeat(31) +
        '\r\nhttps://www.instagram.com/carl_x/\r\n',
    );
    const r = await cli(['enqueue', p, '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({ accepted: 3, duplicates: 1 });
    expect(out.rejected).toEqual([
      { line: 3, input: 'bad..name', reason: "contains '..'" },
      { line: 5, input: 'x'.repeat(31), reason: 'too long (31 characters, at most 30)' },
    ]);
    expect(await w.jobCount()).toBe(before + 3);
    const items = await w.client.query(
      'SELECT username, seq FROM items WHERE batch_id = $1 ORDER BY seq',
      [out.batchId],
    );
    expect(items.rows).toEqual([
      { username: 'anna', seq: 1 },
      { username: 'bob', seq: 2 },
      { username: 'carl_x', seq: 6 },
    ]);
    const jobs = await w.queue.getJobs(['waiting']);
    const mine = jobs.filter((j) => (j.data as { batchId: string }).batchId === out.batchId);
    expect(mine.map((j) => (j.data as { username: string }).username).sort()).toEqual([
      'anna',
      'bob',
      'carl_x',
    ]);
    // Job payloads carry ids and usernames only.
    expect(Object.keys(mine[0]!.data as object).sort()).toEqual(['batchId', 'username']);
  });

  it('--strict rejects the whole file with exit 2 and writes nothing', async () => {
    const jobs = await w.jobCount();
    const batches = await w.batchCount();
    const p = await file('strict.csv', 'username\nanna\nbad name\nbob\n');
    const r = await cli(['enqueue', p, '--strict', '--json']);
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout).rejected).toEqual([
      { line: 3, input: 'bad name', reason: "invalid character ' ' (allowed: a-z 0-9 . _)" },
    ]);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/--strict: 1 invalid line .*nothing enqueued/);
    expect(await w.jobCount()).toBe(jobs);
    expect(await w.batchCount()).toBe(batches);
  });

  it('--strict reads stdin too', async () => {
    const r = await cli(['enqueue', '-', '--strict'], 'anna\nok.name\n');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/2 accepted/);
  });

  it('the same batch enqueued twice creates no extra jobs or rows', async () => {
    const p = await file('twice.json', JSON.stringify(['d1', 'd2', 'd3']));
    const first = JSON.parse((await cli(['enqueue', p, '--json'])).stdout);
    const jobs = await w.jobCount();
    const again = await cli(['enqueue', p, '--json', '--batch-id', first.batchId]);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({
      batchId: first.batchId,
      accepted: 0,
      duplicates: 3,
    });
    expect(await w.jobCount()).toBe(jobs);
    const n = await w.client.query('SELECT count(*)::int AS n FROM items WHERE batch_id = $1', [
      first.batchId,
    ]);
    expect(n.rows[0].n).toBe(3);
    const status = JSON.parse((await cli(['status', first.batchId, '--json'])).stdout);
    expect(status).toMatchObject({ batchId: first.batchId, state: 'queued', total: 3, done: 0 });
    expect(Object.keys(status)).toEqual([
      'batchId',
      'name',
      'state',
      'total',
      'done',
      'counts',
      'createdAt',
      'startedAt',
      'finishedAt',
      'sealed',
    ]);
    expect(status.sealed).toBe(true);
  });

  it('--wait --json prints ONE object: the final status with the enqueue counts', async () => {
    const name = `wait-json-${Date.now()}`;
    const p = spawnNode(CLI, ['enqueue', '-', '--wait', '--json', '--name', name], w.env);
    p.child.stdin!.end('w1\nw2\nw1\nbad name\n');
    // Play the worker: once the batch is sealed, record a result for each of its items.
    const dbh = openDb(w.tdb.url, { max: 1 });
    try {
      let batchId: string | undefined;
      for (let i = 0; i < 1_500 && !batchId; i++) {
        const r = await w.client.query('SELECT id FROM batches WHERE name = $1 AND sealed', [name]);
        batchId = r.rows[0]?.id;
        if (!batchId) await new Promise((res) => setTimeout(res, 100));
      }
      expect(batchId).toBeDefined();
      await recordResult(dbh.db, batchId!, 'w1', { status: 'none', attempts: 1 });
      await recordResult(dbh.db, batchId!, 'w2', { status: 'active', attempts: 1, storyCount: 2 });
      expect(await p.exited).toBe(0);
      const lines = p.stdout().trim().split('\n');
      expect(lines).toHaveLength(1);
      const out = JSON.parse(lines[0]!);
      expect(out).toMatchObject({
        batchId,
        name,
        state: 'completed',
        total: 2,
        done: 2,
        counts: { active: 1, none: 1 },
        accepted: 2,
        duplicates: 1,
        rejected: [{ line: 4, input: 'bad name' }],
      });
    } finally {
      await p.kill();
      await dbh.close();
    }
  }, 240_000);

  it('answers every bad line of a messy file with its line number and reason', async () => {
    const lines = [
      'good.one', // 1
      'x'.repeat(31), // 2
      'a..b', // 3
      'аnna', // 4: Cyrillic а
      'https://www.instagram.com/From_URL/', // 5
      'https://example.com/someone', // 6
      '.dot', // 7
      'has space', // 8
      '@GOOD.ONE', // 9: duplicate of line 1 after normalisation
      'ümlaut', // 10
    ];
    const r = await cli(['enqueue', await file('messy.txt', lines.join('\n')), '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({ accepted: 2, duplicates: 1 });
    expect(out.rejected.map((x: { line: number; reason: string }) => [x.line, x.reason])).toEqual([
      [2, 'too long (31 characters, at most 30)'],
      [3, "contains '..'"],
      [4, 'invalid character U+0430 (allowed: a-z 0-9 . _)'],
      [6, 'not an instagram.com profile URL'],
      [7, "starts with '.'"],
      [8, "invalid character ' ' (allowed: a-z 0-9 . _)"],
      [10, 'invalid character U+00FC (allowed: a-z 0-9 . _)'],
    ]);
    const res = await cli(['results', out.batchId, '--format', 'ndjson']);
    expect(
      res.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).username),
    ).toEqual(['good.one', 'from_url']);
  });

  it('refuses an input over the line limit with one line, writing nothing', async () => {
    const batches = await w.batchCount();
    const r = await cli(['enqueue', await file('long.txt', 'a\nb\nc\nd\n'), '--max-lines', '3']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'storycheck: input has more than 3 lines (the limit); split it or raise --max-lines\n',
    );
    expect(await w.batchCount()).toBe(batches);
  });

  it.each([
    ['an empty file', '', /no usernames in input/],
    ['a file of only invalid lines', '...\n-\n', /no usernames in input/],
    [
      'a binary file',
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0x01, 0xff, 0xfe, 0x0a]),
      /^storycheck: input is not text \(a NUL byte at byte 5\)$/,
    ],
  ])('%s exits 2 with one line and writes nothing', async (_what, content, message) => {
    const batches = await w.batchCount();
    const r = await cli(['enqueue', await file('bad.txt', content)]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(message)]);
    expect(await w.batchCount()).toBe(batches);
  });

  it('a missing file, a bad option and a bad variable each exit 2 with one line', async () => {
    const missing = await cli(['enqueue', join(w.dir, 'nope.txt')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^storycheck: cannot read .*nope\.txt: no such file\n$/);
    const badOpt = await cli(['enqueue', '--frobnicate', 'x']);
    expect(badOpt.code).toBe(2);
    expect(badOpt.stderr.trim().split('\n')).toHaveLength(1);
    const badEnv = await cli(['status', 'x'], undefined, { REDIS_URL: 'nonsense' });
    expect(badEnv.code).toBe(2);
    expect(badEnv.stderr).toBe(
      'storycheck: invalid REDIS_URL: must be a URL with scheme redis, rediss, redis+cluster or redis+sentinel (rediss+… for TLS)\n',
    );
  });

  it('a database that is down is one clear line, exit 1, no stack', async () => {
    const r = await cli(['status', '00000000-0000-4000-8000-000000000000'], undefined, {
      DATABASE_URL: 'postgres://postgres@127.0.0.1:1/nowhere',
    });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/cannot connect/);
  });
});

describe('storycheck results', () => {
  it('prints every accepted name in input order with the CONTRACT.md fields', async () => {
    const p = await file('order.txt', 'zed\nalpha\nmike\n');
    const { batchId } = JSON.parse((await cli(['enqueue', p, '--json'])).stdout);
    const csv = await cli(['results', batchId]);
    expect(csv.stdout.split('\n')).toEqual([
      'username,status,storyCount,latestStoryAt,expiresAt,userId,checkedAt,attempts,cached,error',
      'zed,pending,,,,,,0,false,',
      'alpha,pending,,,,,,0,false,',
      'mike,pending,,,,,,0,false,',
      '',
    ]);
    const out = join(w.dir, 'out.json');
    expect((await cli(['results', batchId, '--format', 'json', '--output', out])).code).toBe(0);
    expect(
      JSON.parse(await readFile(out, 'utf8')).map((r: { username: string }) => r.username),
    ).toEqual(['zed', 'alpha', 'mike']);
    const nd = await cli(['results', batchId, '--format', 'ndjson']);
    expect(
      nd.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).username),
    ).toEqual(['zed', 'alpha', 'mike']);
    const bad = await cli(['results', batchId, '--format', 'xml']);
    expect(bad.code).toBe(2);
  });
});
