/**
 * `tasks.*` endpoints that create, read and edit tasks (reference §3.2–§3.4, §3.9). The status
 * lifecycle is in `task-lifecycle.ts`, parameters, configuration, artifacts and model links in
 * `task-details.ts`; `taskEndpoints` joins all three.
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
import { taskDetailEndpoints } from './task-details.ts';
import { taskLifecycleEndpoints } from './task-lifecycle.ts';
import { checkName, checkProject, requireFields, requireForce, str } from './task-rules.ts';

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
  ...taskLifecycleEndpoints,
  ...taskDetailEndpoints,
];
