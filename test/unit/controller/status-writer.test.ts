import { describe, expect, test } from '@jest/globals';

import { parseClaraInstance } from '../../../src/api/clarainstance.ts';
import type { ClaraObject } from '../../../src/controller/clarainstance/clara-api.ts';
import { buildStatus } from '../../../src/controller/clarainstance/status-writer.ts';
import { claraInstance } from '../../fixtures/clara-instance.ts';

const NOW = new Date('2026-12-03T12:00:00Z');
const TASK = '0123456789abcdef0123456789abcdef';

function inputs(task: Record<string, unknown>, previous?: ClaraObject['status']) {
  const manifest = claraInstance({ spec: { agent: { mode: 'External' } } });
  const parsed = parseClaraInstance(manifest);
  if (!parsed.ok) throw new Error('fixture');
  const obj = {
    ...manifest,
    metadata: { name: 'spleen-unet', generation: 1 },
    status: previous,
  } as ClaraObject;
  return {
    obj,
    instance: parsed.value,
    snapshot: { task: { id: TASK, ...task }, models: undefined, failureLog: undefined },
    pod: undefined,
    problem: undefined,
    taskUrl: undefined,
    now: NOW,
  };
}

describe('buildStatus', () => {
  test('gives the same status for a queued task before and after its first poll', () => {
    // Right after tasks.enqueue the reconcile knows only the status; the first poll adds the
    // server's defaults (iteration 0, empty messages). Neither may cause a second write.
    const afterEnqueue = buildStatus(inputs({ status: 'queued', status_reason: '' }));
    const afterPoll = buildStatus(
      inputs(
        {
          status: 'queued',
          status_reason: '',
          status_message: '',
          last_iteration: 0,
          last_metrics: {},
        },
        afterEnqueue,
      ),
    );
    expect(afterPoll).toEqual(afterEnqueue);
    expect(afterPoll).not.toHaveProperty('lastIteration');
  });

  test('keeps the last known phase when the task cannot be read', () => {
    const completed = buildStatus(inputs({ status: 'completed', last_iteration: 30 }));
    const blind = buildStatus({ ...inputs({}, completed), snapshot: undefined });
    expect(blind.phase).toBe('Completed');
    expect(blind.lastIteration).toBe(30);
  });
});
