/** Jest global teardown of the integration project: stops what the global setup started. */
import { stopCluster } from './cluster.ts';

export default async function globalTeardown(): Promise<void> {
  const state = globalThis.__CLARA_TEST_CLUSTER__;
  if (state) await stopCluster(state);
}
