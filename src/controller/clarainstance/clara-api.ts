/**
 * The writes the controller makes to ClaraInstance objects: its finalizer, and the status through
 * the status subresource. Both carry the resourceVersion the decision was made on, so a write
 * based on a stale read fails with 409 Conflict instead of overwriting someone else's change.
 */
import * as k8s from '@kubernetes/client-node';

import { GROUP, PLURAL, VERSION } from '../../api/clarainstance.ts';
import type { ClaraInstanceStatus } from '../../api/clarainstance-status.ts';
import { makeApiClient, StatusWriter } from '../../k8s/index.ts';

/** The finalizer that holds a ClaraInstance until its ClearML task is cleaned up. */
export const FINALIZER = 'clara-operator.io/task-cleanup';

/** A ClaraInstance as the API returns it (spec unchecked). */
export interface ClaraObject extends k8s.KubernetesObject {
  metadata: k8s.V1ObjectMeta;
  spec?: unknown;
  status?: ClaraInstanceStatus;
}

/** Field manager name of every write, so managedFields say who wrote what. */
export const FIELD_MANAGER = 'clara-operator';

/** Counts of writes, for the benchmark's idle-write check and for metrics. */
export interface WriteCounts {
  statusWrites: number;
  finalizerWrites: number;
}

/** Thin typed access to ClaraInstances over CustomObjectsApi. */
export class ClaraApi {
  readonly #api: k8s.CustomObjectsApi;
  readonly #status: StatusWriter;
  readonly counts: WriteCounts = { statusWrites: 0, finalizerWrites: 0 };

  constructor(kc: k8s.KubeConfig) {
    this.#api = makeApiClient(kc, k8s.CustomObjectsApi);
    this.#status = new StatusWriter({
      kubeConfig: kc,
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
    });
  }

  /**
   * Adds or removes the finalizer with a JSON patch that first tests the resourceVersion the
   * caller saw. Returns the updated object. Throws ApiException 409/422 when the object changed.
   */
  async setFinalizer(obj: ClaraObject, present: boolean): Promise<ClaraObject> {
    const finalizers = (obj.metadata.finalizers ?? []).filter((f) => f !== FINALIZER);
    if (present) finalizers.push(FINALIZER);
    const patch = [
      { op: 'test', path: '/metadata/resourceVersion', value: obj.metadata.resourceVersion },
      { op: 'add', path: '/metadata/finalizers', value: finalizers },
    ];
    this.counts.finalizerWrites += 1;
    return (await this.#api.patchNamespacedCustomObject(
      {
        group: GROUP,
        version: VERSION,
        namespace: obj.metadata.namespace ?? '',
        plural: PLURAL,
        name: obj.metadata.name ?? '',
        body: patch,
        fieldManager: FIELD_MANAGER,
      },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch),
    )) as ClaraObject;
  }

  /**
   * Makes the status of `obj` equal to `status` through the status subresource, with `obj`'s
   * resourceVersion as precondition; no call when they are already equal. Returns the object as
   * it now is; throws ConflictError when `obj` is stale.
   */
  async replaceStatus(obj: ClaraObject, status: ClaraInstanceStatus): Promise<ClaraObject> {
    const result = await this.#status.writeStatus(obj, status);
    if (result.outcome === 'updated') this.counts.statusWrites += 1;
    return result.object;
  }
}
