/**
 * The task status lifecycle (reference §3.5–§3.8): enqueue, dequeue, started, stop/stopped,
 * failed, close, completed, publish, reset, delete, archive and ping, with the server's rules
 * for which status may follow which and what each call clears.
 */
import { errors } from '../api-error.ts';
import type { CallContext, EndpointDef } from '../endpoint.ts';
import type { Doc, EmulatorState } from '../state.ts';
import { changeStatus } from '../task-status.ts';
import { findOrCreateQueueByName, isQueueWatched } from './queues.ts';
import { requireFields, str } from './task-rules.ts';

/** A task with no live worker for this long is stopped at once (`task_update_timeout`). */
const TASK_UPDATE_TIMEOUT_MS = 600_000;
function enqueue(ctx: CallContext): Record<string, unknown> {
  const { state, data } = ctx;
  requireFields(data, 'task');
  const task = state.getTask(data.task);
  if (data.queue !== undefined && data.queue_name !== undefined) {
    throw errors.validationError({}, 'Either queue id or queue name should be provided');
  }
  let queue: Doc | undefined;
  if (typeof data.queue_name === 'string') {
    queue = findOrCreateQueueByName(state, data.queue_name, ctx.identity.user);
  } else if (typeof data.queue === 'string') {
    queue = state.queues.get(data.queue);
    if (!queue) throw errors.invalidQueueId({ queue_id: data.queue });
  } else {
    queue = [...state.queues.values()].find((q) => (q.system_tags as string[]).includes('default'));
    if (!queue) throw errors.noDefaultQueue();
  }

  const previous = String(task.status);
  const fields = changeStatus(state, task, {
    status: 'queued',
    force: data.force,
    reason: data.status_reason,
    message: data.status_message,
  });
  // The server remembers the pre-enqueue status (`enqueue_status`) for a later dequeue.
  const enqueueStatus =
    previous === 'queued' ? (state.enqueueStatus.get(task.id) ?? 'created') : previous;
  state.enqueueStatus.set(task.id, enqueueStatus);
  fields.enqueue_status = enqueueStatus;
  task.system_tags = (task.system_tags as string[]).filter((t) => t !== 'development');

  state.removeFromQueues(task.id);
  (queue.entries as unknown[]).push({ task: task.id, added: state.isoNow() });
  (task.execution as Record<string, unknown>).queue = queue.id;
  fields['execution.queue'] = queue.id;

  const result: Record<string, unknown> = { queued: 1, updated: 1, fields };
  if (data.verify_watched_queue === true) result.queue_watched = isQueueWatched(state, queue.id);
  return result;
}

/** Dequeue rule of `dequeue_and_change_status`: only queued / in_progress tasks change. */
function dequeueAndChangeStatus(
  state: EmulatorState,
  task: Doc,
  opts: { newStatus?: string; reason?: unknown; message?: unknown; abortedStatus?: string },
): { removed: number; updated: number; fields?: Record<string, unknown> } {
  const removed = state.removeFromQueues(task.id);
  const status = String(task.status);
  if (status !== 'queued' && status !== 'in_progress') return { removed, updated: 0 };
  const target =
    status === 'in_progress' && opts.abortedStatus
      ? opts.abortedStatus
      : (opts.newStatus ?? state.enqueueStatus.get(task.id) ?? 'created');
  state.enqueueStatus.delete(task.id);
  const fields = changeStatus(state, task, {
    status: target,
    force: true,
    reason: opts.reason,
    message: opts.message,
  });
  return { removed, updated: 1, fields };
}

function stop(ctx: CallContext): Record<string, unknown> {
  const { state, data } = ctx;
  requireFields(data, 'task');
  const task = state.getTask(data.task);
  const isQueued = task.status === 'queued';
  const lastUpdateMs = Date.parse(String(task.last_update ?? ''));
  const isRunByWorker =
    typeof task.last_worker === 'string' &&
    task.last_worker !== '' &&
    state.now() - lastUpdateMs < TASK_UPDATE_TIMEOUT_MS;
  const isDevelopment = (task.system_tags as string[]).includes('development');
  // Server `stop_task`: stop at once when nobody runs it; otherwise keep the status and ask the
  // worker with status_message "stopping". Both go through the transition check (no force:
  // created → stopped is refused).
  const setStopped = isQueued || isDevelopment || !isRunByWorker;
  const fields = changeStatus(state, task, {
    status: setStopped ? 'stopped' : String(task.status),
    force: data.force,
    reason: data.status_reason,
    message: setStopped ? `Stopped by ${state.userName}` : 'stopping',
  });
  if (isQueued) state.removeFromQueues(task.id);
  return { updated: 1, fields };
}

