import type { BatchStatus } from '@storycheck/db';
import { renderBatchesPage } from '../src/pages.js';

// An enqueue that was interrupted leaves its batch unsealed (it can never complete until the
// enqueue is resumed with --batch-id): the Batches page must not show it as an ordinary one.

function batch(id: string, sealed: boolean): BatchStatus {
  return {
    batchId: id,
    name: null,
    state: 'queued',
    total: 2000,
    done: 0,
    counts: { active: 0, none: 0, private: 0, not_found: 0, failed: 0 },
    duplicates: 0,
    rejected: 0,
    sealed,
    createdAt: '2026-01-01T00:00:00.000Z',
    startedAt: null,
    finishedAt: null,
  };
}

it('marks an unsealed batch "unsealed" and a sealed one not', () => {
  const html = renderBatchesPage(
    [
      batch('11111111-1111-4111-8111-111111111111', false),
      batch('22222222-2222-4222-8222-222222222222', true),
    ],
    Date.parse('2026-01-01T00:01:00Z'),
  );
  const row = (id: string) =>
    html
      .split('<tr>')
      .find((r) => r.includes(`<code>${id}</code>`))!
      .split('</tr>')[0]!;
  expect(row('11111111-1111-4111-8111-111111111111')).toMatch(
    /<span class="badge s-queued">queued<\/span> <span class="badge s-unsealed"[^>]*>unsealed<\/span>/,
  );
  expect(row('22222222-2222-4222-8222-222222222222')).not.toContain('unsealed');
});
