/**
 * Task details edited piecemeal by the SDK: hyperparameters, configuration objects,
 * artifacts, model links and requirements (reference §3.4, §6).
 */
import { errors } from '../api-error.ts';
import type { CallContext, EndpointDef } from '../endpoint.ts';
import {
  isPropertiesOnly,
  linkModel,
  requireFields,
  requireForce,
  requireUpdatable,
} from './task-rules.ts';

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

/** The detail endpoints. */
export const taskDetailEndpoints: EndpointDef[] = [
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
