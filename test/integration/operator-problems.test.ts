/**
 * Bad input the CRD cannot catch, and the run's own troubles: each ends in a condition with a
 * clear reason and message, and none makes the operator crash or retry in a storm.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';

import type { ClaraObject } from '../../src/controller/clarainstance/clara-api.ts';
import {
  createTestNamespace,
  deleteTestNamespace,
  testKubeConfig,
  waitFor,
} from '../harness/cluster-env.ts';
import { installCrd } from '../harness/crd.ts';
import {
  createCredentialsSecret,
  createDataset,
  createInstance,
  exampleInstance,
  readInstance,
  startOperator,
  waitForStatus,
} from '../harness/operator-env.ts';
import type { OperatorEnv } from '../harness/operator-env.ts';

const kc = testKubeConfig();
const custom = kc.makeApiClient(k8s.CustomObjectsApi);
let namespace: string;
let env: OperatorEnv;
let datasetId: string;

beforeAll(async () => {
  await installCrd(kc);
  namespace = await createTestNamespace(kc, 'operator-problems');
  env = await startOperator({ kc, namespaces: [namespace] });
  datasetId = createDataset(env.emulator);
  await createCredentialsSecret(kc, { namespace, name: 'clearml', emulator: env.emulator });
  await createCredentialsSecret(kc, {
    namespace,
    name: 'wrong-keys',
    emulator: env.emulator,
    secretKey: 'nope',
  });
});

afterAll(async () => {
  await env?.stop();
  await deleteTestNamespace(kc, namespace);
});

/** The spleen example named `name`, on its own queue, with `spec` merged in. */
function instance(name: string, spec: Record<string, unknown> = {}): ClaraObject {
  const obj = exampleInstance('spleen-ct-segmentation.yaml');
  obj.metadata = { name };
  obj.spec = {
    ...(obj.spec as Record<string, unknown>),
    datasetTask: datasetId,
    queue: `q-${name}`,
    clearml: { secretRef: { name: 'clearml' } },
    ...spec,
  };
  return obj;
}

function ready(obj: ClaraObject) {
  return obj.status?.conditions?.find((c) => c.type === 'Ready');
}

/** Waits until Ready is False with `reason`, and returns that condition. */
async function blockedWith(name: string, reason: string) {
  const obj = await waitForStatus(kc, { namespace, name, what: `Ready=False ${reason}` }, (o) => {
    const c = ready(o);
    return c?.status === 'False' && c.reason === reason;
  });
  return ready(obj)!;
}

function clearmlCalls(endpoint: string): number {
  return env.emulator.calls.filter((c) => c.endpoint === endpoint).length;
}

