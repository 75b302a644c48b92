/**
 * `tasks.*` endpoints: create, read, edit, the status lifecycle (enqueue, dequeue, started,
 * stop/stopped, failed, completed, reset, archive, delete), hyperparameters, configuration,
 * artifacts and model links. Rules follow the real server (reference §3).
 */
import { errors } from '../api-error.ts';
import type { CallContext, EndpointDef } from '../endpoint.ts';
import {
  matchesAnyAll,
  matchesList,
  matchesName,
  matchesTags,
  newId,
  orderDocs,
  pageDocs,
  projectDoc,
  type Doc,
  type EmulatorState,
} from '../state.ts';
import { changeStatus } from '../task-status.ts';
import { findOrCreateQueueByName, isQueueWatched } from './queues.ts';

/** `task_type_enum`. */
const TASK_TYPES = new Set([
  'training',
  'testing',
  'inference',
  'data_processing',
  'application',
  'monitor',
  'controller',
  'optimizer',
  'service',
  'qc',
  'custom',
]);

/** A task with no live worker for this long is stopped at once (`task_update_timeout`). */
const TASK_UPDATE_TIMEOUT_MS = 600_000;

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function requireFields(data: Record<string, unknown>, ...names: string[]): void {
  const missing = names.filter((n) => data[n] === undefined || data[n] === null);
  if (missing.length > 0) throw errors.missingRequiredFields({ fields: missing });
}

function checkName(name: unknown, field = 'name'): void {
  if (typeof name !== 'string' || name.length < 3) {
    throw errors.dataValidationError({}, `${field}: String value is too short`);
  }
}

function checkProject(state: EmulatorState, project: unknown): void {
  if (project === undefined || project === null || project === '') return;
  if (typeof project !== 'string' || !state.projects.has(project)) {
    throw errors.invalidProjectId({ id: String(project) });
  }
}

/** Fields a create/edit may set, copied as given. */
const EDITABLE = [
  'name',
  'type',
  'comment',
  'parent',
  'project',
  'tags',
  'system_tags',
  'execution',
  'script',
  'hyperparams',
  'configuration',
  'models',
  'container',
  'runtime',
] as const;

function newTaskDoc(state: EmulatorState, data: Record<string, unknown>, user: string): Doc {
  const now = state.isoNow();
  const task: Doc = {
    id: newId(),
    name: data.name,
    user,
    company: state.company,
    type: data.type,
    status: 'created',
    status_reason: '',
    status_message: '',
    status_changed: now,
    comment: '',
    created: now,
    parent: null,
    project: null,
    output: {},
    execution: { artifacts: [] },
    container: {},
    models: { input: [], output: [] },
    script: {},
    tags: [],
    system_tags: [],
    last_update: now,
    last_change: now,
    last_iteration: 0,
    last_metrics: {},
    hyperparams: {},
    configuration: {},
    runtime: {},
  };
  for (const key of EDITABLE) if (data[key] !== undefined) task[key] = structuredClone(data[key]);
  if (typeof data.output_dest === 'string') task.output = { destination: data.output_dest };
  const execution = task.execution as Record<string, unknown>;
  execution.artifacts ??= [];
  return task;
}

function validateCreate(ctx: CallContext): void {
  requireFields(ctx.data, 'name', 'type');
  if (!TASK_TYPES.has(String(ctx.data.type))) {
    throw errors.validationError({}, `Invalid task type: ${String(ctx.data.type)}`);
  }
  checkName(ctx.data.name);
  checkProject(ctx.state, ctx.data.project);
}

function filterTasks(ctx: CallContext): Doc[] {
  const d = ctx.data;
  const ids = Array.isArray(d.id)
    ? (d.id as string[])
    : typeof d.id === 'string'
      ? [d.id]
      : undefined;
  const includeHidden = d.search_hidden === true || ids !== undefined;
  const docs = [...ctx.state.tasks.values()].filter(
    (t) =>
      (ids === undefined || ids.includes(t.id)) &&
      (includeHidden || !(t.system_tags as string[]).includes('hidden')) &&
      matchesName(t.name, d.name) &&
      matchesList(t.project, d.project) &&
      matchesList(t.status, d.status) &&
      matchesList(t.type, d.type) &&
      matchesList(t.user, d.user) &&
      matchesList(t.parent, d.parent) &&
      matchesTags(t.tags, d.tags) &&
      matchesTags(t.system_tags, d.system_tags) &&
      matchesAnyAll(t, d),
  );
  return orderDocs(docs, d.order_by);
}

