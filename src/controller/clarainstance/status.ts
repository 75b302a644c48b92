/**
 * What a ClaraInstance's status says, derived from what the reconcile observed: the ClearML task,
 * the agent pod and any problem that blocked a step. Pure functions; the reconcile merges the
 * result into the stored status (conditions keep their transition times there).
 *
 * Condition types:
 * - `Ready`: the summary Argo CD and `kubectl wait` read. True while the run is running with its
 *   agent up, or once it completed; False when something blocks or failed it; Unknown while it
 *   waits (pending, queued).
 * - `TaskReady`: the ClearML side: credentials, project, task, queue.
 * - `AgentReady`: the agent pod (mode Execute only): scheduling, image pull, container state.
 */
import type * as k8s from '@kubernetes/client-node';

import type { MetricName, MetricSummary, Phase } from '../../api/clarainstance-status.ts';
import { METRIC_NAMES } from '../../api/clarainstance-status.ts';
import type { Task, TaskStatus } from '../../clearml/index.ts';

/** A condition as the reconcile wants it; times are added when it is merged into status. */
export interface DesiredCondition {
  type: 'Ready' | 'TaskReady' | 'AgentReady';
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
}

/** A problem found by the reconcile, shown as a condition with this reason and message. */
export interface Problem {
  /** Which side it is on. */
  on: 'TaskReady' | 'AgentReady';
  reason: string;
  message: string;
}

/** Phase of a run from its task's ClearML status (`../shared/reference/clearml-api.md` §3.1). */
export function phaseOfTask(status: TaskStatus | undefined, suspended: boolean): Phase {
  switch (status) {
    case undefined:
    case 'created':
    case 'unknown':
      return suspended ? 'Suspended' : 'Pending';
    case 'queued':
      return suspended ? 'Suspended' : 'Queued';
    case 'in_progress':
      return 'Running';
    case 'completed':
    case 'published':
    case 'publishing':
    case 'closed':
      return 'Completed';
    case 'failed':
      return 'Failed';
    case 'stopped':
      return suspended ? 'Suspended' : 'Aborted';
    default: {
      const unexpected: never = status;
      throw new Error(`unknown task status ${String(unexpected)}`);
    }
  }
}

/** Whether a phase is final: the run will not change any more and is no longer polled. */
export function isTerminal(phase: Phase): boolean {
  return phase === 'Completed' || phase === 'Failed' || phase === 'Aborted';
}

/**
 * What is wrong with an agent pod, from the scheduler's and the kubelet's own reasons:
 * unschedulable, image pull errors, OOMKilled, evicted, or a failed container. Undefined when the
 * pod is fine or simply starting.
 */
export function podTrouble(pod: k8s.V1Pod): Problem | undefined {
  const status = pod.status;
  if (!status) return undefined;
  if (status.reason === 'Evicted') {
    return {
      on: 'AgentReady',
      reason: 'Evicted',
      message: status.message ?? 'the pod was evicted',
    };
  }
  const scheduled = status.conditions?.find((c) => c.type === 'PodScheduled');
  if (scheduled?.status === 'False' && scheduled.reason === 'Unschedulable') {
    return {
      on: 'AgentReady',
      reason: 'Unschedulable',
      message: scheduled.message ?? 'no node fits the pod',
    };
  }
  for (const cs of status.containerStatuses ?? []) {
    const waiting = cs.state?.waiting;
    if (waiting?.reason && WAITING_TROUBLE.has(waiting.reason)) {
      return {
        on: 'AgentReady',
        reason: waiting.reason,
        message: waiting.message ?? `${cs.name}: ${waiting.reason}`,
      };
    }
    const terminated = cs.state?.terminated ?? cs.lastState?.terminated;
    if (terminated?.reason === 'OOMKilled') {
      return {
        on: 'AgentReady',
        reason: 'OOMKilled',
        message: `container ${cs.name} ran out of memory (OOMKilled)`,
      };
    }
    if (terminated && terminated.exitCode !== 0) {
      return {
        on: 'AgentReady',
        reason: 'AgentFailed',
        message: `container ${cs.name} exited with code ${terminated.exitCode}${terminated.message ? `: ${terminated.message}` : ''}`,
      };
    }
  }
  if (status.phase === 'Failed') {
    return {
      on: 'AgentReady',
      reason: 'PodFailed',
      message: status.message ?? 'the agent pod failed',
    };
  }
  return undefined;
}

/** Container waiting reasons that mean the pod will not start without a change. */
const WAITING_TROUBLE = new Set([
  'ErrImagePull',
  'ImagePullBackOff',
  'InvalidImageName',
  'CreateContainerConfigError',
  'CreateContainerError',
  'CrashLoopBackOff',
]);

/** Whether the agent pod is up: Running with its container ready. */
export function podRunning(pod: k8s.V1Pod | undefined): boolean {
  return (
    pod?.status?.phase === 'Running' && (pod.status.containerStatuses ?? []).every((c) => c.ready)
  );
}

/** Scalars whose best value is the largest; the others (losses) are best when smallest. */
const HIGHER_IS_BETTER: Record<MetricName, boolean> = {
  val_mean_dice: true,
  val_acc: true,
  train_loss: false,
  train_acc: true,
};

