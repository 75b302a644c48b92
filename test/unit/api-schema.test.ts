import { describe, expect, test } from '@jest/globals';

import { parseClaraInstance } from '../../src/api/clarainstance.ts';
import { claraInstanceStatusSchema } from '../../src/api/clarainstance-status.ts';
import { RULE_MESSAGES } from '../../src/api/rule-messages.ts';
import { claraInstance, TASK_ID } from '../fixtures/clara-instance.ts';
import { exampleInstances } from '../fixtures/examples.ts';
import { INVALID_CASES, invalidManifest } from '../fixtures/invalid-instances.ts';
import { VALID_CASES, validManifest } from '../fixtures/valid-instances.ts';

// The apiserver prints list indices as [0]; zod paths are plain segments.
const dotted = (field: string) => field.replace(/\[(\d+)\]/g, '.$1');
const ruleMessages = new Set<string>(Object.values(RULE_MESSAGES));

describe('zod schema of a ClaraInstance', () => {
  test.each(exampleInstances())('accepts the example $file', ({ manifest }) => {
    expect(parseClaraInstance(manifest)).toMatchObject({ ok: true });
  });

  test.each(VALID_CASES)('accepts $name', (c) => {
    expect(parseClaraInstance(validManifest(c))).toMatchObject({ ok: true });
  });

  test.each(INVALID_CASES)('refuses "$name", naming $field', (c) => {
    const result = parseClaraInstance(invalidManifest(c));
    expect(result.ok).toBe(false);
    const problems = result.ok ? [] : result.problems;
    const atField = problems.filter((p) => p.field === dotted(c.field));
    expect(atField).not.toHaveLength(0);
    // A CEL rule's message is shared with zod word for word.
    if (ruleMessages.has(c.message)) {
      expect(atField.map((p) => p.message)).toContain(c.message);
    }
  });

  test('applies the CRD defaults to a minimal spec', () => {
    const result = parseClaraInstance(claraInstance());
    expect(result.ok && result.value.spec).toMatchObject({
      project: 'Nvidia Clara',
      runtime: 'ClaraTrain',
      agent: { mode: 'Execute' },
      suspend: false,
      deletionPolicy: 'Archive',
    });
  });

  test('keeps values the user set over the defaults', () => {
    const manifest = claraInstance({
      spec: { project: 'Radiology/spleen', agent: { mode: 'External' }, suspend: true },
    });
    const result = parseClaraInstance(manifest);
    expect(result.ok && result.value.spec).toMatchObject({
      project: 'Radiology/spleen',
      agent: { mode: 'External' },
      suspend: true,
    });
  });

  test('reports every problem of a manifest with several, each at its field', () => {
    const manifest = claraInstance({
      spec: { datasetTask: 'nope', queue: 'q', agent: { gpus: 99 } },
    });
    const result = parseClaraInstance(manifest);
    const fields = result.ok ? [] : result.problems.map((p) => p.field).sort();
    expect(fields).toEqual(['spec.agent.gpus', 'spec.datasetTask', 'spec.queue']);
  });

  test('names an unknown field by its full path', () => {
    const result = parseClaraInstance(claraInstance({ spec: { mmar: { branch: 'main' } } }));
    expect(result).toEqual({
      ok: false,
      problems: [{ field: 'spec.mmar.branch', message: 'unknown field' }],
    });
  });
});

describe('zod schema of a ClaraInstance status', () => {
  const status = {
    observedGeneration: 3,
    phase: 'Running',
    conditions: [
      {
        type: 'TaskCreated',
        status: 'True',
        observedGeneration: 3,
        lastTransitionTime: '2026-12-03T16:00:00Z',
        reason: 'Created',
        message: 'task created',
      },
    ],
    taskId: TASK_ID,
    taskUrl: `https://app.clearml.example.com/projects/*/experiments/${TASK_ID}`,
    queue: 'clara-gpu',
    agentPod: 'spleen-unet-agent-1',
    startedAt: '2026-12-03T16:01:00Z',
    lastIteration: 1200,
    metrics: { val_mean_dice: { latest: 0.91, best: 0.93, iteration: 1200 } },
    models: [{ name: 'model.pt', uri: 's3://models/model.pt', framework: 'PyTorch' }],
    message: 'training',
    history: [{ taskId: '0'.repeat(32), phase: 'Aborted', completedAt: '2026-12-02T10:00:00Z' }],
  };

  test('accepts a full status', () => {
    expect(claraInstanceStatusSchema.safeParse(status).success).toBe(true);
  });

  test.each([
    { name: 'a phase outside the enum', change: { phase: 'Done' } },
    { name: 'a task id that is not a ClearML id', change: { taskId: 'task-1' } },
    { name: 'a time without a zone', change: { startedAt: '2026-12-03 16:01:00' } },
    {
      name: 'two conditions of one type',
      change: { conditions: [...status.conditions, ...status.conditions] },
    },
    { name: 'a metric not in the four scalars', change: { metrics: { val_loss: { latest: 1 } } } },
    { name: 'eleven history entries', change: { history: Array(11).fill({ taskId: TASK_ID }) } },
  ])('refuses $name', ({ change }) => {
    expect(claraInstanceStatusSchema.safeParse({ ...status, ...change }).success).toBe(false);
  });
});
