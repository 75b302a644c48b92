/**
 * `npm run demo -- --real`: the same demo against the user's own cluster and ClearML server.
 *
 * The Kubernetes side comes from the kubeconfig (`--kubeconfig`, else KUBECONFIG, else
 * ~/.kube/config; `--context` picks a context), the ClearML side from the variables the clearml
 * SDK reads (CLEARML_API_HOST, CLEARML_API_ACCESS_KEY, CLEARML_API_SECRET_KEY, and optionally
 * CLEARML_WEB_HOST, CLEARML_FILES_HOST). It checks both before it changes anything, installs the
 * CRD if the cluster lacks it, writes the keys into the `clearml-credentials` Secret of the
 * demo's namespace, runs the operator on this machine against that cluster, applies the spleen
 * example with the user's dataset and queue, follows it to a final phase, and then deletes the
 * instance (the operator archives the task, as the example's deletion policy says) unless
 * `--keep` is given.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';

import * as k8s from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';

import { GROUP, PLURAL, VERSION } from '../src/api/clarainstance.ts';
import { CLEARML_ID } from '../src/api/patterns.ts';
import type { ClaraObject } from '../src/controller/clarainstance/clara-api.ts';
import { ClearmlClient, ClearmlError } from '../src/clearml/index.ts';
import { waitFor } from '../test/harness/cluster-env.ts';
import { installCrd } from '../test/harness/crd.ts';
import { REPO_ROOT } from '../test/harness/go-build.ts';
import { freePort } from '../test/harness/operator-process.ts';
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

/** What `--real` takes from the command line. */
export interface RealDemoOptions {
  kubeconfig?: string;
  context?: string;
  namespace: string;
  datasetTask?: string;
  queue?: string;
  agentMode?: string;
  image?: string;
  timeoutMs: number;
  keep: boolean;
}

const SECRET_NAME = 'clearml-credentials';
const REQUIRED_ENV = ['CLEARML_API_HOST', 'CLEARML_API_ACCESS_KEY', 'CLEARML_API_SECRET_KEY'];
const OPTIONAL_ENV = ['CLEARML_WEB_HOST', 'CLEARML_FILES_HOST'];
const STEPS = 6;

