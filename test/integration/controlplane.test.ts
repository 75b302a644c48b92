/**
 * The test control plane behaves as a cluster does in what clara-operator relies on: CRD
 * validation, GPU scheduling by the real scheduler, garbage collection of owned objects and
 * namespace deletion. Runs against the local control plane or any cluster given by KUBECONFIG.
 */
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';

import {
  createTestNamespace,
  deleteTestNamespace,
  kubectl,
  testKubeConfig,
  waitFor,
} from '../harness/cluster-env.ts';
import { GPU_RESOURCE, startLocalCluster } from '../harness/cluster.ts';
import { HarnessError } from '../harness/errors.ts';

const kc = testKubeConfig();
const core = kc.makeApiClient(k8s.CoreV1Api);
const apiext = kc.makeApiClient(k8s.ApiextensionsV1Api);
const custom = kc.makeApiClient(k8s.CustomObjectsApi);

let namespace: string;
beforeAll(async () => {
  namespace = await createTestNamespace(kc, 'controlplane');
});
afterAll(async () => {
  await deleteTestNamespace(kc, namespace);
});

function gpuPod(name: string, gpus: number, extra: Partial<k8s.V1ObjectMeta> = {}): k8s.V1Pod {
  return {
    metadata: { name, ...extra },
    spec: {
      restartPolicy: 'Never',
      containers: [
        {
          name: 'train',
          image: 'nvcr.io/nvidia/clara-train-sdk:v4.1',
          resources: { limits: { [GPU_RESOURCE]: String(gpus) } },
        },
      ],
    },
  };
}

async function isGone(read: () => Promise<unknown>): Promise<true | undefined> {
  try {
    await read();
    return undefined;
  } catch (e) {
    if (e instanceof k8s.ApiException && e.code === 404) return true;
    throw e;
  }
}

describe('CustomResourceDefinitions', () => {
  const crd: k8s.V1CustomResourceDefinition = {
    metadata: { name: 'widgets.test.clara-operator.io' },
    spec: {
      group: 'test.clara-operator.io',
      scope: 'Namespaced',
      names: { plural: 'widgets', singular: 'widget', kind: 'Widget' },
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              properties: {
                spec: {
                  type: 'object',
                  required: ['gpus'],
                  properties: { gpus: { type: 'integer', minimum: 1, maximum: 8 } },
                },
              },
            },
          },
        },
      ],
    },
  };

  beforeAll(async () => {
    await apiext.createCustomResourceDefinition({ body: crd }).catch((e: unknown) => {
      if (!(e instanceof k8s.ApiException && e.code === 409)) throw e;
    });
  });

  test('a CRD applied becomes Established', async () => {
    const established = await waitFor(
      async () => {
        const got = await apiext.readCustomResourceDefinition({ name: crd.metadata!.name! });
        return got.status?.conditions?.find((c) => c.type === 'Established' && c.status === 'True');
      },
      { what: 'the Widget CRD to be Established' },
    );
    expect(established.reason).toBe('InitialNamesAccepted');
  });

  test('an object violating the schema is rejected with the apiserver message', async () => {
    const create = (gpus: unknown) =>
      custom.createNamespacedCustomObject({
        group: 'test.clara-operator.io',
        version: 'v1',
        namespace,
        plural: 'widgets',
        body: {
          apiVersion: 'test.clara-operator.io/v1',
          kind: 'Widget',
          metadata: { name: `w-${gpus}` },
          spec: { gpus },
        },
      });
    const created = await waitFor(() => create(2), { what: 'a valid Widget to be accepted' });
    expect(created).toMatchObject({ spec: { gpus: 2 } });

    const err = await create(100).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(k8s.ApiException);
    expect((err as k8s.ApiException<string>).code).toBe(422);
    const status = JSON.parse((err as k8s.ApiException<string>).body) as k8s.V1Status;
    expect(status.message).toContain(
      'spec.gpus: Invalid value: 100: spec.gpus in body should be less than or equal to 8',
    );
  });
});

