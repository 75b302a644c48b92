/**
 * `npm run bench:controlplane`: measures the test control plane on this machine and prints the
 * numbers the README quotes: time to find (or build) the binary, time from start to READY and to
 * Ready GPU nodes, resident memory idle and after scheduling pods, and the stop time.
 *
 * Usage: node scripts/bench-controlplane.ts [--pods N]   (default 100 one-GPU-free pods)
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import * as k8s from '@kubernetes/client-node';

import { loadKubeConfig, startLocalCluster, stopCluster } from '../test/harness/cluster.ts';
import {
  ensureControlPlaneBinary,
  ensureKwokBinary,
  kubernetesVersion,
} from '../test/harness/go-build.ts';

/** Resident and peak resident memory of a process, from /proc, in MiB. */
function memoryMiB(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: Math.round(kib('VmRSS') / 1024), peak: Math.round(kib('VmHWM') / 1024) };
}

/** Sum of the memory of a process and its children (kwok runs as the control plane's child). */
function treeMemoryMiB(pid: number): { rss: number; peak: number } {
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
    .trim()
    .split(/\s+/)
    .filter(Boolean);
  return [pid, ...children.map(Number)]
    .map(memoryMiB)
    .reduce((a, b) => ({ rss: a.rss + b.rss, peak: a.peak + b.peak }));
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { pods: { type: 'string', default: '100' } } });
  const podCount = Number(values.pods);
  const quiet = { log: () => undefined };

  let t = performance.now();
  await ensureControlPlaneBinary(quiet);
  await ensureKwokBinary(quiet);
  const binaryMs = performance.now() - t;

  t = performance.now();
  const dir = mkdtempSync(join(tmpdir(), 'clara-bench-'));
  const state = await startLocalCluster({ dir, exitWithParent: true, log: () => undefined });
  const startMs = performance.now() - t;
  const pid = state.pids[0];
  if (pid === undefined) throw new Error('the harness reported no control-plane process');
  await new Promise((r) => setTimeout(r, 5_000));
  const idle = treeMemoryMiB(pid);

  const kc = loadKubeConfig(state.kubeconfig);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: 'bench' } } });
  for (;;) {
    const sa = await core.listNamespacedServiceAccount({ namespace: 'bench' });
    if (sa.items.length > 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  t = performance.now();
  for (let i = 0; i < podCount; i++) {
    await core.createNamespacedPod({
      namespace: 'bench',
      body: {
        metadata: { name: `p${i}` },
        spec: { containers: [{ name: 'c', image: 'busybox' }] },
      },
    });
  }
  for (;;) {
    const pods = await core.listNamespacedPod({ namespace: 'bench' });
    if (pods.items.filter((p) => p.status?.phase === 'Running').length === podCount) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const podsMs = performance.now() - t;
  const loaded = treeMemoryMiB(pid);

  t = performance.now();
  await stopCluster(state);
  const stopMs = performance.now() - t;

  const rows: [string, string][] = [
    ['machine', `${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB`],
    ['kubernetes', kubernetesVersion()],
    ['binary lookup (cached)', `${binaryMs.toFixed(0)} ms`],
    ['start to READY + 2 GPU nodes Ready', `${(startMs / 1000).toFixed(1)} s`],
    ['resident memory, idle (control plane + kwok)', `${idle.rss} MiB`],
    [`${podCount} pods created and Running`, `${(podsMs / 1000).toFixed(1)} s`],
    [`resident memory after ${podCount} pods (peak)`, `${loaded.rss} MiB (${loaded.peak} MiB)`],
    ['stop (SIGTERM to exit)', `${(stopMs / 1000).toFixed(1)} s`],
  ];
  for (const [what, value] of rows) console.log(`${what.padEnd(48)} ${value}`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