function getAll(ctx: CallContext): Record<string, unknown> {
  const page = pageDocs(filterTasks(ctx), ctx.data);
  return { tasks: page.map((t) => projectDoc(t, ctx.data.only_fields)) };
}

function requireForce(task: Doc, force: unknown, allowed: string[]): void {
  if (force !== true && !allowed.includes(String(task.status))) {
    throw errors.invalidTaskStatus(
      { expected: allowed.join('|'), status: String(task.status) },
      'Invalid status for this operation',
    );
  }
}

/**
 * Server `get_task_for_update`: parameters and configuration change only on `created` tasks,
 * with `force` also on queued / in_progress ones; the `properties` section always.
 */
function requireUpdatable(task: Doc, force: unknown, propertiesOnly = false): void {
  if (propertiesOnly) return;
  const allowed = force === true ? ['created', 'queued', 'in_progress'] : ['created'];
  if (!allowed.includes(String(task.status))) {
    throw errors.invalidTaskStatus({ expected: 'created', status: String(task.status) });
  }
}

function isPropertiesOnly(items: unknown): boolean {
  return (
    Array.isArray(items) &&
    items.every((i) => String((i as { section?: unknown }).section).toLowerCase() === 'properties')
  );
}

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

function edit(ctx: CallContext): Record<string, unknown> {
  const { state, data } = ctx;
  requireFields(data, 'task');
  const task = state.getTask(data.task);
  requireForce(task, data.force, ['created']);
  if (data.name !== undefined) checkName(data.name);
  if (data.type !== undefined && !TASK_TYPES.has(String(data.type))) {
    throw errors.validationError({}, `Invalid task type: ${String(data.type)}`);
  }
  checkProject(state, data.project);
  const fields: Record<string, unknown> = {};
  for (const key of EDITABLE) {
    if (data[key] === undefined) continue;
    task[key] = structuredClone(data[key]);
    fields[key] = data[key];
  }
  if (typeof data.output_dest === 'string') {
    (task.output as Record<string, unknown>).destination = data.output_dest;
    fields['output.destination'] = data.output_dest;
  }
  const execution = task.execution as Record<string, unknown>;
  execution.artifacts ??= [];
  task.last_update = task.last_change = state.isoNow();
  return { updated: 1, fields };
}

function update(ctx: CallContext): Record<string, unknown> {
  const { state, data } = ctx;
  requireFields(data, 'task');
  const task = state.getTask(data.task);
  const fields: Record<string, unknown> = {};
  for (const key of ['name', 'tags', 'system_tags', 'comment', 'project', 'created'] as const) {
    if (data[key] === undefined) continue;
    if (key === 'name') checkName(data.name);
    if (key === 'project') checkProject(state, data.project);
    task[key] = structuredClone(data[key]);
    fields[key] = data[key];
  }
  if (data.output__error !== undefined) {
    (task.output as Record<string, unknown>).error = data.output__error;
    fields.output__error = data.output__error;
  }
  task.last_update = state.isoNow();
  return { updated: 1, fields };
}

type Items = Record<string, Record<string, Record<string, unknown>>>;

function editHyperParams(ctx: CallContext): Record<string, unknown> {
  const { state, data } = ctx;
  requireFields(data, 'task', 'hyperparams');
  const task = state.getTask(data.task);
  requireUpdatable(task, data.force, isPropertiesOnly(data.hyperparams));
  const params = task.hyperparams as Items;
  const replace = String(data.replace_hyperparams ?? 'none');
  const items = data.hyperparams as Record<string, unknown>[];
  if (replace === 'all') task.hyperparams = {};
  if (replace === 'section') {
    const sections = new Set(items.map((i) => String(i.section)));
    task.hyperparams = Object.fromEntries(Object.entries(params).filter(([k]) => !sections.has(k)));
  }
  const target = task.hyperparams as Items;
  for (const item of items) {
    const section = String(item.section);
    target[section] ??= {};
    target[section][String(item.name)] = { ...item };
  }
  task.last_update = state.isoNow();
  return { updated: 1 };
}

function getHyperParams(ctx: CallContext): Record<string, unknown> {
  requireFields(ctx.data, 'tasks');
  return {
    params: (ctx.data.tasks as string[]).map((id) => ({
      task: id,
      hyperparams: Object.values(ctx.state.getTask(id).hyperparams as Items).flatMap((s) =>
        Object.values(s),
      ),
    })),
  };
}

