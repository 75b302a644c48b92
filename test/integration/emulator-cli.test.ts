/**
 * `npm run emulator` as the README's run-by-hand recipe uses it: a dataset with a given id, a
 * simulated agent's queue and the credentials Secret written into the test control plane; bad
 * options refused with a message naming the option.
 */
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';

import { ClearmlClient } from '../../src/clearml/index.ts';
import {
  createTestNamespace,
  deleteTestNamespace,
  testKubeConfig,
  testKubeconfigPath,
} from '../harness/cluster-env.ts';
import { REPO_ROOT } from '../harness/go-build.ts';
import { freePort } from '../harness/operator-process.ts';

const MAIN = join(REPO_ROOT, 'test', 'emulator', 'main.ts');
const DATASET = '3f2b9c1d8e7a4b6c9d0e1f2a3b4c5d6e';

const kc = testKubeConfig();
let namespace: string;

beforeAll(async () => {
  namespace = await createTestNamespace(kc, 'emulator-cli');
});

afterAll(async () => {
  await deleteTestNamespace(kc, namespace);
});

describe('npm run emulator', () => {
  test('seeds the dataset and queue and writes the Secret that points at it', async () => {
    const [port, filesPort] = [await freePort(), await freePort()];
    const child = spawn(
      process.execPath,
      [
        MAIN,
        `--port=${port}`,
        `--files-port=${filesPort}`,
        '--worker-queue=clara-gpu',
        `--dataset=${DATASET}`,
        `--kubeconfig=${testKubeconfigPath()}`,
        `--credentials-secret=${namespace}/clearml-credentials`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    try {
      const line = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout }).once('line', resolve);
        child.once('exit', (code) => reject(new Error(`emulator exited ${code}: ${stderr}`)));
      });
      const printed = JSON.parse(line) as { apiUrl: string; accessKey: string; secretKey: string };
      expect(printed.apiUrl).toBe(`http://127.0.0.1:${port}`);
      // The Secret comes after the JSON line; the notice on stderr says it is written.
      const deadline = Date.now() + 10_000;
      while (!stderr.includes('points at this emulator') && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(stderr).toContain(`Secret ${namespace}/clearml-credentials points at this emulator`);

      const secret = await kc
        .makeApiClient(k8s.CoreV1Api)
        .readNamespacedSecret({ namespace, name: 'clearml-credentials' });
      const data = Object.fromEntries(
        Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]),
      );
      expect(data).toMatchObject({
        CLEARML_API_HOST: printed.apiUrl,
        CLEARML_FILES_HOST: `http://127.0.0.1:${filesPort}`,
        CLEARML_API_ACCESS_KEY: printed.accessKey,
        CLEARML_API_SECRET_KEY: printed.secretKey,
      });

      const client = new ClearmlClient({
        apiUrl: data.CLEARML_API_HOST!,
        accessKey: data.CLEARML_API_ACCESS_KEY!,
        secretKey: data.CLEARML_API_SECRET_KEY!,
      });
      const [dataset] = await client.getTasks({
        ids: [DATASET],
        onlyFields: ['id', 'status', 'system_tags'],
      });
      expect(dataset).toMatchObject({ id: DATASET, status: 'completed' });
      expect(dataset?.system_tags).toContain('dataset');
      const queues = await client.getQueues({ exactName: 'clara-gpu' });
      expect(queues.map((q) => q.name)).toEqual(['clara-gpu']);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  });

  test.each([
    {
      args: ['--dataset=not-an-id'],
      message: "--dataset: expected 32 hex digits, got 'not-an-id'",
    },
    {
      args: ['--credentials-secret=only-a-name', '--kubeconfig=x'],
      message: "--credentials-secret: expected NAMESPACE/NAME, got 'only-a-name'",
    },
    {
      args: ['--credentials-secret=ns/name'],
      message: '--credentials-secret needs --kubeconfig',
    },
  ])('refuses $args naming the option', ({ args, message }) => {
    const result = spawnSync(process.execPath, [MAIN, '--port=0', '--files-port=0', ...args], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(result.status).toBe(2);
    expect(result.stderr.split('\n')[0]).toBe(`emulator: ${message}`);
    expect(result.stdout).toBe('');
  });
});
