import { describe, expect, test } from '@jest/globals';

import { parseClaraInstance } from '../../src/api/clarainstance.ts';
import { claraInstanceStatusSchema } from '../../src/api/clarainstance-status.ts';
import { RULE_MESSAGES } from '../../src/api/rule-messages.ts';
import { claraInstance } from '../fixtures/clara-instance.ts';
import { exampleInstances } from '../fixtures/examples.ts';
import { INVALID_CASES, invalidManifest } from '../fixtures/invalid-instances.ts';
import { INVALID_STATUS_CASES, RUNNING_STATUS } from '../fixtures/status-instances.ts';
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
    // A CEL rule's message is shared with zod word for word (a rule whose messageExpression
    // adds the offending value adds it after '; ').
    if (ruleMessages.has(c.message)) {
      const shared = atField.filter(
        (p) => p.message === c.message || p.message.startsWith(`${c.message}; `),
      );
      expect(shared.map((p) => p.message)).not.toHaveLength(0);
    }
  });

  test('a set key that is not an identifier is named, as the CRD names it', () => {
    const manifest = claraInstance({ spec: { set: { epochs: '3', 'learning-rate': '1e-4' } } });
    const result = parseClaraInstance(manifest);
    expect(result.ok ? [] : result.problems.map((p) => p.message)).toContain(
      `${RULE_MESSAGES.setKeyIdentifier}; 'learning-rate' is not`,
    );
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
  test('accepts a full status', () => {
    expect(claraInstanceStatusSchema.safeParse(RUNNING_STATUS).success).toBe(true);
  });

  test.each(INVALID_STATUS_CASES)('refuses $name', ({ change }) => {
    const status = { ...RUNNING_STATUS, ...change };
    expect(claraInstanceStatusSchema.safeParse(status).success).toBe(false);
  });
});

describe('parseClaraInstance', () => {
  test.each([null, 'spleen', 42, []])('reports %p as a problem instead of throwing', (input) => {
    const result = parseClaraInstance(input);
    expect(result.ok).toBe(false);
    expect(result.ok ? [] : result.problems).not.toHaveLength(0);
  });
});
