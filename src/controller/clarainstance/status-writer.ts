/**
 * The status a reconcile writes: built from the previous status and what was observed, merged
 * so that a condition's lastTransitionTime moves only when its status flips, and written only
 * when something changed (an idle operator makes no writes).
 */
import type * as k8s from '@kubernetes/client-node';

import { parseClaraInstance } from '../../api/clarainstance.ts';
import type { ClaraInstance } from '../../api/clarainstance.ts';
import type { ClaraInstanceStatus, Condition, ModelEntry } from '../../api/clarainstance-status.ts';
import type { Model } from '../../clearml/index.ts';
import { formatConditionTime, objectKey, setCondition } from '../../k8s/index.ts';
import type { ClaraObject } from './clara-api.ts';
import type { ReconcileContext } from './context.ts';
import { conditionsOf, isTerminal, metricsOf, phaseOfTask } from './status.ts';
import type { DesiredCondition, Problem } from './status.ts';
import type { TaskSnapshot } from './task-poller.ts';

const MESSAGE_MAX = 1024;
const MODELS_MAX = 64;

/** What {@link buildStatus} works from. */
export interface StatusInputs {
  obj: ClaraObject;
  /** The parsed instance; undefined when the spec is invalid. */
  instance: ClaraInstance | undefined;
  snapshot: TaskSnapshot | undefined;
  pod: k8s.V1Pod | undefined;
  problem: Problem | undefined;
  taskUrl: string | undefined;
  now: Date;
  /** A resume waits for the suspended run's agent pod to go: the run still reads Suspended. */
  resuming?: boolean;
}

/** The status for what was observed. Pure. */
export function buildStatus(inputs: StatusInputs): ClaraInstanceStatus {
  const { obj, instance, snapshot, pod, problem } = inputs;
  const previous = obj.status ?? {};
  const task = snapshot?.task;
  const suspended = (instance?.spec.suspend ?? false) || inputs.resuming === true;
  // Without a fresh look at the task (ClearML unreachable after a restart), the phase last seen
  // stands: a finished run must not read Pending because ClearML is down.
  const phase = task
    ? phaseOfTask(task.status, suspended)
    : (previous.phase ?? (suspended ? 'Suspended' : 'Pending'));
  const podExpected =
    instance !== undefined && instance.spec.agent.mode === 'Execute' && !isTerminal(phase);

  const taskMessage =
    task?.status === 'failed'
      ? snapshot?.failureLog ||
        task.status_message ||
        task.status_reason ||
        'the ClearML task failed'
      : task?.status_message || task?.status_reason || undefined;
  const desired = conditionsOf({
    phase,
    podExpected,
    pod,
    problem,
    taskMessage,
    taskId: task?.id ?? previous.taskId,
    queue: instance?.spec.queue ?? previous.queue ?? '',
  });

  const status: ClaraInstanceStatus = {
    ...previous,
    observedGeneration: obj.metadata.generation,
    phase,
    conditions: mergeConditions(previous.conditions, desired, {
      generation: obj.metadata.generation,
      now: inputs.now,
    }),
  };
  if (instance) status.queue = instance.spec.queue;
  if (task) {
    status.taskId = task.id;
    setOrDelete(status, 'startedAt', isoTime(task.started));
    setOrDelete(status, 'completedAt', isoTime(task.completed));
    // Iteration 0 is the server's default before anything is reported: not an iteration. (Taking
    // it would also make the first poll after an enqueue rewrite every status for nothing.)
    setOrDelete(status, 'lastIteration', task.last_iteration || undefined);
    const metrics = metricsOf(task);
    setOrDelete(status, 'metrics', Object.keys(metrics).length > 0 ? metrics : undefined);
  }
  if (inputs.taskUrl) status.taskUrl = inputs.taskUrl;
  if (pod?.metadata?.name) status.agentPod = pod.metadata.name;
  if (snapshot?.models) {
    setOrDelete(
      status,
      'models',
      snapshot.models.length > 0 ? modelEntries(snapshot.models) : undefined,
    );
  }
  const message =
    problem?.message ?? (phase === 'Failed' || phase === 'Aborted' ? taskMessage : undefined);
  setOrDelete(status, 'message', message ? cut(message, MESSAGE_MAX) : undefined);
  return status;
}

