/**
 * `npm run demo`: the operator doing its main job on this machine. It brings up the local
 * control plane (fake GPU nodes), a ClearML emulator with a simulated worker on the example's
 * queue and the example's dataset, starts the operator as a process, applies
 * `examples/spleen-ct-segmentation.yaml` unchanged with kubectl, and follows the instance to
 * Completed, printing its phase, scalars and models.
 *
 * The control plane keeps running afterwards (`npm run cluster:down` stops it); the emulator and
 * the operator stop with the demo. The simulated worker plays clearml-agent: it reports scalars,
 * log lines and a model the way a Clara run does, without a GPU.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import * as k8s from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';

import type { ClaraObject } from '../src/controller/clarainstance/clara-api.ts';
import { startEmulator } from '../test/emulator/emulator.ts';
import { waitFor } from '../test/harness/cluster-env.ts';
import { installCrd } from '../test/harness/crd.ts';
import { HarnessError } from '../test/harness/errors.ts';
import { GPU_RESOURCE, loadKubeConfig } from '../test/harness/cluster.ts';
import { REPO_ROOT } from '../test/harness/go-build.ts';
import {
  createCredentialsSecret,
  createDataset,
  readInstance,
} from '../test/harness/operator-env.ts';
import { freePort } from '../test/harness/operator-process.ts';
import { up } from './cluster.ts';

const EXAMPLE = join(REPO_ROOT, 'examples', 'spleen-ct-segmentation.yaml');
const NAMESPACE = 'clara-demo';
const TIMEOUT_MS = 180_000;

function step(n: number, text: string): void {
  console.log(`\n[${n}/5] ${text}`);
}

async function main(): Promise<void> {
  step(1, 'Local control plane (etcd, kube-apiserver, controllers, scheduler, kwok)');
  const cluster = await up();
  const kc = loadKubeConfig(cluster.kubeconfig);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  for (const node of (await core.listNode()).items) {
    console.log(
      `  node ${node.metadata?.name}: ${GPU_RESOURCE}=${node.status?.allocatable?.[GPU_RESOURCE] ?? 0}`,
    );
  }

  step(2, 'ClearML emulator, with the example dataset and a simulated agent on its queue');
  const example = parseYaml(readFileSync(EXAMPLE, 'utf8')) as ClaraObject;
  const spec = example.spec as { datasetTask: string; queue: string };
  const emulator = await startEmulator({ port: 0, filesPort: 0 });
  createDataset(emulator, 'Medical Segmentation Decathlon: Task09 Spleen', spec.datasetTask);
  emulator.startWorker({ queues: [spec.queue], behaviour: { iterations: 30, iterationMs: 250 } });
  console.log(`  API ${emulator.apiUrl}, web ${emulator.url}, files ${emulator.filesUrl}`);
  console.log(`  dataset ${spec.datasetTask} (finalized), worker serving queue ${spec.queue}`);

  step(3, `CRD, namespace ${NAMESPACE} and the credentials Secret the example names`);
  await installCrd(kc);
  await core.createNamespace({ body: { metadata: { name: NAMESPACE } } }).catch(ignoreConflict);
  await core
    .deleteNamespacedSecret({ namespace: NAMESPACE, name: 'clearml-credentials' })
    .catch(() => undefined);
  await createCredentialsSecret(kc, {
    namespace: NAMESPACE,
    name: 'clearml-credentials',
    emulator,
  });
  await waitFor(
    () => core.readNamespacedServiceAccount({ namespace: NAMESPACE, name: 'default' }),
    {
      what: 'the default ServiceAccount',
    },
  );

  step(4, 'The operator (node src/main.ts), logging to .cluster/operator.log');
  // NB: the launcher the tasks carry is written by a later issue (launcher/); the simulated
  // worker does not run it, so the demo stores a one-line placeholder script in each task.
  const launcher = join(cluster.dir, 'clara_launcher.py');
  writeFileSync(
    launcher,
    '# the Clara launcher is not written yet; the simulated agent does not run it\n',
  );
  const webPort = await freePort();
  const logFd = openSync(join(cluster.dir, 'operator.log'), 'w');
  const operator = spawn(
    join(REPO_ROOT, 'node_modules', '.bin', 'node'),
    [
      join(REPO_ROOT, 'src', 'main.ts'),
      `--kubeconfig=${cluster.kubeconfig}`,
      `--namespaces=${NAMESPACE}`,
      '--poll-interval=1s',
      `--health-address=127.0.0.1:${await freePort()}`,
      `--web-address=127.0.0.1:${webPort}`,
      `--metrics-address=127.0.0.1:${await freePort()}`,
      `--launcher-script=${launcher}`,
    ],
    { stdio: ['ignore', logFd, logFd], cwd: REPO_ROOT },
  );
  closeSync(logFd);

  try {
    step(5, `kubectl apply -f examples/spleen-ct-segmentation.yaml -n ${NAMESPACE}`);
    await kubectl(cluster.kubectl, [
      '--kubeconfig',
      cluster.kubeconfig,
      'delete',
      'clara',
      'spleen-ct-unet',
      '-n',
      NAMESPACE,
      '--ignore-not-found',
      '--wait=true',
    ]);
    console.log(
      await kubectl(cluster.kubectl, [
        '--kubeconfig',
        cluster.kubeconfig,
        'apply',
        '-n',
        NAMESPACE,
        '-f',
        EXAMPLE,
      ]),
    );
    const done = await follow(kc, example.metadata.name ?? '');
    console.log(
      await kubectl(cluster.kubectl, [
        '--kubeconfig',
        cluster.kubeconfig,
        'get',
        'clara',
        '-n',
        NAMESPACE,
      ]),
    );
    printSummary(done);
    console.log(
      `\nThe control plane keeps running (KUBECONFIG=${cluster.kubeconfig}); stop it with: npm run cluster:down`,
    );
    if (process.stdin.isTTY) {
      // A person at a terminal gets time to look at the web view; scripts end at once.
      console.log(
        `Web view: http://127.0.0.1:${webPort}/  (the operator and ClearML emulator run until Ctrl-C)`,
      );
      await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
    } else {
      console.log('Web view: run the demo in a terminal to keep it up until Ctrl-C');
    }
  } finally {
    operator.kill('SIGTERM');
    await emulator.stop();
  }
}

/** Prints each phase change and the dice as they arrive, until a final phase. */
async function follow(kc: k8s.KubeConfig, name: string): Promise<ClaraObject> {
  const deadline = Date.now() + TIMEOUT_MS;
  let last = '';
  for (;;) {
    const obj = await readInstance(kc, NAMESPACE, name);
    const status = obj?.status;
    const dice = status?.metrics?.val_mean_dice?.latest;
    const line =
      `  phase ${status?.phase ?? '-'}` +
      (status?.taskId ? `, task ${status.taskId}` : '') +
      (status?.agentPod ? `, pod ${status.agentPod}` : '') +
      (dice !== undefined
        ? `, iteration ${status?.lastIteration}, val_mean_dice ${dice.toFixed(3)}`
        : '');
    if (line !== last) console.log(line);
    last = line;
    if (
      obj &&
      status &&
      ['Completed', 'Failed', 'Aborted'].includes(status.phase ?? '') &&
      status.models
    )
      return obj;
    if (Date.now() > deadline)
      throw new HarnessError(
        `the instance did not finish within ${TIMEOUT_MS / 1000} s; see .cluster/operator.log`,
      );
    await new Promise((r) => setTimeout(r, 500));
  }
}