describe('problems the user fixes outside the resource', () => {
  test.each([
    {
      given: 'a credentials Secret that does not exist',
      name: 'no-secret',
      spec: { clearml: { secretRef: { name: 'missing' } } },
      reason: 'CredentialsSecretMissing',
      message: /Secret operator-problems-\w+\/missing does not exist/,
    },
    {
      given: 'wrong keys',
      name: 'wrong-keys',
      spec: { clearml: { secretRef: { name: 'wrong-keys' } } },
      reason: 'CredentialsRejected',
      message: /ClearML refused the credentials/,
    },
    {
      given: 'a dataset id that is no task',
      name: 'no-dataset',
      spec: { datasetTask: 'f'.repeat(32) },
      reason: 'DatasetNotFound',
      message: /spec.datasetTask f{32}: no such ClearML task/,
    },
  ])('$given ends in Ready=False $reason', async ({ name, spec, reason, message }) => {
    await createInstance(kc, namespace, instance(name, spec));
    const condition = await blockedWith(name, reason);
    expect(condition.message).toMatch(message);
  });

  test('a dataset id of a task that is not a Dataset, or not finalized, is named as such', async () => {
    const plain = env.emulator.dispatch('tasks.create', {
      name: 'not a dataset',
      type: 'training',
    }) as { id: string };
    const draft = env.emulator.dispatch('tasks.create', {
      name: 'draft dataset',
      type: 'data_processing',
      system_tags: ['dataset'],
    }) as { id: string };
    await createInstance(kc, namespace, instance('not-dataset', { datasetTask: plain.id }));
    await createInstance(kc, namespace, instance('draft-dataset', { datasetTask: draft.id }));
    expect((await blockedWith('not-dataset', 'NotADataset')).message).toContain(
      'is a ClearML task but not a Dataset',
    );
    expect((await blockedWith('draft-dataset', 'DatasetNotFinalized')).message).toContain(
      'finalize it before training',
    );
  });

  test('a queue that does not exist is reported, not created', async () => {
    await createInstance(kc, namespace, instance('no-queue', { queue: 'no-such-queue' }));
    const condition = await blockedWith('no-queue', 'QueueNotFound');
    expect(condition.message).toBe(
      'ClearML queue no-such-queue does not exist; create it or fix spec.queue',
    );
    expect([...env.emulator.state.queues.values()].some((q) => q.name === 'no-such-queue')).toBe(
      false,
    );
  });

  test('an instance blocked on a missing queue is deleted: its never-queued task is archived', async () => {
    // The task was created but never enqueued; the server refuses created -> stopped, so the
    // deletion must archive it as it is rather than wait on a stop forever.
    await createInstance(kc, namespace, instance('gone-queue', { queue: 'no-such-queue-2' }));
    await blockedWith('gone-queue', 'QueueNotFound');
    const taskId = (await readInstance(kc, namespace, 'gone-queue'))!.status!.taskId!;
    expect(env.emulator.state.tasks.get(taskId)?.status).toBe('created');

    await custom.deleteNamespacedCustomObject({
      group: 'clara-operator.io',
      version: 'v1alpha1',
      namespace,
      plural: 'clarainstances',
      name: 'gone-queue',
    });
    await waitFor(
      async () => ((await readInstance(kc, namespace, 'gone-queue')) ? undefined : true),
      { what: 'instance gone-queue to be gone', timeoutMs: 30_000 },
    );
    const task = env.emulator.state.tasks.get(taskId);
    expect(task?.status).toBe('created');
    expect(task?.system_tags).toContain('archived');
  });

  test('a missing queue is created when the instance allows it (createQueue: true)', async () => {
    await createInstance(
      kc,
      namespace,
      instance('make-queue', { queue: 'made-queue', createQueue: true }),
    );
    await waitForStatus(
      kc,
      { namespace, name: 'make-queue', what: 'Queued' },
      (o) => o.status?.phase === 'Queued',
    );
    expect([...env.emulator.state.queues.values()].some((q) => q.name === 'made-queue')).toBe(true);
  });

  test('a blocked instance is looked at once per poll interval, not in a storm', async () => {
    const before = clearmlCalls('auth.login') + clearmlCalls('tasks.get_all');
    await new Promise((r) => setTimeout(r, 2_000));
    const after = clearmlCalls('auth.login') + clearmlCalls('tasks.get_all');
    // Poll interval 300 ms, a handful of blocked instances: a storm would be thousands.
    expect(after - before).toBeLessThan(150);
  });
});

describe('trouble during the run', () => {
  test('a pod that cannot be scheduled shows the scheduler reason', async () => {
    env.emulator.startWorker({ queues: ['q-huge'], behaviour: { outcome: 'hang' } });
    await createInstance(kc, namespace, instance('huge', { queue: 'q-huge', agent: { gpus: 16 } }));
    const condition = await blockedWith('huge', 'Unschedulable');
    expect(condition.message).toContain('Insufficient nvidia.com/gpu');
    // The Warning event carries the cause, not the phase change it came with.
    const warning = env.events.events.find((e) => e.name === 'huge' && e.type === 'Warning');
    expect(warning).toMatchObject({ reason: 'Unschedulable', note: condition.message });
  });

  test('a queued run whose pod cannot be scheduled gets a Warning event without a phase change', async () => {
    // Nobody serves this queue, so the task stays queued while the pod waits for 16 GPUs.
    await createInstance(
      kc,
      namespace,
      instance('huge-queued', { queue: 'q-huge-queued', createQueue: true, agent: { gpus: 16 } }),
    );
    const condition = await blockedWith('huge-queued', 'Unschedulable');
    expect((await readInstance(kc, namespace, 'huge-queued'))?.status?.phase).toBe('Queued');
    const warnings = env.events.events.filter(
      (e) => e.name === 'huge-queued' && e.type === 'Warning',
    );
    expect(warnings).toEqual([
      expect.objectContaining({ reason: 'Unschedulable', note: condition.message }),
    ]);
  });

  test('a task that fails ends Failed with the tail of its log', async () => {
    env.emulator.startWorker({
      queues: ['q-failing'],
      behaviour: { outcome: 'fail', iterations: 6, failAt: 3 },
    });
    await createInstance(kc, namespace, instance('failing', { queue: 'q-failing' }));
    const obj = await waitForStatus(
      kc,
      { namespace, name: 'failing', what: 'phase Failed' },
      (o) => o.status?.phase === 'Failed',
    );
    expect(ready(obj)).toMatchObject({ status: 'False', reason: 'Failed' });
    expect(obj.status?.message).toBeTruthy();
    expect(obj.status?.message).toMatch(/\n|error|fail/i);
  });
});

