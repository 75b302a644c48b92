/**
 * The operator's read-only web view as an express app: the list of ClaraInstances, one page per
 * instance with its scalar plots, models, conditions and console log tail, and the JSON those
 * pages fetch. It reads the controller's cache and ClearML; it writes nothing anywhere.
 *
 * Routes (all behind the bearer token when one is configured, see `auth.ts`):
 * - `GET /` and `GET /instances/:namespace/:name`: HTML pages that refresh themselves.
 * - `GET /api/instances`: summaries of all instances.
 * - `GET /api/instances/:namespace/:name`: status detail (phase, models, conditions, message).
 * - `GET /api/instances/:namespace/:name/scalars`: plots from events.scalar_metrics_iter_histogram.
 * - `GET /api/instances/:namespace/:name/log`: console log tail from events.get_task_log.
 * - `GET /static/...`: uPlot's files from node_modules and the instance page's script.
 */
import { createRequire } from 'node:module';

import express from 'express';
import type { Express, Request, Response } from 'express';

import type { ClearmlClient } from '../clearml/index.ts';
import type { ClaraObject } from '../controller/clarainstance/clara-api.ts';
import { bearerAuth } from './auth.ts';
import { instancePage, listPage } from './html.ts';
import { INSTANCE_PAGE_SCRIPT } from './instance-page-script.ts';
import { detail, logLines, scalarPlots, summarize } from './run-data.ts';

/** Points per series asked of ClearML; the server's own default is 2000. */
const SCALAR_SAMPLES = 1000;
/** Console lines in the tail. */
const LOG_TAIL_LINES = 200;
/** Upstream error text is cut to this before it reaches a log line or a response. */
const MAX_ERROR_CHARS = 256;

/** The logger the web view reports ClearML failures to. */
export interface WebLogger {
  warn(fields: Record<string, unknown>, msg: string): void;
}

/** Options of {@link createWebApp}. */
export interface WebAppOptions {
  /** The cached ClaraInstances (the controller's `instances()`). */
  instances: () => ClaraObject[];
  /** The ClearML client of an instance, undefined when it has none (the controller's). */
  clientFor: (obj: ClaraObject) => Promise<ClearmlClient | undefined>;
  /** When set, every request must carry it (see `auth.ts`). */
  token?: string;
  logger?: WebLogger;
}

const requireFromHere = createRequire(import.meta.url);
const UPLOT_FILES: Readonly<Record<string, string>> = {
  'uPlot.iife.min.js': requireFromHere.resolve('uplot/dist/uPlot.iife.min.js'),
  'uPlot.min.css': requireFromHere.resolve('uplot/dist/uPlot.min.css'),
};

/**
 * Builds the web view. Returns an express app to mount or `listen` on; does no I/O until a
 * request arrives. Each request reads the cache afresh and makes at most one ClearML call.
 */
