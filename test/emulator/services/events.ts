/**
 * `events.*` endpoints (reference §5): the SDK's `add_batch` (json-lines), console log paging,
 * scalar series and summaries. Scalar events also update the task's `last_metrics` (keyed by
 * md5 of metric and variant names) and `last_iteration`, as the real server does.
 */
import { createHash } from 'node:crypto';

import { errors } from '../api-error.ts';
import { RawResult, type CallContext, type EndpointDef } from '../endpoint.ts';
import type { Doc, EmulatorState, EventDoc } from '../state.ts';

/** Iteration value the server uses for single-value metrics; never plotted. */
const SINGLE_VALUE_ITER = -(2 ** 31);
const LOG_TOTAL_CAP = 10_000;

/** md5 hex of a metric or variant name (server `hash_field_name`). */
export function hashFieldName(name: string): string {
  return createHash('md5').update(name, 'utf8').digest('hex');
}

function eventIdentity(e: EventDoc): string | undefined {
  // Non-log events get a deterministic id, so sending one again overwrites it.
  if (e.type === 'log') return undefined;
  return JSON.stringify([e.type, e.iter ?? null, e.metric ?? '', e.variant ?? '', e.key ?? null]);
}

/**
 * Per add_batch call: the newest (iteration, timestamp) seen for each task/metric/variant. The
 * server picks each variant's `value` per batch by that pair, not by the task's last iteration
 * (clearml-server `bll/event/event_bll.py` `_update_last_scalar_events_for_task`), so an epoch
 * metric at iteration 3 is the latest value even after a loss reported at iteration 9.
 */
type BatchNewest = Map<string, [number, number]>;

function updateLastMetrics(task: Doc, e: EventDoc, newest: BatchNewest): void {
  if (e.type !== 'training_stats_scalar' || typeof e.value !== 'number') return;
  const metric = String(e.metric ?? '');
  const variant = String(e.variant ?? '');
  const iter = typeof e.iter === 'number' ? e.iter : 0;
  const all = task.last_metrics as Record<string, Record<string, Record<string, unknown>>>;
  const byVariant = (all[hashFieldName(metric)] ??= {});
  const prev = byVariant[hashFieldName(variant)];
  const value = e.value;
  const key = JSON.stringify([task.id, metric, variant]);
  const seen = newest.get(key);
  const isNewest = !seen || iter > seen[0] || (iter === seen[0] && e.timestamp >= seen[1]);
  if (isNewest) newest.set(key, [iter, e.timestamp]);
  if (!prev) {
    byVariant[hashFieldName(variant)] = {
      metric,
      variant,
      value,
      min_value: value,
      min_value_iteration: iter,
      max_value: value,
      max_value_iteration: iter,
      first_value: value,
      first_value_iteration: iter,
      count: 1,
      mean_value: value,
      ...(typeof e.x_axis_label === 'string' ? { x_axis_label: e.x_axis_label } : {}),
    };
    return;
  }
  const count = Number(prev.count) + 1;
  prev.mean_value = (Number(prev.mean_value) * (count - 1) + value) / count;
  prev.count = count;
  // A later batch overwrites `value`, as the server's statistics update does.
  if (isNewest) prev.value = value;
  if (value < Number(prev.min_value))
    Object.assign(prev, { min_value: value, min_value_iteration: iter });
  if (value > Number(prev.max_value))
    Object.assign(prev, { max_value: value, max_value_iteration: iter });
  if (iter < Number(prev.first_value_iteration))
    Object.assign(prev, { first_value: value, first_value_iteration: iter });
}

/** Stores events as `events.add_batch` does; returns `{added, errors, errors_info}`. */
export function addEvents(
  state: EmulatorState,
  items: Record<string, unknown>[],
  worker: string | undefined,
): Record<string, unknown> {
  let added = 0;
  const newest: BatchNewest = new Map();
  const errorsInfo: Record<string, number> = {};
  for (const item of items) {
    const task = typeof item.task === 'string' ? state.tasks.get(item.task) : undefined;
    if (!task || typeof item.type !== 'string') {
      const reason = task ? 'Invalid event type' : 'Invalid task id';
      errorsInfo[reason] = (errorsInfo[reason] ?? 0) + 1;
      continue;
    }
    const nowMs = state.now();
    const event = {
      ...item,
      timestamp: typeof item.timestamp === 'number' ? item.timestamp : nowMs,
      '@timestamp': new Date(nowMs).toISOString(),
      metric: item.metric ?? '',
      variant: item.variant ?? '',
      type: item.type,
      task: task.id,
    } as EventDoc;
    if (event.type === 'log') {
      event.worker ??= worker ?? '';
      event.level ??= 'info';
    }
    const list = state.taskEvents(task.id);
    const identity = eventIdentity(event);
    const index =
      identity === undefined ? -1 : list.findIndex((e) => eventIdentity(e) === identity);
    if (index >= 0) list[index] = event;
    else list.push(event);
    if (typeof event.iter === 'number' && event.iter > Number(task.last_iteration ?? 0)) {
      task.last_iteration = event.iter;
    }
    updateLastMetrics(task, event, newest);
    task.last_update = state.isoNow();
    added++;
  }
  const failed = Object.values(errorsInfo).reduce((a, b) => a + b, 0);
  return { added, errors: failed, errors_info: errorsInfo };
}

