/**
 * `npm run cluster:up` / `npm run cluster:down`: the local test control plane for people. It
 * keeps running in the background after `up`, with its kubeconfig, logs and `cluster.json` (the
 * pids `down` stops) in `.cluster/` of the checkout.
 *
 * CLARA_CLUSTER_DIR=<dir> puts that state in another directory instead, for `up`, `down` and
 * `npm run demo` alike; a control plane started that way is stopped with the same variable set.
 * The demo's own test uses it so that it never touches a developer's `.cluster/`.
 */
import { existsSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';

import { startLocalCluster, stopCluster } from '../test/harness/cluster.ts';
import type { ClusterState } from '../test/harness/cluster.ts';
import { HarnessError } from '../test/harness/errors.ts';
import { REPO_ROOT } from '../test/harness/go-build.ts';

const DIR = process.env.CLARA_CLUSTER_DIR
  ? resolve(process.env.CLARA_CLUSTER_DIR)
  : join(REPO_ROOT, '.cluster');
const STATE = join(DIR, 'cluster.json');

/** The command that stops the control plane `up` started, with CLARA_CLUSTER_DIR when it is set. */
export const DOWN_COMMAND = process.env.CLARA_CLUSTER_DIR
  ? `CLARA_CLUSTER_DIR=${DIR} npm run cluster:down`
  : 'npm run cluster:down';

/** `path` relative to the working directory when it lies inside it (`.cluster/kubectl`). */
export function displayPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
}

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
  ${displayPath(kubectl)} get nodes        # kubectl of the same Kubernetes release
  logs: ${join(state.dir, 'controlplane.log')}
  stop: ${DOWN_COMMAND}`);
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
