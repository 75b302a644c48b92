/** `workers.*` endpoints (reference §4.3): registration, status reports and listing. */
import { errors } from '../api-error.ts';
import type { CallContext, EndpointDef } from '../endpoint.ts';
import type { EmulatorState, WorkerDoc } from '../state.ts';

function queueIds(state: EmulatorState, value: unknown): string[] {
  if (!Array.isArray(value)) return [];
  // Agents may send names or ids; keep ids, resolving names the way the agent does.
  return (value as string[]).map((q) =>
    state.queues.has(q) ? q : ([...state.queues.values()].find((d) => d.name === q)?.id ?? q),
  );
}

function register(ctx: CallContext): Record<string, unknown> {
  const { state, data } = ctx;
  if (typeof data.worker !== 'string' || data.worker === '')
    throw errors.missingRequiredFields({ fields: ['worker'] });
  const now = state.isoNow();
  const existing = state.workers.get(data.worker);
  state.workers.set(data.worker, {
    id: data.worker,
    queues: queueIds(state, data.queues),
    tags: Array.isArray(data.tags) ? (data.tags as string[]) : [],
    registerTime: existing?.registerTime ?? now,
    lastActivityTime: now,
    timeoutSec: typeof data.timeout === 'number' && data.timeout > 0 ? data.timeout : 600,
  });
  return {};
}

function statusReport(ctx: CallContext): Record<string, unknown> {
  const { state, data } = ctx;
  const id = String(data.worker ?? '');
  let worker = state.workers.get(id);
  if (!worker) {
    // `apiserver.workers.auto_register: true` registers an unknown reporting worker.
    register({
      ...ctx,
      data: { worker: id, queues: data.queues ?? (data.queue ? [data.queue] : []) },
    });
    worker = state.workers.get(id)!;
  }
  const now = state.isoNow();
  worker.lastActivityTime = now;
  worker.lastReportTime = now;
  if (Array.isArray(data.queues)) worker.queues = queueIds(state, data.queues);
  if (typeof data.task === 'string' && data.task !== '') {
    const task = state.getTask(data.task);
    worker.task = task.id;
    task.last_worker = id;
    task.last_worker_report = now;
    task.last_update = now;
    task.last_change = now;
  } else delete worker.task;
  return {};
}

function describe(state: EmulatorState, w: WorkerDoc): Record<string, unknown> {
  const task = w.task ? state.tasks.get(w.task) : undefined;
  return {
    id: w.id,
    user: { id: state.user, name: state.userName },
    company: { id: state.company, name: 'emulator' },
    ip: '127.0.0.1',
    register_time: w.registerTime,
    last_activity_time: w.lastActivityTime,
    last_report_time: w.lastReportTime ?? null,
    task: task
      ? { id: task.id, name: task.name, running_time: 0, last_iteration: task.last_iteration }
      : null,
    queues: w.queues.map((id) => {
      const q = state.queues.get(id);
      return {
        id,
        name: q?.name ?? id,
        display_name: q?.display_name ?? null,
        num_tasks: (q?.entries as unknown[] | undefined)?.length ?? 0,
      };
    }),
    tags: w.tags,
    key: `worker_${w.id}`,
  };
}

/** Every `workers.*` endpoint the emulator serves. */
export const workerEndpoints: EndpointDef[] = [
  { name: 'workers.register', minVersion: '2.4', handler: register },
  {
    name: 'workers.unregister',
    minVersion: '2.4',
    handler: (ctx) => {
      ctx.state.workers.delete(String(ctx.data.worker));
      return {};
    },
  },
  { name: 'workers.status_report', minVersion: '2.4', handler: statusReport },
  {
    name: 'workers.get_all',
    minVersion: '2.4',
    handler: (ctx) => {
      const lastSeenMs =
        (typeof ctx.data.last_seen === 'number' ? ctx.data.last_seen : 3600) * 1000;
      const nowMs = ctx.state.now();
      const workers = [...ctx.state.workers.values()].filter(
        (w) => nowMs - Date.parse(w.lastActivityTime) <= Math.min(lastSeenMs, w.timeoutSec * 1000),
      );
      return { workers: workers.map((w) => describe(ctx.state, w)) };
    },
  },
];
