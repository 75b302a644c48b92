/**
 * `models.*` endpoints (reference §6): create/edit/update by the SDK, `update_for_task` used by
 * agents and older SDK paths, and reads. `get_by_task_id` follows the server's
 * backwards-compatibility rule: served up to 2.13, 301/1 above.
 */
import { errors } from '../api-error.ts';
import { compareVersions, type CallContext, type EndpointDef } from '../endpoint.ts';
import {
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
import { linkModel } from './task-rules.ts';

const MODEL_FIELDS = [
  'name',
  'uri',
  'framework',
  'design',
  'labels',
  'comment',
  'tags',
  'system_tags',
  'project',
  'parent',
  'ready',
  'metadata',
] as const;

function requireModel(state: EmulatorState, id: unknown): Doc {
  const model = typeof id === 'string' ? state.models.get(id) : undefined;
  if (!model) throw errors.invalidModelId({ id: String(id) });
  return model;
}

function newModel(state: EmulatorState, data: Record<string, unknown>, user: string): Doc {
  const now = state.isoNow();
  const model: Doc = {
    id: newId(),
    name: data.name,
    user,
    company: state.company,
    created: now,
    last_update: now,
    task: typeof data.task === 'string' ? data.task : null,
    parent: null,
    project: null,
    comment: '',
    tags: [],
    system_tags: [],
    framework: null,
    design: {},
    labels: {},
    uri: null,
    ready: false,
    ui_cache: {},
    metadata: {},
  };
  for (const key of MODEL_FIELDS)
    if (data[key] !== undefined) model[key] = structuredClone(data[key]);
  state.models.set(model.id, model);
  return model;
}

function applyFields(
  model: Doc,
  data: Record<string, unknown>,
  state: EmulatorState,
): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const key of MODEL_FIELDS) {
    if (data[key] === undefined) continue;
    model[key] = fields[key] = structuredClone(data[key]);
  }
  if (typeof data.task === 'string') model.task = fields.task = data.task;
  if (typeof data.iteration === 'number')
    model.last_iteration = fields.last_iteration = data.iteration;
  model.last_update = state.isoNow();
  return fields;
}

function create(ctx: CallContext): Record<string, unknown> {
  const { state, data } = ctx;
  if (typeof data.name !== 'string' || typeof data.uri !== 'string') {
    throw errors.missingRequiredFields({
      fields: ['name', 'uri'].filter((k) => typeof data[k] !== 'string'),
    });
  }
  if (typeof data.task === 'string') state.getTask(data.task);
  const model = newModel(state, data, ctx.identity.user);
  if (typeof data.task === 'string') {
    linkModel(state, state.getTask(data.task), {
      type: 'output',
      name: String(model.name),
      model: model.id,
    });
  }
  return { id: model.id, created: true };
}

function updateForTask(ctx: CallContext): Record<string, unknown> {
  const { state, data } = ctx;
  const task = state.getTask(data.task);
  const override = typeof data.override_model_id === 'string' ? data.override_model_id : undefined;
  let model: Doc;
  let created = false;
  if (override !== undefined) {
    model = requireModel(state, override);
  } else {
    if (typeof data.uri !== 'string') throw errors.missingRequiredFields({ fields: ['uri'] });
    model = newModel(
      state,
      {
        name: data.name ?? task.name,
        uri: data.uri,
        task: task.id,
        project: task.project,
        comment: data.comment,
        tags: data.tags,
        system_tags: data.system_tags,
      },
      ctx.identity.user,
    );
    created = true;
  }
  if (typeof data.iteration === 'number') model.last_iteration = data.iteration;
  model.ready = task.status === 'published';
  linkModel(state, task, { type: 'output', name: String(model.name), model: model.id });
  return { id: model.id, created, updated: 1 };
}

function getAll(ctx: CallContext): Record<string, unknown> {
  const d = ctx.data;
  const ids = Array.isArray(d.id) ? (d.id as string[]) : undefined;
  const docs = [...ctx.state.models.values()].filter(
    (m) =>
      (ids === undefined || ids.includes(m.id)) &&
      matchesList(m.task, d.task) &&
      matchesList(m.project, d.project) &&
      matchesList(m.framework, d.framework) &&
      matchesList(m.uri, d.uri) &&
      matchesList(m.user, d.user) &&
      (typeof d.ready !== 'boolean' || m.ready === d.ready) &&
      matchesName(m.name, d.name) &&
      matchesTags(m.tags, d.tags) &&
      matchesTags(m.system_tags, d.system_tags),
  );
  const page = pageDocs(orderDocs(docs, d.order_by), d);
  return { models: page.map((m) => projectDoc(m, d.only_fields)) };
}

function getByTaskId(ctx: CallContext): Record<string, unknown> {
  // Retired above 2.13 (server `ModelsBackwardsCompatibility.max_version`).
  if (compareVersions(ctx.version, [2, 13]) > 0) {
    throw errors.notSupported301({}, 'use models.get_by_id/get_all apis');
  }
  const task = ctx.state.getTask(ctx.data.task);
  const output = (task.models as { output: { model: string }[] }).output;
  const last = output[output.length - 1];
  if (!last) throw errors.missingTaskFields({ field: 'models.output' });
  return { model: projectDoc(requireModel(ctx.state, last.model), undefined) };
}

/** Every `models.*` endpoint the emulator serves. */
export const modelEndpoints: EndpointDef[] = [
  { name: 'models.create', minVersion: '2.1', handler: create },
  {
    name: 'models.edit',
    minVersion: '2.1',
    handler: (ctx) => {
      const model = requireModel(ctx.state, ctx.data.model);
      if (typeof ctx.data.task === 'string') ctx.state.getTask(ctx.data.task);
      return { updated: 1, fields: applyFields(model, ctx.data, ctx.state) };
    },
  },
  {
    name: 'models.update',
    minVersion: '2.1',
    handler: (ctx) => {
      const model = requireModel(ctx.state, ctx.data.model);
      return { updated: 1, fields: applyFields(model, ctx.data, ctx.state) };
    },
  },
  { name: 'models.update_for_task', minVersion: '2.1', handler: updateForTask },
  {
    name: 'models.set_ready',
    minVersion: '2.1',
    handler: (ctx) => {
      const model = requireModel(ctx.state, ctx.data.model);
      model.ready = true;
      return { updated: 1, published_task: {} };
    },
  },
  { name: 'models.get_all', minVersion: '2.1', handler: getAll },
  { name: 'models.get_all_ex', minVersion: '2.1', handler: getAll },
  {
    name: 'models.get_by_id',
    minVersion: '2.1',
    handler: (ctx) => ({ model: projectDoc(requireModel(ctx.state, ctx.data.model), undefined) }),
  },
  { name: 'models.get_by_task_id', minVersion: '2.1', handler: getByTaskId },
  {
    name: 'models.add_or_update_metadata',
    minVersion: '2.13',
    handler: (ctx) => {
      const model = requireModel(ctx.state, ctx.data.model);
      if (ctx.data.replace_metadata === true) model.metadata = {};
      const metadata = (model.metadata ??= {}) as Record<string, unknown>;
      for (const item of (ctx.data.metadata as { key: string }[] | undefined) ?? [])
        metadata[item.key] = item;
      return { updated: 1 };
    },
  },
  {
    name: 'models.delete',
    minVersion: '2.1',
    handler: (ctx) => {
      const model = requireModel(ctx.state, ctx.data.model);
      ctx.state.models.delete(model.id);
      return { deleted: true, url: model.uri };
    },
  },
];
