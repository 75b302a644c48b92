/**
 * `npm run cluster:up` / `npm run cluster:down`: the local test control plane for people. It
 * keeps running in the background after `up`, with its kubeconfig and logs in `.cluster/`.
 */
import { existsSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';

import { startLocalCluster, stopCluster } from '../test/harness/cluster.ts';
import type { ClusterState } from '../test/harness/cluster.ts';
import { HarnessError } from '../test/harness/errors.ts';
import { REPO_ROOT } from '../test/harness/go-build.ts';

const DIR = join(REPO_ROOT, '.cluster');
const STATE = join(DIR, 'cluster.json');

function runningState(): ClusterState | undefined {
  if (!existsSync(STATE)) return undefined;
  const state = JSON.parse(readFileSync(STATE, 'utf8')) as ClusterState;
  const alive = state.pids.every((pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      // Not running any more: the state file is stale.
      return false;
    }
  });
  return alive ? state : undefined;
}

/** Starts the cluster unless one is running; prints how to reach it. */
export async function up(): Promise<ClusterState> {
  const state = runningState() ?? (await startLocalCluster({ dir: DIR, exitWithParent: false }));
  // A stable path to the control plane's own kubectl (its cache path changes with the build).
  const kubectl = join(DIR, 'kubectl');
  rmSync(kubectl, { force: true });
  symlinkSync(state.kubectl, kubectl);
  console.log(`
The local control plane is running (${state.server}).
  export KUBECONFIG=${state.kubeconfig}
  .cluster/kubectl get nodes        # kubectl of the same Kubernetes release
  logs: ${join(state.dir, 'controlplane.log')}
  stop: npm run cluster:down`);
  return state;
}

async function down(): Promise<void> {
  const state = runningState();
  if (state) {
    await stopCluster(state);
    console.log(`stopped the local control plane (${state.server})`);
  } else {
    console.log('no local control plane is running');
  }
  rmSync(STATE, { force: true });
}

async function main(command: string | undefined): Promise<void> {
  switch (command) {
    case 'up':
      await up();
      return;
    case 'down':
      await down();
      return;
    default:
      console.error('usage: node scripts/cluster.ts up|down');
      process.exitCode = 2;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv[2]).catch((err: unknown) => {
    const message = err instanceof HarnessError ? err.message : String(err);
    console.error(`clara-operator: ${message}`);
    process.exitCode = 1;
  });
}
