/**
 * `npm run demo`: the operator doing its main job on this machine. It brings up the local
 * control plane (fake GPU nodes), a ClearML emulator with a simulated worker on the example's
 * queue and the example's dataset, starts the operator as a process, applies
 * `examples/spleen-ct-segmentation.yaml` unchanged with kubectl, and follows the instance to
 * Completed, printing its phase, scalars and models.
 *
 * The control plane keeps running afterwards (`npm run cluster:down` stops it); the emulator and
 * the operator stop with the demo. The simulated worker plays clearml-agent: it reports scalars,
 * log lines and a model the way a Clara run does, without a GPU. The control plane's state and
 * the operator's log are in `.cluster/`, or in CLARA_CLUSTER_DIR when that is set (see
 * scripts/cluster.ts).
 *
 * It exits 0 once the instance is Completed and its summary is printed, and 1 with a one-line
 * `clara-operator demo: ...` message otherwise: the run ended Failed or Aborted, a condition needs
 * a fix, the operator exited, or the run did not finish within TIMEOUT_MS.
 *
 * `npm run demo -- --real ...` runs the same demo against your own cluster and ClearML server
 * instead (scripts/demo-real.ts); `npm run demo -- --help` lists the options.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import * as k8s from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';

import type { ClaraObject } from '../src/controller/clarainstance/clara-api.ts';
import { startEmulator } from '../test/emulator/emulator.ts';
import { waitFor } from '../test/harness/cluster-env.ts';
import { installCrd } from '../test/harness/crd.ts';
import { HarnessError } from '../test/harness/errors.ts';
import { GPU_RESOURCE, loadKubeConfig } from '../test/harness/cluster.ts';
import { createDataset, replaceCredentialsSecret } from '../test/harness/operator-env.ts';
import { freePort } from '../test/harness/operator-process.ts';
import { displayPath, DOWN_COMMAND, up } from './cluster.ts';
import {
  DemoError,
  EXAMPLE,
  follow,
  LAUNCHER,
  printSummary,
  startOperatorProcess,
  step,
  stopOperatorProcess,
  untilInterrupted,
} from './demo-common.ts';
import { realDemo } from './demo-real.ts';

const NAMESPACE = 'clara-demo';
const TIMEOUT_MS = 180_000;
const STEPS = 5;

const USAGE = `Usage: npm run demo [-- --real [options]]

Without --real: the local control plane, the ClearML emulator with a simulated agent, and the
operator run the spleen example to Completed on this machine. Nothing to configure.

--real: the same against your cluster and ClearML server. Reads CLEARML_API_HOST,
CLEARML_API_ACCESS_KEY, CLEARML_API_SECRET_KEY (and CLEARML_WEB_HOST, CLEARML_FILES_HOST when
set) and your kubeconfig. Options:
  --dataset-task ID      the ClearML Dataset with the Decathlon spleen data (required)
  --queue NAME           the queue your agents serve (default: the example's, clara-gpu)
  --agent-mode MODE      Execute (the operator starts a GPU pod, default) or External
  --image IMAGE          training image for Execute mode (default: the example's)
  --kubeconfig PATH      default: KUBECONFIG, else ~/.kube/config
  --context NAME         default: the current context
  --namespace NAME       default: clara-demo
  --timeout DURATION     how long to follow the run, e.g. 90m or 12h (default 24h)
  --keep                 keep the instance afterwards (default: delete it; its task is archived)
`;

async function localDemo(): Promise<void> {
  step(1, STEPS, 'Local control plane (etcd, kube-apiserver, controllers, scheduler, kwok)');
  const cluster = await up();
  const kc = loadKubeConfig(cluster.kubeconfig);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  for (const node of (await core.listNode()).items) {
    console.log(
      `  node ${node.metadata?.name}: ${GPU_RESOURCE}=${node.status?.allocatable?.[GPU_RESOURCE] ?? 0}`,
    );
  }

  step(2, STEPS, 'ClearML emulator, with the example dataset and a simulated agent on its queue');
  const example = parseYaml(readFileSync(EXAMPLE, 'utf8')) as ClaraObject;
  const spec = example.spec as { datasetTask: string; queue: string };
  const emulator = await startEmulator({ port: 0, filesPort: 0 });
  createDataset(emulator, 'Medical Segmentation Decathlon: Task09 Spleen', spec.datasetTask);
  emulator.startWorker({ queues: [spec.queue], behaviour: { iterations: 30, iterationMs: 250 } });
  console.log(`  API ${emulator.apiUrl}, web ${emulator.url}, files ${emulator.filesUrl}`);
  console.log(`  dataset ${spec.datasetTask} (finalized), worker serving queue ${spec.queue}`);

  step(3, STEPS, `CRD, namespace ${NAMESPACE} and the credentials Secret the example names`);
  await installCrd(kc);
  await replaceCredentialsSecret(kc, {
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

  const operatorLog = join(cluster.dir, 'operator.log');
  step(4, STEPS, `The operator (node src/main.ts), logging to ${displayPath(operatorLog)}`);
  const webPort = await freePort();
  const operator = startOperatorProcess(
    [
      `--kubeconfig=${cluster.kubeconfig}`,
      `--namespaces=${NAMESPACE}`,
      '--poll-interval=1s',
      `--health-address=127.0.0.1:${await freePort()}`,
      `--web-address=127.0.0.1:${webPort}`,
      `--metrics-address=127.0.0.1:${await freePort()}`,
      `--launcher-script=${LAUNCHER}`,
    ],
    operatorLog,
  );

  try {
    step(5, STEPS, `kubectl apply -f examples/spleen-ct-segmentation.yaml -n ${NAMESPACE}`);
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
    const done = await follow(kc, NAMESPACE, example.metadata.name ?? '', {
      timeoutMs: TIMEOUT_MS,
      operatorLog,
      operator,
    });
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
      `\nThe control plane keeps running (KUBECONFIG=${cluster.kubeconfig}); stop it with: ${DOWN_COMMAND}`,
    );
    await untilInterrupted(
      `http://127.0.0.1:${webPort}/`,
      'the operator and the ClearML emulator keep running',
    );
  } finally {
    await stopOperatorProcess(operator);
    await emulator.stop();
  }
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

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      real: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
      'dataset-task': { type: 'string' },
      queue: { type: 'string' },
      'agent-mode': { type: 'string' },
      image: { type: 'string' },
      kubeconfig: { type: 'string' },
      context: { type: 'string' },
      namespace: { type: 'string' },
      timeout: { type: 'string' },
      keep: { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (!values.real) {
    const only = [
      'dataset-task',
      'queue',
      'agent-mode',
      'image',
      'kubeconfig',
      'context',
      'keep',
      'namespace',
      'timeout',
    ];
    const given = only.filter(
      (o) =>
        values[o as keyof typeof values] !== undefined &&
        values[o as keyof typeof values] !== false,
    );
    if (given.length > 0)
      throw new DemoError(
        `--${given.join(', --')} ${given.length === 1 ? 'applies' : 'apply'} only with --real (see --help)`,
      );
    if (process.env.CLEARML_API_HOST && process.env.CLEARML_API_ACCESS_KEY)
      console.log(
        'Note: ClearML keys are set in this shell; `npm run demo -- --real --dataset-task <id>` ' +
          'uses them and your kube context instead of the local stand-ins.',
      );
    await localDemo();
    return;
  }
  await realDemo({
    kubeconfig: values.kubeconfig,
    context: values.context,
    namespace: values.namespace ?? NAMESPACE,
    datasetTask: values['dataset-task'],
    queue: values.queue,
    agentMode: values['agent-mode'],
    image: values.image,
    timeoutMs: durationMs(values.timeout ?? '24h'),
    keep: values.keep,
  });
}

/** `90m`, `12h`, `300s` in milliseconds. */
function durationMs(text: string): number {
  const match = /^(\d+)(s|m|h)$/.exec(text);
  if (!match) throw new DemoError(`--timeout ${text}: expected a duration such as 90m or 12h`);
  return Number(match[1]) * { s: 1000, m: 60_000, h: 3_600_000 }[match[2] as 's' | 'm' | 'h'];
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    const message =
      err instanceof HarnessError
        ? err.message
        : err instanceof TypeError && (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')
          ? `${err.message} (see --help)`
          : err instanceof Error
            ? (err.stack ?? err.message)
            : String(err);
    console.error(`clara-operator demo: ${message}`);
    process.exit(1);
  },
);
