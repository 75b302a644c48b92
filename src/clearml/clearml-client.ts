/**
 * Typed ClearML calls the operator needs (../shared/reference/clearml-api.md §10): project
 * get-or-create, task create / read / enqueue / dequeue / stop / archive / delete, queue
 * lookup, console log paging, scalar series and output models.
 *
 * Each method maps one operator intent onto one or a few REST calls and returns typed data;
 * transport concerns (auth, retries, timeouts, envelopes) are in `transport.ts`. Status rules
 * stay on the server: a disallowed transition surfaces as a `ClearmlValidationError` with
 * `apiErrorName === 'invalid_task_status'`, never as a client-side guess.
 */
import { ClearmlError } from './errors.ts';
import { ClearmlTransport, type ClearmlTransportOptions } from './transport.ts';
import type {
  ConfigurationItem,
  LogEvent,
  Model,
  ParamItem,
  Queue,
  ScalarHistogram,
  Task,
  TaskScript,
  TaskType,
} from './types.ts';

/** The server's largest page (`mongo.max_page_size`); a bigger `page_size` is cut to this. */
export const MAX_PAGE_SIZE = 500;

/** Options of {@link ClearmlClient}: the transport's options plus paging limits. */
export interface ClearmlClientOptions extends ClearmlTransportOptions {
  /** Ids sent per `tasks.get_all` call when reading many tasks (default 100). */
  idsPerCall?: number;
  /** Page size for `*.get_all` paging (default and maximum {@link MAX_PAGE_SIZE}). */
  pageSize?: number;
}

/** Body of {@link ClearmlClient.createTask}; `project` is a project id. */
export interface CreateTaskRequest {
  name: string;
  type: TaskType;
  project?: string;
  comment?: string;
  tags?: string[];
  system_tags?: string[];
  output_dest?: string;
  script?: TaskScript;
  container?: Record<string, string>;
  hyperparams?: Record<string, Record<string, ParamItem>>;
  configuration?: Record<string, ConfigurationItem>;
  parent?: string;
}

/** Filters of {@link ClearmlClient.getTasks}; at least one should narrow the result. */
export interface GetTasksRequest {
  /** Task ids; sent in chunks of `idsPerCall`. */
  ids?: string[];
  /** Projection, e.g. `['id', 'status', 'last_metrics']`; dotted paths allowed. */
  onlyFields?: string[];
  /** Exact task name (escaped into an anchored regex). */
  exactName?: string;
  projectIds?: string[];
  statuses?: string[];
  tags?: string[];
  systemTags?: string[];
  /** Include tasks tagged `hidden` (datasets). */
  searchHidden?: boolean;
}

/** Body of {@link ClearmlClient.enqueueTask}: exactly one of `queueName` / `queueId`. */
export interface EnqueueTaskRequest {
  task: string;
  /** Queue name; the server creates the queue if it does not exist. */
  queueName?: string;
  queueId?: string;
  statusReason?: string;
  statusMessage?: string;
}

/** Result of {@link ClearmlClient.enqueueTask}. */
export interface EnqueueTaskResult {
  /** 1 when the task was put on the queue. */
  queued: number;
  /** Whether some worker serves the queue, as the server sees it. */
  queueWatched: boolean | undefined;
  /** Id of the queue the task is on, read back from the task. */
  queueId: string | undefined;
}

/** Options of the status-changing calls (`dequeue`, `stop`, `stopped`, `delete`). */
export interface StatusChangeRequest {
  task: string;
  force?: boolean;
  statusReason?: string;
  statusMessage?: string;
}

/** One page of `events.get_task_log`. */
export interface TaskLogPage {
  events: LogEvent[];
  returned: number;
  /** Number of log events the task has (capped at 10000 by the server). */
  total: number;
}

/** Where {@link ClearmlClient.readNewLogEvents} stopped; pass it back for the next lines. */
export interface LogCursor {
  /** Timestamp of the newest event returned so far. */
  timestampMs: number;
  /** Identity keys of the events already returned at exactly `timestampMs`. */
  keysAtTimestamp: string[];
}

/**
 * Typed ClearML REST client. Construct once per server and key pair; all methods are safe to
 * call concurrently. Every method throws a `ClearmlError` subclass on failure.
 */
export class ClearmlClient {
  readonly #transport: ClearmlTransport;
  readonly #idsPerCall: number;
  readonly #pageSize: number;

  /** Stores the options; performs no I/O (the first call logs in). */
  constructor(opts: ClearmlClientOptions) {
    this.#transport = new ClearmlTransport(opts);
    this.#idsPerCall = opts.idsPerCall ?? 100;
    this.#pageSize = Math.min(opts.pageSize ?? MAX_PAGE_SIZE, MAX_PAGE_SIZE);
  }

