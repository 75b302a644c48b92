/**
 * The operator as a process: killed between creating the task and writing status it still makes
 * exactly one task; of two replicas only the leader acts, and the other takes over within 20 s
 * of the leader's death; SIGTERM stops it within 10 s.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';

import type { ClaraObject } from '../../src/controller/clarainstance/clara-api.ts';
import { uidTag } from '../../src/controller/clarainstance/launch.ts';
import { startEmulator } from '../emulator/emulator.ts';
import type { RunningEmulator } from '../emulator/emulator.ts';
import {
  createTestNamespace,
  deleteTestNamespace,
  testKubeconfigPath,
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
  waitForStatus,
} from '../harness/operator-env.ts';
import { startOperatorProcess } from '../harness/operator-process.ts';
import type { OperatorProcess } from '../harness/operator-process.ts';

const kc = testKubeConfig();
let namespace: string;
let emulator: RunningEmulator;
let datasetId: string;
const processes: OperatorProcess[] = [];

beforeAll(async () => {
  await installCrd(kc);
  namespace = await createTestNamespace(kc, 'operator-process');
  emulator = await startEmulator({ port: 0, filesPort: 0 });
  datasetId = createDataset(emulator);
  await createCredentialsSecret(kc, { namespace, name: 'clearml-credentials', emulator });
});

afterAll(async () => {
  await Promise.all(processes.map((p) => p.kill()));
  await emulator?.stop();
  await deleteTestNamespace(kc, namespace);
});

async function operator(name: string, extra: string[] = []): Promise<OperatorProcess> {
  const p = await startOperatorProcess({
    kubeconfig: testKubeconfigPath(),
    name,
    args: [`--namespaces=${namespace}`, '--poll-interval=1s', ...extra],
  });
  processes.push(p);
  return p;
}

function spleen(name: string): ClaraObject {
  const obj = exampleInstance('spleen-ct-segmentation.yaml');
  obj.metadata = { name };
  obj.spec = {
    ...(obj.spec as Record<string, unknown>),
    datasetTask: datasetId,
    queue: `q-${name}`,
  };
  return obj;
}

function tasksOf(uid: string) {
  return [...emulator.state.tasks.values()].filter((t) =>
    ((t.system_tags as string[] | undefined) ?? []).includes(uidTag(uid)),
  );
}

describe('a crash between creating the task and writing its id to status', () => {
  test('leaves exactly one task after the restart', async () => {
    const first = await operator('crash-1');
    // tasks.create takes effect at once, but its answer is held back: the window to crash in.
    emulator.faults.set('tasks.create', { afterHandling: true, latencyMs: 10_000, times: 1 });
    emulator.startWorker({ queues: ['q-crashy'], behaviour: { iterations: 6, iterationMs: 100 } });
    const created = await createInstance(kc, namespace, spleen('crashy'));
    const uid = created.metadata.uid!;

    await waitFor(async () => (tasksOf(uid).length > 0 ? true : undefined), {
      what: 'tasks.create to be handled',
    });
    await first.kill();
    expect((await readInstance(kc, namespace, 'crashy'))?.status?.taskId).toBeUndefined();

    await operator('crash-2');
    const done = await waitForStatus(
      kc,
      { namespace, name: 'crashy', what: 'Completed after the restart', timeoutMs: 60_000 },
      (o) => o.status?.phase === 'Completed',
    );
    const tasks = tasksOf(uid);
    expect(tasks).toHaveLength(1);
    expect(done.status?.taskId).toBe(tasks[0]!.id);
    const second = processes.at(-1)!;
    expect(second.logLines().some((l) => l.msg === 'task adopted')).toBe(true);

    // The process serves its metrics and its web view too.
    const metrics = await (await fetch(second.metricsUrl)).text();
    expect(metrics).toMatch(/^controller_runtime_reconcile_total\{.*result="success".*\} [1-9]/m);
    expect(metrics).toContain(`clara_instance_info{namespace="${namespace}",name="crashy"`);
    const page = await fetch(`${second.webUrl}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('crashy');
    await second.terminate();
  });
});

describe('two replicas with leader election', () => {
  test('only the leader acts, and the standby takes over within 20 s of its death', async () => {
    const args = ['--leader-elect', `--leader-election-namespace=${namespace}`];
    const a = await operator('replica-a', args);
    const b = await operator('replica-b', args);
    const coordination = kc.makeApiClient(k8s.CoordinationV1Api);
    const holder = async () =>
      (await coordination.readNamespacedLease({ namespace, name: 'clara-operator-leader' })).spec
        ?.holderIdentity;
    const leaderId = await waitFor(holder, { what: 'a leader to be elected', timeoutMs: 30_000 });
    const [leader, standby] = leaderId === `${hostnameOf(a)}` ? [a, b] : [b, a];

    // One worker per queue: a worker runs one task at a time, and these hang until deleted.
    emulator.startWorker({ queues: ['q-elected'], behaviour: { outcome: 'hang' } });
    emulator.startWorker({ queues: ['q-after'], behaviour: { outcome: 'hang' } });
    await createInstance(kc, namespace, spleen('elected'));
    await waitForStatus(
      kc,
      { namespace, name: 'elected', what: 'Running' },
      (o) => o.status?.phase === 'Running',
    );
    const acted = (p: OperatorProcess) => p.logLines().some((l) => l.msg === 'task created');
    expect(acted(leader)).toBe(true);
    expect(acted(standby)).toBe(false);

    // The Service sends web requests to both replicas: the standby's view shows the run too,
    // while the run's metric series come from the leader alone.
    const standbyRuns = await waitFor(
      async () => {
        const body = (await (await fetch(`${standby.webUrl}/api/instances`)).json()) as {
          instances: { namespace: string; name: string; phase: string }[];
        };
        return body.instances.find(
          (r) => r.namespace === namespace && r.name === 'elected' && r.phase === 'Running',
        );
      },
      { what: "the standby's web view to list the run as Running" },
    );
    expect(standbyRuns.phase).toBe('Running');
    expect((await fetch(`${standby.healthUrl}/readyz`)).status).toBe(200);
    const series = `clara_instance_info{namespace="${namespace}",name="elected"`;
    expect(await (await fetch(leader.metricsUrl)).text()).toContain(series);
    expect(await (await fetch(standby.metricsUrl)).text()).not.toContain(series);

    const killedAtMs = Date.now();
    await leader.kill();
    await waitFor(async () => ((await holder()) !== leaderId ? true : undefined), {
      what: 'the standby to take the lease',
      timeoutMs: 20_000,
      intervalMs: 250,
    });
    const takeoverMs = Date.now() - killedAtMs;
    expect(takeoverMs).toBeLessThan(20_000);

    await createInstance(kc, namespace, spleen('after'));
    await waitForStatus(
      kc,
      { namespace, name: 'after', what: 'Running under the new leader' },
      (o) => o.status?.phase === 'Running',
    );
    expect(acted(standby)).toBe(true);
    process.stdout.write(`leader takeover after kill: ${takeoverMs} ms\n`);

    const stop = await standby.terminate();
    expect(stop.code).toBe(0);
    expect(stop.ms).toBeLessThan(10_000);
  });
});

/** The identity a replica campaigns with: `<hostname>-<pid>`, read from its log. */
function hostnameOf(p: OperatorProcess): string {
  const line = p.logLines().find((l) => l.msg === 'clara-operator running');
  return String(line?.identity ?? '');
}
