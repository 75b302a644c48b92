/**
 * Reconcile of one ClaraInstance: read the world, move it one step toward the spec, write what
 * was seen into status. Level-based and idempotent: running it twice, or after a crash at any
 * point, does no harm and never makes a second ClearML task (the task is found by its UID tag).
 *
 * Order (`../shared/DESIGN.md` "The run"): finalizer; spec check; credentials; the task (found,
 * or created after the dataset is checked, its id written to status at once); suspend; enqueue;
 * agent pod; status. Deletion runs `finalize.ts` instead.
 *
 * Outcome, as the work queue reads it: return undefined when nothing needs a retry (pod events
 * and the task poller bring the key back), `{ requeueAfterMs }` to look again later (a problem
 * the user may fix outside the resource, such as a missing Secret), throw to retry with backoff
 * (ClearML or the apiserver unavailable).
 */
import type * as k8s from '@kubernetes/client-node';

import { parseClaraInstance } from '../../api/clarainstance.ts';
import type { ClaraInstance } from '../../api/clarainstance.ts';
import type { ClaraInstanceStatus, HistoryEntry } from '../../api/clarainstance-status.ts';
import { ClearmlAuthError, ClearmlError } from '../../clearml/index.ts';
import { objectKey } from '../../k8s/index.ts';
import type { ClearmlClient, Task } from '../../clearml/index.ts';
import { agentPod, agentPodName } from './agent-pod.ts';
import type { ClaraObject } from './clara-api.ts';
import { FINALIZER } from './clara-api.ts';
import type { ReconcileContext } from './context.ts';
import { credentialsSecretName, readConnection, taskUrl } from './credentials.ts';
import { finalize } from './finalize.ts';
import { launchFingerprint, launchFingerprintOf, taskRequest, uidTag } from './launch.ts';
import { buildStatus, writeProblem, writeStatusIfChanged } from './status-writer.ts';
import { isTerminal, phaseOfTask, podTrouble } from './status.ts';
import type { Phase } from '../../api/clarainstance-status.ts';
import type { Problem } from './status.ts';
import { readLogTail } from './task-poller.ts';
import type { TaskSnapshot } from './task-poller.ts';

/** What a reconcile returns to the work queue. */
export type ReconcileResult = undefined | { requeueAfterMs: number };

/** status_reason the operator writes when it suspends a run; only such a task is re-enqueued. */
export const SUSPEND_REASON = 'suspended by clara-operator';
const SPEC_CHANGED_REASON = 'spec changed: superseded by a new run';
const HISTORY_LENGTH = 5;

/** Task fields read when a task is looked up outside the poller. */
const TASK_FIELDS = [
  'id',
  'status',
  'status_reason',
  'status_message',
  'started',
  'completed',
  'last_iteration',
  'last_metrics',
  'system_tags',
  'project',
];

/** Reconciles the instance `namespace/name`. See the module comment for the outcome contract. */
export async function reconcile(ctx: ReconcileContext, key: string): Promise<ReconcileResult> {
  const obj = ctx.instances.get(key);
  if (!obj) {
    // Gone from the cache: deleted after its finalizer was removed. Nothing left to do.
    ctx.poller.untrack(key);
    return undefined;
  }
  if (obj.metadata.deletionTimestamp) return finalize(ctx, obj);

  // The finalizer comes before anything is created in ClearML, so no task can be orphaned.
  let current = obj;
  if (!(obj.metadata.finalizers ?? []).includes(FINALIZER)) {
    current = await ctx.api.setFinalizer(obj, true);
    ctx.log.info({ finalizer: FINALIZER }, 'finalizer added');
  }

  const parsed = parseClaraInstance(current);
  if (!parsed.ok) {
    const message = parsed.problems.map((p) => `${p.field}: ${p.message}`).join('; ');
    await report(ctx, current, { on: 'TaskReady', reason: 'InvalidSpec', message });
    // A spec change brings the key back; retrying the same spec cannot help.
    return undefined;
  }
  return reconcileRun(ctx, current, parsed.value);
}

