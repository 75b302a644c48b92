/**
 * The apiserver, holding the ClaraInstance CRD, and the zod schema of src/api accept and reject
 * the same manifests: every valid fixture and example is accepted by both with the same defaults,
 * and every invalid fixture is refused by both, the apiserver naming the field and printing the
 * message that docs/validation.md documents.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';

import { parseClaraInstance } from '../../src/api/clarainstance.ts';
import {
  createTestNamespace,
  deleteTestNamespace,
  kubectl,
  testKubeConfig,
} from '../harness/cluster-env.ts';
import { installCrd } from '../harness/crd.ts';
import type { Manifest } from '../fixtures/clara-instance.ts';
import { exampleInstances } from '../fixtures/examples.ts';
import { INVALID_CASES, invalidManifest } from '../fixtures/invalid-instances.ts';
import { INVALID_STATUS_CASES, RUNNING_STATUS } from '../fixtures/status-instances.ts';
import { VALID_CASES, validManifest } from '../fixtures/valid-instances.ts';
import { claraInstance } from '../fixtures/clara-instance.ts';
import { claraInstanceStatusSchema } from '../../src/api/clarainstance-status.ts';
import { RULE_MESSAGES } from '../../src/api/rule-messages.ts';

const kc = testKubeConfig();
let namespace: string;

beforeAll(async () => {
  await installCrd(kc);
  namespace = await createTestNamespace(kc, 'clara-validation');
}, 60_000);

afterAll(async () => {
  await deleteTestNamespace(kc, namespace);
});

// Sends a manifest through kubectl as a user would, with server-side dry run so nothing is kept:
// the apiserver still defaults, validates (OpenAPI, CEL, strict fields) and answers the object.
function dryRunCreate(manifest: Manifest) {
  return kubectl(['create', '--dry-run=server', '-n', namespace, '-o', 'json', '-f', '-'], {
    input: JSON.stringify(manifest),
  });
}

const accepted = [
  ...exampleInstances().map((e) => ({ name: `example ${e.file}`, manifest: e.manifest })),
  ...VALID_CASES.map((c) => ({ name: c.name, manifest: validManifest(c) })),
];

describe('apiserver and zod agree', () => {
  test.each(accepted)('both accept $name, with the same defaults', async ({ manifest }) => {
    const result = await dryRunCreate(manifest);
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });

    const parsed = parseClaraInstance(manifest);
    const stored = JSON.parse(result.stdout) as { spec: unknown };
    expect(parsed.ok && parsed.value.spec).toEqual(stored.spec);
  });

  test.each(INVALID_CASES)('both refuse "$name"; kubectl names $field', async (c) => {
    const manifest = invalidManifest(c);
    const result = await dryRunCreate(manifest);
    expect(result.code).not.toBe(0);
    // The message follows its field on one line ("spec.queue: Invalid value: ..."), or, for a
    // field the API does not have, quotes the field ('unknown field "spec.epochs"').
    const named = result.stderr
      .split('\n')
      .some((line) => line.includes(`${c.field}: `) && line.includes(c.message));
    const unknown = c.message === `unknown field "${c.field}"` && result.stderr.includes(c.message);
    expect({ stderr: result.stderr, named: named || unknown }).toEqual({
      stderr: result.stderr,
      named: true,
    });
    expect(parseClaraInstance(manifest).ok).toBe(false);
  });

  test('kubectl names the set key that is not an identifier (messageExpression)', async () => {
    const manifest = claraInstance({ spec: { set: { epochs: '3', 'learning-rate': '1e-4' } } });
    const result = await dryRunCreate(manifest);
    expect(result.stderr).toContain(
      `spec.set: Invalid value: ${RULE_MESSAGES.setKeyIdentifier}; 'learning-rate' is not`,
    );
  });
});

describe('apiserver and zod agree on status', () => {
  // Each case writes its status through the status subresource of its own instance, with
  // kubectl replace, which (unlike patch) validates fields strictly as apply and create do.
  async function writeStatus(name: string, status: unknown) {
    const created = await kubectl(['create', '-n', namespace, '-o', 'json', '-f', '-'], {
      input: JSON.stringify(claraInstance({ metadata: { name } })),
    });
    expect(created.stderr).toBe('');
    const object = { ...(JSON.parse(created.stdout) as object), status };
    return kubectl(['replace', '--subresource=status', '-n', namespace, '-f', '-'], {
      input: JSON.stringify(object),
    });
  }

  test('both accept a full status', async () => {
    const result = await writeStatus('status-valid', RUNNING_STATUS);
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
    expect(claraInstanceStatusSchema.safeParse(RUNNING_STATUS).success).toBe(true);
  });

  test.each(INVALID_STATUS_CASES.map((c, i) => ({ ...c, i })))(
    'both refuse $name',
    async ({ change, i }) => {
      const status = { ...RUNNING_STATUS, ...change };
      const result = await writeStatus(`status-invalid-${i}`, status);
      expect(result.code).not.toBe(0);
      expect(claraInstanceStatusSchema.safeParse(status).success).toBe(false);
    },
  );
});