export function createWebApp(opts: WebAppOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(securityHeaders);
  if (opts.token !== undefined && opts.token !== '') app.use(bearerAuth(opts.token));

  app.get('/static/instance-page.js', (_req, res) => {
    res.type('text/javascript').send(INSTANCE_PAGE_SCRIPT);
  });
  app.get('/static/:file', (req: Request<{ file: string }>, res) => {
    const path = UPLOT_FILES[req.params.file];
    if (path === undefined) res.status(404).type('text/plain').send('not found\n');
    // The path is one of a fixed list; an install under a dot directory (~/.local/...) is fine.
    else res.sendFile(path, { dotfiles: 'allow' });
  });

  app.get('/', (req, res) => {
    res.type('html').send(listPage(sorted(opts.instances()).map(summarize), pageOptions(req)));
  });
  app.get('/instances/:namespace/:name', (req: Request<InstanceParams>, res) => {
    const obj = findInstance(opts, req.params);
    if (!obj) notFound(res, req.params);
    else res.type('html').send(instancePage(req.params, pageOptions(req)));
  });

  app.get('/api/instances', (_req, res) => {
    res.json({ instances: sorted(opts.instances()).map(summarize) });
  });
  app.get('/api/instances/:namespace/:name', (req: Request<InstanceParams>, res) => {
    const obj = findInstance(opts, req.params);
    if (!obj) notFound(res, req.params);
    else res.json(detail(obj));
  });
  app.get('/api/instances/:namespace/:name/scalars', async (req: Request<InstanceParams>, res) => {
    await withTask(opts, req, res, { plots: [] }, async (client, task) => ({
      plots: scalarPlots(await client.getScalarHistogram({ task, samples: SCALAR_SAMPLES })),
    }));
  });
  app.get('/api/instances/:namespace/:name/log', async (req: Request<InstanceParams>, res) => {
    await withTask(opts, req, res, { lines: [] }, async (client, task) => {
      const page = await client.getTaskLog({ task, batchSize: LOG_TAIL_LINES });
      return { lines: logLines(page.events.slice(0, LOG_TAIL_LINES)) };
    });
  });

  app.use((_req: Request, res: Response) => {
    res.status(404).type('text/plain').send('not found\n');
  });
  return app;
}

interface InstanceParams {
  namespace: string;
  name: string;
  [key: string]: string;
}

/**
 * Answers with `read(client, taskId)`, or `empty` while the instance has no task yet; 404 for an
 * unknown instance, 503 without ClearML credentials, 502 (logged) when ClearML fails.
 */
async function withTask(
  opts: WebAppOptions,
  req: Request<InstanceParams>,
  res: Response,
  empty: object,
  read: (client: ClearmlClient, task: string) => Promise<object>,
): Promise<void> {
  const obj = findInstance(opts, req.params);
  if (!obj) return notFound(res, req.params);
  const task = obj.status?.taskId;
  if (task === undefined) {
    res.json(empty);
    return;
  }
  const client = await opts.clientFor(obj);
  if (!client) {
    res.status(503).json({ error: 'no usable ClearML credentials for this instance' });
    return;
  }
  try {
    res.json(await read(client, task));
  } catch (err) {
    const detail = String((err as Error).message ?? err).slice(0, MAX_ERROR_CHARS);
    opts.logger?.warn(
      { namespace: req.params.namespace, name: req.params.name, task, err: detail },
      'web view: ClearML request failed; the page retries on its next refresh',
    );
    res.status(502).json({ error: 'ClearML request failed', detail });
  }
}

function findInstance(opts: WebAppOptions, ref: InstanceParams): ClaraObject | undefined {
  return opts
    .instances()
    .find((o) => o.metadata.namespace === ref.namespace && o.metadata.name === ref.name);
}

function notFound(res: Response, ref: InstanceParams): void {
  res
    .status(404)
    .json({ error: 'no such ClaraInstance', namespace: ref.namespace, name: ref.name });
}

function sorted(objs: ClaraObject[]): ClaraObject[] {
  const key = (o: ClaraObject) => `${o.metadata.namespace ?? ''}/${o.metadata.name ?? ''}`;
  return [...objs].sort((a, b) => key(a).localeCompare(key(b)));
}

/** Carries a `?token=` the browser came with into the page's links and assets. */
function pageOptions(req: Request): { query: string } {
  const token = req.query.token;
  return {
    query: typeof token === 'string' && token !== '' ? `?token=${encodeURIComponent(token)}` : '',
  };
}

function securityHeaders(_req: Request, res: Response, next: () => void): void {
  res.set({
    // Scripts only from this server (no inline script); uPlot and the page set inline styles.
    'content-security-policy':
      "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
      "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; " +
      "frame-ancestors 'none'",
    'x-content-type-options': 'nosniff',
    // A token in the page URL must not leak to the ClearML web UI through a task link.
    'referrer-policy': 'no-referrer',
    'cache-control': 'no-store',
  });
  next();
}
