/**
 * `npm run demo -- --real` against a cluster and a ClearML server it did not start: the test
 * control plane stands in for the user's cluster and an emulator (with a dataset and a
 * simulated agent on a queue) for the user's ClearML server. The demo must drive the spleen
 * example to Completed, clean up after itself, never print the secret key, and stop with a
 * message naming the fix when the keys, the dataset or the queue are wrong.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';

import { GROUP, PLURAL, VERSION } from '../../src/api/clarainstance.ts';
import { startEmulator } from '../emulator/emulator.ts';
import type { RunningEmulator } from '../emulator/emulator.ts';
import {
  createTestNamespace,
  deleteTestNamespace,
  testKubeconfigPath,
  testKubeConfig,
} from '../harness/cluster-env.ts';
import { installCrd } from '../harness/crd.ts';
import { REPO_ROOT } from '../harness/go-build.ts';
import { createDataset } from '../harness/operator-env.ts';
import { freePort } from '../harness/operator-process.ts';

const kc = testKubeConfig();
const QUEUE = 'demo-real-gpu';
let emulator: RunningEmulator;
let datasetId: string;
const namespaces: string[] = [];

interface DemoRun {
  code: number | null;
  out: string;
}

/** Runs `node scripts/demo.ts ...args` with the emulator's keys (or `env`) in its environment. */
function demo(args: string[], env: Record<string, string> = {}): Promise<DemoRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      join(REPO_ROOT, 'node_modules', '.bin', 'node'),
      [join(REPO_ROOT, 'scripts', 'demo.ts'), ...args],
      {
        cwd: REPO_ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          ...process.env,
          KUBECONFIG: '',
          CLEARML_API_HOST: emulator.apiUrl,
          CLEARML_WEB_HOST: emulator.url,
          CLEARML_FILES_HOST: emulator.filesUrl,
          CLEARML_API_ACCESS_KEY: emulator.credentials.accessKey,
          CLEARML_API_SECRET_KEY: emulator.credentials.secretKey,
          ...env,
        },
      },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

async function freshNamespace(prefix: string): Promise<string> {
  const ns = await createTestNamespace(kc, prefix);
  namespaces.push(ns);
  return ns;
}

async function instancesIn(namespace: string): Promise<unknown[]> {
  const list = (await kc.makeApiClient(k8s.CustomObjectsApi).listNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace,
    plural: PLURAL,
  })) as { items: unknown[] };
  return list.items;
}

beforeAll(async () => {
  await installCrd(kc);
  emulator = await startEmulator({ port: 0, filesPort: 0 });
  datasetId = createDataset(emulator, 'Task09 Spleen (your server)');
  emulator.startWorker({ queues: [QUEUE], behaviour: { iterations: 6, iterationMs: 100 } });
});

afterAll(async () => {
  for (const ns of namespaces) await deleteTestNamespace(kc, ns);
  await emulator?.stop();
});

