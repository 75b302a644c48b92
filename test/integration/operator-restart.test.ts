/**
 * An operator restarted while ClearML is down must leave a finished run's final status alone:
 * no ClearMLUnavailable beside Ready=Completed, only backing off until ClearML answers again.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';

import { startEmulator } from '../emulator/emulator.ts';
import type { RunningEmulator } from '../emulator/emulator.ts';
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
let namespace: string;
let emulator: RunningEmulator;
let datasetId: string;
const operators: OperatorEnv[] = [];

beforeAll(async () => {
  await installCrd(kc);
  namespace = await createTestNamespace(kc, 'operator-restart');
  emulator = await startEmulator({ port: 0, filesPort: 0 });
  datasetId = createDataset(emulator);
  await createCredentialsSecret(kc, { namespace, name: 'clearml-credentials', emulator });
});

afterAll(async () => {
  for (const op of operators) await op.stop();
  await emulator?.stop();
  await deleteTestNamespace(kc, namespace);
});

describe('a finished run, after a restart while ClearML is down', () => {
  test('keeps its final conditions; the operator only backs off', async () => {
    const obj = exampleInstance('spleen-ct-segmentation.yaml');
    obj.metadata = { name: 'finished' };
    Object.assign(obj.spec as Record<string, unknown>, {
      datasetTask: datasetId,
      queue: 'q-finished',
    });
    emulator.startWorker({ queues: ['q-finished'], behaviour: { iterations: 5, iterationMs: 50 } });
    const first = await startOperator({ kc, namespaces: [namespace], emulator });
    operators.push(first);
    await createInstance(kc, namespace, obj);
    const done = await waitForStatus(
      kc,
      { namespace, name: 'finished', what: 'Completed with models' },
      (o) => o.status?.phase === 'Completed' && (o.status.models?.length ?? 0) > 0,
    );
    await first.stop();
    operators.splice(operators.indexOf(first), 1);

    emulator.faults.set('*', { status: 503, message: 'maintenance' });
    try {
      const seen = emulator.calls.length;
      operators.push(await startOperator({ kc, namespaces: [namespace], emulator }));
      // The restarted operator reads the finished task (to notice spec changes) and is refused.
      await waitFor(
        async () =>
          emulator.calls.slice(seen).filter((c) => c.status === 503).length >= 3 ? true : undefined,
        { what: 'the restarted operator to try ClearML and be refused', timeoutMs: 30_000 },
      );
      await new Promise((r) => setTimeout(r, 1_000));
      const after = await readInstance(kc, namespace, 'finished');
      expect(after?.status?.phase).toBe('Completed');
      expect(after?.status?.conditions).toEqual(done.status?.conditions);
      expect(after?.metadata.resourceVersion).toBe(done.metadata.resourceVersion);
    } finally {
      emulator.faults.clear();
    }
  });
});
