/**
 * ClearML request metrics: totals by endpoint and code, errors and durations by endpoint, fed
 * by the transport's `onRequest` observer (one observation per HTTP request, retries and logins
 * included). Endpoints are the fixed set of `service.action` names the client calls.
 */
import { Counter, Histogram } from 'prom-client';
import type { Registry } from 'prom-client';

import type { ClearmlRequestObservation } from '../clearml/index.ts';

/** Seconds; ClearML calls take milliseconds when healthy and up to the 30 s request timeout. */
const REQUEST_DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** Registers the ClearML request metrics on `registry` and returns the observer to pass on. */
export function registerClearmlMetrics(
  registry: Registry,
): (request: ClearmlRequestObservation) => void {
  const requests = new Counter({
    name: 'clara_clearml_requests_total',
    help: 'HTTP requests sent to ClearML, by endpoint and HTTP status (or timeout/network).',
    labelNames: ['endpoint', 'code'],
    registers: [registry],
  });
  const errors = new Counter({
    name: 'clara_clearml_request_errors_total',
    help: 'ClearML requests that got no answer or an answer other than 2xx, by endpoint.',
    labelNames: ['endpoint'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'clara_clearml_request_duration_seconds',
    help: 'Time from sending a ClearML request to reading its whole answer, by endpoint.',
    labelNames: ['endpoint'],
    buckets: REQUEST_DURATION_BUCKETS,
    registers: [registry],
  });

  return ({ endpoint, code, durationMs }) => {
    requests.inc({ endpoint, code });
    // Incremented by 0 on success too, so the error series exists from an endpoint's first call
    // and a rate over it reads 0 rather than no data.
    errors.inc({ endpoint }, /^2\d\d$/.test(code) ? 0 : 1);
    duration.observe({ endpoint }, durationMs / 1000);
  };
}