/**
 * Merges desired conditions into the previous ones through the k8s layer's setCondition (a
 * condition keeps its lastTransitionTime unless its status changed); conditions of types no
 * longer desired are dropped.
 */
export function mergeConditions(
  previous: Condition[] | undefined,
  desired: DesiredCondition[],
  opts: { generation: number | undefined; now: Date },
): Condition[] {
  const kept = (previous ?? []).filter((c) => desired.some((d) => d.type === c.type));
  return desired.reduce<Condition[]>(
    (conditions, d) =>
      setCondition(
        conditions,
        { ...d, message: cut(d.message, 32768), observedGeneration: opts.generation },
        { nowMs: opts.now.getTime() },
      ) as Condition[],
    kept,
  );
}

/**
 * Writes `status` when it differs from the object's current status (the writer compares; an
 * unchanged status costs no call). Returns the object as it now is. A conflict (the object
 * changed since it was read) is thrown for the queue to retry.
 */
export async function writeStatusIfChanged(
  ctx: Pick<ReconcileContext, 'api' | 'log' | 'events'>,
  obj: ClaraObject,
  status: ClaraInstanceStatus,
): Promise<ClaraObject> {
  const written = await ctx.api.replaceStatus(obj, status);
  if (written === obj) return written;
  const from = obj.status?.phase;
  // One event per phase transition, and one when the run becomes blocked on something a user
  // must fix without its phase changing (a Queued run whose pod cannot be scheduled): a
  // Warning named after the cause (Ready False for any reason but a suspend), with its message.
  const ready = status.conditions?.find((c) => c.type === 'Ready');
  const warning = ready?.status === 'False' && ready.reason !== 'Suspended';
  const before = obj.status?.conditions?.find((c) => c.type === 'Ready');
  const newProblem = warning && (before?.status !== 'False' || before.reason !== ready.reason);
  if (from !== status.phase) {
    ctx.log.info({ from, to: status.phase, taskId: status.taskId }, 'phase changed');
  }
  if (from !== status.phase || newProblem) {
    ctx.events.record(written, {
      type: warning ? 'Warning' : 'Normal',
      reason: (warning ? ready.reason : status.phase) ?? 'Pending',
      note:
        (warning ? ready.message : status.message) ?? `phase ${from ?? 'none'} -> ${status.phase}`,
    });
  }
  return written;
}

/**
 * Writes the status of a run that `problem` blocks: Ready False with its reason, everything else
 * as last known (the poller's snapshot of the task, if any). For reconcile and deletion alike.
 */
export async function writeProblem(
  ctx: Pick<ReconcileContext, 'api' | 'log' | 'events' | 'poller' | 'now'>,
  obj: ClaraObject,
  problem: Problem,
): Promise<ClaraObject> {
  const parsed = parseClaraInstance(obj);
  return writeStatusIfChanged(
    ctx,
    obj,
    buildStatus({
      obj,
      instance: parsed.ok ? parsed.value : undefined,
      snapshot: ctx.poller.snapshot(objectKey(obj)),
      pod: undefined,
      problem,
      taskUrl: obj.status?.taskUrl,
      now: ctx.now(),
    }),
  );
}

function modelEntries(models: Model[]): ModelEntry[] {
  return models.slice(0, MODELS_MAX).map((m) => {
    const entry: ModelEntry = { name: cut(m.name ?? m.id, 255), uri: cut(m.uri ?? '', 2048) };
    if (m.framework) entry.framework = cut(m.framework, 64);
    const created = isoTime(m.created);
    if (created) entry.created = created;
    return entry;
  });
}

function setOrDelete<K extends keyof ClaraInstanceStatus>(
  status: ClaraInstanceStatus,
  key: K,
  value: ClaraInstanceStatus[K] | undefined,
): void {
  if (value === undefined) Reflect.deleteProperty(status, key);
  else status[key] = value;
}

/** ClearML dates (ISO with microseconds, maybe without offset) as RFC 3339 in UTC. */
function isoTime(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const withZone = /[zZ]|[+-]\d\d:?\d\d$/.test(value) ? value : `${value}Z`;
  const date = new Date(withZone);
  return Number.isNaN(date.getTime()) ? undefined : formatConditionTime(date.getTime());
}

function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
