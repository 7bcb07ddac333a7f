import { writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { runNode, spawnNode, waitFor } from '@storycheck/testkit';
import { CLI, cliWorld } from './cli-world.js';

// Enqueue under faults (issue 14, item 4): services that do not answer, and an operator's
// Ctrl-C or SIGTERM in the middle of a large enqueue. The real CLI is spawned each time.

const w = cliWorld('sc-enq-faults-');

const cli = (args: string[], extraEnv: Record<string, string> = {}) =>
  runNode(CLI, args, { ...w.env, ...extraEnv });
async function namesFile(file: string, n: number, from = 0): Promise<string> {
  const p = join(w.dir, file);
  const lines: string[] = [];
  for (let i = from; i < from + n; i++) lines.push(`user_${String(i).padStart(7, '0')}`);
  await writeFile(p, `${lines.join('\n')}\n`);
  return p;
}

describe('enqueue against services that do not answer', () => {
  it('an unreachable Redis: retries, then one line naming it, exit 1, no batch written', async () => {
    const p = await namesFile('small.txt', 5);
    const before = await w.batchCount();
    const r = await cli(['enqueue', p], { REDIS_URL: 'redis://127.0.0.1:1' });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([
      'storycheck: cannot reach Redis at redis://127.0.0.1:1: connection refused',
    ]);
    expect(r.stdout).toBe('');
    expect(await w.batchCount()).toBe(before);
  });

  it('an unreachable Postgres: one line naming it, exit 1, no job added', async () => {
    const p = await namesFile('small2.txt', 5);
    const jobs = await w.jobCount();
    const r = await cli(['enqueue', p], {
      DATABASE_URL: 'postgres://postgres:CANARYpw7@127.0.0.1:1/nowhere',
    });
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^storycheck: cannot reach Postgres at postgres:\/\/postgres:.*@127\.0\.0\.1:1\/nowhere: connection refused$/,
    );
    expect(r.stderr).not.toContain('CANARYpw7');
    expect(await w.jobCount()).toBe(jobs);
  });
});

describe('enqueue stopped by a signal', () => {
  const N = 50_000;

  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)(
    '%s mid-enqueue: flushes, prints the batch id and the resume command, exit %i; the batch shows as unsealed until resumed',
    async (sig, exitCode) => {
      const p = await namesFile(`big-${sig}.txt`, N);
      const proc = spawnNode(CLI, ['enqueue', p], w.env);
      proc.child.stdin!.end();
      // The batch row exists and its first chunks are written: the enqueue is in the middle.
      const batchId = await waitFor(
        async () =>
          (
            await w.client.query(
              'SELECT id FROM batches WHERE total >= 2000 AND created_at > now() - interval $$5 minutes$$ AND NOT sealed',
            )
          ).rows[0]?.id as string | undefined,
        'the enqueue to write its first chunks',
        120_000,
        20,
      );
      proc.child.kill(sig);
      expect(await proc.exited).toBe(exitCode);
      const lines = proc.stderr().trim().split('\n');
      expect(lines).toHaveLength(2);
      expect(lines[0]).toMatch(
        new RegExp(
          `^storycheck: interrupted by ${sig} after \\d+ new names; batch ${batchId} is unsealed`,
        ),
      );
      expect(lines[1]).toBe(`resume with: storycheck enqueue ${p} --batch-id ${batchId}`);

      // Flushed: every row written has its job, and the interruption came well before the end.
      const b = (await w.client.query('SELECT * FROM batches WHERE id = $1', [batchId])).rows[0];
      expect(b.sealed).toBe(false);
      expect(b.total).toBeLessThan(N);
      const rows = await w.client.query(
        'SELECT count(*)::int AS n FROM items WHERE batch_id = $1',
        [batchId],
      );
      expect(rows.rows[0].n).toBe(b.total);
      const jobsOfBatch = (
        await w.queue.getJobs(['waiting', 'prioritized', 'delayed'], 0, -1)
      ).filter((j) => j.data.batchId === batchId).length;
      expect(jobsOfBatch).toBe(b.total);

      // Shown as unfinished: status (human and JSON) and batches list (human and JSON).
      const human = await cli(['status', batchId]);
      expect(human.stdout).toMatch(/: queued \(unsealed: enqueue running or interrupted\), /);
      const json = JSON.parse((await cli(['status', batchId, '--json'])).stdout);
      expect(json).toMatchObject({ batchId, state: 'queued', sealed: false });
      const list = await cli(['batches', 'list']);
      expect(list.stdout.split('\n').find((l) => l.includes(batchId))).toMatch(/unsealed/);
      const listJson = JSON.parse((await cli(['batches', 'list', '--json'])).stdout) as Array<
        Record<string, unknown>
      >;
      expect(listJson.find((x) => x.batchId === batchId)).toMatchObject({ sealed: false });

      // The printed command finishes it: every name once, sealed.
      const resume = await cli(lines[1]!.replace('resume with: storycheck ', '').split(' '));
      expect(resume.code).toBe(0);
      const after = (await w.client.query('SELECT * FROM batches WHERE id = $1', [batchId]))
        .rows[0];
      expect(after).toMatchObject({ sealed: true, total: N });
      const distinct = await w.client.query(
        'SELECT count(*)::int AS n, count(DISTINCT username)::int AS d FROM items WHERE batch_id = $1',
        [batchId],
      );
      expect(distinct.rows[0]).toEqual({ n: N, d: N });
      expect(JSON.parse((await cli(['status', batchId, '--json'])).stdout).sealed).toBe(true);
      // Drop this batch's jobs so the next case counts only its own.
      await w.queue.obliterate({ force: true });
    },
    300_000,
  );

  it('a signal before anything is written leaves nothing behind', async () => {
    const before = await w.batchCount();
    const jobs = await w.jobCount();
    // A "Redis" that accepts connections and never answers: once it sees the CLI connect, the
    // command is in its connection retries (its signal handlers in place) and has written nothing.
    let connected!: () => void;
    const seen = new Promise<void>((r) => (connected = r));
    const silent = createServer((sock) => {
      sock.on('error', () => undefined);
      connected();
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as AddressInfo).port;
    try {
      const p = await namesFile('never.txt', 10);
      const proc = spawnNode(CLI, ['enqueue', p], {
        ...w.env,
        REDIS_URL: `redis://127.0.0.1:${port}`,
      });
      proc.child.stdin!.end();
      await seen;
      proc.child.kill('SIGINT');
      expect(await proc.exited).toBe(130);
      expect(proc.stderr().trim().split('\n')).toEqual([
        'storycheck: interrupted by SIGINT; nothing enqueued',
      ]);
    } finally {
      silent.close();
    }
    expect(await w.batchCount()).toBe(before);
    expect(await w.jobCount()).toBe(jobs);
  });

  it('a Redis that accepts connections but never answers: one line after the retries, exit 1', async () => {
    const socks: Socket[] = [];
    const silent = createServer((sock) => {
      sock.on('error', () => undefined);
      socks.push(sock);
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as AddressInfo).port;
    try {
      const before = await w.batchCount();
      const r = await cli(['enqueue', await namesFile('silent.txt', 3)], {
        REDIS_URL: `redis://127.0.0.1:${port}`,
      });
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n')).toEqual([
        `storycheck: cannot reach Redis at redis://127.0.0.1:${port}: no answer`,
      ]);
      expect(await w.batchCount()).toBe(before);
    } finally {
      for (const s of socks) s.destroy();
      silent.close();
    }
  });
});