describe('GPU scheduling on fake kwok nodes', () => {
  test('a pod requesting one GPU is scheduled onto a GPU node and runs', async () => {
    await core.createNamespacedPod({ namespace, body: gpuPod('one-gpu', 1) });
    const pod = await waitFor(
      async () => {
        const p = await core.readNamespacedPod({ namespace, name: 'one-gpu' });
        return p.status?.phase === 'Running' ? p : undefined;
      },
      { what: 'pod one-gpu to be Running', timeoutMs: 60_000 },
    );
    expect(pod.spec?.nodeName).toMatch(/^clara-gpu-\d+$/);
    const node = await core.readNode({ name: pod.spec!.nodeName! });
    expect(Number(node.status?.allocatable?.[GPU_RESOURCE])).toBeGreaterThanOrEqual(1);
  });

  test('a pod requesting 100 GPUs stays Pending, marked Unschedulable by the scheduler', async () => {
    await core.createNamespacedPod({ namespace, body: gpuPod('too-many-gpus', 100) });
    const condition = await waitFor(
      async () => {
        const p = await core.readNamespacedPod({ namespace, name: 'too-many-gpus' });
        return p.status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False');
      },
      { what: 'pod too-many-gpus to get a PodScheduled=False condition', timeoutMs: 60_000 },
    );
    expect(condition.reason).toBe('Unschedulable');
    expect(condition.message).toContain(`Insufficient ${GPU_RESOURCE}`);
    const pod = await core.readNamespacedPod({ namespace, name: 'too-many-gpus' });
    expect(pod.status?.phase).toBe('Pending');
    expect(pod.spec?.nodeName).toBeUndefined();
  });
});

describe('controllers', () => {
  test('deleting an owner deletes the pods it owns (garbage collector)', async () => {
    const owner = await core.createNamespacedConfigMap({
      namespace,
      body: { metadata: { name: 'owner' } },
    });
    const ownerReferences = [
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        name: 'owner',
        uid: owner.metadata!.uid!,
        controller: true,
      },
    ];
    await core.createNamespacedPod({ namespace, body: gpuPod('owned', 1, { ownerReferences }) });

    await core.deleteNamespacedConfigMap({ namespace, name: 'owner' });
    await waitFor(() => isGone(() => core.readNamespacedPod({ namespace, name: 'owned' })), {
      what: 'the garbage collector to delete pod owned',
      timeoutMs: 60_000,
    });
  });

  test('deleting a namespace with objects in it completes', async () => {
    const doomed = await createTestNamespace(kc, 'doomed');
    await core.createNamespacedConfigMap({
      namespace: doomed,
      body: { metadata: { name: 'data' } },
    });
    await core.createNamespacedPod({ namespace: doomed, body: gpuPod('runner', 1) });

    await core.deleteNamespace({ name: doomed });
    await waitFor(() => isGone(() => core.readNamespace({ name: doomed })), {
      what: `namespace ${doomed} to be deleted`,
      timeoutMs: 90_000,
    });
  });
});

describe('tools', () => {
  test('kubectl of the same release lists the fake GPU nodes', async () => {
    const result = await kubectl(['get', 'nodes', '-o', 'name']);
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(/^node\/clara-gpu-0$/m);
  });
});

describe('bad input to the harness', () => {
  test('a port already in use stops the start with one line naming the port', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as AddressInfo).port;
    try {
      const dir = mkdtempSync(join(tmpdir(), 'clara-port-test-'));
      const err = await startLocalCluster({
        dir,
        exitWithParent: true,
        port,
        log: () => undefined,
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(HarnessError);
      const message = (err as HarnessError).message;
      expect(message).toContain(`127.0.0.1:${port}`);
      expect(message).toMatch(/address already in use/);
      expect(message).toContain('CLARA_TEST_USE_EXISTING_CLUSTER');
      expect(message).not.toContain('\n');
    } finally {
      blocker.close();
    }
  }, 120_000);
});
