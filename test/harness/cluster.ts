/**
 * Starts and stops the test cluster: the local control plane (with kwok beside it) or an existing
 * cluster named by KUBECONFIG, and the fake GPU nodes the tests schedule onto.
 *
 * The control plane runs as a child process whose stdout and stderr go to files in the cluster's
 * state directory; its one READY line on stdout says it can be used. Every wait has a deadline
 * and its error names what it waited for and where the log is.
 */
import { spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';

import * as k8s from '@kubernetes/client-node';

import { HarnessError, USE_EXISTING_HINT } from './errors.ts';
import { ensureControlPlaneBinary, ensureKwokBinary, formatMs, REPO_ROOT } from './go-build.ts';

const READY_TIMEOUT_MS = 180_000;
const NODES_READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 20_000;
const KWOK_STAGES = join(REPO_ROOT, 'test', 'harness', 'kwok-stages.yaml');

/** The annotation kwok selects its nodes by (see test/controlplane/kwok.go). */
export const FAKE_NODE_ANNOTATION = { 'kwok.x-k8s.io/node': 'fake' };
const FAKE_NODE_SELECTOR = 'kwok.x-k8s.io/node=fake';
export const GPU_RESOURCE = 'nvidia.com/gpu';

/** What a started cluster is; written as JSON to `<dir>/cluster.json` for `cluster:down`. */
export interface ClusterState {
  kubeconfig: string;
  server: string;
  /** kubectl of the control plane's release (a multi-call link), or `kubectl` from PATH. */
  kubectl: string;
  /** Process ids this harness started and must stop; empty for an existing cluster. */
  pids: number[];
  dir: string;
  existing: boolean;
}

export interface GpuNodeOptions {
  /** Number of fake GPU nodes; default `$CLARA_TEST_GPU_NODES` or 2. */
  nodes?: number;
  /** `nvidia.com/gpu` capacity of each; default `$CLARA_TEST_GPUS_PER_NODE` or 4. */
  gpusPerNode?: number;
}

export interface StartOptions extends GpuNodeOptions {
  /** State directory: kubeconfig, logs, cluster.json. */
  dir: string;
  /** Stop the control plane when this process exits (test runs), or keep it (cluster:up). */
  exitWithParent: boolean;
  /** kube-apiserver port on 127.0.0.1; default a free one. */
  port?: number;
  log?: (line: string) => void;
}

/** Whether the environment asks for an existing cluster instead of the local control plane. */
export function useExistingCluster(env: NodeJS.ProcessEnv = process.env): boolean {
  return /^(1|true|yes)$/i.test(env.CLARA_TEST_USE_EXISTING_CLUSTER ?? '');
}

/**
 * Starts the local control plane with kwok, creates the fake GPU nodes and waits until they are
 * Ready. Returns the cluster's state; throws HarnessError with one line saying what failed.
 */
export async function startLocalCluster(opts: StartOptions): Promise<ClusterState> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  mkdirSync(opts.dir, { recursive: true });
  const binary = await ensureControlPlaneBinary({ log });
  const kwok = await ensureKwokBinary({ log });
  const kubectl = ensureKubectlLink(binary);

  const kubeconfig = join(opts.dir, 'kubeconfig');
  const stdoutPath = join(opts.dir, 'controlplane.out');
  const logPath = join(opts.dir, 'controlplane.log');
  const args = [
    'serve',
    `--kubeconfig=${kubeconfig}`,
    `--kwok=${kwok}`,
    `--kwok-config=${KWOK_STAGES}`,
  ];
  if (opts.exitWithParent) args.push('--exit-with-parent');
  if (opts.port !== undefined) args.push(`--port=${opts.port}`);

  const startedMs = Date.now();
  const out = openSync(stdoutPath, 'w');
  const err = openSync(logPath, 'w');
  const child = spawn(binary, args, {
    stdio: ['ignore', out, err],
    detached: !opts.exitWithParent,
  });
  closeSync(out);
  closeSync(err);
  if (!opts.exitWithParent) child.unref();
  const pid = child.pid;
  if (pid === undefined) {
    throw new HarnessError(`could not start ${binary}. ${USE_EXISTING_HINT}`);
  }

  let exitCode: number | null = null;
  child.on('exit', (code, signal) => {
    exitCode = code ?? (signal ? 128 : -1);
  });
  const server = await waitForReadyLine({ stdoutPath, logPath, exited: () => exitCode });
  log(`[controlplane] ready in ${formatMs(Date.now() - startedMs)} at ${server} (log: ${logPath})`);

  const state: ClusterState = {
    kubeconfig,
    server,
    kubectl,
    pids: [pid],
    dir: opts.dir,
    existing: false,
  };
  writeFileSync(join(opts.dir, 'cluster.json'), JSON.stringify(state, null, 2));
  try {
    await ensureFakeGpuNodes(loadKubeConfig(kubeconfig), opts);
  } catch (e) {
    await stopCluster(state);
    throw e;
  }
  return state;
}

async function waitForReadyLine(opts: {
  stdoutPath: string;
  logPath: string;
  exited: () => number | null;
}): Promise<string> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    const out = existsSync(opts.stdoutPath) ? readFileSync(opts.stdoutPath, 'utf8') : '';
    const match = /^READY server=(\S+)/m.exec(out);
    if (match?.[1]) return match[1];

    const code = opts.exited();
    if (code !== null) {
      throw new HarnessError(
        `the control plane exited (code ${code}) before it was ready: ${lastErrorLine(opts.logPath)} ` +
          `(full log: ${opts.logPath}). ${USE_EXISTING_HINT}`,
      );
    }
    if (Date.now() > deadline) {
      throw new HarnessError(
        `timed out after ${formatMs(READY_TIMEOUT_MS)} waiting for the control plane's READY line ` +
          `(log: ${opts.logPath}). ${USE_EXISTING_HINT}`,
      );
    }
    await sleep(100);
  }
}

