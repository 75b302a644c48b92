/**
 * The wire side of a reflector: lists and watches any kind through the API server's REST paths
 * with a KubeConfig.
 *
 * Both halves hand the reflector plain JSON exactly as the server sent it. The watch half is
 * client-node's `Watch`, which yields parsed JSON lines; the list half is a plain HTTPS GET
 * authenticated by `KubeConfig.applyToHTTPSOptions`, because client-node's typed list methods
 * turn timestamps into `Date` objects and rename fields, so listed and watched copies of one
 * object would differ in shape. Lists are paged (`limit`/`continue`) so a large kind does not
 * arrive in one response.
 */
import * as http from 'node:http';
import * as https from 'node:https';

import * as k8s from '@kubernetes/client-node';

import type { ListRequest, ListResult, ReflectorSource, WatchRequest } from './reflector.ts';

/** Where a kind lives: `apiVersion` as in manifests (`v1`, `apps/v1`) and the resource plural. */
export interface ApiResource {
  apiVersion: string;
  plural: string;
}

/** Options of {@link createApiSource}. */
export interface ApiSourceOptions {
  kubeConfig: k8s.KubeConfig;
  resource: ApiResource;
  /** Objects per list page. Default 500, as client-go. */
  pageSize?: number;
  /** Timeout of each list request. Default 60 s. */
  listTimeoutMs?: number;
  /**
   * client-node's own watch inactivity timeout. Keep it above the reflector's watchdog so the
   * reflector decides when a quiet watch is dead. Default 10 min.
   */
  watchClientTimeoutMs?: number;
}

/**
 * The collection path of a resource, in one namespace or across all: `/api/v1/pods`,
 * `/apis/apps/v1/namespaces/ns/deployments`. Pure.
 */
export function collectionPath(resource: ApiResource, namespace?: string): string {
  const root = resource.apiVersion.includes('/')
    ? `/apis/${resource.apiVersion}`
    : `/api/${resource.apiVersion}`;
  const scope = namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  return `${root}${scope}/${resource.plural}`;
}

/**
 * A {@link ReflectorSource} for `resource` on the cluster of `kubeConfig`. Lists throw
 * `k8s.ApiException` for an HTTP error (status in `code`); watch failures reach the reflector
 * through `onDone`.
 */
export function createApiSource<T extends k8s.KubernetesObject>(
  opts: ApiSourceOptions,
): ReflectorSource<T> {
  const watch = new k8s.Watch(opts.kubeConfig);
  // NB: Watch aborts a stream that sent no bytes for `requestTimeoutMs` (30 s in 2.0.1). The API
  // server sends bookmarks only about once a minute, so a healthy quiet watch would be cut
  // twice a minute. The field is private in the typings but a plain property at runtime.
  Object.assign(watch, { requestTimeoutMs: opts.watchClientTimeoutMs ?? 600_000 });

  return {
    list: (req) => listAll<T>(opts, req),
    watch: (req, onEvent, onDone) =>
      watch.watch(
        collectionPath(opts.resource, req.namespace),
        watchQuery(req),
        (type: string, object: unknown) => onEvent(type, object),
        (err: unknown) => onDone(err ?? undefined),
      ),
  };
}

function watchQuery(req: WatchRequest): Record<string, string | number | boolean | undefined> {
  return {
    resourceVersion: req.resourceVersion,
    allowWatchBookmarks: req.allowWatchBookmarks,
    timeoutSeconds: req.timeoutSeconds,
    labelSelector: req.labelSelector,
    fieldSelector: req.fieldSelector,
  };
}

interface ListPage<T> {
  items?: T[];
  metadata?: { resourceVersion?: string; continue?: string };
}

async function listAll<T extends k8s.KubernetesObject>(
  opts: ApiSourceOptions,
  req: ListRequest,
): Promise<ListResult<T>> {
  const items: T[] = [];
  let continueToken: string | undefined;
  for (;;) {
    const page = (await getJson(opts, collectionPath(opts.resource, req.namespace), {
      labelSelector: req.labelSelector,
      fieldSelector: req.fieldSelector,
      limit: String(opts.pageSize ?? 500),
      continue: continueToken,
    })) as ListPage<T>;
    items.push(...(page.items ?? []));
    continueToken = page.metadata?.continue || undefined;
    if (continueToken === undefined) {
      // NB: a list's items carry no apiVersion/kind; the reflector's consumers expect whole
      // objects, so the kind is taken from the list's own kind ("PodList" → "Pod").
      const kind = (page as { kind?: string }).kind?.replace(/List$/, '');
      for (const item of items) {
        item.apiVersion ??= opts.resource.apiVersion;
        if (kind) item.kind ??= kind;
      }
      return { items, resourceVersion: page.metadata?.resourceVersion ?? '' };
    }
  }
}

/** GETs `path` from the API server and parses the JSON answer; throws ApiException otherwise. */
async function getJson(
  opts: ApiSourceOptions,
  path: string,
  query: Record<string, string | undefined>,
): Promise<unknown> {
  const cluster = opts.kubeConfig.getCurrentCluster();
  if (!cluster) throw new Error('the KubeConfig has no current cluster');
  const url = new URL(cluster.server + path);
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined) url.searchParams.set(key, value);
  }
  const requestOptions: https.RequestOptions = { headers: { Accept: 'application/json' } };
  await opts.kubeConfig.applyToHTTPSOptions(requestOptions);
  const transport = url.protocol === 'https:' ? https : http;
  const timeoutMs = opts.listTimeoutMs ?? 60_000;

  return new Promise((resolve, reject) => {
    const request = transport.get(url, requestOptions, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const status = response.statusCode ?? 0;
        try {
          if (status !== 200) {
            const headers = response.headers as Record<string, string>;
            // A 404 on a collection means the API server does not serve the kind at all
            // (for a custom resource: its CRD is not installed), not that a list is empty.
            const why =
              status === 404
                ? ` (the API server does not serve ${path}; is its CRD installed?)`
                : '';
            reject(
              new k8s.ApiException(status, `list ${path}: HTTP ${status}${why}`, text, headers),
            );
          } else {
            resolve(JSON.parse(text));
          }
        } catch (err) {
          reject(new Error(`list ${path}: unparsable answer`, { cause: err }));
        }
      });
    });
    request.setTimeout(timeoutMs, () =>
      request.destroy(new Error(`list ${path}: no answer within ${timeoutMs} ms`)),
    );
    request.on('error', reject);
  });
}
