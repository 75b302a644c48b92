/**
 * Deletion of a ClaraInstance: end its ClearML task as `spec.deletionPolicy` says, then let the
 * resource go. `Archive` (default) aborts a live task and archives it; `Delete` aborts and
 * deletes it; `Orphan` leaves it untouched. The agent pod goes with the resource through its
 * owner reference (garbage collection).
 *
 * ClearML being down or the credentials being gone delays the deletion with a visible condition
 * and a retry; the task is never dropped silently (`../shared/DESIGN.md` "The run", step 6).
 */
import { parseClaraInstance } from '../../api/clarainstance.ts';
import type { ClaraInstance } from '../../api/clarainstance.ts';
import { ClearmlError } from '../../clearml/index.ts';
import { objectKey } from '../../k8s/index.ts';
import type { ClearmlClient, Task } from '../../clearml/index.ts';
import type { ClaraObject } from './clara-api.ts';
import { FINALIZER } from './clara-api.ts';
import type { ReconcileContext } from './context.ts';
import { readConnection } from './credentials.ts';
import { uidTag } from './launch.ts';
import type { ReconcileResult } from './reconcile.ts';
import { writeProblem } from './status-writer.ts';

/** How long an agent gets to stop a running task before the operator marks it stopped itself. */
const STOP_GRACE_MS = 30_000;
const STOP_RECHECK_MS = 3_000;
/** Statuses with something to stop. A `created` task (never enqueued, e.g. its queue was
 * missing) has nothing running and is archived or deleted as it is: the server refuses
 * created -> stopped without force. */
const LIVE = new Set(['queued', 'in_progress']);

/** Runs the deletion of `obj` (its deletionTimestamp is set). See the module comment. */
export async function finalize(ctx: ReconcileContext, obj: ClaraObject): Promise<ReconcileResult> {
  const key = objectKey(obj);
  if (!(obj.metadata.finalizers ?? []).includes(FINALIZER)) {
    ctx.poller.untrack(key);
    return undefined;
  }

  const parsed = parseClaraInstance(obj);
  // An instance whose spec no longer parses still had a task: the default policy and the
  // default credentials apply to it.
  const instance = parsed.ok ? parsed.value : undefined;
  const policy = instance?.spec.deletionPolicy ?? 'Archive';

  if (policy !== 'Orphan') {
    const blocked = await cleanUpTasks(ctx, { obj, instance, policy });
    if (blocked) return blocked;
  }

  ctx.poller.untrack(key);
  await ctx.api.setFinalizer(obj, false);
  ctx.log.info({ policy }, 'finalizer removed; the instance can go');
  return undefined;
}

/**
 * Ends and archives or deletes every task of the instance. Returns a result when the deletion
 * must wait (a task still stopping, or ClearML unreachable), undefined when done.
 */
async function cleanUpTasks(
  ctx: ReconcileContext,
  opts: { obj: ClaraObject; instance: ClaraInstance | undefined; policy: 'Archive' | 'Delete' },
): Promise<ReconcileResult> {
  const { obj, instance, policy } = opts;
  const conn = await readConnection({
    instance,
    namespace: obj.metadata.namespace ?? '',
    secrets: ctx.secrets,
    defaultSecret: ctx.config.defaultCredentialsSecret,
  });
  if ('reason' in conn) {
    return blockDeletion(ctx, obj, {
      reason: conn.reason,
      message:
        `${conn.message}; the ClearML task cannot be ${policy === 'Archive' ? 'archived' : 'deleted'} ` +
        'until it is fixed (or set spec.deletionPolicy: Orphan to leave the task)',
    });
  }

  const client = ctx.clearml.clientFor(conn);
  try {
    const tasks = await tasksOf(client, obj);
    const stopping = await stopLiveTasks(ctx, { obj, client, tasks });
    if (stopping) return stopping;

    const ids = tasks.map((t) => t.id);
    if (ids.length > 0 && policy === 'Archive') {
      await client.archiveTasks(ids, { statusReason: 'ClaraInstance deleted' });
    } else {
      for (const id of ids)
        await client.deleteTask({ task: id, force: true, statusReason: 'ClaraInstance deleted' });
    }
    ctx.log.info({ tasks: ids, policy }, policy === 'Archive' ? 'tasks archived' : 'tasks deleted');
    return undefined;
  } catch (err) {
    if (!(err instanceof ClearmlError)) throw err;
    await blockDeletion(ctx, obj, {
      reason: err.retriable ? 'ClearMLUnavailable' : 'ClearMLError',
      message: `deletion waits for ClearML: ${err.endpoint}: ${err.message}`.slice(0, 1000),
    });
    throw err;
  }
}

/** Every task of the instance that is not archived yet: the current run's and earlier ones. */
async function tasksOf(client: ClearmlClient, obj: ClaraObject): Promise<Task[]> {
  const tagged = await client.getTasks({
    systemTags: [uidTag(obj.metadata.uid ?? ''), '-archived'],
    onlyFields: ['id', 'status', 'status_message', 'last_update', 'system_tags'],
    searchHidden: true,
  });
  const statusId = obj.status?.taskId;
  if (statusId && !tagged.some((t) => t.id === statusId)) {
    const [task] = await client.getTasks({
      ids: [statusId],
      onlyFields: ['id', 'status', 'system_tags'],
    });
    if (task && !(task.system_tags ?? []).includes('archived')) tagged.push(task);
  }
  return tagged;
}

/**
 * Asks every live task to stop. A running task gets STOP_GRACE_MS for its agent to stop it; then
 * the operator sets it stopped itself (`tasks.stopped force`, as when no agent answers).
 */
async function stopLiveTasks(
  ctx: ReconcileContext,
  opts: { obj: ClaraObject; client: ClearmlClient; tasks: Task[] },
): Promise<ReconcileResult> {
  const { obj, client, tasks } = opts;
  const deletedAtMs = Date.parse(obj.metadata.deletionTimestamp as unknown as string);
  let waiting = false;
  for (const task of tasks) {
    if (!LIVE.has(task.status ?? '')) continue;
    if (task.status !== 'in_progress' || task.status_message !== 'stopping') {
      await client.stopTask({ task: task.id, statusReason: 'ClaraInstance deleted' });
    }
    const [after] = await client.getTasks({ ids: [task.id], onlyFields: ['id', 'status'] });
    if (after?.status !== 'in_progress') continue;
    if (ctx.now().getTime() - deletedAtMs >= STOP_GRACE_MS) {
      await client.markTaskStopped({
        task: task.id,
        force: true,
        statusReason: 'ClaraInstance deleted; agent did not stop it',
      });
      ctx.log.warn({ taskId: task.id }, 'agent did not stop the task in time; marked stopped');
    } else {
      waiting = true;
    }
  }
  return waiting ? { requeueAfterMs: STOP_RECHECK_MS } : undefined;
}

/** Shows why a deletion waits (Ready False with the reason) and looks again after the interval. */
async function blockDeletion(
  ctx: ReconcileContext,
  obj: ClaraObject,
  blocker: { reason: string; message: string },
): Promise<ReconcileResult> {
  ctx.log.warn(blocker, 'deletion blocked');
  await writeProblem(ctx, obj, { on: 'TaskReady', ...blocker }).catch((err: unknown) =>
    ctx.log.debug({ err }, 'status write during deletion failed'),
  );
  return { requeueAfterMs: ctx.config.pollIntervalMs };
}
