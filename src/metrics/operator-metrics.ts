/**
 * The operator's `/metrics`: one prom-client registry holding the controller health, ClearML
 * request and training metrics, with the hooks the controller takes and an HTTP handler.
 *
 * Metrics only read: the hooks count what they are told and the scrape-time collectors read the
 * controller's caches; nothing here writes to Kubernetes or ClearML. `src/main.ts` makes one
 * {@link OperatorMetrics} and passes its hooks to the controller (STYLE.md rule 1).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

import { collectDefaultMetrics, Registry } from 'prom-client';

import type { ClearmlRequestObservation } from '../clearml/index.ts';
import { registerClearmlMetrics } from './clearml-metrics.ts';
import { registerControllerMetrics } from './controller-metrics.ts';
import type { ControllerSources, ReconcileOutcome } from './controller-metrics.ts';
import { registerInstanceMetrics } from './instance-metrics.ts';
import type { InstanceSource } from './instance-metrics.ts';
import type { WorkQueueMetrics } from '../k8s/index.ts';

/** Options of {@link createOperatorMetrics}. */
export interface OperatorMetricsOptions {
  /** Where the metrics are registered; a fresh registry by default (not prom-client's global). */
  registry?: Registry;
  /** The `controller` label of controller_runtime_* and workqueue_*; default `clarainstance`. */
  controller?: string;
  /** The `name` label of leader_election_master_status; default `clara-operator`. */
  leaseName?: string;
  /** Also export prom-client's process_* and nodejs_* metrics; default true. */
  processMetrics?: boolean;
}

/** The metrics of one operator process. */
export interface OperatorMetrics {
  readonly registry: Registry;
  /** For ControllerOptions.queueMetrics. */
  readonly queueMetrics: WorkQueueMetrics;
  /** For ControllerOptions.onReconcile. */
  readonly onReconcile: (outcome: ReconcileOutcome, durationMs: number) => void;
  /** For ControllerOptions.clearml.onRequest. */
  readonly onClearmlRequest: (request: ClearmlRequestObservation) => void;
  /** Sets leader_election_master_status; call with true when leading or when not electing. */
  setLeader(leading: boolean): void;
  /** Reads the training metrics from `source()` at every scrape (the controller's instances()). */
  collectInstances(source: InstanceSource): void;
  /** Reads queue and reflector stats at every scrape; sources left out are kept. */
  collectController(sources: ControllerSources): void;
  /** The exposition text of every metric. */
  metricsText(): Promise<string>;
  /** The exposition format's content type. */
  readonly contentType: string;
  /** Serves GET `/metrics` (node:http or express); answers 500 if collecting fails. */
  handler(req: IncomingMessage, res: ServerResponse): void;
}

/**
 * Makes and registers every operator metric. Registering twice on one registry throws (metric
 * names are unique per registry); use a fresh registry per call.
 */
export function createOperatorMetrics(opts: OperatorMetricsOptions = {}): OperatorMetrics {
  const registry = opts.registry ?? new Registry();
  if (opts.processMetrics ?? true) registerProcessMetrics(registry);

  const controller = registerControllerMetrics(registry, {
    controller: opts.controller ?? 'clarainstance',
    leaseName: opts.leaseName ?? 'clara-operator',
  });
  const onClearmlRequest = registerClearmlMetrics(registry);
  const setInstanceSource = registerInstanceMetrics(registry);

  const metricsText = () => registry.metrics();
  return {
    registry,
    queueMetrics: controller.queueMetrics,
    onReconcile: controller.onReconcile,
    onClearmlRequest,
    setLeader: controller.setLeader,
    collectInstances: setInstanceSource,
    collectController: controller.collectFrom,
    metricsText,
    contentType: registry.contentType,
    handler: (req, res) => {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      metricsText().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: unknown) => {
          const message = err instanceof Error ? err.message : String(err);
          res
            .writeHead(500, { 'content-type': 'text/plain' })
            .end(`collecting metrics failed: ${message}\n`);
        },
      );
    },
  };
}

/**
 * prom-client's process_* and nodejs_* metrics, less the three gauges it names with `_total`,
 * which `promtool check metrics` rejects (a `_total` suffix promises a counter).
 */
function registerProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of MISNAMED_DEFAULT_GAUGES) registry.removeSingleMetric(name);
}

const MISNAMED_DEFAULT_GAUGES = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];