export async function realDemo(opts: RealDemoOptions): Promise<void> {
  const missing = REQUIRED_ENV.filter((v) => !process.env[v]);
  if (missing.length > 0)
    throw new DemoError(
      `--real needs the ClearML server and keys in ${missing.join(', ')} ` +
        '(the variables the clearml SDK reads); set them and run again',
    );
  if (!opts.datasetTask)
    throw new DemoError(
      '--real needs --dataset-task <id>: the ClearML Dataset with the Decathlon spleen data ' +
        '(imagesTr/, labelsTr/ and dataset.json) on your server',
    );
  if (!CLEARML_ID.test(opts.datasetTask))
    throw new DemoError(
      `--dataset-task ${opts.datasetTask}: expected a ClearML task id (32 lowercase hex characters)`,
    );
  if (opts.agentMode !== undefined && !['Execute', 'External'].includes(opts.agentMode))
    throw new DemoError(`--agent-mode ${opts.agentMode}: expected Execute or External`);
  if (!existsSync(LAUNCHER)) throw new DemoError(`the launcher ${LAUNCHER} is missing`);

  step(1, STEPS, 'Your cluster');
  const kc = new k8s.KubeConfig();
  if (
    !opts.kubeconfig &&
    !process.env.KUBECONFIG &&
    !existsSync(join(homedir(), '.kube', 'config'))
  )
    throw new DemoError(
      'no kubeconfig: pass --kubeconfig, set KUBECONFIG, or create ~/.kube/config',
    );
  try {
    if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
    else kc.loadFromDefault();
  } catch (err) {
    throw new DemoError(
      `cannot read the kubeconfig ${opts.kubeconfig ?? process.env.KUBECONFIG ?? '~/.kube/config'}: ${(err as Error).message}`,
    );
  }
  if (opts.context) {
    if (!kc.getContextObject(opts.context))
      throw new DemoError(
        `--context ${opts.context}: no such context; the kubeconfig has ` +
          (kc
            .getContexts()
            .map((c) => c.name)
            .join(', ') || 'none'),
      );
    kc.setCurrentContext(opts.context);
  }
  const cluster = kc.getCurrentCluster();
  if (!kc.getCurrentContext() || !cluster)
    throw new DemoError(
      'no current kube context: pass --kubeconfig and --context, or set KUBECONFIG',
    );
  try {
    const version = await kc.makeApiClient(k8s.VersionApi).getCode();
    console.log(
      `  context ${kc.getCurrentContext()}, ${cluster.server}, Kubernetes ${version.gitVersion}`,
    );
  } catch (err) {
    throw new DemoError(
      `cannot reach the cluster of context ${kc.getCurrentContext()} at ${cluster.server}: ${(err as Error).message}`,
    );
  }

  const example = parseYaml(readFileSync(EXAMPLE, 'utf8')) as ClaraObject;
  const spec = example.spec as Record<string, unknown> & {
    queue: string;
    agent: Record<string, unknown>;
  };
  const queue = opts.queue ?? spec.queue;

  step(2, STEPS, `Your ClearML server ${process.env.CLEARML_API_HOST}`);
  const clearml = new ClearmlClient({
    apiUrl: process.env.CLEARML_API_HOST ?? '',
    accessKey: process.env.CLEARML_API_ACCESS_KEY ?? '',
    secretKey: process.env.CLEARML_API_SECRET_KEY ?? '',
    retry: { maxAttempts: 2 },
  });
  let queues;
  try {
    queues = await clearml.getQueues({ exactName: queue, onlyFields: ['id', 'name'] });
  } catch (err) {
    const host = `CLEARML_API_HOST=${process.env.CLEARML_API_HOST}`;
    if (err instanceof ClearmlError && err.status === undefined)
      throw new DemoError(`cannot reach ClearML at ${host}: ${describeCause(err)}`);
    throw new DemoError(
      `ClearML at ${host} did not accept the keys in ` +
        `CLEARML_API_ACCESS_KEY / CLEARML_API_SECRET_KEY: ${(err as Error).message}`,
    );
  }
  if (queues.length === 0)
    throw new DemoError(
      `ClearML has no queue named ${queue}: pass --queue with a queue your agents serve`,
    );
  console.log(`  keys accepted; queue ${queue} exists`);

  step(3, STEPS, `CRD, namespace ${opts.namespace} and the Secret ${SECRET_NAME}`);
  const extensions = kc.makeApiClient(k8s.ApiextensionsV1Api);
  const crdName = `${PLURAL}.${GROUP}`;
  const crd = await extensions.readCustomResourceDefinition({ name: crdName }).catch(notFound);
  if (crd) {
    console.log(`  CRD ${crdName} is installed`);
  } else {
    await installCrd(kc);
    console.log(`  installed CRD ${crdName} from crds/`);
  }
  const core = kc.makeApiClient(k8s.CoreV1Api);
  if (!(await core.readNamespace({ name: opts.namespace }).catch(notFound))) {
    await core.createNamespace({ body: { metadata: { name: opts.namespace } } });
    console.log(`  created namespace ${opts.namespace}`);
  }
  const stringData = Object.fromEntries(
    [...REQUIRED_ENV, ...OPTIONAL_ENV]
      .filter((v) => process.env[v])
      .map((v) => [v, process.env[v] ?? '']),
  );
  const secret = { metadata: { name: SECRET_NAME, namespace: opts.namespace }, stringData };
  if (
    await core
      .readNamespacedSecret({ namespace: opts.namespace, name: SECRET_NAME })
      .catch(notFound)
  )
    await core.replaceNamespacedSecret({
      namespace: opts.namespace,
      name: SECRET_NAME,
      body: secret,
    });
  else await core.createNamespacedSecret({ namespace: opts.namespace, body: secret });
  console.log(`  Secret ${SECRET_NAME} holds ${Object.keys(stringData).join(', ')}`);

  step(4, STEPS, 'The operator, on this machine, against your cluster');
  const dir = mkdtempSync(join(tmpdir(), 'clara-demo-'));
  const kubeconfig = join(dir, 'kubeconfig');
  // The merged kubeconfig with the chosen context, readable by this user only; removed at exit.
  writeFileSync(kubeconfig, kc.exportConfig(), { mode: 0o600 });
  mkdirSync(join(REPO_ROOT, '.cache'), { recursive: true });
  const operatorLog = join(REPO_ROOT, '.cache', 'demo-operator.log');
  const webPort = await freePort();
  const operator = startOperatorProcess(
    [
      `--kubeconfig=${kubeconfig}`,
      `--namespaces=${opts.namespace}`,
      '--poll-interval=5s',
      `--health-address=127.0.0.1:${await freePort()}`,
      `--web-address=127.0.0.1:${webPort}`,
      `--metrics-address=127.0.0.1:${await freePort()}`,
      `--launcher-script=${LAUNCHER}`,
    ],
    operatorLog,
  );
  console.log(`  logging to ${operatorLog}; web view http://127.0.0.1:${webPort}/`);

  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  const name = example.metadata.name ?? 'spleen-ct-unet';
  const ref = { group: GROUP, version: VERSION, namespace: opts.namespace, plural: PLURAL, name };
  let finished = false;
  try {
    step(
      5,
      STEPS,
      `ClaraInstance ${opts.namespace}/${name} from examples/spleen-ct-segmentation.yaml`,
    );
    await deleteAndWait(custom, ref);
    const instance = withOverrides(example, opts, queue);
    await custom.createNamespacedCustomObject({ ...ref, body: instance }).catch((err: unknown) => {
      throw new DemoError(`the API server refused the instance: ${apiMessage(err)}`);
    });
    console.log(
      `  dataset ${opts.datasetTask}, queue ${queue}, agent mode ${(instance.spec as { agent: { mode?: string } }).agent.mode ?? 'Execute'}`,
    );

    step(6, STEPS, 'Following the run (training on a GPU takes a while)');
    const done = await follow(kc, opts.namespace, name, {
      timeoutMs: opts.timeoutMs,
      operatorLog,
    });
    printSummary(done);
    finished = true;
    await untilInterrupted(`http://127.0.0.1:${webPort}/`, 'the operator keeps running');
  } finally {
    if (opts.keep && finished) {
      console.log(
        `\nKept ${opts.namespace}/${name}. Deleting it later needs the operator running ` +
          '(its finalizer archives the ClearML task first).',
      );
    } else {
      console.log(`\nDeleting ${opts.namespace}/${name} (the operator archives its task)`);
      await deleteAndWait(custom, ref).catch((err: unknown) =>
        console.error(`  could not delete it: ${(err as Error).message}`),
      );
    }
    await stopOperatorProcess(operator);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The example in the demo's namespace, with the user's dataset, queue, agent mode and image. */
function withOverrides(example: ClaraObject, opts: RealDemoOptions, queue: string): ClaraObject {
  const spec = structuredClone(example.spec) as Record<string, unknown> & {
    agent: Record<string, unknown>;
  };
  spec.datasetTask = opts.datasetTask;
  spec.queue = queue;
  if (opts.agentMode === 'External') {
    // External agents bring their own image and GPUs; the pod fields do not apply.
    spec.agent = { mode: 'External' };
  } else if (opts.image) {
    spec.agent = { ...spec.agent, image: opts.image };
  }
  return {
    ...example,
    metadata: { name: example.metadata.name, namespace: opts.namespace },
    spec,
  };
}

async function deleteAndWait(
  custom: k8s.CustomObjectsApi,
  ref: { group: string; version: string; namespace: string; plural: string; name: string },
): Promise<void> {
  const gone = await custom.deleteNamespacedCustomObject(ref).then(
    () => false,
    (err: unknown) => notFound(err) === undefined,
  );
  if (gone) return;
  await waitFor(
    async () => ((await custom.getNamespacedCustomObject(ref).catch(notFound)) ? undefined : true),
    { what: `the deletion of ${ref.namespace}/${ref.name}`, timeoutMs: 120_000 },
  );
}

function notFound(err: unknown): undefined {
  if (err instanceof k8s.ApiException && err.code === 404) return undefined;
  throw err;
}

/** The innermost cause of a network failure (ECONNREFUSED, ENOTFOUND, a TLS error), in words. */
function describeCause(err: Error): string {
  let inner: unknown = err;
  while (inner instanceof Error && inner.cause instanceof Error) inner = inner.cause;
  return inner instanceof Error && inner !== err
    ? `${err.message} (${inner.message})`
    : err.message;
}

/** The apiserver's own message out of a client-node ApiException, not its headers and body dump. */
function apiMessage(err: unknown): string {
  if (err instanceof k8s.ApiException) {
    try {
      const status = JSON.parse(String(err.body)) as { message?: string };
      if (status.message) return status.message;
    } catch {
      // Not a Status object: fall through to the exception's message.
    }
    return `HTTP ${err.code}`;
  }
  return err instanceof Error ? err.message : String(err);
}