async function reconcileRun(
  ctx: ReconcileContext,
  obj: ClaraObject,
  instance: ClaraInstance,
): Promise<ReconcileResult> {
  const key = objectKey(obj);
  const conn = await readConnection({
    instance,
    namespace: obj.metadata.namespace ?? '',
    secrets: ctx.secrets,
    defaultSecret: ctx.config.defaultCredentialsSecret,
  });
  if ('reason' in conn) {
    await report(ctx, obj, { on: 'TaskReady', reason: conn.reason, message: conn.message });
    return { requeueAfterMs: ctx.config.pollIntervalMs };
  }
  const client = ctx.clearml.clientFor(conn);

  let snapshot: TaskSnapshot | undefined;
  let projectId: string | undefined;
  let resuming: boolean;
  try {
    const found = await findOrCreateTask(ctx, { obj, instance, client });
    if ('problem' in found) {
      await report(ctx, obj, found.problem);
      return { requeueAfterMs: ctx.config.pollIntervalMs };
    }
    obj = found.obj;
    snapshot = found.snapshot;
    projectId = snapshot.task.project;

    ({ snapshot, resuming } = await applySuspendAndQueue(ctx, {
      obj,
      instance,
      client,
      snapshot,
    }));
  } catch (err) {
    return handleClearmlError(ctx, obj, err);
  }

  const taskId = snapshot.task.id;
  const phase = phaseOfTask(snapshot.task.status, instance.spec.suspend || resuming);
  if (phase === 'Failed' && snapshot.failureLog === undefined) {
    // Seen failed outside the poller (for example after a restart): read the log tail once.
    const failureLog = await readLogTail(client, taskId).catch(() => undefined);
    snapshot = { ...snapshot, failureLog: failureLog ?? '' };
    ctx.poller.remember(key, snapshot);
  }
  if (isTerminal(phase)) ctx.poller.untrack(key);
  else ctx.poller.track(key, client, taskId);

  const pod = await ensureAgentPod(ctx, { obj, instance, taskId, phase, client, snapshot });
  await writeStatusIfChanged(
    ctx,
    obj,
    buildStatus({
      obj,
      instance,
      snapshot,
      pod,
      problem: undefined,
      taskUrl: projectId ? taskUrl(conn, projectId, taskId) : undefined,
      now: ctx.now(),
      resuming,
    }),
  );
  return resuming ? { requeueAfterMs: RESUME_RECHECK_MS } : undefined;
}

type FoundTask = { obj: ClaraObject; snapshot: TaskSnapshot } | { problem: Problem };

/**
 * The task of the current run: the one in status, or the one carrying this resource's UID and
 * launch fingerprint, or a new one. A task of an earlier spec is ended and kept in history.
 */
async function findOrCreateTask(
  ctx: ReconcileContext,
  opts: { obj: ClaraObject; instance: ClaraInstance; client: ClearmlClient },
): Promise<FoundTask> {
  const { instance, client } = opts;
  let obj = opts.obj;
  const key = objectKey(obj);
  const uid = obj.metadata.uid ?? '';
  const fingerprint = launchFingerprint(instance);

  let snapshot = ctx.poller.snapshot(key);
  const statusTaskId = obj.status?.taskId;
  if (statusTaskId && snapshot?.task.id !== statusTaskId) {
    const [task] = await client.getTasks({ ids: [statusTaskId], onlyFields: TASK_FIELDS });
    snapshot = task ? { task, models: undefined, failureLog: undefined } : undefined;
  }

  // A task made for an earlier spec: end it, keep its id in history, start over.
  if (snapshot && launchFingerprintOf(snapshot.task.system_tags) !== fingerprint) {
    obj = await supersede(ctx, { obj, client, task: snapshot.task });
    snapshot = undefined;
  }

  if (!snapshot) {
    // After a crash between tasks.create and the status write, the task exists only in ClearML.
    const tagged = await client.getTasks({
      systemTags: [uidTag(uid), `-archived`],
      onlyFields: TASK_FIELDS,
      searchHidden: true,
    });
    const task = tagged.find((t) => launchFingerprintOf(t.system_tags) === fingerprint);
    if (task) {
      ctx.log.info({ taskId: task.id }, 'task adopted');
      snapshot = { task, models: undefined, failureLog: undefined };
    }
  }

  if (!snapshot) {
    const problem = await checkDataset(client, instance.spec.datasetTask);
    if (problem) return { problem };
    const projectId = await client.getOrCreateProject(instance.spec.project);
    const request = taskRequest({ instance, uid, projectId, launcher: ctx.launcher });
    const id = await client.createTask(request);
    ctx.log.info({ taskId: id, project: instance.spec.project }, 'task created');
    ctx.events.record(obj, {
      reason: 'TaskCreated',
      note: `created ClearML task ${id}`,
      type: 'Normal',
    });
    snapshot = {
      // The tags the task was made with: the next reconcile compares its launch fingerprint.
      task: { id, status: 'created', project: projectId, system_tags: request.system_tags ?? [] },
      models: undefined,
      failureLog: undefined,
    };
  }

  // The task id goes to status before anything else happens to the task.
  if (obj.status?.taskId !== snapshot.task.id) {
    obj = await ctx.api.replaceStatus(obj, {
      ...obj.status,
      taskId: snapshot.task.id,
      observedGeneration: obj.metadata.generation,
    });
  }
  ctx.poller.remember(key, snapshot);
  return { obj, snapshot };
}

