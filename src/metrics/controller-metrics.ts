/**
 * Controller health under the names controller-runtime exports, so dashboards and alerts written
 * for Go operators work unchanged (../shared/reference/k8s-operator.md §5): reconcile totals,
 * errors and durations, active workers, the work queue family, leader status; plus reflector
 * list and watch counters (a watch restart shows as a new watch).
 *
 * Counts the queue and controller push through callbacks are counted here; counts they keep
 * themselves (active workers, unfinished work, reflector stats) are read at scrape time.
 */
import { Counter, Gauge, Histogram } from 'prom-client';
import type { Registry } from 'prom-client';

import type { ControllerOptions } from '../controller/clarainstance/controller.ts';
import type { ReflectorStats, WorkQueueMetrics, WorkQueueStats } from '../k8s/index.ts';

/** What a reconcile ended with, as the controller reports it. */
export type ReconcileOutcome = Parameters<NonNullable<ControllerOptions['onReconcile']>>[0];

/** Every result label of controller_runtime_reconcile_total, pre-set to 0 as controller-runtime does. */
const RECONCILE_RESULTS = [
  'success',
  'requeue_after',
  'error',
] as const satisfies ReconcileOutcome[];

/** Seconds; controller-runtime's reconcile_time_seconds buckets, cut at one minute. */
const RECONCILE_BUCKETS = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

/** Seconds, 10 µs to 1000 s: queue waits range from nothing to a full backoff. */
const QUEUE_BUCKETS = [1e-5, 1e-4, 1e-3, 0.01, 0.1, 1, 10, 100, 1000];

/** Reflector stats by reflector name, then by namespace (`*` = cluster-wide), as `stats()` gives. */
export type ReflectorStatsByName = Record<string, Record<string, ReflectorStats>>;

/** The scrape-time sources of controller health. */
export interface ControllerSources {
  queue?: () => WorkQueueStats;
  reflectors?: () => ReflectorStatsByName;
}

/** The hooks and setters {@link registerControllerMetrics} returns. */
export interface ControllerMetrics {
  queueMetrics: WorkQueueMetrics;
  onReconcile: (outcome: ReconcileOutcome, durationMs: number) => void;
  setLeader: (leading: boolean) => void;
  /** Replaces the scrape-time sources given; those left out stay as they were. */
  collectFrom: (sources: ControllerSources) => void;
}

/**
 * Registers the controller metrics on `registry`, labelled with `controller` (and `name` for the
 * work queue, as client-go does) and the lease name for leader status.
 */
export function registerControllerMetrics(
  registry: Registry,
  opts: { controller: string; leaseName: string },
): ControllerMetrics {
  const controller = opts.controller;
  const sources: ControllerSources = {};
  const registers = [registry];

  const reconcileTotal = new Counter({
    name: 'controller_runtime_reconcile_total',
    help: 'Total number of reconciliations per controller and result.',
    labelNames: ['controller', 'result'],
    registers,
  });
  const reconcileErrors = new Counter({
    name: 'controller_runtime_reconcile_errors_total',
    help: 'Total number of reconciliation errors per controller.',
    labelNames: ['controller'],
    registers,
  });
  const reconcileTime = new Histogram({
    name: 'controller_runtime_reconcile_time_seconds',
    help: 'Length of time per reconciliation per controller.',
    labelNames: ['controller'],
    buckets: RECONCILE_BUCKETS,
    registers,
  });
  for (const result of RECONCILE_RESULTS) reconcileTotal.inc({ controller, result }, 0);
  reconcileErrors.inc({ controller }, 0);
  reconcileTime.zero({ controller });

  const activeWorkers: Gauge<'controller'> = new Gauge({
    name: 'controller_runtime_active_workers',
    help: 'Number of currently used workers per controller.',
    labelNames: ['controller'],
    registers,
    collect: () => {
      if (sources.queue) activeWorkers.set({ controller }, sources.queue().activeWorkers);
    },
  });

  const queue = registerWorkQueueMetrics(registry, controller, sources);

  const leader = new Gauge({
    name: 'leader_election_master_status',
    help: 'Whether this process leads (1) or stands by (0), per lease.',
    labelNames: ['name'],
    registers,
  });
  leader.set({ name: opts.leaseName }, 0);

  registerReflectorMetrics(registry, sources);

  return {
    queueMetrics: queue,
    onReconcile: (outcome, durationMs) => {
      reconcileTotal.inc({ controller, result: outcome });
      if (outcome === 'error') reconcileErrors.inc({ controller });
      reconcileTime.observe({ controller }, durationMs / 1000);
    },
    setLeader: (leading) => leader.set({ name: opts.leaseName }, leading ? 1 : 0),
    collectFrom: (next) => Object.assign(sources, next),
  };
}

