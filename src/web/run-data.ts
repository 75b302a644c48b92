/**
 * What the web view shows of a run, shaped for the browser: one summary row per instance, the
 * scalar plots (iterations on x, one aligned y array per variant, as uPlot takes them) and the
 * console log tail. Pure functions over the controller's cache and ClearML replies.
 */
import { METRIC_NAMES } from '../api/clarainstance-status.ts';
import type { Condition, ModelEntry } from '../api/clarainstance-status.ts';
import type { LogEvent, ScalarHistogram } from '../clearml/index.ts';
import type { ClaraObject } from '../controller/clarainstance/clara-api.ts';

/** One row of the instance list. */
export interface InstanceSummary {
  namespace: string;
  name: string;
  phase: string;
  /** Latest val_mean_dice, when the run has reported one. */
  dice: number | undefined;
  taskId: string | undefined;
  taskUrl: string | undefined;
}

/** Everything the instance page shows from status. */
export interface InstanceDetail extends InstanceSummary {
  queue: string | undefined;
  lastIteration: number | undefined;
  message: string | undefined;
  metrics: Record<string, { latest?: number; best?: number }>;
  models: ModelEntry[];
  conditions: Condition[];
}

/** One plot: a metric's variants over the union of their iterations (null where one lacks it). */
export interface ScalarPlot {
  metric: string;
  x: number[];
  series: { variant: string; y: (number | null)[] }[];
}

/** One console line, oldest first in a tail. */
export interface LogLine {
  timestamp: number;
  level: string;
  msg: string;
}

/** The list row of an instance; a missing phase reads as Pending. */
export function summarize(obj: ClaraObject): InstanceSummary {
  const status = obj.status ?? {};
  return {
    namespace: obj.metadata.namespace ?? '',
    name: obj.metadata.name ?? '',
    phase: status.phase ?? 'Pending',
    dice: status.metrics?.val_mean_dice?.latest,
    taskId: status.taskId,
    taskUrl: status.taskUrl,
  };
}

/** The instance page's status data. */
export function detail(obj: ClaraObject): InstanceDetail {
  const status = obj.status ?? {};
  return {
    ...summarize(obj),
    queue: status.queue,
    lastIteration: status.lastIteration,
    message: status.message,
    metrics: { ...status.metrics },
    models: status.models ?? [],
    conditions: status.conditions ?? [],
  };
}

/**
 * The plots of the four training scalars (METRIC_NAMES order) out of a scalar histogram; other
 * metrics (machine monitoring and the like) are left out. Points are sorted by iteration, and a
 * variant without a point at some iteration gets null there, which uPlot draws as a gap.
 */
export function scalarPlots(histogram: ScalarHistogram): ScalarPlot[] {
  const plots: ScalarPlot[] = [];
  for (const metric of METRIC_NAMES) {
    const variants = Object.entries(histogram[metric] ?? {});
    if (variants.length === 0) continue;
    const x = [...new Set(variants.flatMap(([, s]) => s.x))].sort((a, b) => a - b);
    const series = variants.map(([variant, s]) => {
      const byX = new Map(s.x.map((xi, i) => [xi, s.y[i] ?? null]));
      return { variant, y: x.map((xi) => byX.get(xi) ?? null) };
    });
    plots.push({ metric, x, series });
  }
  return plots;
}

/**
 * Log events of a backward walk (`events.get_task_log` with navigate_earlier, newest first) as
 * lines oldest first. Reversing rather than sorting keeps lines that share a timestamp in the
 * order they were written.
 */
export function logLines(newestFirst: LogEvent[]): LogLine[] {
  return [...newestFirst]
    .reverse()
    .map((e) => ({ timestamp: e.timestamp, level: e.level ?? 'info', msg: e.msg ?? '' }));
}
