/**
 * In-memory state of the emulated ClearML server: projects, tasks, queues, models, workers,
 * events and files, plus the query helpers `*.get_all` share (regex names, tag filters,
 * projections, paging, ordering) with the real server's semantics
 * (../shared/reference/clearml-api.md §3.9, §4.2, §6, §7).
 */
import { randomUUID } from 'node:crypto';

import { errors } from './api-error.ts';

/** A stored document; field names are the server's. */
export type Doc = Record<string, unknown> & { id: string };

/** One stored event (log line, scalar, plot ...), as `events.add_batch` received it. */
export type EventDoc = Record<string, unknown> & { type: string; task: string; timestamp: number };

/** A file kept by the emulated files server. */
export interface StoredFile {
  data: Buffer;
  contentType: string;
}

/** A registered worker. */
export interface WorkerDoc {
  id: string;
  queues: string[];
  tags: string[];
  registerTime: string;
  lastActivityTime: string;
  lastReportTime?: string;
  task?: string;
  timeoutSec: number;
}

/** Everything the emulator keeps between calls. Tests may read it directly. */
export class EmulatorState {
  readonly projects = new Map<string, Doc>();
  readonly tasks = new Map<string, Doc>();
  readonly queues = new Map<string, Doc>();
  readonly models = new Map<string, Doc>();
  readonly workers = new Map<string, WorkerDoc>();
  readonly events = new Map<string, EventDoc[]>();
  readonly files = new Map<string, StoredFile>();
  /** Status a task had before it was enqueued, restored by dequeue (server `enqueue_status`). */
  readonly enqueueStatus = new Map<string, string>();
  readonly company = 'd1bd92a3b039400cbafc60a7a5b1e52b';
  readonly user = '__emulator_user__';
  readonly userName = 'Emulator User';

  /** Clock of the emulator (injectable for tests). */
  readonly now: () => number;

  constructor(now: () => number) {
    this.now = now;
    const id = newId();
    this.queues.set(id, {
      id,
      name: 'default',
      display_name: null,
      user: this.user,
      company: this.company,
      created: this.isoNow(),
      tags: [],
      system_tags: ['default'],
      entries: [],
      metadata: {},
      last_update: this.isoNow(),
    });
  }

  /** Current time as the ISO string the server writes into date fields. */
  isoNow(): string {
    return new Date(this.now()).toISOString().replace('Z', '+00:00');
  }

  /** The task, or 400/101 invalid_task_id. */
  getTask(id: unknown): Doc {
    const task = typeof id === 'string' ? this.tasks.get(id) : undefined;
    if (!task) throw errors.invalidTaskId({ id: String(id) });
    return task;
  }

  /** Removes a task from every queue; returns how many entries were removed. */
  removeFromQueues(taskId: string): number {
    let removed = 0;
    for (const queue of this.queues.values()) {
      const entries = queue.entries as { task: string }[];
      const kept = entries.filter((e) => e.task !== taskId);
      removed += entries.length - kept.length;
      queue.entries = kept;
    }
    return removed;
  }

  /** Events of a task (created on demand). */
  taskEvents(taskId: string): EventDoc[] {
    let list = this.events.get(taskId);
    if (!list) {
      list = [];
      this.events.set(taskId, list);
    }
    return list;
  }
}

/** New object id: uuid4 hex without dashes, as the server's `database/utils.py`. */
export function newId(): string {
  return randomUUID().replaceAll('-', '');
}

/** Reads a dotted path (`execution.queue`) of a document. */
export function getPath(doc: unknown, path: string): unknown {
  let cur = doc;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let cur = target;
  for (const part of parts.slice(0, -1)) {
    if (typeof cur[part] !== 'object' || cur[part] === null) cur[part] = {};
    cur = cur[part] as Record<string, unknown>;
  }
  cur[parts[parts.length - 1]!] = value;
}

/** Applies an `only_fields` projection (dotted paths allowed); `id` is always kept. */
export function projectDoc(doc: Doc, onlyFields: unknown): Record<string, unknown> {
  const copy = structuredClone(doc) as Record<string, unknown>;
  if (!Array.isArray(onlyFields) || onlyFields.length === 0) return copy;
  const out: Record<string, unknown> = { id: doc.id };
  for (const field of onlyFields as string[]) {
    const value = getPath(copy, field);
    if (value !== undefined) {
      setPath(out, field, value);
      continue;
    }
    // As a Mongo projection: existing parent objects appear (empty) even when the leaf does not.
    const parts = field.split('.');
    for (let depth = 1; depth < parts.length; depth++) {
      const prefix = parts.slice(0, depth).join('.');
      const parent = getPath(copy, prefix);
      if (parent === null || typeof parent !== 'object' || Array.isArray(parent)) break;
      if (getPath(out, prefix) === undefined) setPath(out, prefix, {});
    }
  }
  return out;
}