/** The control plane's own error line if it printed one, else the log's last line. */
function lastErrorLine(logPath: string): string {
  const lines = existsSync(logPath) ? readFileSync(logPath, 'utf8').trim().split('\n') : [];
  const own = lines.filter((l) => l.startsWith('clara-controlplane:')).pop();
  return (own ?? lines.pop() ?? 'no output').slice(0, 500);
}

/**
 * Makes a `kubectl` link next to the control-plane binary (it is multi-call: run as kubectl, it is
 * kubectl of the same Kubernetes release) and returns its path.
 */
function ensureKubectlLink(binary: string): string {
  const link = join(dirname(binary), 'kubectl');
  if (!existsSync(link)) symlinkSync(binary, link);
  return link;
}

/**
 * Uses the existing cluster named by KUBECONFIG (kind or any other): starts kwok against it so the
 * fake GPU nodes exist there too, unless CLARA_TEST_GPU_NODES=0. The cluster itself is left alone.
 */
export async function useExistingClusterFromEnv(opts: StartOptions): Promise<ClusterState> {
  const kubeconfig = (process.env.KUBECONFIG ?? '').split(':').find((p) => p !== '');
  if (!kubeconfig || !existsSync(kubeconfig)) {
    throw new HarnessError(
      'CLARA_TEST_USE_EXISTING_CLUSTER is set but KUBECONFIG does not name a kubeconfig file ' +
        `(KUBECONFIG=${JSON.stringify(process.env.KUBECONFIG ?? '')})`,
    );
  }
  mkdirSync(opts.dir, { recursive: true });
  const kc = loadKubeConfig(kubeconfig);
  const state: ClusterState = {
    kubeconfig,
    server: kc.getCurrentCluster()?.server ?? 'unknown',
    kubectl: process.env.CLARA_TEST_KUBECTL ?? 'kubectl',
    pids: [],
    dir: opts.dir,
    existing: true,
  };
  if ((opts.nodes ?? intFromEnv('CLARA_TEST_GPU_NODES', 2)) === 0) return state;

  const kwok = await ensureKwokBinary(opts.log ? { log: opts.log } : {});
  const logFd = openSync(join(opts.dir, 'kwok.log'), 'w');
  const child = spawn(
    kwok,
    [
      `--kubeconfig=${kubeconfig}`,
      `--config=${KWOK_STAGES}`,
      '--manage-all-nodes=false',
      `--manage-nodes-with-annotation-selector=${FAKE_NODE_SELECTOR}`,
    ],
    { stdio: ['ignore', logFd, logFd] },
  );
  closeSync(logFd);
  if (child.pid !== undefined) state.pids.push(child.pid);
  try {
    await ensureFakeGpuNodes(kc, opts);
  } catch (e) {
    await stopCluster(state);
    throw e;
  }
  return state;
}

export function loadKubeConfig(path: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

/**
 * Creates (or keeps) the fake GPU nodes `clara-gpu-<i>`, annotated for kwok, with `nvidia.com/gpu`
 * capacity, and waits until kwok has made each Ready. Idempotent.
 */
export async function ensureFakeGpuNodes(
  kc: k8s.KubeConfig,
  opts: GpuNodeOptions = {},
): Promise<string[]> {
  const count = opts.nodes ?? intFromEnv('CLARA_TEST_GPU_NODES', 2);
  const gpus = opts.gpusPerNode ?? intFromEnv('CLARA_TEST_GPUS_PER_NODE', 4);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const names = Array.from({ length: count }, (_, i) => `clara-gpu-${i}`);

  for (const name of names) {
    const capacity = { cpu: '32', memory: '256Gi', pods: '110', [GPU_RESOURCE]: String(gpus) };
    const node: k8s.V1Node = {
      metadata: {
        name,
        annotations: FAKE_NODE_ANNOTATION,
        labels: {
          'kubernetes.io/hostname': name,
          'kubernetes.io/os': 'linux',
          'kubernetes.io/arch': 'amd64',
          type: 'kwok',
          'nvidia.com/gpu.present': 'true',
        },
      },
      status: { capacity, allocatable: capacity },
    };
    await core.createNode({ body: node }).catch((e: unknown) => {
      if (!(e instanceof k8s.ApiException && e.code === 409)) throw e;
    });
  }

  const deadline = Date.now() + NODES_READY_TIMEOUT_MS;
  for (const name of names) {
    for (;;) {
      const node = await core.readNode({ name });
      const ready = node.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
      if (ready) break;
      if (Date.now() > deadline) {
        throw new HarnessError(
          `timed out after ${formatMs(NODES_READY_TIMEOUT_MS)} waiting for fake node ${name} to be ` +
            'Ready: is kwok running against this cluster?',
        );
      }
      await sleep(200);
    }
  }
  return names;
}

/** Stops the processes a started cluster owns: SIGTERM, then SIGKILL after STOP_TIMEOUT_MS. */
export async function stopCluster(state: ClusterState): Promise<void> {
  for (const pid of state.pids) {
    if (!isAlive(pid)) continue;
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + STOP_TIMEOUT_MS;
    while (isAlive(pid) && Date.now() < deadline) await sleep(100);
    if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    // ESRCH: no such process. The harness only signals processes it started.
    return false;
  }
}

function intFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0 || value > 1000) {
    throw new HarnessError(`${name} must be an integer from 0 to 1000, got ${JSON.stringify(raw)}`);
  }
  return value;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