describe('npm run demo -- --real', () => {
  test('runs the spleen example on the given cluster and ClearML to Completed, then cleans up', async () => {
    const namespace = await freshNamespace('demo-real');
    const run = await demo([
      '--real',
      `--kubeconfig=${testKubeconfigPath()}`,
      `--namespace=${namespace}`,
      `--dataset-task=${datasetId}`,
      `--queue=${QUEUE}`,
      '--agent-mode=External',
      '--timeout=120s',
    ]);
    expect(run.out).toContain('phase Completed');
    expect(run.code).toBe(0);
    expect(run.out).toMatch(/val_mean_dice\s+0\.\d{4} \/ 0\.\d{4}/);
    for (const scalar of ['val_acc', 'train_loss', 'train_acc'])
      expect(run.out).toMatch(
        new RegExp(`^ {2}${scalar} +-?\\d+\\.\\d{4} / -?\\d+\\.\\d{4}$`, 'm'),
      );
    expect(run.out).toContain(`queue ${QUEUE} exists`);
    expect(run.out).not.toContain(emulator.credentials.secretKey);

    // What the summary links to: the model on the files server, the task on the web host, and
    // the operator's web view at the address announced when it started.
    const models = /^Models:\n((?: {2}.*\n)+)Task in the ClearML UI:/m.exec(run.out)?.[1];
    const modelLines = models?.trimEnd().split('\n');
    expect(modelLines).toEqual([expect.stringContaining(`  ${emulator.filesUrl}/`)]);
    expect(modelLines?.[0]).toMatch(/^ {2}\S.* {2}http:\/\/\S+$/);
    const webView = /web view (http:\/\/127\.0\.0\.1:\d+\/)$/m.exec(run.out)?.[1];
    expect(webView).toBeDefined();
    expect(run.out).toContain(`\nWeb view: ${webView} `);

    // The instance is gone (its finalizer ran), and its task was archived, not left running.
    expect(await instancesIn(namespace)).toEqual([]);
    const tasks = [...emulator.state.tasks.values()].filter((t) => t.type === 'training');
    expect(tasks).toHaveLength(1);
    expect(tasks[0]?.status).toBe('completed');
    expect(tasks[0]?.system_tags).toContain('archived');
    expect(run.out).toMatch(
      new RegExp(`^Task in the ClearML UI: \\S+/experiments/${tasks[0]?.id}/`, 'm'),
    );
    expect(run.out).toContain(`Task in the ClearML UI: ${emulator.url}/projects/`);
    // The Secret holds the keys the shell had; the operator read them from there.
    const secret = await kc
      .makeApiClient(k8s.CoreV1Api)
      .readNamespacedSecret({ namespace, name: 'clearml-credentials' });
    expect(Object.keys(secret.data ?? {}).sort()).toEqual([
      'CLEARML_API_ACCESS_KEY',
      'CLEARML_API_HOST',
      'CLEARML_API_SECRET_KEY',
      'CLEARML_FILES_HOST',
      'CLEARML_WEB_HOST',
    ]);
  });

  test('stops with the operator’s reason when the dataset does not exist, and leaves nothing', async () => {
    const namespace = await freshNamespace('demo-real-nodata');
    const run = await demo([
      '--real',
      `--kubeconfig=${testKubeconfigPath()}`,
      `--namespace=${namespace}`,
      '--dataset-task=0123456789abcdef0123456789abcdef',
      `--queue=${QUEUE}`,
      '--agent-mode=External',
      '--timeout=120s',
    ]);
    expect(run.code).toBe(1);
    expect(run.out).toMatch(/blocked: DatasetNotFound: .*0123456789abcdef0123456789abcdef/);
    expect(await instancesIn(namespace)).toEqual([]);
  });

  test('refuses wrong keys, a missing queue and missing settings before touching the cluster', async () => {
    const namespace = 'demo-real-never-created';
    const common = [
      '--real',
      `--kubeconfig=${testKubeconfigPath()}`,
      `--namespace=${namespace}`,
      `--dataset-task=${datasetId}`,
    ];

    const badKeys = await demo([...common, `--queue=${QUEUE}`], {
      CLEARML_API_SECRET_KEY: 'not-the-secret-key',
    });
    expect(badKeys.code).toBe(1);
    expect(badKeys.out).toContain('did not accept the keys in CLEARML_API_ACCESS_KEY');
    expect(badKeys.out).not.toContain('not-the-secret-key');

    const noQueue = await demo([...common, '--queue=nobody-serves-this']);
    expect(noQueue.code).toBe(1);
    expect(noQueue.out).toContain('no queue named nobody-serves-this');

    const noKeys = await demo([...common], { CLEARML_API_ACCESS_KEY: '' });
    expect(noKeys.code).toBe(1);
    expect(noKeys.out).toContain('needs the ClearML server and keys in CLEARML_API_ACCESS_KEY');

    const noDataset = await demo(['--real', `--kubeconfig=${testKubeconfigPath()}`]);
    expect(noDataset.code).toBe(1);
    expect(noDataset.out).toContain('--real needs --dataset-task');

    const badId = await demo([...common.slice(0, -1), '--dataset-task=notanid']);
    expect(badId.code).toBe(1);
    expect(badId.out).toContain('--dataset-task notanid: expected a ClearML task id');

    // A port nothing listens on (fetch refuses well-known ports such as 1 before connecting).
    const closed = `http://127.0.0.1:${await freePort()}`;
    const unreachable = await demo([...common, `--queue=${QUEUE}`], { CLEARML_API_HOST: closed });
    expect(unreachable.code).toBe(1);
    expect(unreachable.out).toContain(`cannot reach ClearML at CLEARML_API_HOST=${closed}`);
    expect(unreachable.out).toContain('ECONNREFUSED');

    const localOnly = await demo(['--queue=x']);
    expect(localOnly.code).toBe(1);
    expect(localOnly.out).toContain('--queue applies only with --real');

    await expect(
      kc.makeApiClient(k8s.CoreV1Api).readNamespace({ name: namespace }),
    ).rejects.toMatchObject({ code: 404 });
  });
});
