/** `queues.*` endpoints (reference §4.1, §4.2): lookup, create, entries and `get_next_task`. */
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

/** Queues with these system tags are hidden unless asked for (`services.queues.hidden_tags`). */
const HIDDEN_QUEUE_TAGS = ['k8s-glue'];

function requireQueue(state: EmulatorState, id: unknown): Doc {
  const queue = typeof id === 'string' ? state.queues.get(id) : undefined;
  if (!queue) throw errors.invalidQueueId({ queue_id: String(id) });
  return queue;
}

/** Creates a queue after the server's checks (name ≥ 3 chars, unique). */
export function createQueue(
  state: EmulatorState,
  data: { name: unknown; tags?: unknown; system_tags?: unknown; display_name?: unknown },
  user: string,
): Doc {
  if (typeof data.name !== 'string' || data.name.length < 3) {
    throw errors.dataValidationError({}, 'name: String value is too short');
  }
  if ([...state.queues.values()].some((q) => q.name === data.name)) {
    throw errors.expectedUniqueData({ name: data.name });
  }
  const now = state.isoNow();
  const queue: Doc = {
    id: newId(),
    name: data.name,
    display_name: typeof data.display_name === 'string' ? data.display_name : null,
    user,
    company: state.company,
    created: now,
    tags: Array.isArray(data.tags) ? data.tags : [],
    system_tags: Array.isArray(data.system_tags) ? data.system_tags : [],
    entries: [],
    metadata: {},
    last_update: now,
  };
  state.queues.set(queue.id, queue);
  return queue;
}

/** The queue with exactly this name, created when missing (as `tasks.enqueue {queue_name}`). */
export function findOrCreateQueueByName(state: EmulatorState, name: string, user: string): Doc {
  return (
    [...state.queues.values()].find((q) => q.name === name) ?? createQueue(state, { name }, user)
  );
}

/** True when a registered, non-expired worker lists the queue. */
export function isQueueWatched(state: EmulatorState, queueId: string): boolean {
  const nowMs = state.now();
  return [...state.workers.values()].some(
    (w) =>
      w.queues.includes(queueId) && nowMs - Date.parse(w.lastActivityTime) < w.timeoutSec * 1000,
  );
}

function getAll(ctx: CallContext): Record<string, unknown> {
  const d = ctx.data;
  const ids = Array.isArray(d.id) ? (d.id as string[]) : undefined;
  const showHidden = d.search_hidden === true || ids !== undefined || d.name !== undefined;
  const docs = [...ctx.state.queues.values()].filter(
    (q) =>
      (ids === undefined || ids.includes(q.id)) &&
      (showHidden || !(q.system_tags as string[]).some((t) => HIDDEN_QUEUE_TAGS.includes(t))) &&
      matchesName(q.name, d.name) &&
      matchesList(q.user, d.user) &&
      matchesTags(q.tags, d.tags) &&
      matchesTags(q.system_tags, d.system_tags),
  );
  const page = pageDocs(orderDocs(docs, d.order_by), d);
  return { queues: page.map((q) => withEntries(q, d)) };
}

function withEntries(queue: Doc, data: Record<string, unknown>): Record<string, unknown> {
  const doc = projectDoc(queue, data.only_fields);
  if (typeof data.max_task_entries === 'number' && Array.isArray(doc.entries)) {
    doc.entries = doc.entries.slice(0, data.max_task_entries);
  }
  return doc;
}

function getNextTask(ctx: CallContext): Record<string, unknown> | null {
  const queue = requireQueue(ctx.state, ctx.data.queue);
  const entries = queue.entries as { task: string; added: string }[];
  const index =
    typeof ctx.data.task === 'string' ? entries.findIndex((e) => e.task === ctx.data.task) : 0;
  const entry = index >= 0 ? entries[index] : undefined;
  if (!entry) return {};
  entries.splice(index, 1);
  const task = ctx.state.tasks.get(entry.task);
  // A task stopped while waiting goes back to queued so the agent can start it (server rule).
  if (task && task.status === 'stopped') task.status = 'queued';
  const result: Record<string, unknown> = { entry };
  if (ctx.data.get_task_info === true && task) {
    result.task_info = { company: ctx.state.company, user: task.user };
  }
  return result;
}

/** Every `queues.*` endpoint the emulator serves. */
export const queueEndpoints: EndpointDef[] = [
  { name: 'queues.get_all', minVersion: '2.4', handler: getAll },
  { name: 'queues.get_all_ex', minVersion: '2.4', handler: getAll },
  {
    name: 'queues.get_by_id',
    minVersion: '2.4',
    handler: (ctx) => ({ queue: withEntries(requireQueue(ctx.state, ctx.data.queue), ctx.data) }),
  },
  {
    name: 'queues.create',
    minVersion: '2.4',
    handler: (ctx) => ({
      id: createQueue(ctx.state, ctx.data as { name: unknown }, ctx.identity.user).id,
    }),
  },
  {
    name: 'queues.get_default',
    minVersion: '2.4',
    handler: (ctx) => {
      const queue = [...ctx.state.queues.values()].find((q) =>
        (q.system_tags as string[]).includes('default'),
      );
      if (!queue) throw errors.noDefaultQueue();
      return { id: queue.id, name: queue.name };
    },
  },
  {
    name: 'queues.update',
    minVersion: '2.4',
    handler: (ctx) => {
      const queue = requireQueue(ctx.state, ctx.data.queue);
      const fields: Record<string, unknown> = {};
      for (const key of ['name', 'tags', 'system_tags', 'display_name'] as const) {
        if (ctx.data[key] !== undefined) queue[key] = fields[key] = ctx.data[key];
      }
      return { updated: 1, fields };
    },
  },
  {
    name: 'queues.delete',
    minVersion: '2.4',
    handler: (ctx) => {
      const queue = requireQueue(ctx.state, ctx.data.queue);
      if ((queue.entries as unknown[]).length > 0 && ctx.data.force !== true) {
        throw errors.queueNotEmpty({
          queue: queue.id,
          num_entries: (queue.entries as unknown[]).length,
        });
      }
      ctx.state.queues.delete(queue.id);
      return { deleted: 1 };
    },
  },
  {
    name: 'queues.add_task',
    minVersion: '2.4',
    handler: (ctx) => {
      const queue = requireQueue(ctx.state, ctx.data.queue);
      const task = ctx.state.getTask(ctx.data.task);
      (queue.entries as unknown[]).push({ task: task.id, added: ctx.state.isoNow() });
      return { added: 1 };
    },
  },
  {
    name: 'queues.remove_task',
    minVersion: '2.4',
    handler: (ctx) => {
      const queue = requireQueue(ctx.state, ctx.data.queue);
      const entries = queue.entries as { task: string }[];
      const kept = entries.filter((e) => e.task !== ctx.data.task);
      queue.entries = kept;
      return { removed: entries.length - kept.length };
    },
  },
  { name: 'queues.get_next_task', minVersion: '2.4', handler: getNextTask },
  {
    name: 'queues.peek_task',
    minVersion: '2.15',
    handler: (ctx) => {
      const entries = requireQueue(ctx.state, ctx.data.queue).entries as { task: string }[];
      return { task: entries[0]?.task ?? null };
    },
  },
  {
    name: 'queues.get_num_entries',
    minVersion: '2.15',
    handler: (ctx) => ({
      num: (requireQueue(ctx.state, ctx.data.queue).entries as unknown[]).length,
    }),
  },
];
