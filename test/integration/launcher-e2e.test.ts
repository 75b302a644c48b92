/**
 * End to end with the real launcher: the operator (in-process controller, real apiserver) makes
 * the task with `launcher/clara_launcher.py` stored in it, a real `clearml-agent daemon` (venv
 * mode, the machine's Python; agent.mode External, so no pod) serves the queue and runs the
 * launcher, which fetches a dataset made by the real SDK, trains with the fake Clara trainer of
 * `launcher/tests/fakes`, reports TensorBoard scalars and registers models; the ClaraInstance
 * reaches Completed with those scalars and models in its status.
 *
 * The agent's task venv sees `clearml`, `tensorboardX` and the fake trainer through PYTHONPATH
 * (the test venv's site-packages, then the fakes); in production the training image has them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { afterAll, beforeAll, expect, test } from '@jest/globals';

import {
  ClaraInstanceController,
  loadLauncher,
} from '../../src/controller/clarainstance/controller.ts';
import { startEmulator, type RunningEmulator } from '../emulator/emulator.ts';
import {
  createTestNamespace,
  deleteTestNamespace,
  testKubeConfig,
  waitFor,
} from '../harness/cluster-env.ts';
import { installCrd } from '../harness/crd.ts';
import { REPO_ROOT } from '../harness/go-build.ts';
import {
  MemoryEvents,
  MemoryLogger,
  createCredentialsSecret,
  createInstance,
  waitForStatus,
} from '../harness/operator-env.ts';

const VENV = join(REPO_ROOT, '.cache', 'fidelity-venv');
const PYTHON = join(VENV, 'bin', 'python');
const AGENT = join(VENV, 'bin', 'clearml-agent');
const FAKES = join(REPO_ROOT, 'launcher', 'tests', 'fakes');
const QUEUE = 'launcher-e2e';

const kc = testKubeConfig();
let namespace: string;
let emulator: RunningEmulator;
let controller: ClaraInstanceController;
let work: string;
let agent: ChildProcess | undefined;
let agentOutput = '';

/** The environment the SDK and the agent read, pointing at the emulator, with an empty HOME. */
function clearmlEnv(): NodeJS.ProcessEnv {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) => !k.startsWith('CLEARML_') && !k.startsWith('TRAINS_'),
    ),
  );
  return {
    ...env,
    HOME: join(work, 'home'),
    CLEARML_API_HOST: emulator.apiUrl,
    CLEARML_WEB_HOST: emulator.url,
    CLEARML_FILES_HOST: emulator.filesUrl,
    CLEARML_API_ACCESS_KEY: emulator.credentials.accessKey,
    CLEARML_API_SECRET_KEY: emulator.credentials.secretKey,
    PYTHONUNBUFFERED: '1',
  };
}

function writeJson(path: string, value: unknown): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(value, null, 1));
}