/** Ends the task of an earlier spec and records it in status.history. */
async function supersede(
  ctx: ReconcileContext,
  opts: { obj: ClaraObject; client: ClearmlClient; task: Task },
): Promise<ClaraObject> {
  const { obj, client, task } = opts;
  if (task.status === 'queued' || task.status === 'in_progress' || task.status === 'created') {
    await client.stopTask({ task: task.id, force: true, statusReason: SPEC_CHANGED_REASON });
  }
  ctx.poller.untrack(objectKey(obj));
  ctx.log.info({ taskId: task.id }, 'task superseded by a spec change; starting a new run');
  ctx.events.record(obj, {
    reason: 'RunRestarted',
    note: `spec changed; task ${task.id} was stopped`,
    type: 'Normal',
  });

  const entry: HistoryEntry = { taskId: task.id, phase: phaseOfTask(task.status, false) };
  if (task.completed) entry.completedAt = task.completed;
  const history = [entry, ...(obj.status?.history ?? [])].slice(0, HISTORY_LENGTH);
  const status: ClaraInstanceStatus = { ...obj.status, history };
  delete status.taskId;
  delete status.startedAt;
  delete status.completedAt;
  delete status.metrics;
  delete status.models;
  delete status.lastIteration;
  delete status.agentPod;
  return ctx.api.replaceStatus(obj, status);
}

/**
 * Checks that the dataset task exists, is a ClearML Dataset, and is finalized; returns the
 * problem otherwise (`../shared/reference/clearml-api.md` §9.2).
 */
async function checkDataset(
  client: ClearmlClient,
  datasetId: string,
): Promise<Problem | undefined> {
  const [dataset] = await client.getTasks({
    ids: [datasetId],
    onlyFields: ['id', 'name', 'status', 'system_tags', 'type'],
    searchHidden: true,
  });
  if (!dataset) {
    return {
      on: 'TaskReady',
      reason: 'DatasetNotFound',
      message: `spec.datasetTask ${datasetId}: no such ClearML task`,
    };
  }
  if (!(dataset.system_tags ?? []).includes('dataset')) {
    return {
      on: 'TaskReady',
      reason: 'NotADataset',
      message: `spec.datasetTask ${datasetId} (${dataset.name ?? 'unnamed'}) is a ClearML task but not a Dataset`,
    };
  }
  if (!['completed', 'published', 'closed'].includes(dataset.status ?? '')) {
    return {
      on: 'TaskReady',
      reason: 'DatasetNotFinalized',
      message: `dataset ${datasetId} is ${dataset.status ?? 'in an unknown state'}; finalize it before training`,
    };
  }
  return undefined;
}

/** How soon a resume that waits for the suspended run's agent pod to go looks again. */
const RESUME_RECHECK_MS = 1_000;

/**
 * Suspends (dequeue or stop) or enqueues the task as the spec says. Returns the task's snapshot
 * after the change, and whether a resume waits for the suspended run's agent pod to be gone
 * (enqueued before that, the old agent's late `stopped` report could abort the resumed run). A
 * queue that does not exist is a problem, not created behind the user's back.
 *
 * A running task is stopped for good at once: `tasks.stop` leaves it in_progress ("stopping")
 * while its agent lives, but the operator removes the agent pod of a suspended run, so nothing
 * would ever report the stop; `tasks.stopped force` ends it (an agent still running it sees the
 * status change and stops, as the agent does for any unexpected status).
 */