function deleteHyperParams(ctx: CallContext): Record<string, unknown> {
  requireFields(ctx.data, 'task', 'hyperparams');
  const task = ctx.state.getTask(ctx.data.task);
  requireUpdatable(task, ctx.data.force, isPropertiesOnly(ctx.data.hyperparams));
  let params = task.hyperparams as Items;
  let deleted = 0;
  for (const item of ctx.data.hyperparams as { section: string; name?: string }[]) {
    const section = params[item.section];
    if (!section || (item.name !== undefined && !(item.name in section))) continue;
    deleted++;
    params =
      item.name === undefined
        ? Object.fromEntries(Object.entries(params).filter(([k]) => k !== item.section))
        : {
            ...params,
            [item.section]: Object.fromEntries(
              Object.entries(section).filter(([k]) => k !== item.name),
            ),
          };
  }
  task.hyperparams = params;
  return { deleted };
}

function editConfiguration(ctx: CallContext): Record<string, unknown> {
  const { state, data } = ctx;
  requireFields(data, 'task', 'configuration');
  const task = state.getTask(data.task);
  requireUpdatable(task, data.force);
  if (data.replace_configuration === true) task.configuration = {};
  const config = task.configuration as Record<string, unknown>;
  for (const item of data.configuration as Record<string, unknown>[])
    config[String(item.name)] = { ...item };
  task.last_update = state.isoNow();
  return { updated: 1 };
}

function getConfigurations(ctx: CallContext): Record<string, unknown> {
  requireFields(ctx.data, 'tasks');
  const names = Array.isArray(ctx.data.names) ? (ctx.data.names as string[]) : undefined;
  return {
    configurations: (ctx.data.tasks as string[]).map((id) => ({
      task: id,
      configuration: Object.values(
        ctx.state.getTask(id).configuration as Record<string, { name: string }>,
      ).filter((c) => names === undefined || names.includes(c.name)),
    })),
  };
}

function getConfigurationNames(ctx: CallContext): Record<string, unknown> {
  requireFields(ctx.data, 'tasks');
  return {
    configurations: (ctx.data.tasks as string[]).map((id) => ({
      task: id,
      names: Object.keys(ctx.state.getTask(id).configuration as object).sort(),
    })),
  };
}

function addOrUpdateArtifacts(ctx: CallContext): Record<string, unknown> {
  requireFields(ctx.data, 'task', 'artifacts');
  const task = ctx.state.getTask(ctx.data.task);
  const execution = task.execution as { artifacts?: Record<string, unknown>[] };
  const list = (execution.artifacts ??= []);
  for (const artifact of ctx.data.artifacts as Record<string, unknown>[]) {
    requireFields(artifact, 'key', 'type');
    const mode = artifact.mode ?? 'output';
    const index = list.findIndex((a) => a.key === artifact.key && (a.mode ?? 'output') === mode);
    const stored = { ...artifact, mode };
    if (index >= 0) list[index] = stored;
    else list.push(stored);
  }
  task.last_update = ctx.state.isoNow();
  return { updated: (ctx.data.artifacts as unknown[]).length };
}

function deleteArtifacts(ctx: CallContext): Record<string, unknown> {
  requireFields(ctx.data, 'task', 'artifacts');
  const task = ctx.state.getTask(ctx.data.task);
  const execution = task.execution as { artifacts?: Record<string, unknown>[] };
  const before = execution.artifacts?.length ?? 0;
  const drop = ctx.data.artifacts as { key: string; mode?: string }[];
  execution.artifacts = (execution.artifacts ?? []).filter(
    (a) => !drop.some((d) => d.key === a.key && (d.mode ?? 'output') === (a.mode ?? 'output')),
  );
  return { deleted: before - execution.artifacts.length };
}

function addOrUpdateModel(ctx: CallContext): Record<string, unknown> {
  requireFields(ctx.data, 'task', 'name', 'model', 'type');
  const task = ctx.state.getTask(ctx.data.task);
  const type = String(ctx.data.type);
  if (type !== 'input' && type !== 'output')
    throw errors.validationError({}, 'type must be input or output');
  linkModel(ctx.state, task, { type, name: String(ctx.data.name), model: String(ctx.data.model) });
  return { updated: 1 };
}

/** Adds or replaces (by name) a model reference on a task. */
export function linkModel(
  state: EmulatorState,
  task: Doc,
  ref: { type: string; name: string; model: string },
): void {
  const models = task.models as Record<string, { name: string; model: string; updated: string }[]>;
  const list = (models[ref.type] ??= []);
  const entry = { name: ref.name, model: ref.model, updated: state.isoNow() };
  const index = list.findIndex((m) => m.name === ref.name);
  if (index >= 0) list[index] = entry;
  else list.push(entry);
  task.last_update = state.isoNow();
}