  /**
   * Sends any endpoint with a raw body and returns raw `data`; for calls this class does not
   * wrap. `idempotent: false` limits retries as described in `CallOptions`.
   */
  async callRaw(
    endpoint: string,
    body: Record<string, unknown>,
    opts: { idempotent?: boolean } = {},
  ): Promise<Record<string, unknown>> {
    return this.#transport.call(endpoint, body, opts);
  }

  /**
   * Returns the id of the project named exactly `name`, creating it (and missing parents) if
   * needed. Idempotent; a concurrent create by someone else is resolved by looking up again.
   */
  async getOrCreateProject(name: string, opts: { description?: string } = {}): Promise<string> {
    const existing = await this.#findProjectId(name);
    if (existing !== undefined) return existing;
    try {
      const data = await this.#transport.call(
        'projects.create',
        { name, description: opts.description ?? '' },
        { idempotent: false },
      );
      return requireString(data, 'id', 'projects.create');
    } catch (err) {
      // Lost a race with another creator (400/801 expected_unique_data): the project exists now.
      if (err instanceof ClearmlError && err.apiErrorName === 'expected_unique_data') {
        const raced = await this.#findProjectId(name);
        if (raced !== undefined) return raced;
      }
      throw err;
    }
  }

  /** Creates a task (status `created`) and returns its id. Not idempotent: each call creates one. */
  async createTask(req: CreateTaskRequest): Promise<string> {
    const data = await this.#transport.call('tasks.create', { ...req }, { idempotent: false });
    return requireString(data, 'id', 'tasks.create');
  }

  /**
   * Reads tasks matching the filters, following pages until the last one; with `ids`, one
   * call per chunk of `idsPerCall` ids. Missing ids are simply absent from the result.
   */
  async getTasks(req: GetTasksRequest): Promise<Task[]> {
    const base: Record<string, unknown> = {};
    if (req.onlyFields) base.only_fields = req.onlyFields;
    if (req.exactName !== undefined) base.name = exactMatchRegex(req.exactName);
    if (req.projectIds) base.project = req.projectIds;
    if (req.statuses) base.status = req.statuses;
    if (req.tags) base.tags = req.tags;
    if (req.systemTags) base.system_tags = req.systemTags;
    if (req.searchHidden) base.search_hidden = true;

    if (req.ids === undefined) return this.#getAllPaged<Task>('tasks.get_all', 'tasks', base);
    const tasks: Task[] = [];
    for (let i = 0; i < req.ids.length; i += this.#idsPerCall) {
      const id = req.ids.slice(i, i + this.#idsPerCall);
      // No more tasks than ids can match: a full first page needs no look at a second one.
      const matched = await this.#getAllPaged<Task>(
        'tasks.get_all',
        'tasks',
        { ...base, id },
        id.length,
      );
      tasks.push(...matched);
    }
    return tasks;
  }

  /**
   * Puts the task on a queue (by name, created if missing, or by id) and reports whether a
   * worker serves it. Allowed from created, stopped, failed or queued; a completed task needs
   * a reset first (400/110 otherwise). Idempotent for a task already on that queue.
   */
  async enqueueTask(req: EnqueueTaskRequest): Promise<EnqueueTaskResult> {
    const body: Record<string, unknown> = { task: req.task, verify_watched_queue: true };
    if (req.queueName !== undefined) body.queue_name = req.queueName;
    if (req.queueId !== undefined) body.queue = req.queueId;
    if (req.statusReason !== undefined) body.status_reason = req.statusReason;
    if (req.statusMessage !== undefined) body.status_message = req.statusMessage;
    const data = await this.#transport.call('tasks.enqueue', body);
    const fields = data.fields as Record<string, unknown> | undefined;
    const queueId = fields?.['execution.queue'];
    return {
      queued: typeof data.queued === 'number' ? data.queued : 0,
      queueWatched: typeof data.queue_watched === 'boolean' ? data.queue_watched : undefined,
      queueId: typeof queueId === 'string' ? queueId : undefined,
    };
  }

  /** Takes a queued task off its queue (back to its pre-enqueue status). Returns `updated`. */
  async dequeueTask(req: StatusChangeRequest): Promise<number> {
    return readUpdated(await this.#transport.call('tasks.dequeue', statusBody(req)));
  }

  /**
   * Asks for a stop: a queued task or one without a live worker becomes `stopped` at once; a
   * running one stays `in_progress` with status_message "stopping" until its agent reacts.
   */
  async stopTask(req: StatusChangeRequest): Promise<number> {
    return readUpdated(await this.#transport.call('tasks.stop', statusBody(req)));
  }

  /** Sets the final `stopped` status (use `force` when no agent will ever answer). */
  async markTaskStopped(req: StatusChangeRequest): Promise<number> {
    return readUpdated(await this.#transport.call('tasks.stopped', statusBody(req)));
  }

  /** Archives tasks (system tag `archived`; dequeues, and stops a running task). Idempotent. */
  async archiveTasks(ids: string[], opts: { statusReason?: string } = {}): Promise<number> {
    const body: Record<string, unknown> = { tasks: ids };
    if (opts.statusReason !== undefined) body.status_reason = opts.statusReason;
    const data = await this.#transport.call('tasks.archive', body);
    return typeof data.archived === 'number' ? data.archived : 0;
  }

  /**
   * Deletes a task. Without `force` only `created` or archived tasks may go (400/123). Throws
   * `ClearmlNotFoundError` when the task is already gone, so callers can treat that as done.
   */
  async deleteTask(req: StatusChangeRequest): Promise<number> {
    const data = await this.#transport.call('tasks.delete', statusBody(req));
    return typeof data.deleted === 'number' ? data.deleted : Number(data.deleted === true);
  }

  /** Reads queues, by exact name and/or ids, following pages. */
  async getQueues(
    req: { exactName?: string; ids?: string[]; onlyFields?: string[] } = {},
  ): Promise<Queue[]> {
    const body: Record<string, unknown> = {};
    if (req.exactName !== undefined) body.name = exactMatchRegex(req.exactName);
    if (req.ids) body.id = req.ids;
    if (req.onlyFields) body.only_fields = req.onlyFields;
    const queues = await this.#getAllPaged<Queue>('queues.get_all', 'queues', body);
    // The name filter is a regex search; keep exact matches only, as the agent does.
    return req.exactName === undefined ? queues : queues.filter((q) => q.name === req.exactName);
  }

  /**
   * One page of the console log. `navigateEarlier` true (the server default) walks from the
   * newest line backwards; false walks forward from `fromTimestampMs`. Events come in the walk
   * order; all events sharing the last timestamp are included even beyond `batchSize`.
   */
  async getTaskLog(req: {
    task: string;
    batchSize?: number;
    navigateEarlier?: boolean;
    fromTimestampMs?: number;
  }): Promise<TaskLogPage> {
    const body: Record<string, unknown> = {
      task: req.task,
      batch_size: req.batchSize ?? 500,
      navigate_earlier: req.navigateEarlier ?? true,
    };
    if (req.fromTimestampMs !== undefined) body.from_timestamp = req.fromTimestampMs;
    const data = await this.#transport.call('events.get_task_log', body);
    const events = Array.isArray(data.events) ? (data.events as LogEvent[]) : [];
    return {
      events,
      returned: typeof data.returned === 'number' ? data.returned : events.length,
      total: typeof data.total === 'number' ? data.total : 0,
    };
  }

  /**
   * Returns log events newer than `cursor` in time order (all of them from the start when no
   * cursor is given), reading forward page by page up to `maxPages`, plus the cursor for the
   * next call. Events at the cursor's timestamp that were already returned are dropped, so
   * repeated boundary lines never appear twice.
   */
  async readNewLogEvents(req: {
    task: string;
    cursor?: LogCursor;
    batchSize?: number;
    maxPages?: number;
  }): Promise<{ events: LogEvent[]; cursor: LogCursor | undefined }> {
    const batchSize = req.batchSize ?? 500;
    let cursor = req.cursor;
    const events: LogEvent[] = [];
    // Ask from one ms before the cursor: the server's cursor is exclusive, and lines written
    // later with the cursor's timestamp must not be missed; repeats are filtered below.
    let fromTimestampMs = cursor === undefined ? undefined : cursor.timestampMs - 1;
    for (let page = 0; page < (req.maxPages ?? 10); page++) {
      const result = await this.getTaskLog({
        task: req.task,
        batchSize,
        navigateEarlier: false,
        ...(fromTimestampMs === undefined ? {} : { fromTimestampMs }),
      });
      const fresh = result.events.filter((e) => !isSeen(e, cursor));
      events.push(...fresh);
      cursor = advanceCursor(cursor, fresh);
      const pageWasFull = result.returned >= batchSize;
      if (fresh.length > 0 && pageWasFull && cursor !== undefined) {
        fromTimestampMs = cursor.timestampMs - 1;
      } else if (
        fresh.length === 0 &&
        pageWasFull &&
        cursor !== undefined &&
        fromTimestampMs !== cursor.timestampMs
      ) {
        // A full page of lines already seen: more than a page shares the cursor's timestamp.
        // Step strictly past it, or this loop would read the same page again.
        fromTimestampMs = cursor.timestampMs;
      } else {
        break;
      }
    }
    return { events, cursor };
  }

  /**
   * Scalar series per metric and variant (x = iteration by default). `samples` bounds the
   * points per series (server range 1..6000, default 2000).
   */
  async getScalarHistogram(req: {
    task: string;
    samples?: number;
    key?: 'iter' | 'timestamp' | 'iso_time';
    metrics?: { metric: string; variants?: string[] }[];
  }): Promise<ScalarHistogram> {
    const body: Record<string, unknown> = { task: req.task };
    if (req.samples !== undefined) body.samples = req.samples;
    if (req.key !== undefined) body.key = req.key;
    if (req.metrics !== undefined) body.metrics = req.metrics;
    return (await this.#transport.call(
      'events.scalar_metrics_iter_histogram',
      body,
    )) as ScalarHistogram;
  }

  /** Models created by the given tasks, newest first, following pages. */
  async getModelsByTask(req: { tasks: string[]; onlyFields?: string[] }): Promise<Model[]> {
    const body: Record<string, unknown> = { task: req.tasks, order_by: ['-created'] };
    if (req.onlyFields) body.only_fields = req.onlyFields;
    return this.#getAllPaged<Model>('models.get_all', 'models', body);
  }

  async #findProjectId(name: string): Promise<string | undefined> {
    const data = await this.#transport.call('projects.get_all', {
      name: exactMatchRegex(name),
      only_fields: ['id', 'name'],
      search_hidden: true,
    });
    const projects = Array.isArray(data.projects)
      ? (data.projects as Record<string, unknown>[])
      : [];
    const match = projects.find((p) => p.name === undefined || p.name === name);
    return typeof match?.id === 'string' ? match.id : undefined;
  }

  async #getAllPaged<T>(
    endpoint: string,
    key: string,
    body: Record<string, unknown>,
    maxItems = Infinity,
  ): Promise<T[]> {
    const items: T[] = [];
    for (let page = 0; ; page++) {
      const data = await this.#transport.call(endpoint, {
        ...body,
        page,
        page_size: this.#pageSize,
      });
      const batch = data[key];
      if (!Array.isArray(batch)) {
        throw new ClearmlError(`response has no ${key} list`, {
          endpoint,
          kind: 'protocol',
          retriable: false,
        });
      }
      items.push(...(batch as T[]));
      if (batch.length < this.#pageSize || items.length >= maxItems) return items;
    }
  }
}

