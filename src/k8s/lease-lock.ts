/**
 * The storage side of leader election: one coordination.k8s.io/v1 Lease read and written with
 * optimistic concurrency (the update carries the resourceVersion that was read, so of two
 * candidates racing for an expired lease exactly one wins and the other gets 409 Conflict).
 *
 * The election algorithm lives in `leader-election.ts`; it talks to a {@link LeaseLock} so unit
 * tests can run it against an in-memory lock.
 */
import * as k8s from '@kubernetes/client-node';

import { makeApiClient } from './api-client.ts';

import { ConflictError, httpStatusOf } from './errors.ts';

/** The election record a Lease holds, as client-go's LeaderElectionRecord. */
export interface LeaseRecord {
  /** Empty when nobody holds the lease (it was released). */
  holderIdentity: string;
  leaseDurationSeconds: number;
  acquireTimeMs: number;
  renewTimeMs: number;
  leaseTransitions: number;
}

/** A record with the resourceVersion it was read or written at. */
export interface VersionedLeaseRecord {
  record: LeaseRecord;
  resourceVersion: string;
}

/** Read, create and conditionally replace one lease. */
export interface LeaseLock {
  /** Describes the lease in logs, e.g. `ns/name`. */
  readonly description: string;
  /** The current record, or undefined when the lease does not exist. */
  get(): Promise<VersionedLeaseRecord | undefined>;
  /** Creates the lease; throws {@link ConflictError} when it already exists. */
  create(record: LeaseRecord): Promise<VersionedLeaseRecord>;
  /** Replaces the record if the lease is still at `resourceVersion`; else {@link ConflictError}. */
  update(record: LeaseRecord, resourceVersion: string): Promise<VersionedLeaseRecord>;
}

/** Options of {@link createLeaseLock}. */
export interface LeaseLockOptions {
  kubeConfig: k8s.KubeConfig;
  namespace: string;
  name: string;
}

/** A {@link LeaseLock} on a real Lease. API failures other than 404/409 are rethrown as is. */
export function createLeaseLock(opts: LeaseLockOptions): LeaseLock {
  const api = makeApiClient(opts.kubeConfig, k8s.CoordinationV1Api);
  const { namespace, name } = opts;
  const description = `${namespace}/${name}`;
  const toBody = (record: LeaseRecord, resourceVersion?: string): k8s.V1Lease => ({
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name, namespace, resourceVersion },
    spec: {
      holderIdentity: record.holderIdentity,
      leaseDurationSeconds: record.leaseDurationSeconds,
      acquireTime: new k8s.V1MicroTime(record.acquireTimeMs),
      renewTime: new k8s.V1MicroTime(record.renewTimeMs),
      leaseTransitions: record.leaseTransitions,
    },
  });
  const conflict = (err: unknown, resourceVersion?: string) =>
    httpStatusOf(err) === 409
      ? new ConflictError({ objectKey: description, resourceVersion, cause: err })
      : err;

  return {
    description,
    async get() {
      try {
        return fromLease(await api.readNamespacedLease({ name, namespace }));
      } catch (err) {
        if (httpStatusOf(err) === 404) return undefined;
        throw err;
      }
    },
    async create(record) {
      try {
        return fromLease(await api.createNamespacedLease({ namespace, body: toBody(record) }));
      } catch (err) {
        throw conflict(err);
      }
    },
    async update(record, resourceVersion) {
      try {
        const body = toBody(record, resourceVersion);
        return fromLease(await api.replaceNamespacedLease({ name, namespace, body }));
      } catch (err) {
        throw conflict(err, resourceVersion);
      }
    },
  };
}

function fromLease(lease: k8s.V1Lease): VersionedLeaseRecord {
  const spec = lease.spec ?? {};
  return {
    resourceVersion: lease.metadata?.resourceVersion ?? '',
    record: {
      holderIdentity: spec.holderIdentity ?? '',
      leaseDurationSeconds: spec.leaseDurationSeconds ?? 0,
      acquireTimeMs: spec.acquireTime ? new Date(spec.acquireTime).getTime() : 0,
      renewTimeMs: spec.renewTime ? new Date(spec.renewTime).getTime() : 0,
      leaseTransitions: spec.leaseTransitions ?? 0,
    },
  };
}
