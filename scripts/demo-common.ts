/**
 * What both modes of `npm run demo` share: the numbered steps, following an instance to a final
 * phase while printing its progress, the summary of a finished run, and starting the operator as
 * a process.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';

import type * as k8s from '@kubernetes/client-node';

import type { ClaraObject } from '../src/controller/clarainstance/clara-api.ts';
import { HarnessError } from '../test/harness/errors.ts';
import { REPO_ROOT } from '../test/harness/go-build.ts';
import { readInstance } from '../test/harness/operator-env.ts';

export const EXAMPLE = join(REPO_ROOT, 'examples', 'spleen-ct-segmentation.yaml');
/** The launcher every task of the demo carries (the operator's default `--launcher-script`). */
export const LAUNCHER = join(REPO_ROOT, 'launcher', 'clara_launcher.py');

/** Final phases other than Completed: the demo stops on them and exits non-zero. */
const UNSUCCESSFUL_PHASES = ['Failed', 'Aborted'];
/** How long the operator gets to drain after SIGTERM (it needs about 10 s) before SIGKILL. */
const OPERATOR_STOP_TIMEOUT_MS = 20_000;

/**
 * Reasons of a Ready=False condition that a person must act on (the operator waits for a fix),
 * so the demo stops on them with the operator's own message instead of waiting for its timeout.
 */
const NEEDS_A_FIX = [
  'InvalidSpec',
  'CredentialsSecretMissing',
  'CredentialsNotConfigured',
  'CredentialsInvalid',
  'CredentialsRejected',
  'DatasetNotFound',
  'NotADataset',
  'DatasetNotFinalized',
  'QueueNotFound',
  'Unschedulable',
];

export function step(n: number, total: number, text: string): void {
  console.log(`\n[${n}/${total}] ${text}`);
}

/** The demo cannot go on; `message` says why and what to do. */
export class DemoError extends HarnessError {
  override name = 'DemoError';
}

/**
 * Prints each change of phase, task, pod and dice until the instance reaches Completed with its
 * models read, and returns it. Throws DemoError (after printing what the run reported) when it
 * ends Failed or Aborted; with the operator's message when a condition needs a person (a missing
 * dataset, queue or Secret); when `operator` exits before the end; and after `timeoutMs`.
 */
export async function follow(
  kc: k8s.KubeConfig,
  namespace: string,
  name: string,
  opts: { timeoutMs: number; operatorLog: string; operator?: ChildProcess },
): Promise<ClaraObject> {
  const deadline = Date.now() + opts.timeoutMs;
  let last = '';
  for (;;) {
    const obj = await readInstance(kc, namespace, name);
    const status = obj?.status;
    const dice = status?.metrics?.val_mean_dice?.latest;
    const line =
      `  phase ${status?.phase ?? '(not set yet)'}` +
      (status?.taskId ? `, task ${status.taskId}` : '') +
      (status?.agentPod ? `, pod ${status.agentPod}` : '') +
      (dice !== undefined
        ? `, iteration ${status?.lastIteration}, val_mean_dice ${dice.toFixed(3)}`
        : '');
    if (line !== last) console.log(line);
    last = line;
    if (obj && status?.phase === 'Completed' && status.models) return obj;

    // A failed run may have no models at all, so it does not wait for them.
    if (obj && status && UNSUCCESSFUL_PHASES.includes(status.phase ?? '')) {
      printSummary(obj);
      const ready = status.conditions?.find((c) => c.type === 'Ready');
      throw new DemoError(
        `${namespace}/${name} ended ${status.phase}` +
          (ready ? ` (${ready.reason}: ${ready.message ?? ''})` : '') +
          `; see ${opts.operatorLog}`,
      );
    }
    const blocked = status?.conditions?.find(
      (c) => c.type === 'Ready' && c.status === 'False' && NEEDS_A_FIX.includes(c.reason ?? ''),
    );
    if (blocked && obj?.metadata.generation === status?.observedGeneration) {
      throw new DemoError(
        `${namespace}/${name} is blocked: ${blocked.reason}: ${blocked.message ?? ''}`,
      );
    }

    // Nothing else moves the instance on; waiting for the deadline would only hide why.
    const exit = opts.operator && exitDescription(opts.operator);
    if (exit)
      throw new DemoError(
        `the operator ${exit} before ${namespace}/${name} finished; see ${opts.operatorLog}`,
      );
    if (Date.now() > deadline)
      throw new DemoError(
        `${namespace}/${name} did not finish within ${Math.round(opts.timeoutMs / 1000)} s ` +
          (status?.phase === 'Completed'
            ? '(it is Completed, but the operator reported no models)'
            : `(phase ${status?.phase ?? 'not set'})`) +
          `; see ${opts.operatorLog}`,
      );
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** How `child` ended ("exited with code 1", "was killed by SIGKILL"), or undefined if running. */
function exitDescription(child: ChildProcess): string | undefined {
  if (child.signalCode !== null) return `was killed by ${child.signalCode}`;
  if (child.exitCode !== null) return `exited with code ${child.exitCode}`;
  return undefined;
}

export function printSummary(obj: ClaraObject): void {
  const status = obj.status ?? {};
  console.log('\nScalars (latest / best):');
  for (const [name, m] of Object.entries(status.metrics ?? {})) {
    console.log(`  ${name.padEnd(14)} ${m.latest?.toFixed(4)} / ${m.best?.toFixed(4)}`);
  }
  console.log('Models:');
  for (const model of status.models ?? [])
    console.log(`  ${[model.name, model.framework, model.uri].filter(Boolean).join('  ')}`);
  console.log(`Task in the ClearML UI: ${status.taskUrl ?? '(no web host)'}`);
  for (const c of status.conditions ?? [])
    console.log(`Condition ${c.type}=${c.status} (${c.reason}): ${c.message}`);
}

/**
 * Starts the operator (`node src/main.ts`) with `args`, logging to `logFile`. The environment is
 * this process's minus the ClearML keys: the operator reads keys from Secrets only.
 */
export function startOperatorProcess(args: string[], logFile: string): ChildProcess {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.startsWith('CLEARML_')),
  );
  const fd = openSync(logFile, 'w', 0o600);
  const child = spawn(
    join(REPO_ROOT, 'node_modules', '.bin', 'node'),
    [join(REPO_ROOT, 'src', 'main.ts'), ...args],
    { stdio: ['ignore', fd, fd], cwd: REPO_ROOT, env },
  );
  closeSync(fd);
  return child;
}

/**
 * Stops the operator and waits for it to exit: SIGTERM, then SIGKILL if it has not drained
 * within OPERATOR_STOP_TIMEOUT_MS, so a stuck operator cannot keep the demo from exiting.
 * Idempotent.
 */
export async function stopOperatorProcess(child: ChildProcess): Promise<void> {
  if (exitDescription(child)) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), OPERATOR_STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

/**
 * Prints the web view's address; a person at a terminal gets time to look at it (until Ctrl-C),
 * scripts go on at once.
 */
export async function untilInterrupted(webUrl: string, keptRunning: string): Promise<void> {
  if (!process.stdin.isTTY) {
    console.log(
      `Web view: ${webUrl} (it stops with the demo; run the demo in a terminal to keep it up)`,
    );
    return;
  }
  console.log(`Web view: ${webUrl} (${keptRunning} until Ctrl-C)`);
  await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
}