describe('suspend and spec changes', () => {
  test('suspend aborts the task and removes the pod; resume enqueues the same task', async () => {
    // The agent acts on a stop request seconds later, as the real one does at its next poll: a
    // resume in that window must not let the old run's late "stopped" abort the resumed one.
    env.emulator.startWorker({
      queues: ['q-pausable'],
      behaviour: { iterations: 40, iterationMs: 100, stopAckMs: 3_000 },
    });
    await createInstance(kc, namespace, instance('pausable', { queue: 'q-pausable' }));
    const running = await waitForStatus(
      kc,
      { namespace, name: 'pausable', what: 'Running' },
      (o) => o.status?.phase === 'Running',
    );
    const taskId = running.status!.taskId!;

    await patchSpec('pausable', { suspend: true });
    await waitForStatus(
      kc,
      { namespace, name: 'pausable', what: 'Suspended' },
      (o) => o.status?.phase === 'Suspended',
    );
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const pods = await core.listNamespacedPod({
      namespace,
      labelSelector: `clara-operator.io/task-id=${taskId}`,
    });
    expect(pods.items.filter((p) => !p.metadata?.deletionTimestamp)).toHaveLength(0);
    // Stopped for good, not left in_progress "stopping" for an agent whose pod is gone.
    expect(env.emulator.state.tasks.get(taskId)?.status).toBe('stopped');

    await patchSpec('pausable', { suspend: false });
    const resumed = await waitForStatus(
      kc,
      { namespace, name: 'pausable', what: 'queued or running again' },
      (o) => ['Queued', 'Running', 'Completed'].includes(o.status?.phase ?? ''),
    );
    expect(resumed.status?.taskId).toBe(taskId);
    // Past the old agent's late acknowledgement, the resumed run goes on to Completed.
    const finished = await waitForStatus(
      kc,
      { namespace, name: 'pausable', what: 'Completed after the resume', timeoutMs: 60_000 },
      (o) => ['Completed', 'Aborted', 'Failed'].includes(o.status?.phase ?? ''),
    );
    expect(finished.status?.phase).toBe('Completed');
  });

  test('a change to a launch field starts a new run and keeps the old task in history', async () => {
    env.emulator.startWorker({
      queues: ['q-changing', 'q-changed'],
      behaviour: { outcome: 'hang' },
    });
    await createInstance(kc, namespace, instance('changing', { queue: 'q-changing' }));
    const first = await waitForStatus(
      kc,
      { namespace, name: 'changing', what: 'Running' },
      (o) => o.status?.phase === 'Running',
    );
    const oldTask = first.status!.taskId!;

    await patchSpec('changing', { queue: 'q-changed' });
    const second = await waitForStatus(
      kc,
      { namespace, name: 'changing', what: 'a new task' },
      (o) =>
        Boolean(o.status?.taskId && o.status.taskId !== oldTask && o.status.phase === 'Running'),
    );
    expect(second.status?.history?.[0]).toMatchObject({ taskId: oldTask });
    expect(env.emulator.state.tasks.get(oldTask)?.status).toBe('stopped');
  });
});

async function patchSpec(name: string, spec: Record<string, unknown>): Promise<void> {
  await custom.patchNamespacedCustomObject(
    {
      group: 'clara-operator.io',
      version: 'v1alpha1',
      namespace,
      plural: 'clarainstances',
      name,
      body: { spec },
    },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
  );
}
