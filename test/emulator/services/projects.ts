/** `projects.*` endpoints (reference §7): get-or-create and lookups; parents are created. */
import { errors } from '../api-error.ts';
import type { CallContext, EndpointDef } from '../endpoint.ts';
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

function createProject(state: EmulatorState, data: Record<string, unknown>, user: string): Doc {
  const name = typeof data.name === 'string' ? data.name.trim() : '';
  if (name.length < 3) throw errors.dataValidationError({}, 'name: String value is too short');
  if ([...state.projects.values()].some((p) => p.name === name)) {
    throw errors.expectedUniqueData({ name });
  }
  const parts = name.split('/');
  let parent: string | null = null;
  for (let depth = 1; depth < parts.length; depth++) {
    const path = parts.slice(0, depth).join('/');
    const existing = [...state.projects.values()].find((p) => p.name === path);
    parent = existing
      ? existing.id
      : createProject(state, { name: path, system_tags: [] }, user).id;
  }
  const now = state.isoNow();
  const project: Doc = {
    id: newId(),
    name,
    basename: parts[parts.length - 1],
    description: typeof data.description === 'string' ? data.description : '',
    user,
    company: state.company,
    created: now,
    tags: Array.isArray(data.tags) ? data.tags : [],
    system_tags: Array.isArray(data.system_tags) ? data.system_tags : [],
    default_output_destination: data.default_output_destination ?? null,
    last_update: now,
    parent,
  };
  state.projects.set(project.id, project);
  return project;
}

function requireProject(state: EmulatorState, id: unknown): Doc {
  const project = typeof id === 'string' ? state.projects.get(id) : undefined;
  if (!project) throw errors.invalidProjectId({ id: String(id) });
  return project;
}

function getAll(ctx: CallContext): Record<string, unknown> {
  const d = ctx.data;
  const ids = Array.isArray(d.id) ? (d.id as string[]) : undefined;
  const showHidden = d.search_hidden === true || ids !== undefined;
  const docs = [...ctx.state.projects.values()].filter(
    (p) =>
      (ids === undefined || ids.includes(p.id)) &&
      (showHidden || !(p.system_tags as string[]).includes('hidden')) &&
      matchesName(p.name, d.name) &&
      matchesName(p.basename, d.basename) &&
      matchesList(p.user, d.user) &&
      matchesTags(p.tags, d.tags) &&
      matchesTags(p.system_tags, d.system_tags),
  );
  const page = pageDocs(orderDocs(docs, d.order_by), d);
  return { projects: page.map((p) => projectDoc(p, d.only_fields)) };
}

/** Every `projects.*` endpoint the emulator serves. */
export const projectEndpoints: EndpointDef[] = [
  {
    name: 'projects.create',
    minVersion: '2.1',
    handler: (ctx) => ({ id: createProject(ctx.state, ctx.data, ctx.identity.user).id }),
  },
  { name: 'projects.get_all', minVersion: '2.1', handler: getAll },
  { name: 'projects.get_all_ex', minVersion: '2.1', handler: getAll },
  {
    name: 'projects.get_by_id',
    minVersion: '2.1',
    handler: (ctx) => ({
      project: projectDoc(requireProject(ctx.state, ctx.data.project), undefined),
    }),
  },
  {
    name: 'projects.update',
    minVersion: '2.1',
    handler: (ctx) => {
      const project = requireProject(ctx.state, ctx.data.project);
      const fields: Record<string, unknown> = {};
      for (const key of [
        'description',
        'tags',
        'system_tags',
        'default_output_destination',
      ] as const) {
        if (ctx.data[key] !== undefined) project[key] = fields[key] = ctx.data[key];
      }
      return { updated: 1, fields };
    },
  },
];
