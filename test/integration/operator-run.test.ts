/**
 * The operator's main job, against the real apiserver and the ClearML emulator: the spleen
 * example becomes one ClearML task with the form's values on the named queue, one GPU agent pod,
 * and a status that goes Queued, Running, Completed with its scalars and models.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';

import {
  createTestNamespace,
  deleteTestNamespace,
  kubectl,
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
import type { Task } from '../../src/clearml/index.ts';

const kc = testKubeConfig();
const core = kc.makeApiClient(k8s.CoreV1Api);
let namespace: string;
let env: OperatorEnv;
let datasetId: string;

beforeAll(async () => {
  await installCrd(kc);
  namespace = await createTestNamespace(kc, 'operator-run');
  env = await startOperator({ kc, namespaces: [namespace] });
  datasetId = createDataset(env.emulator);
  await createCredentialsSecret(kc, {
    namespace,
    name: 'clearml-credentials',
    emulator: env.emulator,
  });
});

afterAll(async () => {
  await env?.stop();
  await deleteTestNamespace(kc, namespace);
});

function spleen(name: string, overrides: { iterations?: number } = {}) {
  const obj = exampleInstance('spleen-ct-segmentation.yaml');
  obj.metadata = { name };
  const spec = obj.spec as Record<string, unknown>;
  spec.datasetTask = datasetId;
  spec.queue = `q-${name}`;
  return { obj, queue: spec.queue as string, iterations: overrides.iterations ?? 20 };
}

describe('the spleen example', () => {
  let taskId: string;
  let runningPods: k8s.V1Pod[] = [];

  test('runs to Completed with scalars and models, through one task and one GPU pod', async () => {
    const { obj, queue, iterations } = spleen('spleen');
    env.emulator.startWorker({ queues: [queue], behaviour: { iterations, iterationMs: 150 } });
    await createInstance(kc, namespace, obj);

    // The agent pod while the run runs; a finished run's pod is removed if it lingers.
    const running = await waitForStatus(kc, { namespace, name: 'spleen', what: 'Running' }, (o) =>
      Boolean(o.status?.phase === 'Running' && o.status.agentPod),
    );
    runningPods = (
      await core.listNamespacedPod({
        namespace,
        labelSelector: `clara-operator.io/task-id=${running.status!.taskId}`,
      })
    ).items;

    const phases = new Set<string>(['Running']);
    const done = await waitForStatus(
      kc,
      { namespace, name: 'spleen', what: 'phase Completed', timeoutMs: 60_000 },
      (o) => {
        if (o.status?.phase) phases.add(o.status.phase);
        return o.status?.phase === 'Completed' && o.status.models !== undefined;
      },
    );
    expect([...phases]).toEqual(expect.arrayContaining(['Running', 'Completed']));
    expect(done.status?.metrics?.val_mean_dice?.latest).toBeGreaterThan(0.5);
    const loss = done.status?.metrics?.train_loss;
    expect(loss?.best).toBeLessThanOrEqual(loss?.latest ?? -1);
    expect(loss?.best).toBeLessThan(0.5);
    expect(done.status?.lastIteration).toBeGreaterThan(0);
    expect(done.status?.models?.length).toBeGreaterThan(0);
    expect(done.status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({
      status: 'True',
      reason: 'Completed',
    });
    expect(done.status?.observedGeneration).toBe(done.metadata.generation);
    taskId = done.status?.taskId ?? '';
    expect(taskId).toMatch(/^[0-9a-f]{32}$/);
  });

  test('made exactly one task, with the form values as hyperparameters, on the named queue', () => {
    const tasks = [...env.emulator.state.tasks.values()].filter(
      (t) => t.name === 'spleen CT segmentation (UNet)',
    );
    expect(tasks).toHaveLength(1);
    const task = tasks[0] as unknown as Task;
    expect(task.id).toBe(taskId);
    expect(task.type).toBe('training');
    const args = Object.fromEntries(
      Object.entries(task.hyperparams?.Args ?? {}).map(([k, v]) => [k, v.value]),
    );
    expect(args).toMatchObject({
      runtime: 'ClaraTrain',
      dataset_task: datasetId,
      mmar: 'ngc:clara_pt_spleen_ct_segmentation:4.1',
      training_arch: 'UNet',
      environment_file: 'config/environment.json',
      gpus: '1',
    });
    expect(args.set).toContain("'DATASET_JSON=dataset.json'");
    expect(task.script?.entry_point).toBe('clara_launcher.py');
    expect(task.container?.image).toBe('nvcr.io/nvidia/clara-train-sdk:v4.1');
    const queue = [...env.emulator.state.queues.values()].find(
      (q) => q.id === task.execution?.queue,
    );
    expect(queue?.name).toBe('q-spleen');
  });

  test('made one agent pod with the GPU request and credentials from the Secret', async () => {
    const pods = { items: runningPods };
    expect(pods.items).toHaveLength(1);
    const container = pods.items[0]!.spec!.containers[0]!;
    expect(container.resources?.limits?.['nvidia.com/gpu']).toBe('1');
    expect(container.command).toEqual([
      'clearml-agent',
      'execute',
      '--id',
      taskId,
      '--full-monitoring',
      '--require-queue',
    ]);
    const hostEnv = container.env?.find((e) => e.name === 'CLEARML_API_HOST');
    expect(hostEnv?.valueFrom?.secretKeyRef).toMatchObject({
      name: 'clearml-credentials',
      key: 'CLEARML_API_HOST',
    });
    expect(pods.items[0]!.spec!.nodeName).toMatch(/^clara-gpu-/);
  });

  test('removes the agent pod that still runs after the run ended', async () => {
    await waitFor(
      async () => {
        const pods = await core.listNamespacedPod({
          namespace,
          labelSelector: `clara-operator.io/task-id=${taskId}`,
        });
        return pods.items.length === 0 ? true : undefined;
      },
      { what: "the finished run's pod to be deleted" },
    );
  });

  test('shows the dice in kubectl get clara', async () => {
    const out = await kubectl(['get', 'clara', 'spleen', '-n', namespace]);
    expect(out.stdout).toMatch(/^NAME\s+PHASE\s+DICE\s+TASK\s+QUEUE\s+AGE/m);
    expect(out.stdout).toMatch(
      new RegExp(`^spleen\\s+Completed\\s+0\\.\\d+\\s+${taskId}\\s+q-spleen`, 'm'),
    );
  });

  test('records one event per transition', () => {
    const reasons = env.events.events.filter((e) => e.name === 'spleen').map((e) => e.reason);
    expect(reasons).toEqual(
      expect.arrayContaining([
        'TaskCreated',
        'TaskEnqueued',
        'AgentPodCreated',
        'Running',
        'Completed',
      ]),
    );
    for (const reason of ['TaskCreated', 'TaskEnqueued', 'AgentPodCreated', 'Completed']) {
      expect(reasons.filter((r) => r === reason)).toHaveLength(1);
    }
  });

  test('writes no status once nothing changes', async () => {
    const before = env.controller.api.counts.statusWrites;
    await new Promise((r) => setTimeout(r, 1_500));
    expect(env.controller.api.counts.statusWrites).toBe(before);
  });
});

describe('deletion', () => {
  test('of a running instance aborts and archives its task, then lets it go', async () => {
    const { obj, queue } = spleen('doomed');
    env.emulator.startWorker({ queues: [queue], behaviour: { outcome: 'hang' } });
    await createInstance(kc, namespace, obj);
    const running = await waitForStatus(
      kc,
      { namespace, name: 'doomed', what: 'Running' },
      (o) => o.status?.phase === 'Running',
    );
    const taskId = running.status!.taskId!;

    await kc.makeApiClient(k8s.CustomObjectsApi).deleteNamespacedCustomObject({
      group: 'clara-operator.io',
      version: 'v1alpha1',
      namespace,
      plural: 'clarainstances',
      name: 'doomed',
    });
    await waitFor(async () => ((await readInstance(kc, namespace, 'doomed')) ? undefined : true), {
      what: 'instance doomed to be gone',
      timeoutMs: 60_000,
    });
    const task = env.emulator.state.tasks.get(taskId);
    expect(task?.status).toBe('stopped');
    expect(task?.system_tags).toContain('archived');
  });
});

describe('deletion policies', () => {
  test.each([
    {
      policy: 'Delete',
      want: (id: string) => expect(env.emulator.state.tasks.has(id)).toBe(false),
    },
    {
      policy: 'Orphan',
      want: (id: string) => {
        const task = env.emulator.state.tasks.get(id);
        expect(task?.status).toBe('in_progress');
        expect(task?.system_tags).not.toContain('archived');
      },
    },
  ])('$policy', async ({ policy, want }) => {
    const name = `policy-${policy.toLowerCase()}`;
    const { obj, queue } = spleen(name);
    (obj.spec as Record<string, unknown>).deletionPolicy = policy;
    env.emulator.startWorker({ queues: [queue], behaviour: { outcome: 'hang' } });
    await createInstance(kc, namespace, obj);
    const running = await waitForStatus(
      kc,
      { namespace, name, what: 'Running' },
      (o) => o.status?.phase === 'Running',
    );
    await kc.makeApiClient(k8s.CustomObjectsApi).deleteNamespacedCustomObject({
      group: 'clara-operator.io',
      version: 'v1alpha1',
      namespace,
      plural: 'clarainstances',
      name,
    });
    await waitFor(async () => ((await readInstance(kc, namespace, name)) ? undefined : true), {
      what: `instance ${name} to be gone`,
      timeoutMs: 60_000,
    });
    want(running.status!.taskId!);
  });
});

describe('deletion while ClearML is down', () => {
  test('waits with a condition that says so, and completes once ClearML is back', async () => {
    const { obj, queue } = spleen('unlucky');
    env.emulator.startWorker({ queues: [queue], behaviour: { outcome: 'hang' } });
    await createInstance(kc, namespace, obj);
    const running = await waitForStatus(
      kc,
      { namespace, name: 'unlucky', what: 'Running' },
      (o) => o.status?.phase === 'Running',
    );
    const taskId = running.status!.taskId!;

    env.emulator.faults.set('*', { status: 503, message: 'maintenance' });
    try {
      await kc.makeApiClient(k8s.CustomObjectsApi).deleteNamespacedCustomObject({
        group: 'clara-operator.io',
        version: 'v1alpha1',
        namespace,
        plural: 'clarainstances',
        name: 'unlucky',
      });
      const blocked = await waitForStatus(
        kc,
        { namespace, name: 'unlucky', what: 'deletion blocked' },
        (o) =>
          o.status?.conditions?.some(
            (c) => c.type === 'Ready' && c.reason === 'ClearMLUnavailable',
          ) ?? false,
      );
      expect(blocked.metadata.deletionTimestamp).toBeDefined();
      expect(blocked.status?.message).toMatch(/deletion waits for ClearML/);
      expect(env.emulator.state.tasks.get(taskId)?.status).toBe('in_progress');
    } finally {
      env.emulator.faults.clear();
    }
    await waitFor(async () => ((await readInstance(kc, namespace, 'unlucky')) ? undefined : true), {
      what: 'instance unlucky to be gone once ClearML is back',
      timeoutMs: 90_000,
    });
    expect(env.emulator.state.tasks.get(taskId)?.system_tags).toContain('archived');
  });
});
