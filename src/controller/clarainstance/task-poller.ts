/**
 * Batched polling of the live ClearML tasks of every ClaraInstance.
 *
 * Once per interval, one `tasks.get_all` per page of live task ids per ClearML connection (not
 * one call per instance), so N runs cost ceil(N / pageSize) calls. A task whose state changed
 * gets its models and, when it failed, the tail of its log, fetched once; then its instance is
 * handed to the reconcile. Terminal tasks drop out: the reconcile stops tracking them.
 */
import type { ClearmlClient, LogEvent, Model, Task } from '../../clearml/index.ts';
import { MAX_PAGE_SIZE } from '../../clearml/index.ts';

/** Fields read for each live task. */
export const POLLED_FIELDS = [
  'id',
  'status',
  'status_reason',
  'status_message',
  'started',
  'completed',
  'last_iteration',
  'last_metrics',
  'last_update',
  'system_tags',
  'execution.queue',
  'project',
];

/** Model fields shown in status.models. */
export const MODEL_FIELDS = ['id', 'name', 'uri', 'framework', 'created', 'task'];

/** Log lines kept for a failed run's status message. */
const FAILURE_LOG_LINES = 10;

/** What the poller knows of a task. */
export interface TaskSnapshot {
  task: Task;
  /** Output models, fetched when the task's state changed. */
  models: Model[] | undefined;
  /** Last console lines of a failed task. */
  failureLog: string | undefined;
}

interface Tracked {
  client: ClearmlClient;
  taskId: string;
}

/** The subset of a logger the poller reports to. */
export interface PollerLogger {
  debug(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
}

/** Options of {@link TaskPoller}. */
export interface TaskPollerOptions {
  intervalMs: number;
  /** Called with the instance keys whose task changed, after their snapshots are stored. */
  onChange: (keys: string[]) => void;
  log: PollerLogger;
  /** Ids per `tasks.get_all` call (default and maximum 500). */
  pageSize?: number;
}

/** Counters for the benchmark and for metrics. */
export interface PollerStats {
  polls: number;
  /** ClearML requests of the last completed poll. */
  requestsLastPoll: number;
  tracked: number;
}

/**
 * Polls tracked tasks in batches. `track` and `untrack` are idempotent; snapshots survive until
 * untracked. Not safe to `pollOnce` concurrently with itself; `start` never does.
 */
export class TaskPoller {
  readonly #opts: TaskPollerOptions;
  readonly #tracked = new Map<string, Tracked>();
  readonly #snapshots = new Map<string, TaskSnapshot>();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stats: PollerStats = { polls: 0, requestsLastPoll: 0, tracked: 0 };

  constructor(opts: TaskPollerOptions) {
    this.#opts = opts;
  }

  /** Starts polling every interval until {@link stop}. */
  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => {
      if (this.#running) return;
      this.#running = this.pollOnce()
        .catch((err: unknown) =>
          this.#opts.log.warn({ err }, 'ClearML poll failed; will retry next interval'),
        )
        .finally(() => {
          this.#running = undefined;
        });
    }, this.#opts.intervalMs);
  }

  /** Stops polling and waits for a poll in progress. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  /** Polls `taskId` of the instance `key` through `client` from now on. */
  track(key: string, client: ClearmlClient, taskId: string): void {
    const current = this.#tracked.get(key);
    if (current?.taskId !== taskId) this.#snapshots.delete(key);
    this.#tracked.set(key, { client, taskId });
  }

  /** Stops polling the task of `key` and forgets its snapshot. */
  untrack(key: string): void {
    this.#tracked.delete(key);
    this.#snapshots.delete(key);
  }

  isTracked(key: string): boolean {
    return this.#tracked.has(key);
  }

  /** The last snapshot of the task of `key`, if it was polled since it was tracked. */
  snapshot(key: string): TaskSnapshot | undefined {
    return this.#snapshots.get(key);
  }

  /** Stores what the reconcile read itself (after create, enqueue or a restart). */
  remember(key: string, snapshot: TaskSnapshot): void {
    this.#snapshots.set(key, snapshot);
  }