/** True when `name` is matched by the request's `name` regex (searched, case-sensitive). */
export function matchesName(value: unknown, pattern: unknown): boolean {
  if (pattern === undefined || pattern === null || pattern === '') return true;
  try {
    return new RegExp(String(pattern)).test(String(value ?? ''));
  } catch {
    throw errors.validationError({}, 'malformed regular expression');
  }
}

/**
 * Tag filter of `get_all`: plain tags match any; `-tag` excludes; `__$all` makes the following
 * tags required, `__$any` optional again, `__$not` negates the next tag.
 */
export function matchesTags(docTags: unknown, filter: unknown): boolean {
  if (!Array.isArray(filter) || filter.length === 0) return true;
  const tags = new Set(Array.isArray(docTags) ? (docTags as string[]) : []);
  const all: string[] = [];
  const any: string[] = [];
  const none: string[] = [];
  let mode: 'any' | 'all' = 'any';
  let negate = false;
  for (const raw of filter as string[]) {
    if (raw === '__$all' || raw === '__$and') mode = 'all';
    else if (raw === '__$any' || raw === '__$or') mode = 'any';
    else if (raw === '__$not') negate = true;
    else if (negate || raw.startsWith('-')) {
      none.push(negate ? raw : raw.slice(1));
      negate = false;
    } else (mode === 'all' ? all : any).push(raw);
  }
  return (
    all.every((t) => tags.has(t)) &&
    (any.length === 0 || any.some((t) => tags.has(t))) &&
    none.every((t) => !tags.has(t))
  );
}

/** True when the field equals one of the requested values (or no values were requested). */
export function matchesList(value: unknown, wanted: unknown): boolean {
  if (wanted === undefined || wanted === null) return true;
  const list = Array.isArray(wanted) ? wanted : [wanted];
  if (list.length === 0) return true;
  const negated = list
    .filter((w) => typeof w === 'string' && w.startsWith('-'))
    .map((w) => String(w).slice(1));
  const plain = list.filter((w) => !(typeof w === 'string' && w.startsWith('-')));
  if (negated.includes(String(value))) return false;
  return plain.length === 0 || plain.includes(value);
}

/** `_any_` / `_all_` filters: `{pattern, fields[]}` regex searched over the named fields. */
export function matchesAnyAll(doc: Doc, data: Record<string, unknown>): boolean {
  const check = (spec: unknown, combine: 'some' | 'every') => {
    if (!spec || typeof spec !== 'object') return true;
    const { pattern, fields } = spec as { pattern?: string; fields?: string[] };
    if (!pattern || !Array.isArray(fields)) return true;
    const re = new RegExp(pattern);
    return fields[combine]((f) => re.test(String(getPath(doc, f) ?? '')));
  };
  return check(data._any_, 'some') && check(data._all_, 'every');
}

/** Sorts by `order_by` (`-` for descending; dotted fields); stable. */
export function orderDocs(docs: Doc[], orderBy: unknown): Doc[] {
  const keys = Array.isArray(orderBy) ? (orderBy as string[]) : orderBy ? [String(orderBy)] : [];
  if (keys.length === 0) return docs;
  return [...docs].sort((a, b) => {
    for (const key of keys) {
      const desc = key.startsWith('-');
      const field = desc ? key.slice(1) : key;
      const va = getPath(a, field);
      const vb = getPath(b, field);
      if (va === vb) continue;
      if (va === undefined || va === null) return desc ? 1 : -1;
      if (vb === undefined || vb === null) return desc ? -1 : 1;
      const cmp = va < vb ? -1 : 1;
      return desc ? -cmp : cmp;
    }
    return 0;
  });
}

/** Max page size of the real server (`mongo.max_page_size`). */
export const MAX_PAGE_SIZE = 500;

/** Paging as the server validates it: page ≥ 0, page_size ≥ 1, capped at 500, default 500. */
export function pageDocs<T>(docs: T[], data: Record<string, unknown>): T[] {
  const page = data.page === undefined || data.page === null ? 0 : Number(data.page);
  const rawSize =
    data.page_size === undefined || data.page_size === null
      ? MAX_PAGE_SIZE
      : Number(data.page_size);
  if (!Number.isInteger(page) || page < 0)
    throw errors.validationError({ field: 'page' }, 'page must be >=0');
  if (!Number.isInteger(rawSize) || rawSize < 1) {
    throw errors.validationError({ field: 'page_size' }, 'page_size must be >0');
  }
  const size = Math.min(rawSize, MAX_PAGE_SIZE);
  return docs.slice(page * size, page * size + size);
}