/** Runs a command to its end without blocking the event loop (the emulator is in-process). */
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${out.slice(-4000)}`));
    });
  });
}

/** A Decathlon-shaped dataset uploaded with the real SDK; returns its id. */
async function createDataset(): Promise<string> {
  const data = join(work, 'data');
  const entries = [0, 1, 2].map((i) => {
    for (const folder of ['imagesTr', 'labelsTr']) {
      mkdirSync(join(data, folder), { recursive: true });
      writeFileSync(join(data, folder, `case_${i}.nii.gz`), Buffer.alloc(64, i));
    }
    return { image: `imagesTr/case_${i}.nii.gz`, label: `labelsTr/case_${i}.nii.gz` };
  });
  writeJson(join(data, 'dataset.json'), {
    training: entries.slice(0, 2),
    validation: entries.slice(2),
  });
  const script = join(REPO_ROOT, 'test', 'fidelity', 'scripts', 'dataset_create.py');
  const out = await run(PYTHON, [script, data], clearmlEnv());
  const id = /DATASET_ID=([0-9a-f]{32})/.exec(out)?.[1];
  if (!id) throw new Error(`dataset_create.py printed no dataset id: ${out.slice(-4000)}`);
  return id;
}

/** A Clara 4.x-shaped MMAR in a folder, as `mmar.path` names one in the image. */
function createMmar(): string {
  const root = join(work, 'mmar');
  writeJson(join(root, 'config', 'config_train_Unet.json'), { epochs: 2, model: { name: 'UNet' } });
  writeJson(join(root, 'config', 'environment.json'), {
    DATA_ROOT: '/workspace/data',
    DATASET_JSON: '/workspace/data/dataset_0.json',
    MMAR_CKPT_DIR: 'models',
  });
  return root;
}

function sitePackages(): string {
  const lib = join(VENV, 'lib');
  const version = readdirSync(lib).find((d) => d.startsWith('python3'));
  if (!version) throw new Error(`no python3.* under ${lib}`);
  return join(lib, version, 'site-packages');
}

beforeAll(async () => {
  if (!existsSync(PYTHON) || !existsSync(AGENT)) {
    throw new Error(
      `${VENV} has no python or clearml-agent: run \`bash scripts/python-env.sh\` first`,
    );
  }
  work = mkdtempSync(join(tmpdir(), 'launcher-e2e-'));
  mkdirSync(join(work, 'home'));
  await installCrd(kc);
  namespace = await createTestNamespace(kc, 'launcher-e2e');
  emulator = await startEmulator({ port: 0, filesPort: 0 });
  await createCredentialsSecret(kc, { namespace, name: 'clearml-credentials', emulator });
  controller = new ClaraInstanceController({
    kubeConfig: kc,
    namespaces: [namespace],
    config: { pollIntervalMs: 500, workers: 2, defaultCredentialsSecret: undefined },
    launcher: loadLauncher(join(REPO_ROOT, 'launcher', 'clara_launcher.py')),
    events: new MemoryEvents(),
    log: new MemoryLogger(),
    clearml: {
      retry: { maxAttempts: 3, baseDelayMs: 50, maxDelayMs: 500 },
      requestTimeoutMs: 10_000,
    },
  });
  await controller.start();

  agent = spawn(AGENT, ['daemon', '--queue', QUEUE, '--create-queue', '--foreground'], {
    cwd: work,
    env: { ...clearmlEnv(), PYTHONPATH: [sitePackages(), FAKES].join(':') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const keep = (chunk: Buffer) => {
    agentOutput = (agentOutput + chunk.toString()).slice(-20_000);
  };
  agent.stdout?.on('data', keep);
  agent.stderr?.on('data', keep);
  await waitFor(
    async () => (emulator.calls.some((c) => c.endpoint === 'workers.register') ? true : undefined),
    { what: 'clearml-agent daemon to register', timeoutMs: 60_000 },
  );
}, 120_000);

afterAll(async () => {
  if (agent && agent.exitCode === null) {
    const exited = new Promise((resolve) => agent?.once('exit', resolve));
    agent.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000).unref())]);
    if (agent.exitCode === null) agent.kill('SIGKILL');
  }
  await controller?.stop(2_000);
  await emulator?.stop();
  if (namespace) await deleteTestNamespace(kc, namespace);
  if (work) rmSync(work, { recursive: true, force: true });
});

test('a real clearml-agent runs the launcher to Completed with its scalars and models', async () => {
  const datasetTask = await createDataset();
  await createInstance(kc, namespace, {
    apiVersion: 'clara-operator.io/v1alpha1',
    kind: 'ClaraInstance',
    metadata: { name: 'spleen-e2e' },
    spec: {
      datasetTask,
      trainingArch: 'UNet',
      mmar: { path: createMmar() },
      set: { DATASET_JSON: 'dataset.json', epochs: '3' },
      queue: QUEUE,
      clearml: { secretRef: { name: 'clearml-credentials' } },
      agent: { mode: 'External' },
    },
  });

  let done;
  try {
    done = await waitForStatus(
      kc,
      { namespace, name: 'spleen-e2e', what: 'Completed with models', timeoutMs: 240_000 },
      (o) =>
        ['Completed', 'Failed'].includes(o.status?.phase ?? '') && o.status?.models !== undefined,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}\nagent output:\n${agentOutput.slice(-4000)}`, {
      cause: err,
    });
  }
  if (done.status?.phase !== 'Completed') {
    const { phase, message } = done.status ?? {};
    throw new Error(
      `the run ended ${phase}: ${message}\nagent output:\n${agentOutput.slice(-4000)}`,
    );
  }

  // The fake trainer's last epoch (3 of 3), through TensorBoard files, the launcher, ClearML.
  const metrics = done.status?.metrics;
  expect(metrics?.val_mean_dice?.latest).toBeCloseTo(0.9, 5);
  expect(metrics?.val_acc?.latest).toBeCloseTo(0.9, 5);
  expect(metrics?.train_acc?.latest).toBeCloseTo(0.85, 5);
  expect(metrics?.train_loss?.latest).toBeCloseTo(0.1, 5);
  expect(metrics?.train_loss?.best).toBeCloseTo(0.1, 5);
  expect(metrics?.val_mean_dice?.best).toBeCloseTo(0.9, 5);
  expect(done.status?.lastIteration).toBe(9);

  const models = done.status?.models ?? [];
  expect(models.map((m) => m.name).sort()).toEqual(['models/final_model.pt', 'models/model.pt']);
  for (const model of models) {
    expect(model.framework).toBe('PyTorch');
    expect(model.uri).toMatch(new RegExp(`^${emulator.filesUrl}/`));
  }

  // Operator, SDK and agent asked the emulator nothing it does not know.
  expect(emulator.unknownCalls).toEqual([]);

  // The task the operator made ran the launcher file it stores, through the agent.
  const task = emulator.state.tasks.get(done.status?.taskId ?? '');
  expect(task?.status).toBe('completed');
  expect((task?.script as { entry_point?: string } | undefined)?.entry_point).toBe(
    'clara_launcher.py',
  );
}, 300_000);