  stats(): PollerStats {
    return { ...this.#stats, tracked: this.#tracked.size };
  }

  /**
   * Polls every tracked task once: batched reads per connection, models and failure logs for the
   * tasks that changed, then one onChange with their keys. Throws only if every connection failed.
   */
  async pollOnce(): Promise<void> {
    const byClient = new Map<ClearmlClient, Map<string, string>>();
    for (const [key, { client, taskId }] of this.#tracked) {
      const ids = byClient.get(client) ?? new Map<string, string>();
      ids.set(taskId, key);
      byClient.set(client, ids);
    }

    let requests = 0;
    const changed: string[] = [];
    for (const [client, keysById] of byClient) {
      try {
        requests += await this.#pollConnection(client, keysById, changed);
      } catch (err) {
        this.#opts.log.warn(
          { err, tasks: keysById.size },
          'ClearML poll of one server failed; will retry next interval',
        );
      }
    }
    this.#stats = {
      polls: this.#stats.polls + 1,
      requestsLastPoll: requests,
      tracked: this.#tracked.size,
    };
    if (changed.length > 0) this.#opts.onChange(changed);
  }

  async #pollConnection(
    client: ClearmlClient,
    keysById: Map<string, string>,
    changed: string[],
  ): Promise<number> {
    const pageSize = Math.min(this.#opts.pageSize ?? MAX_PAGE_SIZE, MAX_PAGE_SIZE);
    const ids = [...keysById.keys()];
    let requests = 0;
    const changedTasks: { key: string; task: Task }[] = [];
    for (let i = 0; i < ids.length; i += pageSize) {
      const page = ids.slice(i, i + pageSize);
      const tasks = await client.getTasks({ ids: page, onlyFields: POLLED_FIELDS });
      requests += Math.ceil(page.length / pageSize);
      for (const task of tasks) {
        const key = keysById.get(task.id);
        if (key === undefined) continue;
        const before = this.#snapshots.get(key);
        if (!before || stateChanged(before.task, task)) {
          changedTasks.push({ key, task });
        } else {
          // Same state: keep the models and log fetched before, take the fresh scalars.
          this.#snapshots.set(key, { ...before, task });
          if (scalarsChanged(before.task, task)) changed.push(key);
        }
      }
    }
    if (changedTasks.length === 0) return requests;

    // Models for every changed task in one call; log tails only for failures (rare).
    const models = await client.getModelsByTask({
      tasks: changedTasks.map((c) => c.task.id),
      onlyFields: MODEL_FIELDS,
    });
    requests += 1;
    for (const { key, task } of changedTasks) {
      let failureLog: string | undefined;
      if (task.status === 'failed') {
        failureLog = await readLogTail(client, task.id).catch(() => undefined);
        requests += 1;
      }
      this.#snapshots.set(key, {
        task,
        models: models.filter((m) => m.task === task.id),
        failureLog,
      });
      changed.push(key);
    }
    return requests;
  }
}

/** Whether a task moved in a way that can change its models, phase or failure. */
function stateChanged(before: Task, after: Task): boolean {
  return before.status !== after.status || before.status_message !== after.status_message;
}

/** Whether the reported scalars moved on. */
function scalarsChanged(before: Task, after: Task): boolean {
  return (
    before.last_iteration !== after.last_iteration ||
    JSON.stringify(before.last_metrics ?? {}) !== JSON.stringify(after.last_metrics ?? {})
  );
}

/** The last lines of a task's console log, newest last. */
export async function readLogTail(
  client: ClearmlClient,
  taskId: string,
): Promise<string | undefined> {
  const page = await client.getTaskLog({
    task: taskId,
    batchSize: FAILURE_LOG_LINES,
    navigateEarlier: true,
  });
  const lines = page.events
    .slice()
    .sort((a: LogEvent, b: LogEvent) => (a.timestamp ?? 0) - (b.timestamp ?? 0))
    .map((e: LogEvent) => (e.msg ?? '').trimEnd())
    .filter(Boolean);
  return lines.length > 0 ? lines.slice(-FAILURE_LOG_LINES).join('\n') : undefined;
}