function logEvents(state: EmulatorState, taskId: string): EventDoc[] {
  return (state.events.get(taskId) ?? []).filter((e) => e.type === 'log');
}

function getTaskLog(ctx: CallContext): Record<string, unknown> {
  const { state, data } = ctx;
  const task = state.getTask(data.task);
  const batchSize = typeof data.batch_size === 'number' ? data.batch_size : 5000;
  const earlier = data.navigate_earlier !== false;
  const all = logEvents(state, task.id);
  const sorted = [...all].sort((a, b) =>
    earlier ? b.timestamp - a.timestamp : a.timestamp - b.timestamp,
  );
  // `from_timestamp` is an Elasticsearch search_after cursor: strictly past it.
  const from = typeof data.from_timestamp === 'number' ? data.from_timestamp : undefined;
  const after =
    from === undefined
      ? sorted
      : sorted.filter((e) => (earlier ? e.timestamp < from : e.timestamp > from));
  const events = after.slice(0, batchSize);
  const last = events[events.length - 1];
  if (last) {
    // All events sharing the last timestamp are returned, even past batch_size.
    events.push(...after.slice(batchSize).filter((e) => e.timestamp === last.timestamp));
  }
  if ((earlier && data.order === 'asc') || (!earlier && data.order === 'desc')) events.reverse();
  return { events, returned: events.length, total: Math.min(all.length, LOG_TOTAL_CAP) };
}

function formatLine(format: string, e: EventDoc): string {
  const values: Record<string, unknown> = {
    ...e,
    asctime: new Date(e.timestamp).toISOString().replace('T', ' ').replace('Z', ''),
  };
  return format.replace(/\{(\w+)\}/g, (_, key: string) => String(values[key] ?? ''));
}

function downloadTaskLog(ctx: CallContext): RawResult {
  const task = ctx.state.getTask(ctx.data.task);
  const lineType = String(ctx.data.line_type ?? 'json').toLowerCase();
  const format = String(ctx.data.line_format ?? '{asctime} {worker} {level} {msg}');
  const events = [...logEvents(ctx.state, task.id)].sort((a, b) => a.timestamp - b.timestamp);
  const lines = events.map((e) =>
    lineType === 'json' ? JSON.stringify(e) : formatLine(format, e),
  );
  const name = `task_${task.id}.${lineType === 'json' ? 'json' : 'txt'}`;
  return new RawResult(lines.map((l) => `${l}\n`).join(''), 'text/plain', name);
}

function scalarEvents(state: EmulatorState, taskId: string): EventDoc[] {
  return (state.events.get(taskId) ?? []).filter((e) => e.type === 'training_stats_scalar');
}

function wantedMetric(metrics: unknown, metric: string, variant: string): boolean {
  if (!Array.isArray(metrics) || metrics.length === 0) return true;
  return (metrics as { metric: string; variants?: string[] }[]).some(
    (m) =>
      m.metric === metric &&
      (!m.variants || m.variants.length === 0 || m.variants.includes(variant)),
  );
}

function histogram(ctx: CallContext): Record<string, unknown> {
  const { state, data } = ctx;
  const task = state.getTask(data.task);
  const samples = data.samples === undefined ? 2000 : Number(data.samples);
  if (!Number.isInteger(samples) || samples < 1 || samples > 6000) {
    throw errors.validationError({}, 'samples: must be between 1 and 6000');
  }
  const key = String(data.key ?? 'iter');
  if (!['iter', 'timestamp', 'iso_time'].includes(key))
    throw errors.validationError({}, `Invalid scalar key: ${key}`);

  const series = new Map<string, { metric: string; variant: string; points: [number, number][] }>();
  for (const e of scalarEvents(state, task.id)) {
    const metric = String(e.metric);
    const variant = String(e.variant);
    if (e.iter === SINGLE_VALUE_ITER || !wantedMetric(data.metrics, metric, variant)) continue;
    const id = JSON.stringify([metric, variant]);
    const entry = series.get(id) ?? { metric, variant, points: [] };
    entry.points.push([key === 'iter' ? Number(e.iter ?? 0) : e.timestamp, Number(e.value)]);
    series.set(id, entry);
  }

  const result: Record<string, Record<string, unknown>> = {};
  for (const { metric, variant, points } of series.values()) {
    points.sort((a, b) => a[0] - b[0]);
    const buckets = downsample(points, samples);
    (result[metric] ??= {})[variant] = {
      name: variant,
      x: buckets.map((p) => p[0]),
      y: buckets.map((p) => p[1]),
    };
  }
  return result;
}