/** The workqueue_* family; returns the callbacks for the WorkQueue's `metrics` option. */
function registerWorkQueueMetrics(
  registry: Registry,
  controller: string,
  sources: ControllerSources,
): WorkQueueMetrics {
  const registers = [registry];
  const labelNames = ['controller', 'name'] as const;
  const labels = { controller, name: controller };

  const depth = new Gauge({
    name: 'workqueue_depth',
    help: 'Current depth of the work queue.',
    labelNames,
    registers,
  });
  const adds = new Counter({
    name: 'workqueue_adds_total',
    help: 'Total number of adds handled by the work queue.',
    labelNames,
    registers,
  });
  const retries = new Counter({
    name: 'workqueue_retries_total',
    help: 'Total number of retries handled by the work queue.',
    labelNames,
    registers,
  });
  const queueDuration = new Histogram({
    name: 'workqueue_queue_duration_seconds',
    help: 'How long an item stays in the work queue before a worker takes it.',
    labelNames,
    buckets: QUEUE_BUCKETS,
    registers,
  });
  const workDuration = new Histogram({
    name: 'workqueue_work_duration_seconds',
    help: 'How long processing an item from the work queue takes.',
    labelNames,
    buckets: QUEUE_BUCKETS,
    registers,
  });
  const unfinished: Gauge<(typeof labelNames)[number]> = new Gauge({
    name: 'workqueue_unfinished_work_seconds',
    help: 'Seconds of work in progress not yet observed by work_duration; large values mean stuck workers.',
    labelNames,
    registers,
    collect: () => {
      if (sources.queue) unfinished.set(labels, sources.queue().unfinishedWorkMs / 1000);
    },
  });
  const longest: Gauge<(typeof labelNames)[number]> = new Gauge({
    name: 'workqueue_longest_running_processor_seconds',
    help: 'How many seconds the longest running processor of the work queue has been running.',
    labelNames,
    registers,
    collect: () => {
      if (sources.queue) longest.set(labels, sources.queue().longestRunningProcessorMs / 1000);
    },
  });
  depth.set(labels, 0);
  adds.inc(labels, 0);
  retries.inc(labels, 0);
  queueDuration.zero(labels);
  workDuration.zero(labels);

  return {
    onAdd: () => adds.inc(labels),
    onRetry: () => retries.inc(labels),
    onQueueDuration: (_key, durationMs) => queueDuration.observe(labels, durationMs / 1000),
    onWorkDuration: (_key, durationMs) => workDuration.observe(labels, durationMs / 1000),
    onDepth: (value) => depth.set(labels, value),
  };
}

/** List and watch counters of the reflectors, read from their stats at scrape time. */
function registerReflectorMetrics(registry: Registry, sources: ControllerSources): void {
  const labelNames = ['reflector', 'namespace'] as const;
  type Label = (typeof labelNames)[number];
  const each = (visit: (labels: Record<Label, string>, stats: ReflectorStats) => void) => {
    for (const [reflector, byNamespace] of Object.entries(sources.reflectors?.() ?? {})) {
      for (const [namespace, stats] of Object.entries(byNamespace)) {
        visit({ reflector, namespace }, stats);
      }
    }
  };

  // The reflectors count for themselves; these counters restate their totals at each scrape.
  const lists: Counter<Label> = new Counter({
    name: 'clara_reflector_lists_total',
    help: 'Full lists a reflector made; more than one means its watch expired and it relisted.',
    labelNames,
    registers: [registry],
    collect: () => {
      lists.reset();
      each((labels, stats) => lists.inc(labels, stats.lists));
    },
  });
  const watches: Counter<Label> = new Counter({
    name: 'clara_reflector_watches_total',
    help: 'Watches a reflector opened; each one after the first is a watch restart.',
    labelNames,
    registers: [registry],
    collect: () => {
      watches.reset();
      each((labels, stats) => watches.inc(labels, stats.watches));
    },
  });
  const failures: Gauge<Label> = new Gauge({
    name: 'clara_reflector_consecutive_failures',
    help: 'List or watch failures of a reflector since its last healthy watch.',
    labelNames,
    registers: [registry],
    collect: () => {
      failures.reset();
      each((labels, stats) => failures.set(labels, stats.consecutiveFailures));
    },
  });
}
