/**
 * Writes the status subresource of a custom object, and only when it changed.
 *
 * The write is a replace (PUT) of `/status` carrying the resourceVersion the caller read, so it
 * fails with 409 Conflict, mapped to {@link ConflictError}, if anyone wrote the object since:
 * optimistic concurrency, without the list-merging surprises of a merge patch (which replaces
 * `conditions` wholesale but cannot remove a key unless it is sent as null). Through `/status`
 * the API server ignores everything but `status`, so the spec in the body does no harm.
 *
 * Before writing, the desired status is compared with the current one after normalisation
 * ({@link normaliseStatus}); an equal status is not written, so a reconcile that changes nothing
 * costs no API call and produces no watch event (no idle writes, no self-triggered loops).
 */
import * as k8s from '@kubernetes/client-node';

import { makeApiClient } from './api-client.ts';

import { ConflictError, httpStatusOf } from './errors.ts';
import { objectKey } from './object-store.ts';

/** A custom object with an optional status. */
export interface ObjectWithStatus extends k8s.KubernetesObject {
  status?: unknown;
}

/** What {@link StatusWriter.writeStatus} did: the status was written, or already equal. */
export type StatusWriteOutcome = 'updated' | 'unchanged';

/** The outcome and the object as it now is (the server's answer when written). */
export interface StatusWriteResult<T> {
  outcome: StatusWriteOutcome;
  object: T;
}

/** The two CustomObjectsApi calls the writer uses; tests may pass a fake. */
export type StatusApi = Pick<
  k8s.CustomObjectsApi,
  'replaceNamespacedCustomObjectStatus' | 'replaceClusterCustomObjectStatus'
>;

/** Options of {@link StatusWriter}. */
export interface StatusWriterOptions {
  /** Used to build the API client unless `api` is given. */
  kubeConfig?: k8s.KubeConfig;
  api?: StatusApi;
  group: string;
  version: string;
  plural: string;
}

/**
 * A canonical form for comparison: keys sorted, `undefined` members dropped, `Date`s as
 * RFC 3339 strings with whole seconds (the precision of metav1.Time). Array order is kept
 * because it is meaningful in general. Pure.
 */
export function normaliseStatus(value: unknown): unknown {
  if (value instanceof Date) return value.toISOString().replace(/\.\d{3}Z$/, 'Z');
  if (Array.isArray(value)) return value.map((item) => normaliseStatus(item ?? null));
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => [k, normaliseStatus(v)]);
    return Object.fromEntries(entries);
  }
  return value;
}

/** True when two statuses are equal after {@link normaliseStatus}. Pure. */
export function statusEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(normaliseStatus(a)) === JSON.stringify(normaliseStatus(b));
}

/** Writes statuses of one custom resource kind. */
export class StatusWriter {
  readonly #api: StatusApi;
  readonly #coordinates: { group: string; version: string; plural: string };

  /** Throws if neither `api` nor `kubeConfig` is given. */
  constructor(opts: StatusWriterOptions) {
    if (opts.api) this.#api = opts.api;
    else if (opts.kubeConfig) this.#api = makeApiClient(opts.kubeConfig, k8s.CustomObjectsApi);
    else throw new Error('StatusWriter needs a kubeConfig or an api');
    this.#coordinates = { group: opts.group, version: opts.version, plural: opts.plural };
  }

  /**
   * Makes `current`'s status equal to `status`. When they are already equal, returns
   * `unchanged` and `current` without a call. Otherwise replaces `/status` at `current`'s
   * resourceVersion and returns `updated` with the server's copy. Throws
   * {@link ConflictError} when the object changed since it was read, and the API error as is
   * for anything else (404 when it was deleted, 422 when the status breaks the schema); throws
   * before any call if `current` lacks a name or resourceVersion.
   * Idempotent.
   */
  async writeStatus<T extends ObjectWithStatus>(
    current: T,
    status: unknown,
  ): Promise<StatusWriteResult<T>> {
    if (statusEqual(current.status, status)) return { outcome: 'unchanged', object: current };

    const name = current.metadata?.name;
    if (!name) throw new Error('cannot write the status of an object without metadata.name');
    const resourceVersion = current.metadata?.resourceVersion;
    // NB: a PUT without resourceVersion is unconditional and would overwrite newer status.
    if (!resourceVersion) throw new Error('cannot write status without metadata.resourceVersion');
    const body = { ...current, status };
    const namespace = current.metadata?.namespace;
    try {
      const written: unknown = namespace
        ? await this.#api.replaceNamespacedCustomObjectStatus({
            ...this.#coordinates,
            namespace,
            name,
            body,
          })
        : await this.#api.replaceClusterCustomObjectStatus({ ...this.#coordinates, name, body });
      return { outcome: 'updated', object: written as T };
    } catch (err) {
      if (httpStatusOf(err) === 409) {
        throw new ConflictError({ objectKey: objectKey(current), resourceVersion, cause: err });
      }
      throw err;
    }
  }
}