function simpleStatus(
  status: string,
  extra?: (state: EmulatorState, task: Doc) => Record<string, unknown>,
) {
  return (ctx: CallContext): Record<string, unknown> => {
    requireFields(ctx.data, 'task');
    const task = ctx.state.getTask(ctx.data.task);
    const fields = changeStatus(ctx.state, task, {
      status,
      force: ctx.data.force,
      reason: ctx.data.status_reason,
      message: ctx.data.status_message,
      extra: extra?.(ctx.state, task),
    });
    if (status !== 'queued') ctx.state.removeFromQueues(task.id);
    return { updated: 1, fields };
  };
}

function started(ctx: CallContext): Record<string, unknown> {
  const result = simpleStatus('in_progress', (state, task) =>
    task.started ? {} : { started: state.isoNow() },
  )(ctx);
  return { started: 1, ...result };
}

function completed(ctx: CallContext): Record<string, unknown> {
  const result = simpleStatus('completed', (state) => ({ completed: state.isoNow() }))(ctx);
  if (ctx.data.publish === true) {
    const task = ctx.state.getTask(ctx.data.task);
    changeStatus(ctx.state, task, {
      status: 'published',
      extra: { published: ctx.state.isoNow() },
    });
    publishOutputModels(ctx.state, task);
    return { ...result, published: 1 };
  }
  return result;
}

function publishOutputModels(state: EmulatorState, task: Doc): void {
  for (const ref of (task.models as { output: { model: string }[] }).output) {
    const model = state.models.get(ref.model);
    if (model) model.ready = true;
  }
}

function resetTask(
  state: EmulatorState,
  task: Doc,
  data: Record<string, unknown>,
): Record<string, unknown> {
  const events = state.events.get(task.id)?.length ?? 0;
  state.events.delete(task.id);
  let deletedModels = 0;
  if (data.delete_output_models !== false) {
    for (const model of [...state.models.values()]) {
      if (model.task === task.id && model.ready !== true) {
        state.models.delete(model.id);
        deletedModels++;
      }
    }
    (task.models as Record<string, unknown>).output = [];
  }
  const execution = task.execution as Record<string, unknown>;
  execution.artifacts = ((execution.artifacts as { mode?: string }[]) ?? []).filter(
    (a) => a.mode === 'input',
  );
  delete execution.queue;
  task.last_iteration = 0;
  task.last_metrics = {};
  task.runtime = {};
  for (const field of ['started', 'completed', 'published', 'last_worker', 'last_worker_report']) {
    Reflect.deleteProperty(task, field);
  }
  const output = task.output as Record<string, unknown>;
  Reflect.deleteProperty(output, 'result');
  Reflect.deleteProperty(output, 'error');
  return { events: { deleted: events }, deleted_models: deletedModels };
}

function reset(ctx: CallContext): Record<string, unknown> {
  const { state, data } = ctx;
  requireFields(data, 'task');
  const task = state.getTask(data.task);
  // Server `reset_task`: only a published task needs force; completed → created is a legal
  // transition (the reference's "force needed if completed" is not what the code does).
  if (data.force !== true && task.status === 'published') {
    throw errors.invalidTaskStatus({ task_id: task.id, status: 'published' });
  }
  const removed = state.removeFromQueues(task.id);
  state.enqueueStatus.delete(task.id);
  const cleared = resetTask(state, task, data);
  const fields = changeStatus(state, task, {
    status: 'created',
    force: data.force,
    reason: 'reset',
    message: 'reset',
  });
  return { updated: 1, fields, dequeued: { removed }, ...cleared };
}

