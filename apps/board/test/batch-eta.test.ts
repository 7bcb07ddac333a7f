import type { BatchStatus } from '@storycheck/db';
import { BatchEtaTracker } from '../src/batch-eta.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const batch = (done: number, state: BatchStatus['state'] = 'running'): BatchStatus => ({
  batchId: 'b1',
  name: null,
  state,
  total: 1_000,
  done,
  counts: { active: 0, none: done, private: 0, not_found: 0, failed: 0 },
  duplicates: 0,
  rejected: 0,
  sealed: true,
  createdAt: new Date(T0).toISOString(),
  startedAt: new Date(T0).toISOString(),
  finishedAt: null,
});

describe('BatchEtaTracker', () => {
  it('uses the average since the start until there is a window of notes, then the recent rate', () => {
    const t = new BatchEtaTracker({ windowMs: 300_000, minSpanMs: 30_000 });
    // 100 done in 100 s: 1/s since the start, 900 left.
    expect(t.update([batch(100)], T0 + 100_000)).toEqual([
      { batchId: 'b1', elapsedS: 100, etaS: 900, overrun: 1, stuck: false },
    ]);
    // 60 s later 400 done: 5/s recently, 600 left → 120 s.
    const [e] = t.update([batch(400)], T0 + 160_000);
    expect(e!.etaS).toBeCloseTo(120, 6);
  });

  it('says Infinity for a batch that finished nothing over a whole window', () => {
    const t = new BatchEtaTracker({ windowMs: 300_000, minSpanMs: 30_000 });
    t.update([batch(500)], T0 + 600_000);
    t.update([batch(500)], T0 + 750_000);
    const stuck = t.update([batch(500)], T0 + 900_000)[0]!;
    expect(stuck).toMatchObject({ etaS: Infinity, stuck: true, overrun: Infinity });
    // It moves again: a finite ETA.
    expect(t.update([batch(600)], T0 + 960_000)[0]!.etaS).toBeLessThan(Infinity);
  });

  it('exports running batches only, and forgets finished ones', () => {
    const t = new BatchEtaTracker();
    expect(
      t.update([batch(1_000, 'completed'), { ...batch(0, 'queued'), startedAt: null }], T0),
    ).toEqual([]);
  });

  it('measures the overrun against the shortest projection (elapsed + ETA), floored at 10 min', () => {
    const t = new BatchEtaTracker({ windowMs: 300_000, minSpanMs: 30_000 });
    // 500 of 1000 in 1000 s: projected 2000 s in all.
    expect(t.update([batch(500)], T0 + 1_000_000)[0]!.overrun).toBe(1);
    // 300 s later only 10 more: 490 left at 1/30 per s → 14 700 s more; 16 000 s projected.
    const late = t.update([batch(510)], T0 + 1_300_000)[0]!;
    expect(late.overrun).toBeCloseTo((1_300 + 490 * 30) / 2_000, 6);
  });
});
