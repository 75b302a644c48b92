/**
 * The ClaraInstance CRD on a real apiserver: it installs and becomes Established, every example
 * applies, `kubectl get clara` shows the printer columns, the server's defaults are zod's, and
 * `kubectl explain` describes every spec field.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type * as k8s from '@kubernetes/client-node';
import { parse } from 'yaml';

import { parseClaraInstance } from '../../src/api/clarainstance.ts';
import {
  createTestNamespace,
  deleteTestNamespace,
  kubectl,
  testKubeConfig,
  waitFor,
} from '../harness/cluster-env.ts';
import { CRD_FILE, installCrd } from '../harness/crd.ts';
import { TASK_ID } from '../fixtures/clara-instance.ts';
import { EXAMPLES_DIR, exampleDocuments } from '../fixtures/examples.ts';

type Node = { [key: string]: unknown };

const kc = testKubeConfig();
let namespace: string;
let crd: k8s.V1CustomResourceDefinition;

beforeAll(async () => {
  crd = await installCrd(kc);
  namespace = await createTestNamespace(kc, 'clara-api');
}, 60_000);

afterAll(async () => {
  await deleteTestNamespace(kc, namespace);
});

// Fails the test with kubectl's output when it exits non-zero.
async function kubectlOk(args: string[], input?: string): Promise<string> {
  const result = await kubectl(args, input === undefined ? {} : { input });
  expect({ args, code: result.code, stderr: result.stderr }).toEqual({ args, code: 0, stderr: '' });
  return result.stdout;
}

describe('ClaraInstance CRD on the apiserver', () => {
  test('is Established with its names accepted', () => {
    const conditions = Object.fromEntries(
      (crd.status?.conditions ?? []).map((c) => [c.type, c.status]),
    );
    expect(conditions).toMatchObject({ Established: 'True', NamesAccepted: 'True' });
    expect(crd.status?.acceptedNames).toMatchObject({
      kind: 'ClaraInstance',
      shortNames: ['clara'],
    });
  });

  test('installs again without change', async () => {
    const again = await installCrd(kc);
    expect(again.metadata?.generation).toBe(crd.metadata?.generation);
  });

  test.each([...new Set(exampleDocuments().map((d) => d.file))])(
    'applies examples/%s cleanly',
    async (file) => {
      const out = await kubectlOk(['apply', '-n', namespace, '-f', join(EXAMPLES_DIR, file)]);
      expect(out).toMatch(/(created|configured|unchanged)/);
    },
  );

  test('kubectl get clara shows phase, dice, task, queue and age', async () => {
    await kubectlOk([
      'apply',
      '-n',
      namespace,
      '-f',
      join(EXAMPLES_DIR, 'spleen-ct-segmentation.yaml'),
    ]);
    const status = {
      phase: 'Running',
      taskId: TASK_ID,
      metrics: { val_mean_dice: { latest: 0.9137 } },
    };
    await kubectlOk([
      'patch',
      'clara',
      'spleen-ct-unet',
      '-n',
      namespace,
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({ status }),
    ]);

    const out = await kubectlOk(['get', 'clara', 'spleen-ct-unet', '-n', namespace]);
    const [header, row] = out
      .trim()
      .split('\n')
      .map((l) => l.trim().split(/\s+/));
    expect(header).toEqual(['NAME', 'PHASE', 'DICE', 'TASK', 'QUEUE', 'AGE']);
    expect(row!.slice(0, 5)).toEqual(['spleen-ct-unet', 'Running', '0.9137', TASK_ID, 'clara-gpu']);
  });

  test('fills in the same defaults as the zod schema', async () => {
    await kubectlOk(['apply', '-n', namespace, '-f', join(EXAMPLES_DIR, 'minimal.yaml')]);
    const stored = JSON.parse(
      await kubectlOk(['get', 'clara', 'spleen-minimal', '-n', namespace, '-o', 'json']),
    ) as Node;
    const parsed = parseClaraInstance(
      parse(readFileSync(join(EXAMPLES_DIR, 'minimal.yaml'), 'utf8')),
    );
    expect(parsed.ok && parsed.value.spec).toEqual(stored.spec);
  });
});

// Every field below spec, as the dotted paths kubectl explain takes, with its description.
function specFields(node: Node, path: string): { path: string; description: string }[] {
  const properties = (node.properties ??
    (node.items as Node | undefined)?.properties ??
    {}) as Record<string, Node>;
  return Object.entries(properties).flatMap(([name, child]) => [
    { path: `${path}.${name}`, description: child.description as string },
    ...specFields(child, `${path}.${name}`),
  ]);
}

describe('kubectl explain', () => {
  const schema = parse(readFileSync(CRD_FILE, 'utf8')) as Node as {
    spec: { versions: { schema: { openAPIV3Schema: { properties: { spec: Node } } } }[] };
  };
  const fields = specFields(
    schema.spec.versions[0]!.schema.openAPIV3Schema.properties.spec,
    'spec',
  );
  const squash = (text: string) => text.replace(/\s+/g, ' ').trim();

  test('clarainstance.spec.mmar teaches the MMAR sources', async () => {
    // The published OpenAPI of a new CRD can trail its Established condition by a moment.
    const out = await waitFor(
      async () => {
        const r = await kubectl(['explain', 'clarainstance.spec.mmar']);
        return r.code === 0 ? r.stdout : undefined;
      },
      { what: 'kubectl explain clarainstance.spec.mmar', timeoutMs: 30_000 },
    );
    expect(squash(out)).toContain('Where the MMAR (or MONAI bundle) comes from.');
    for (const source of ['path', 'ngc', 'url', 'artifact', 'dataset', 'bundle']) {
      expect(out).toMatch(new RegExp(`^\\s+${source}\\s`, 'm'));
    }
  }, 40_000);

  test(`prints the description of each of the ${fields.length} spec fields`, async () => {
    const missing: string[] = [];
    for (const field of fields) {
      const r = await kubectl(['explain', `clarainstances.${field.path}`]);
      if (r.code !== 0 || !squash(r.stdout).includes(squash(field.description))) {
        missing.push(`${field.path}: exit ${r.code} ${r.stderr.trim()}`);
      }
    }
    expect(missing).toEqual([]);
  }, 120_000);
});
