/**
 * The controller's EventSink on top of the k8s layer's EventRecorder: Events about a
 * ClaraInstance, reported as `clara-operator.io/controller` by this replica. Recording never
 * blocks or fails a reconcile.
 */
import type * as k8s from '@kubernetes/client-node';

import { EventRecorder } from '../../k8s/index.ts';
import type { K8sLogger } from '../../k8s/index.ts';
import type { ClaraObject } from './clara-api.ts';
import type { EventNote, EventSink } from './context.ts';

/** Name the operator reports its Events under. */
export const REPORTING_CONTROLLER = 'clara-operator.io/controller';

/** Makes the sink; `instance` names this replica (e.g. the pod name). */
export function createEventSink(opts: {
  kubeConfig: k8s.KubeConfig;
  instance: string;
  log: K8sLogger;
}): EventSink {
  const recorder = new EventRecorder({
    kubeConfig: opts.kubeConfig,
    reportingController: REPORTING_CONTROLLER,
    reportingInstance: opts.instance,
    logger: opts.log,
  });
  return {
    record(obj: ClaraObject, event: EventNote): void {
      // The action is the reason's verb form; the reason already says what happened.
      void recorder.record(obj, { ...event, action: event.reason });
    },
  };
}