function printSummary(obj: ClaraObject): void {
  const status = obj.status ?? {};
  console.log('\nScalars (latest / best):');
  for (const [name, m] of Object.entries(status.metrics ?? {})) {
    console.log(`  ${name.padEnd(14)} ${m.latest?.toFixed(4)} / ${m.best?.toFixed(4)}`);
  }
  console.log('Models:');
  for (const model of status.models ?? [])
    console.log(`  ${model.name}  ${model.framework ?? ''}  ${model.uri}`);
  console.log(`Task in the ClearML UI: ${status.taskUrl ?? '(no web host)'}`);
  for (const c of status.conditions ?? [])
    console.log(`Condition ${c.type}=${c.status} (${c.reason}): ${c.message}`);
}

function kubectl(binary: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0
        ? resolve(out.trimEnd())
        : reject(new HarnessError(`kubectl ${args.join(' ')}: ${out.trim()}`)),
    );
  });
}

function ignoreConflict(err: unknown): void {
  if (!(err instanceof k8s.ApiException && err.code === 409)) throw err;
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    const message =
      err instanceof HarnessError
        ? err.message
        : err instanceof Error
          ? (err.stack ?? err.message)
          : String(err);
    console.error(`clara-operator demo: ${message}`);
    process.exit(1);
  },
);
