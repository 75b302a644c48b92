import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';

import { setCondition, type Condition } from '../../src/k8s/conditions.ts';
import { ConflictError } from '../../src/k8s/errors.ts';
import { StatusWriter, type ObjectWithStatus } from '../../src/k8s/status-writer.ts';
import {
  createTestNamespace,
  deleteTestNamespace,
  testKubeConfig,
  waitFor,
} from '../harness/cluster-env.ts';

// A throwaway kind with a status subresource, so these tests depend on no project CRD.
const group = 'k8s-test.clara-operator.io';
const version = 'v1';
const plural = 'widgets';
const crdName = `${plural}.${group}`;

const kc = testKubeConfig();
const custom = kc.makeApiClient(k8s.CustomObjectsApi);
let namespace: string;

interface Widget extends ObjectWithStatus {
  spec?: { size?: number };
  status?: { phase?: string; conditions?: Condition[] };
}

async function installWidgetCrd(): Promise<void> {
  const api = kc.makeApiClient(k8s.ApiextensionsV1Api);
  const body: k8s.V1CustomResourceDefinition = {
    metadata: { name: crdName },
    spec: {
      group,
      scope: 'Namespaced',
      names: { plural, singular: 'widget', kind: 'Widget', listKind: 'WidgetList' },
      versions: [
        {
          name: version,
          served: true,
          storage: true,
          subresources: { status: {} },
          schema: {
            openAPIV3Schema: {
              type: 'object',
              properties: {
                spec: { type: 'object', properties: { size: { type: 'integer' } } },
                status: { type: 'object', x_kubernetes_preserve_unknown_fields: true },
              },
            },
          },
        },
      ],
    },
  };
  await api.createCustomResourceDefinition({ body }).catch((err: unknown) => {
    // Another run or worker installed it already; the definition is the same.
    if (!(err instanceof k8s.ApiException && err.code === 409)) throw err;
  });
  await waitFor(
    () => custom.listNamespacedCustomObject({ group, version, namespace: 'default', plural }),
    { what: `CRD ${crdName} served` },
  );
}

async function createWidget(name: string): Promise<Widget> {
  return (await custom.createNamespacedCustomObject({
    group,
    version,
    namespace,
    plural,
    body: {
      apiVersion: `${group}/${version}`,
      kind: 'Widget',
      metadata: { name },
      spec: { size: 1 },
    },
  })) as Widget;
}

beforeAll(async () => {
  await installWidgetCrd();
  namespace = await createTestNamespace(kc, 'k8s-status');
});

afterAll(async () => {
  await deleteTestNamespace(kc, namespace);
});

const writer = () => new StatusWriter({ kubeConfig: kc, group, version, plural });

describe('StatusWriter against the API server', () => {
  test('writes a changed status and then skips the same status read back from the server', async () => {
    const created = await createWidget('roundtrip');
    const conditions = setCondition(
      undefined,
      {
        type: 'Ready',
        status: 'False',
        reason: 'Pending',
        message: 'waiting',
        observedGeneration: 1,
      },
      { nowMs: Date.now() },
    );
    const first = await writer().writeStatus(created, { phase: 'Pending', conditions });
    expect(first.outcome).toBe('updated');
    expect(first.object.metadata?.resourceVersion).not.toBe(created.metadata?.resourceVersion);

    const reread = (await custom.getNamespacedCustomObject({
      group,
      version,
      namespace,
      plural,
      name: 'roundtrip',
    })) as Widget;
    expect(reread.status).toEqual({ phase: 'Pending', conditions });
    const second = await writer().writeStatus(reread, { phase: 'Pending', conditions });
    expect(second.outcome).toBe('unchanged');
    expect(reread.metadata?.generation).toBe(1);
  });

  test('removes status fields left out of the new status', async () => {
    const created = await createWidget('removal');
    const { object } = await writer().writeStatus(created, { phase: 'Running', extra: 'x' });
    const { object: after } = await writer().writeStatus(object, { phase: 'Running' });
    expect(after.status).toEqual({ phase: 'Running' });
  });

  test('refuses a write based on a stale resourceVersion with ConflictError', async () => {
    const created = await createWidget('stale');
    await writer().writeStatus(created, { phase: 'Queued' });
    const attempt = writer().writeStatus(created, { phase: 'Running' });
    await expect(attempt).rejects.toBeInstanceOf(ConflictError);
    await expect(attempt).rejects.toMatchObject({ objectKey: `${namespace}/stale` });
  });

  test('leaves the spec alone even if the body carries a different one', async () => {
    const created = await createWidget('spec-untouched');
    const changed: Widget = { ...created, spec: { size: 99 } };
    const { object } = await writer().writeStatus(changed, { phase: 'Running' });
    expect((object as Widget).spec).toEqual({ size: 1 });
    expect(object.metadata?.generation).toBe(1);
  });
});
