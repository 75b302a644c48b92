/**
 * What integration tests use to reach the cluster the global setup prepared: a KubeConfig, a
 * kubectl of the control plane's release, fresh namespaces, and a bounded wait.
 *
 * The global setup (test/harness/global-setup.ts) publishes the cluster through environment
 * variables, which jest passes on to its workers:
 * - CLARA_TEST_KUBECONFIG: admin kubeconfig of the test cluster;
 * - CLARA_TEST_KUBECTL: a kubectl binary (the control plane's own, or `kubectl` from PATH when
 *   an existing cluster is used).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';

import * as k8s from '@kubernetes/client-node';

export function testKubeconfigPath(): string {
  const path = process.env.CLARA_TEST_KUBECONFIG;
  if (!path) {
    throw new Error(
      'CLARA_TEST_KUBECONFIG is not set: integration tests must run through the jest ' +
        'integration project, whose global setup starts or finds the test cluster',
    );
  }
  return path;
}

/** Returns a KubeConfig for the test cluster's admin user. */
export function testKubeConfig(): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(testKubeconfigPath());
  return kc;
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs kubectl against the test cluster with an argv list (no shell), optionally writing `input`
 * to its stdin. Resolves with the exit code and output; never rejects for a non-zero exit.
 */
export function kubectl(
  args: string[],
  opts: { input?: string; timeoutMs?: number } = {},
): Promise<KubectlResult> {
  const binary = process.env.CLARA_TEST_KUBECTL ?? 'kubectl';
  return new Promise((resolve, reject) => {
    const child = spawn(binary, [`--kubeconfig=${testKubeconfigPath()}`, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: opts.timeoutMs ?? 60_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(opts.input ?? '');
  });
}

export interface WaitOptions {
  /** Says what is awaited; it is part of the timeout error. */
  what: string;
  timeoutMs?: number;
  intervalMs?: number;
}

/**
 * Calls `check` until it returns a value other than undefined, and returns that value. Throws,
 * naming `what` and the last error `check` threw, once `timeoutMs` has passed.
 */
export async function waitFor<T>(
  check: () => Promise<T | undefined>,
  opts: WaitOptions,
): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const detail = lastError instanceof Error ? `; last error: ${lastError.message}` : '';
      throw new Error(
        `timed out after ${opts.timeoutMs ?? 30_000} ms waiting for ${opts.what}${detail}`,
      );
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 200));
  }
}

/**
 * Creates a namespace with a unique name starting with `prefix` and waits until its default
 * ServiceAccount exists (with the ServiceAccount admission plugin on, pods are refused before).
 */
export async function createTestNamespace(kc: k8s.KubeConfig, prefix: string): Promise<string> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const name = `${prefix}-${randomBytes(3).toString('hex')}`;
  await core.createNamespace({
    body: { metadata: { name, labels: { 'clara-operator.io/test': 'true' } } },
  });
  await waitFor(() => core.readNamespacedServiceAccount({ namespace: name, name: 'default' }), {
    what: `the default ServiceAccount of namespace ${name}`,
  });
  return name;
}

/** Deletes a namespace made by createTestNamespace without waiting for it to go. */
export async function deleteTestNamespace(kc: k8s.KubeConfig, name: string): Promise<void> {
  await kc
    .makeApiClient(k8s.CoreV1Api)
    .deleteNamespace({ name })
    .catch(() => undefined);
}