async function applySuspendAndQueue(
  ctx: ReconcileContext,
  opts: {
    obj: ClaraObject;
    instance: ClaraInstance;
    client: ClearmlClient;
    snapshot: TaskSnapshot;
  },
): Promise<{ snapshot: TaskSnapshot; resuming: boolean }> {
  const { obj, instance, client } = opts;
  const key = objectKey(obj);
  let { snapshot } = opts;
  let resuming = false;
  const task = snapshot.task;

  if (instance.spec.suspend) {
    if (task.status === 'queued' || task.status === 'in_progress') {
      if (task.status === 'queued' || task.status_message !== 'stopping') {
        await client.stopTask({ task: task.id, force: true, statusReason: SUSPEND_REASON });
      }
      if (task.status === 'in_progress') {
        const [after] = await client.getTasks({ ids: [task.id], onlyFields: ['id', 'status'] });
        if (after?.status === 'in_progress') {
          await client.markTaskStopped({
            task: task.id,
            force: true,
            statusReason: SUSPEND_REASON,
          });
        }
      }
      snapshot = withTask(snapshot, {
        status: 'stopped',
        status_reason: SUSPEND_REASON,
        status_message: '',
      });
      ctx.log.info({ taskId: task.id }, 'run suspended');
      ctx.events.record(obj, {
        reason: 'Suspended',
        note: `task ${task.id} stopped: spec.suspend is true`,
        type: 'Normal',
      });
    }
  } else {
    // Resume only a run the operator suspended: its agent may have rewritten the reason
    // ("user abort"), so the stored phase tells; a task aborted in ClearML stays Aborted.
    const resumable = task.status === 'stopped' && obj.status?.phase === 'Suspended';
    // The resumed run's pod has the old one's name: that one must be gone first.
    const namespace = obj.metadata.namespace ?? '';
    const oldAgent = ctx.pods
      .ofInstance(namespace, obj.metadata.uid ?? '')
      .find((p) => p.metadata?.name === agentPodName(obj.metadata.name ?? '', task.id));
    if (resumable && oldAgent) {
      resuming = true;
      if (!oldAgent.metadata?.deletionTimestamp)
        await ctx.pods.delete(namespace, oldAgent.metadata?.name ?? '');
      ctx.log.info({ taskId: task.id }, "resume waits for the suspended run's agent pod to go");
    } else if (task.status === 'created' || resumable) {
      const queues = await client.getQueues({
        exactName: instance.spec.queue,
        onlyFields: ['id', 'name'],
      });
      // enqueue by name creates a missing queue; do that only when the instance allows it.
      if (queues.length === 0 && !instance.spec.createQueue) {
        throw new QueueMissing(instance.spec.queue);
      }
      await client.enqueueTask({ task: task.id, queueName: instance.spec.queue });
      snapshot = withTask(snapshot, { status: 'queued', status_reason: '' });
      ctx.log.info({ taskId: task.id, queue: instance.spec.queue }, 'task enqueued');
      ctx.events.record(obj, {
        reason: 'TaskEnqueued',
        note: `task ${task.id} put on queue ${instance.spec.queue}`,
        type: 'Normal',
      });
    }
  }
  ctx.poller.remember(key, snapshot);
  return { snapshot, resuming };
}

class QueueMissing extends Error {
  readonly queue: string;
  constructor(queue: string) {
    super(`queue ${queue} does not exist`);
    this.queue = queue;
  }
}

function withTask(snapshot: TaskSnapshot, fields: Partial<Task>): TaskSnapshot {
  return { ...snapshot, task: { ...snapshot.task, ...fields } };
}

/**
 * Makes sure the run's agent pod exists while the task waits or runs (mode Execute, not
 * suspended), removes pods of other tasks, and fails a task whose pod died without reporting.
 * Returns the current task's pod, if any.
 */