/** Averages consecutive points into at most `samples` buckets (x = bucket start). */
function downsample(points: [number, number][], samples: number): [number, number][] {
  if (points.length <= samples) return points;
  const size = Math.ceil(points.length / samples);
  const out: [number, number][] = [];
  for (let i = 0; i < points.length; i += size) {
    const bucket = points.slice(i, i + size);
    out.push([bucket[0]![0], bucket.reduce((s, p) => s + p[1], 0) / bucket.length]);
  }
  return out;
}

function latestScalarValues(ctx: CallContext): Record<string, unknown> {
  const task = ctx.state.getTask(ctx.data.task);
  // The real query filters on value > 0; zero and negative scalars are left out (reference §5.1).
  const events = scalarEvents(ctx.state, task.id).filter((e) => Number(e.value) > 0);
  const latest = new Map<string, EventDoc>();
  for (const e of events) {
    const id = JSON.stringify([e.metric, e.variant]);
    const prev = latest.get(id);
    if (!prev || Number(e.iter ?? 0) >= Number(prev.iter ?? 0)) latest.set(id, e);
  }
  const metrics = new Map<string, { name: string; variants: Record<string, unknown>[] }>();
  for (const e of latest.values()) {
    const m = metrics.get(String(e.metric)) ?? { name: String(e.metric), variants: [] };
    m.variants.push({ name: e.variant, last_value: e.value, last_10_value: e.value });
    metrics.set(String(e.metric), m);
  }
  return {
    metrics: [...metrics.values()],
    last_iter: task.last_iteration ?? 0,
    name: null,
    status: null,
    last_timestamp: Math.max(0, ...events.map((e) => e.timestamp)),
  };
}

function metricsAndVariants(ctx: CallContext): Record<string, unknown> {
  const task = ctx.state.getTask(ctx.data.task);
  const metrics: Record<string, Record<string, unknown>> = {};
  for (const e of scalarEvents(ctx.state, task.id)) {
    (metrics[String(e.metric)] ??= {})[String(e.variant)] = { name: e.variant };
  }
  return { metrics };
}

function taskEvents(ctx: CallContext): Record<string, unknown> {
  const task = ctx.state.getTask(ctx.data.task);
  const type = typeof ctx.data.event_type === 'string' ? ctx.data.event_type : undefined;
  const all = (ctx.state.events.get(task.id) ?? []).filter(
    (e) => type === undefined || e.type === type,
  );
  const sorted = [...all].sort((a, b) =>
    ctx.data.order === 'desc' ? b.timestamp - a.timestamp : a.timestamp - b.timestamp,
  );
  const start = typeof ctx.data.scroll_id === 'string' ? Number(ctx.data.scroll_id) || 0 : 0;
  const size = typeof ctx.data.batch_size === 'number' ? ctx.data.batch_size : 500;
  const events = sorted.slice(start, start + size);
  return {
    events,
    returned: events.length,
    total: all.length,
    scroll_id: String(start + events.length),
  };
}

/** Every `events.*` endpoint the emulator serves. */
export const eventEndpoints: EndpointDef[] = [
  {
    name: 'events.add_batch',
    minVersion: '2.1',
    handler: (ctx) => {
      const items =
        ctx.batch ??
        (Array.isArray(ctx.data.requests) ? (ctx.data.requests as Record<string, unknown>[]) : []);
      if (items.length === 0) throw errors.validationError({}, 'Batch request contains no items');
      return addEvents(ctx.state, items, ctx.worker);
    },
  },
  {
    name: 'events.add',
    minVersion: '2.1',
    handler: (ctx) => addEvents(ctx.state, [ctx.data], ctx.worker),
  },
  { name: 'events.get_task_log', minVersion: '2.9', handler: getTaskLog },
  { name: 'events.download_task_log', minVersion: '2.1', handler: downloadTaskLog },
  { name: 'events.scalar_metrics_iter_histogram', minVersion: '2.1', handler: histogram },
  { name: 'events.get_task_latest_scalar_values', minVersion: '2.1', handler: latestScalarValues },
  {
    name: 'events.get_scalar_metrics_and_variants',
    minVersion: '2.1',
    handler: metricsAndVariants,
  },
  { name: 'events.get_task_events', minVersion: '2.1', handler: taskEvents },
  {
    name: 'events.delete_for_task',
    minVersion: '2.1',
    handler: (ctx) => {
      const task = ctx.state.getTask(ctx.data.task);
      const deleted = ctx.state.events.get(task.id)?.length ?? 0;
      ctx.state.events.delete(task.id);
      return { deleted };
    },
  },
];
