import { readFileSync } from 'node:fs';

import { describe, expect, test } from '@jest/globals';

import { RULE_MESSAGES } from '../../src/api/rule-messages.ts';
import { INVALID_CASES } from '../fixtures/invalid-instances.ts';
import { renderValidationDoc, VALIDATION_DOC_PATH } from '../fixtures/validation-doc.ts';

describe('table of invalid manifests', () => {
  test('has at least 25 cases with distinct names', () => {
    const names = INVALID_CASES.map((c) => c.name);
    expect(names.length).toBeGreaterThanOrEqual(25);
    expect(new Set(names).size).toBe(names.length);
  });

  test('exercises every CEL rule message at least once', () => {
    const used = new Set(INVALID_CASES.map((c) => c.message));
    const unused = Object.entries(RULE_MESSAGES).filter(([, message]) => !used.has(message));
    expect(unused.map(([rule]) => rule)).toEqual([]);
  });

  test('docs/validation.md is the rendering of the table (run validation-doc.ts --write)', async () => {
    expect(readFileSync(VALIDATION_DOC_PATH, 'utf8')).toBe(await renderValidationDoc());
  });

  test('the rendering shows one row per case with its field and message', async () => {
    const doc = await renderValidationDoc(INVALID_CASES.slice(0, 1));
    const rows = doc.split('\n').filter((l) => l.startsWith('| A ClaraInstance'));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toContain('`{spec: (removed)}`');
    expect(rows[0]).toContain('`Required value`');
  });
});