async function ensureAgentPod(
  ctx: ReconcileContext,
  opts: {
    obj: ClaraObject;
    instance: ClaraInstance;
    taskId: string;
    phase: string;
    client: ClearmlClient;
    snapshot: TaskSnapshot;
  },
): Promise<k8s.V1Pod | undefined> {
  const { obj, instance, taskId, phase } = opts;
  const namespace = obj.metadata.namespace ?? '';
  const name = obj.metadata.name ?? '';
  const pods = ctx.pods.ofInstance(namespace, obj.metadata.uid ?? '');
  const wanted = agentPodName(name, taskId);
  const wantPod =
    instance.spec.agent.mode === 'Execute' && (phase === 'Queued' || phase === 'Running');

  for (const pod of pods) {
    const podName = pod.metadata?.name ?? '';
    if (pod.metadata?.deletionTimestamp) continue;
    const otherRun = podName !== wanted;
    // A finished run's agent exits by itself; one still running holds a GPU for nothing. A pod
    // that terminated is kept for its logs (garbage collection takes it with the instance).
    const lingering = (phase === 'Suspended' || isTerminal(phase as Phase)) && !podTerminated(pod);
    if (otherRun || lingering) {
      await ctx.pods.delete(namespace, podName);
      ctx.log.info({ pod: podName, phase }, 'agent pod deleted: another run, or the run ended');
    }
  }
  let pod = pods.find((p) => p.metadata?.name === wanted && !(phase === 'Suspended'));

  if (wantPod && !pod) {
    const body = agentPod({
      instance,
      owner: { name, namespace, uid: obj.metadata.uid ?? '' },
      taskId,
      credentialsSecret: credentialsSecretName(
        instance,
        ctx.config.defaultCredentialsSecret,
      ) as string,
    });
    pod = await ctx.pods.create(namespace, body);
    ctx.log.info({ pod: wanted, taskId }, 'agent pod created');
    ctx.events.record(obj, {
      reason: 'AgentPodCreated',
      note: `created agent pod ${wanted}`,
      type: 'Normal',
    });
  }

  // An agent that died (OOMKilled, evicted, failed) cannot report; end its task so the run
  // does not sit in_progress until ClearML's two-hour watchdog.
  const ended = pod?.status?.phase === 'Failed';
  if (pod && ended && phase === 'Running') {
    const trouble = podTrouble(pod);
    await opts.client.callRaw('tasks.failed', {
      task: taskId,
      force: true,
      status_reason: 'agent pod failed',
      status_message: trouble?.message ?? 'the agent pod failed',
    });
    ctx.poller.remember(
      objectKey(obj),
      withTask(opts.snapshot, { status: 'failed', status_message: trouble?.message }),
    );
    ctx.log.warn(
      { taskId, pod: wanted, reason: trouble?.reason },
      'agent pod failed; task marked failed',
    );
  }
  return pod;
}

function podTerminated(pod: k8s.V1Pod): boolean {
  return pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
}

/** Writes a problem into status (Ready False with its reason) and logs the decision. */
async function report(ctx: ReconcileContext, obj: ClaraObject, problem: Problem): Promise<void> {
  ctx.log.warn({ reason: problem.reason, message: problem.message }, 'run blocked');
  await writeProblem(ctx, obj, problem);
}

/**
 * Maps a failure to talk to ClearML onto status and the queue: a missing queue or rejected keys
 * are problems the user fixes (look again after the poll interval); anything retriable is
 * thrown again so the queue backs off.
 */
async function handleClearmlError(
  ctx: ReconcileContext,
  obj: ClaraObject,
  err: unknown,
): Promise<ReconcileResult> {
  if (err instanceof QueueMissing) {
    await report(ctx, obj, {
      on: 'TaskReady',
      reason: 'QueueNotFound',
      message: `ClearML queue ${err.queue} does not exist; create it or fix spec.queue`,
    });
    return { requeueAfterMs: ctx.config.pollIntervalMs };
  }
  if (err instanceof ClearmlAuthError) {
    await report(ctx, obj, {
      on: 'TaskReady',
      reason: 'CredentialsRejected',
      message: `ClearML refused the credentials (${err.message}); check the keys in the credentials Secret`,
    });
    return { requeueAfterMs: ctx.config.pollIntervalMs };
  }
  // A finished run whose spec is all applied has a final status: an outage only delays noticing a
  // later change, so it backs off without writing ClearMLUnavailable next to Ready=Completed.
  const finished =
    isTerminal((obj.status?.phase ?? 'Pending') as Phase) &&
    obj.status?.observedGeneration === obj.metadata.generation;
  if (err instanceof ClearmlError && err.retriable && finished) throw err;
  if (err instanceof ClearmlError) {
    const problem: Problem = {
      on: 'TaskReady',
      reason: err.retriable ? 'ClearMLUnavailable' : 'ClearMLError',
      message: `${err.endpoint}: ${err.message}`.slice(0, 1000),
    };
    await report(ctx, obj, problem).catch(() => undefined);
    if (!err.retriable) return { requeueAfterMs: ctx.config.pollIntervalMs };
  }
  throw err;
}
