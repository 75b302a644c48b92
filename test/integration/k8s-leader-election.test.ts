import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';

import { LeaderElector } from '../../src/k8s/leader-election.ts';
import { createLeaseLock } from '../../src/k8s/lease-lock.ts';
import {
  createTestNamespace,
  deleteTestNamespace,
  testKubeConfig,
  waitFor,
} from '../harness/cluster-env.ts';

// Default timing (lease 15 s, renew deadline 10 s, retry 2 s): a candidate retries after
// 2 s × (1 + 1.2 × random), so takeover after expiry can lag by up to 4.4 s.
const LEASE_MS = 15_000;
const MAX_RETRY_MS = 4_400;

const kc = testKubeConfig();
const coordination = kc.makeApiClient(k8s.CoordinationV1Api);
let namespace: string;
const started: LeaderElector[] = [];

beforeAll(async () => {
  namespace = await createTestNamespace(kc, 'k8s-leader');
});

afterEach(async () => {
  await Promise.all(started.splice(0).map((e) => e.stop({ release: false })));
});

afterAll(async () => {
  await deleteTestNamespace(kc, namespace);
});

/** Two electors for one lease; the lease name is unique per test. */
function pair(leaseName: string) {
  const lock = () => createLeaseLock({ kubeConfig: kc, namespace, name: leaseName });
  const [a, b] = ['replica-a', 'replica-b'].map((identity) => {
    const elector = new LeaderElector({ lock: lock(), identity });
    started.push(elector);
    void elector.run();
    return elector;
  }) as [LeaderElector, LeaderElector];
  return { a, b };
}

async function waitForLeader(electors: LeaderElector[], timeoutMs: number) {
  return waitFor(async () => electors.find((e) => e.isLeader()), {
    what: 'a leader',
    timeoutMs,
    intervalMs: 50,
  });
}

describe('LeaderElector against the API server', () => {
  test('exactly one of two replicas leads, and the Lease names it', async () => {
    const { a, b } = pair('one-leader');
    const leader = await waitForLeader([a, b], 10_000);

    // Sample for 5 s, across two renewals: never both, never none.
    for (let i = 0; i < 25; i++) {
      expect([a.isLeader(), b.isLeader()].filter(Boolean)).toHaveLength(1);
      await new Promise((r) => setTimeout(r, 200));
    }
    const lease = await coordination.readNamespacedLease({ namespace, name: 'one-leader' });
    expect(lease.spec?.holderIdentity).toBe(leader === a ? 'replica-a' : 'replica-b');
    expect(lease.spec?.leaseDurationSeconds).toBe(15);
    expect(a.leader()).toBe(lease.spec?.holderIdentity);
    expect(b.leader()).toBe(lease.spec?.holderIdentity);
  });

  test('a leader stopped with release is replaced within one retry period', async () => {
    const { a, b } = pair('released');
    const leader = await waitForLeader([a, b], 10_000);
    const other = leader === a ? b : a;

    const stoppedAt = Date.now();
    await leader.stop();
    const lease = await coordination.readNamespacedLease({ namespace, name: 'released' });
    await waitForLeader([other], MAX_RETRY_MS + 1_000);

    expect(Date.now() - stoppedAt).toBeLessThan(MAX_RETRY_MS + 1_000);
    expect(leader.isLeader()).toBe(false);
    expect(lease.spec?.leaseDurationSeconds).toBe(1);
    const after = await coordination.readNamespacedLease({ namespace, name: 'released' });
    expect(after.spec?.leaseTransitions).toBe((lease.spec?.leaseTransitions ?? 0) + 1);
  });

  test('a leader that dies without release is replaced once the lease expires', async () => {
    const { a, b } = pair('killed');
    const leader = await waitForLeader([a, b], 10_000);
    const other = leader === a ? b : a;
    await new Promise((r) => setTimeout(r, 3_000));

    const killedAt = Date.now();
    await leader.stop({ release: false });
    await waitForLeader([other], LEASE_MS + MAX_RETRY_MS + 1_000);
    const takeoverMs = Date.now() - killedAt;

    // The candidate saw the record change at most one renew plus one of its retries before
    // the kill, so it cannot have taken over much sooner than a lease duration after it.
    expect(takeoverMs).toBeGreaterThan(LEASE_MS - 2_000 - MAX_RETRY_MS);
    expect(takeoverMs).toBeLessThan(LEASE_MS + MAX_RETRY_MS + 1_000);
  });
});