function deleteTask(ctx: CallContext): Record<string, unknown> {
  const { state, data } = ctx;
  requireFields(data, 'task');
  const task = state.getTask(data.task);
  const archived = (task.system_tags as string[]).includes('archived');
  if (data.force !== true && task.status !== 'created' && !archived) {
    throw errors.taskCannotBeDeleted(
      { task: task.id, status: String(task.status) },
      'due to status, use force=True',
    );
  }
  state.removeFromQueues(task.id);
  state.events.delete(task.id);
  // Server `cleanup_task`: unpublished output models go (unless delete_output_models=false);
  // published ones stay and lose their task link.
  let updatedModels = 0;
  let deletedModels = 0;
  for (const model of [...state.models.values()]) {
    if (model.task !== task.id) continue;
    if (data.delete_output_models !== false && model.ready !== true) {
      state.models.delete(model.id);
      deletedModels++;
    } else {
      model.task = null;
      updatedModels++;
    }
  }
  state.tasks.delete(task.id);
  state.enqueueStatus.delete(task.id);
  return {
    deleted: true,
    updated_children: 0,
    updated_models: updatedModels,
    deleted_models: deletedModels,
    urls: null,
  };
}

function archive(ctx: CallContext): Record<string, unknown> {
  const { state, data } = ctx;
  requireFields(data, 'tasks');
  let archived = 0;
  for (const id of data.tasks as string[]) {
    const task = state.getTask(id);
    dequeueAndChangeStatus(state, task, {
      reason: data.status_reason,
      message: data.status_message,
      abortedStatus: 'stopped',
    });
    const tags = task.system_tags as string[];
    if (!tags.includes('archived')) tags.push('archived');
    task.status_reason = typeof data.status_reason === 'string' ? data.status_reason : '';
    task.status_message = typeof data.status_message === 'string' ? data.status_message : '';
    task.last_change = state.isoNow();
    archived++;
  }
  return { archived };
}

/** The lifecycle endpoints. */
export const taskLifecycleEndpoints: EndpointDef[] = [
  { name: 'tasks.enqueue', minVersion: '1.5', handler: enqueue },
  {
    name: 'tasks.dequeue',
    minVersion: '1.5',
    handler: (ctx) => {
      requireFields(ctx.data, 'task');
      const task = ctx.state.tasks.get(String(ctx.data.task));
      if (!task) {
        ctx.state.removeFromQueues(String(ctx.data.task));
        return { updated: 0, dequeued: {} };
      }
      const newStatus = str(ctx.data.new_status);
      const result = dequeueAndChangeStatus(ctx.state, task, {
        ...(newStatus === undefined ? {} : { newStatus }),
        reason: ctx.data.status_reason,
        message: ctx.data.status_message,
      });
      return {
        updated: result.updated,
        fields: result.fields ?? {},
        dequeued: { removed: result.removed },
      };
    },
  },
  { name: 'tasks.started', minVersion: '2.1', handler: started },
  { name: 'tasks.stop', minVersion: '2.1', handler: stop },
  { name: 'tasks.stopped', minVersion: '2.1', handler: simpleStatus('stopped') },
  { name: 'tasks.failed', minVersion: '2.1', handler: simpleStatus('failed') },
  { name: 'tasks.close', minVersion: '2.1', handler: simpleStatus('closed') },
  { name: 'tasks.completed', minVersion: '2.2', handler: completed },
  {
    name: 'tasks.publish',
    minVersion: '2.1',
    handler: (ctx) => {
      const result = simpleStatus('published', (state) => ({ published: state.isoNow() }))(ctx);
      publishOutputModels(ctx.state, ctx.state.getTask(ctx.data.task));
      return { committed_versions_results: [], ...result };
    },
  },
  { name: 'tasks.reset', minVersion: '2.1', handler: reset },
  { name: 'tasks.delete', minVersion: '2.1', handler: deleteTask },
  { name: 'tasks.archive', minVersion: '2.12', handler: archive },
  {
    name: 'tasks.ping',
    minVersion: '2.1',
    handler: (ctx) => {
      requireFields(ctx.data, 'task');
      ctx.state.getTask(ctx.data.task).last_update = ctx.state.isoNow();
      return {};
    },
  },
];
