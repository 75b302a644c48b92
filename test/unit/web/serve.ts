/**
 * Shared fake context of the web view's unit tests: an app over a fixed list of instances and a
 * recording stand-in for the ClearML client, listening on 127.0.0.1 at a free port.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import type { ClearmlClient, LogEvent, ScalarHistogram } from '../../../src/clearml/index.ts';
import type { ClaraObject } from '../../../src/controller/clarainstance/clara-api.ts';
import { createWebApp } from '../../../src/web/index.ts';
import { RUNNING_STATUS } from '../../fixtures/status-instances.ts';

/** What the fake ClearML client answers, and the calls it saw. */
export interface FakeClearml {
  histogram: ScalarHistogram;
  /** Newest first, as events.get_task_log walks by default. */
  log: LogEvent[];
  fail?: Error;
  calls: { endpoint: string; task: string }[];
}

/** A web app under test and its base URL. */
export interface ServedApp {
  url: string;
  clearml: FakeClearml;
  warnings: { fields: Record<string, unknown>; msg: string }[];
  close(): Promise<void>;
}

/** A ClaraInstance in `namespace` with RUNNING_STATUS merged with `status`. */
export function instance(namespace: string, name: string, status: object = {}): ClaraObject {
  return {
    apiVersion: 'clara-operator.io/v1alpha1',
    kind: 'ClaraInstance',
    metadata: { namespace, name },
    status: { ...(RUNNING_STATUS as ClaraObject['status']), ...status },
  };
}

/** Serves createWebApp over `objects` (with `credentials: false`, clientFor finds none). */
export async function serve(
  objects: ClaraObject[],
  opts: { token?: string; credentials?: boolean } = {},
): Promise<ServedApp> {
  const clearml: FakeClearml = { histogram: {}, log: [], calls: [] };
  const record = (endpoint: string, task: string) => {
    clearml.calls.push({ endpoint, task });
    if (clearml.fail) throw clearml.fail;
  };
  const client = {
    getScalarHistogram: async (req: { task: string }) => {
      record('events.scalar_metrics_iter_histogram', req.task);
      return clearml.histogram;
    },
    getTaskLog: async (req: { task: string }) => {
      record('events.get_task_log', req.task);
      return { events: clearml.log, returned: clearml.log.length, total: clearml.log.length };
    },
  } as unknown as ClearmlClient;
  const warnings: ServedApp['warnings'] = [];
  const app = createWebApp({
    instances: () => objects,
    clientFor: async () => (opts.credentials === false ? undefined : client),
    ...(opts.token === undefined ? {} : { token: opts.token }),
    logger: { warn: (fields, msg) => warnings.push({ fields, msg }) },
  });
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    clearml,
    warnings,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
