/**
 * `npm ci && npm run demo`, the README's first command, run the way a user runs it: `node
 * scripts/demo.ts` with no arguments and stdin not a terminal. The demo starts its own control
 * plane (a second one beside the global setup's), here in a temporary CLARA_CLUSTER_DIR so that a
 * developer's `.cluster/` is never touched. The run must reach Completed and print what the user
 * reads: the four scalars, a model with its URI, the ClearML task URL and the web view address.
 * Nothing may be left running afterwards, whatever the tests conclude: the demo's process group
 * is killed if it is not empty, the control plane it keeps up on purpose is stopped, and its
 * directory is removed.
 */
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';

import { stopCluster } from '../harness/cluster.ts';
import type { ClusterState } from '../harness/cluster.ts';
import { REPO_ROOT } from '../harness/go-build.ts';

/**
 * The demo bounds its own run at 180 s; the control plane's start (the binary is cached by the
 * global setup) and the operator's drain come on top. Past this the demo is killed.
 */
const DEMO_TIMEOUT_MS = 360_000;
const SCALARS = ['val_mean_dice', 'val_acc', 'train_loss', 'train_acc'];
const DEVELOPER_CLUSTER_DIR = join(REPO_ROOT, '.cluster');

const clusterDir = mkdtempSync(join(tmpdir(), 'clara-demo-cluster-'));
const developerClusterBefore = listing(DEVELOPER_CLUSTER_DIR);
/** Set as soon as the demo is spawned, so that cleanup finds it even if beforeAll times out. */
let demoPid: number | undefined;
let demo: ScriptRun;

interface ScriptRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
}

/**
 * Runs `node scripts/<script> ...args` with CLARA_CLUSTER_DIR set, in a process group of its own
 * (so that whatever it starts can be found and stopped), stdin not a terminal, stdout and stderr
 * together. Killed after `timeoutMs`.
 */
function runScript(
  script: string,
  args: string[],
  opts: { timeoutMs: number; onSpawn?: (pid: number | undefined) => void },
): Promise<ScriptRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      join(REPO_ROOT, 'node_modules', '.bin', 'node'),
      [join(REPO_ROOT, 'scripts', script), ...args],
      {
        cwd: REPO_ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
        timeout: opts.timeoutMs,
        killSignal: 'SIGKILL',
        env: { ...process.env, CLARA_CLUSTER_DIR: clusterDir },
      },
    );
    opts.onSpawn?.(child.pid);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, out }));
  });
}

/** Whether any process is left in the process group `pgid` (the demo's, led by its pid). */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    // ESRCH: the group is empty.
    return false;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    // ESRCH: not running.
    return false;
  }
}

function clusterState(): ClusterState | undefined {
  const path = join(clusterDir, 'cluster.json');
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as ClusterState) : undefined;
}

/**
 * The files in `dir` with the modification times of those a start of the demo rewrites (not the
 * logs a running control plane appends to), or undefined when `dir` does not exist.
 */
function listing(dir: string): string[] | undefined {
  if (!existsSync(dir)) return undefined;
  return readdirSync(dir).map((f) =>
    /\.(log|out)$/.test(f) ? f : `${f} ${lstatSync(join(dir, f)).mtimeMs}`,
  );
}

/** The first capture group of `pattern` in the demo's output; fails the test when absent. */
function printed(pattern: RegExp): string {
  expect(demo.out).toMatch(pattern);
  return pattern.exec(demo.out)?.[1] ?? '';
}

beforeAll(async () => {
  demo = await runScript('demo.ts', [], {
    timeoutMs: DEMO_TIMEOUT_MS,
    onSpawn: (pid) => (demoPid = pid),
  });
}, DEMO_TIMEOUT_MS + 30_000);

afterAll(async () => {
  if (demoPid !== undefined && groupAlive(demoPid)) process.kill(-demoPid, 'SIGKILL');
  const state = clusterState();
  if (state) await stopCluster(state);
  rmSync(clusterDir, { recursive: true, force: true });
}, 60_000);

describe('npm run demo (local)', () => {
  test('takes the spleen example to Completed and exits 0', () => {
    expect(demo).toMatchObject({ code: 0, signal: null });
    expect(demo.out).toMatch(/^ {2}phase Completed, task [0-9a-f]{32}, /m);
    expect(demo.out).toMatch(/^Condition Ready=True \(Completed\): /m);
    expect(demo.out).not.toContain('clara-operator demo:');
  });

  test.each(SCALARS)('prints the scalar %s, latest and best, as numbers', (name) => {
    expect(demo.out).toMatch(new RegExp(`^ {2}${name} +-?\\d+\\.\\d{4} / -?\\d+\\.\\d{4}$`, 'm'));
  });

  test('prints the model the run reported, with its URI on the files server', () => {
    const filesUrl = printed(/^ {2}API \S+, web \S+, files (http:\/\/\S+)$/m);
    const models = printed(/^Models:\n((?: {2}.*\n)+)Task in the ClearML UI:/m);
    const modelLines = models.trimEnd().split('\n');
    expect(modelLines).toEqual([expect.stringContaining(`  ${filesUrl}/`)]);
    expect(modelLines[0]).toMatch(/^ {2}\S.* {2}http:\/\/\S+$/);
  });

  test('prints the task’s URL on the ClearML web host and the web view’s address', () => {
    const webUrl = printed(/^ {2}API \S+, web (http:\/\/\S+), files /m);
    const taskId = printed(/^ {2}phase Completed, task ([0-9a-f]{32}),/m);
    const taskUrl = printed(/^Task in the ClearML UI: (\S+)$/m);
    expect(taskUrl).toContain(`${webUrl}/projects/`);
    expect(taskUrl).toContain(`/experiments/${taskId}/`);
    expect(demo.out).toMatch(/^Web view: http:\/\/127\.0\.0\.1:\d+\/ /m);
  });

  test('keeps its control plane in CLARA_CLUSTER_DIR, not in .cluster/ of the checkout', () => {
    expect(demo.out).toContain(`KUBECONFIG=${join(clusterDir, 'kubeconfig')}`);
    expect(demo.out).toContain(`logging to ${join(clusterDir, 'operator.log')}`);
    expect(clusterState()?.dir).toBe(clusterDir);
    expect(listing(DEVELOPER_CLUSTER_DIR)).toEqual(developerClusterBefore);
  });

  test('leaves only the control plane running, which the command it prints then stops', async () => {
    // The operator and the emulator stop with the demo: its process group is empty.
    expect(demoPid !== undefined && groupAlive(demoPid)).toBe(false);
    const state = clusterState();
    expect(state?.pids.map(isAlive)).toEqual([true]);

    const command = printed(/stop it with: (.+)$/m);
    expect(command).toBe(`CLARA_CLUSTER_DIR=${clusterDir} npm run cluster:down`);
    const down = await runScript('cluster.ts', ['down'], { timeoutMs: 60_000 });
    expect(down).toMatchObject({ code: 0, out: expect.stringContaining('stopped') });
    expect(state?.pids.map(isAlive)).toEqual([false]);
  });
});