function deleteModels(ctx: CallContext): Record<string, unknown> {
  requireFields(ctx.data, 'task', 'models');
  const task = ctx.state.getTask(ctx.data.task);
  const models = task.models as Record<string, { name: string }[]>;
  let deleted = 0;
  for (const item of ctx.data.models as { name: string; type: string }[]) {
    const list = models[item.type] ?? [];
    const kept = list.filter((m) => m.name !== item.name);
    deleted += list.length - kept.length;
    models[item.type] = kept;
  }
  return { updated: deleted > 0 ? 1 : 0 };
}

function create(ctx: CallContext): Record<string, unknown> {
  validateCreate(ctx);
  const task = newTaskDoc(ctx.state, ctx.data, ctx.identity.user);
  ctx.state.tasks.set(task.id, task);
  return { id: task.id };
}

function clone(ctx: CallContext): Record<string, unknown> {
  requireFields(ctx.data, 'task');
  const source = ctx.state.getTask(ctx.data.task);
  const copy = newTaskDoc(ctx.state, structuredClone(source), ctx.identity.user);
  copy.name = str(ctx.data.new_task_name) ?? `Clone Of ${String(source.name)}`;
  if (typeof ctx.data.new_task_project === 'string') copy.project = ctx.data.new_task_project;
  if (ctx.data.new_task_hyperparams !== undefined) copy.hyperparams = ctx.data.new_task_hyperparams;
  if (ctx.data.new_task_configuration !== undefined)
    copy.configuration = ctx.data.new_task_configuration;
  if (ctx.data.new_task_container !== undefined) copy.container = ctx.data.new_task_container;
  copy.parent = source.id;
  (copy.execution as Record<string, unknown>).artifacts = [];
  (copy.execution as Record<string, unknown>).queue = null;
  copy.models = { input: (source.models as { input: unknown }).input, output: [] };
  copy.system_tags = (copy.system_tags as string[]).filter((t) => t !== 'archived');
  ctx.state.tasks.set(copy.id, copy);
  return { id: copy.id };
}

/** Every `tasks.*` endpoint the emulator serves. */
export const taskEndpoints: EndpointDef[] = [
  { name: 'tasks.create', minVersion: '2.1', handler: create },
  {
    name: 'tasks.validate',
    minVersion: '2.1',
    handler: (ctx) => {
      validateCreate(ctx);
      return {};
    },
  },
  { name: 'tasks.clone', minVersion: '2.5', handler: clone },
  { name: 'tasks.get_all', minVersion: '2.1', handler: getAll },
  { name: 'tasks.get_all_ex', minVersion: '2.1', handler: getAll },
  {
    name: 'tasks.get_by_id',
    minVersion: '2.1',
    handler: (ctx) => {
      requireFields(ctx.data, 'task');
      return { task: projectDoc(ctx.state.getTask(ctx.data.task), undefined) };
    },
  },
  { name: 'tasks.edit', minVersion: '2.1', handler: edit },
  { name: 'tasks.update', minVersion: '2.1', handler: update },
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
  {
    name: 'tasks.set_requirements',
    minVersion: '2.1',
    handler: (ctx) => {
      requireFields(ctx.data, 'task', 'requirements');
      const task = ctx.state.getTask(ctx.data.task);
      requireForce(task, ctx.data.force, ['created', 'in_progress']);
      (task.script as Record<string, unknown>).requirements = ctx.data.requirements;
      return { updated: 1, fields: { 'script.requirements': ctx.data.requirements } };
    },
  },
  { name: 'tasks.edit_hyper_params', minVersion: '2.9', handler: editHyperParams },
  { name: 'tasks.get_hyper_params', minVersion: '2.9', handler: getHyperParams },
  { name: 'tasks.delete_hyper_params', minVersion: '2.9', handler: deleteHyperParams },
  { name: 'tasks.edit_configuration', minVersion: '2.9', handler: editConfiguration },
  { name: 'tasks.get_configurations', minVersion: '2.9', handler: getConfigurations },
  { name: 'tasks.get_configuration_names', minVersion: '2.9', handler: getConfigurationNames },
  { name: 'tasks.add_or_update_artifacts', minVersion: '2.10', handler: addOrUpdateArtifacts },
  { name: 'tasks.delete_artifacts', minVersion: '2.10', handler: deleteArtifacts },
  { name: 'tasks.add_or_update_model', minVersion: '2.13', handler: addOrUpdateModel },
  { name: 'tasks.delete_models', minVersion: '2.13', handler: deleteModels },
];