/**
 * The four scalars from a task's `last_metrics`, matched on the metric and variant names (not on
 * the md5 keys; `../shared/reference/clearml-api.md` §3.2). A scalar reported under its own name
 * as metric or as variant is found either way; the iteration is the task's last iteration.
 */
export function metricsOf(
  task: Pick<Task, 'last_metrics' | 'last_iteration'>,
): Partial<Record<MetricName, MetricSummary>> {
  const out: Partial<Record<MetricName, MetricSummary>> = {};
  for (const variants of Object.values(task.last_metrics ?? {})) {
    for (const summary of Object.values(variants)) {
      const name = METRIC_NAMES.find((m) => summary.variant === m || summary.metric === m);
      if (!name || summary.value === undefined) continue;
      const best = HIGHER_IS_BETTER[name] ? summary.max_value : summary.min_value;
      const entry: MetricSummary = { latest: summary.value };
      if (best !== undefined) entry.best = best;
      if (task.last_iteration !== undefined) entry.iteration = task.last_iteration;
      out[name] = entry;
    }
  }
  return out;
}

/** What {@link conditionsOf} works from. */
export interface ConditionInputs {
  phase: Phase;
  /** The agent runs in a pod the operator made (mode Execute). */
  podExpected: boolean;
  pod: k8s.V1Pod | undefined;
  problem: Problem | undefined;
  /** The task's status_message / reason, shown when it failed or was aborted. */
  taskMessage: string | undefined;
  taskId: string | undefined;
  queue: string;
}

/** The three conditions for a run's current state. */
export function conditionsOf(inputs: ConditionInputs): DesiredCondition[] {
  const { phase, problem } = inputs;
  const task = taskCondition(inputs);
  const agent = agentCondition(inputs);
  const conditions: DesiredCondition[] = [task];
  if (agent) conditions.push(agent);

  let ready: DesiredCondition;
  const blocking = [task, agent].find((c) => c?.status === 'False');
  if (phase === 'Completed') {
    ready = {
      type: 'Ready',
      status: 'True',
      reason: 'Completed',
      message: 'the training run completed',
    };
  } else if (phase === 'Failed' || phase === 'Aborted') {
    ready = {
      type: 'Ready',
      status: 'False',
      reason: phase,
      message: inputs.taskMessage ?? `the run is ${phase.toLowerCase()}`,
    };
  } else if (blocking) {
    ready = { type: 'Ready', status: 'False', reason: blocking.reason, message: blocking.message };
  } else if (phase === 'Suspended') {
    ready = {
      type: 'Ready',
      status: 'False',
      reason: 'Suspended',
      message: 'spec.suspend is true',
    };
  } else if (phase === 'Running' && (agent === undefined || agent.status === 'True')) {
    ready = {
      type: 'Ready',
      status: 'True',
      reason: 'Running',
      message: 'the training run is running',
    };
  } else {
    ready = {
      type: 'Ready',
      status: 'Unknown',
      reason: phase,
      message: problem?.message ?? `the run is ${phase.toLowerCase()}`,
    };
  }
  return [ready, ...conditions];
}

function taskCondition(inputs: ConditionInputs): DesiredCondition {
  const { problem, taskId, queue, phase } = inputs;
  if (problem?.on === 'TaskReady') {
    return { type: 'TaskReady', status: 'False', reason: problem.reason, message: problem.message };
  }
  if (!taskId) {
    return {
      type: 'TaskReady',
      status: 'Unknown',
      reason: 'Creating',
      message: 'creating the ClearML task',
    };
  }
  if (phase === 'Pending') {
    return {
      type: 'TaskReady',
      status: 'Unknown',
      reason: 'Enqueueing',
      message: `task ${taskId} is created, not yet queued`,
    };
  }
  const where = phase === 'Queued' ? `waits on queue ${queue}` : `was put on queue ${queue}`;
  return {
    type: 'TaskReady',
    status: 'True',
    reason: 'TaskCreated',
    message: `task ${taskId} ${where}`,
  };
}

function agentCondition(inputs: ConditionInputs): DesiredCondition | undefined {
  const { problem, pod, podExpected, phase } = inputs;
  if (!podExpected) return undefined;
  if (problem?.on === 'AgentReady') {
    return {
      type: 'AgentReady',
      status: 'False',
      reason: problem.reason,
      message: problem.message,
    };
  }
  if (isTerminal(phase) || phase === 'Suspended') {
    return {
      type: 'AgentReady',
      status: 'False',
      reason: 'RunEnded',
      message: 'the agent pod is no longer needed',
    };
  }
  const trouble = pod ? podTrouble(pod) : undefined;
  if (trouble)
    return {
      type: 'AgentReady',
      status: 'False',
      reason: trouble.reason,
      message: trouble.message,
    };
  if (podRunning(pod)) {
    return {
      type: 'AgentReady',
      status: 'True',
      reason: 'PodRunning',
      message: `agent pod ${pod?.metadata?.name} is running`,
    };
  }
  return {
    type: 'AgentReady',
    status: 'Unknown',
    reason: pod ? 'PodPending' : 'PodNotCreated',
    message: pod
      ? `agent pod ${pod.metadata?.name} is starting`
      : 'the agent pod is not created yet',
  };
}
