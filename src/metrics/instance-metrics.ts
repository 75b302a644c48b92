/**
 * Training metrics of every ClaraInstance, read from the controller's cache at scrape time: the
 * latest value of the four scalars, the iteration, the phase (one-hot) and an info series with
 * the task id and queue. Nothing is kept between scrapes, so the series of a deleted instance are
 * gone from the next scrape on.
 *
 * Labels are `namespace` and `name` only: the number of instances is bounded by what a cluster
 * runs (../shared/reference/k8s-operator.md §7, no unbounded label sets).
 */
import { Gauge } from 'prom-client';
import type { Registry } from 'prom-client';

import { METRIC_NAMES, PHASES } from '../api/clarainstance-status.ts';
import type { MetricName } from '../api/clarainstance-status.ts';
import type { ClaraObject } from '../controller/clarainstance/clara-api.ts';

/** Where the instances come from at each scrape (the controller's `instances()`). */
export type InstanceSource = () => readonly ClaraObject[];

/** Metric name of each scalar; the scalars are dimensionless (dice, accuracy, loss). */
export const SCALAR_METRICS: Record<MetricName, string> = {
  val_mean_dice: 'clara_instance_val_mean_dice',
  val_acc: 'clara_instance_val_acc',
  train_loss: 'clara_instance_train_loss',
  train_acc: 'clara_instance_train_acc',
};

const SCALAR_HELP: Record<MetricName, string> = {
  val_mean_dice: 'Latest validation mean Dice score reported by the run (0-1).',
  val_acc: 'Latest validation accuracy reported by the run (0-1).',
  train_loss: 'Latest training loss reported by the run.',
  train_acc: 'Latest training accuracy reported by the run (0-1).',
};

const KEY_LABELS = ['namespace', 'name'] as const;

/**
 * Registers the per-instance gauges on `registry`; each reads `source()` when scraped. Returns a
 * function that replaces the source (the controller may be made after the metrics). Before a
 * source is set the gauges export nothing.
 */
export function registerInstanceMetrics(registry: Registry): (source: InstanceSource) => void {
  let source: InstanceSource = () => [];
  const keyOf = (obj: ClaraObject) => ({
    namespace: obj.metadata.namespace ?? '',
    name: obj.metadata.name ?? '',
  });

  for (const scalar of METRIC_NAMES) {
    const gauge: Gauge<(typeof KEY_LABELS)[number]> = new Gauge({
      name: SCALAR_METRICS[scalar],
      help: SCALAR_HELP[scalar],
      labelNames: KEY_LABELS,
      registers: [registry],
      collect: () => {
        gauge.reset();
        for (const obj of source()) {
          const latest = obj.status?.metrics?.[scalar]?.latest;
          // No sample rather than a made-up 0 while the run has not reported the scalar yet.
          if (latest !== undefined) gauge.set(keyOf(obj), latest);
        }
      },
    });
  }

  const iteration: Gauge<(typeof KEY_LABELS)[number]> = new Gauge({
    name: 'clara_instance_iteration',
    help: 'Last training iteration the run reported.',
    labelNames: KEY_LABELS,
    registers: [registry],
    collect: () => {
      iteration.reset();
      for (const obj of source()) {
        const last = obj.status?.lastIteration;
        if (last !== undefined) iteration.set(keyOf(obj), last);
      }
    },
  });

  const phase: Gauge<'namespace' | 'name' | 'phase'> = new Gauge({
    name: 'clara_instance_phase',
    help: 'Phase of the instance: 1 for its current phase, 0 for the others.',
    labelNames: [...KEY_LABELS, 'phase'],
    registers: [registry],
    collect: () => {
      phase.reset();
      for (const obj of source()) {
        // Every phase gets a sample, as kube-state-metrics does for pod phases, so a change of
        // phase flips values instead of making one series end and another start.
        for (const p of PHASES)
          phase.set({ ...keyOf(obj), phase: p }, obj.status?.phase === p ? 1 : 0);
      }
    },
  });

  const info: Gauge<'namespace' | 'name' | 'task_id' | 'queue'> = new Gauge({
    name: 'clara_instance_info',
    help: 'Always 1; carries the ClearML task id and queue of the instance as labels.',
    labelNames: [...KEY_LABELS, 'task_id', 'queue'],
    registers: [registry],
    collect: () => {
      info.reset();
      for (const obj of source()) {
        const { taskId = '', queue = '' } = obj.status ?? {};
        info.set({ ...keyOf(obj), task_id: taskId, queue }, 1);
      }
    },
  });

  return (next) => {
    source = next;
  };
}
