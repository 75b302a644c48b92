/**
 * Jest global setup of the integration project: starts one local control plane for the whole
 * run (or uses the existing cluster named by KUBECONFIG when CLARA_TEST_USE_EXISTING_CLUSTER is
 * set), and publishes it to the test workers through CLARA_TEST_KUBECONFIG and CLARA_TEST_KUBECTL.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { startLocalCluster, useExistingCluster, useExistingClusterFromEnv } from './cluster.ts';
import type { ClusterState } from './cluster.ts';
import { HarnessError } from './errors.ts';
import { ensureHelmBinary } from './go-build.ts';

declare global {
  var __CLARA_TEST_CLUSTER__: ClusterState | undefined;
}

export default async function globalSetup(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'clara-test-cluster-'));
  try {
    const state = useExistingCluster()
      ? await useExistingClusterFromEnv({ dir, exitWithParent: true })
      : await startLocalCluster({ dir, exitWithParent: true });
    globalThis.__CLARA_TEST_CLUSTER__ = state;
    // The deploy tests need helm; a cold build (minutes) happens here, once, with progress lines.
    await ensureHelmBinary();
    process.env.CLARA_TEST_KUBECONFIG = state.kubeconfig;
    process.env.CLARA_TEST_KUBECTL = state.kubectl;
  } catch (err) {
    if (err instanceof HarnessError) {
      // One line that says what is missing and how to point the tests elsewhere; a stack trace
      // from jest would bury it.
      process.stderr.write(`\nclara-operator test harness: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}