/** Anchored, escaped regex for an exact name match, as the SDK's `exact_match_regex` builds. */
export function exactMatchRegex(name: string): string {
  return `^${name.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&')}$`;
}

function statusBody(req: StatusChangeRequest): Record<string, unknown> {
  const body: Record<string, unknown> = { task: req.task };
  if (req.force !== undefined) body.force = req.force;
  if (req.statusReason !== undefined) body.status_reason = req.statusReason;
  if (req.statusMessage !== undefined) body.status_message = req.statusMessage;
  return body;
}

function readUpdated(data: Record<string, unknown>): number {
  return typeof data.updated === 'number' ? data.updated : 0;
}

function requireString(data: Record<string, unknown>, key: string, endpoint: string): string {
  const value = data[key];
  if (typeof value === 'string' && value !== '') return value;
  throw new ClearmlError(`response has no ${key}`, {
    endpoint,
    kind: 'protocol',
    retriable: false,
  });
}

function eventKey(e: LogEvent): string {
  return JSON.stringify([e.timestamp, e.worker ?? '', e.level ?? '', e.msg ?? '']);
}

function isSeen(e: LogEvent, cursor: LogCursor | undefined): boolean {
  if (cursor === undefined) return false;
  if (e.timestamp < cursor.timestampMs) return true;
  return e.timestamp === cursor.timestampMs && cursor.keysAtTimestamp.includes(eventKey(e));
}

function advanceCursor(cursor: LogCursor | undefined, fresh: LogEvent[]): LogCursor | undefined {
  let next = cursor;
  for (const e of fresh) {
    if (next === undefined || e.timestamp > next.timestampMs) {
      next = { timestampMs: e.timestamp, keysAtTimestamp: [eventKey(e)] };
    } else if (e.timestamp === next.timestampMs) {
      next = { ...next, keysAtTimestamp: [...next.keysAtTimestamp, eventKey(e)] };
    }
  }
  return next;
}
