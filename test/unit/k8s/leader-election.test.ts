import { afterEach, describe, expect, test } from '@jest/globals';

import { ConflictError } from '../../../src/k8s/errors.ts';
import { LeaderElector, type LeaderElectorOptions } from '../../../src/k8s/leader-election.ts';
import type { LeaseLock, LeaseRecord, VersionedLeaseRecord } from '../../../src/k8s/lease-lock.ts';
import { FakeClock } from './fake-clock.ts';

/** One in-memory Lease with resourceVersions, shared by the electors of a test. */
class FakeLease {
  current: VersionedLeaseRecord | undefined;
  writes: LeaseRecord[] = [];
  /** While true every call fails as if the API server were unreachable. */
  down = false;
  #version = 0;

  lock(): LeaseLock {
    return {
      description: 'ns/lease',
      get: async () => {
        this.#check();
        return this.current && structuredClone(this.current);
      },
      create: async (record) => {
        this.#check();
        if (this.current) throw new ConflictError({ objectKey: 'ns/lease' });
        return this.#write(record);
      },
      update: async (record, resourceVersion) => {
        this.#check();
        if (this.current?.resourceVersion !== resourceVersion) {
          throw new ConflictError({ objectKey: 'ns/lease', resourceVersion });
        }
        return this.#write(record);
      },
    };
  }

  /** Writes a record directly, as another replica would. */
  set(record: LeaseRecord): void {
    this.#write(record);
  }

  #check(): void {
    if (this.down) throw new Error('connect ECONNREFUSED');
  }

  #write(record: LeaseRecord): VersionedLeaseRecord {
    this.writes.push({ ...record });
    this.current = { record: { ...record }, resourceVersion: String(++this.#version) };
    return structuredClone(this.current);
  }
}

const electors: LeaderElector[] = [];
afterEach(async () => {
  await Promise.all(electors.splice(0).map((e) => e.stop({ release: false })));
});

function elector(
  lease: FakeLease,
  clock: FakeClock,
  identity: string,
  opts: Partial<LeaderElectorOptions> = {},
) {
  const log: string[] = [];
  const e = new LeaderElector({
    lock: lease.lock(),
    identity,
    clock,
    random: () => 0,
    callbacks: {
      onStartedLeading: ({ signal }) => {
        log.push('started');
        signal.addEventListener('abort', () => log.push('signal aborted'));
      },
      onStoppedLeading: () => log.push('stopped'),
      onNewLeader: (id) => log.push(`leader ${id}`),
    },
    ...opts,
  });
  electors.push(e);
  void e.run();
  return { e, log };
}

describe('acquiring', () => {
  test('creates a missing lease and leads', async () => {
    const lease = new FakeLease();
    const clock = new FakeClock();
    const { e, log } = elector(lease, clock, 'a');
    await clock.advance(0);
    expect(e.isLeader()).toBe(true);
    expect(e.leader()).toBe('a');
    expect(log).toEqual(['leader a', 'started']);
    expect(lease.current?.record).toEqual({
      holderIdentity: 'a',
      leaseDurationSeconds: 15,
      acquireTimeMs: clock.now(),
      renewTimeMs: clock.now(),
      leaseTransitions: 0,
    });
  });

  test('renews every retry period, keeping the acquire time', async () => {
    const lease = new FakeLease();
    const clock = new FakeClock();
    elector(lease, clock, 'a');
    await clock.advance(0);
    const acquiredMs = clock.now();
    await clock.advance(6_000);
    expect(lease.writes.map((w) => w.renewTimeMs - acquiredMs)).toEqual([0, 2_000, 4_000, 6_000]);
    expect(lease.writes.every((w) => w.acquireTimeMs === acquiredMs)).toBe(true);
  });

  test('takes over a lease that the holder stopped renewing once it went unchanged for its duration', async () => {
    const lease = new FakeLease();
    const clock = new FakeClock();
    // The record's renewTime is an hour old by this replica's clock: skew must not matter, only
    // how long this replica has seen the record unchanged.
    lease.set({
      holderIdentity: 'old',
      leaseDurationSeconds: 15,
      acquireTimeMs: clock.now() - 3_600_000,
      renewTimeMs: clock.now() - 3_600_000,
      leaseTransitions: 4,
    });
    const { e, log } = elector(lease, clock, 'b');
    await clock.advance(14_000);
    expect(e.isLeader()).toBe(false);
    expect(e.leader()).toBe('old');
    await clock.advance(2_000);
    expect(e.isLeader()).toBe(true);
    expect(lease.current?.record).toMatchObject({ holderIdentity: 'b', leaseTransitions: 5 });
    expect(log).toEqual(['leader old', 'leader b', 'started']);
  });

  test('never takes over while the holder keeps renewing', async () => {
    const lease = new FakeLease();
    const clock = new FakeClock();
    const a = elector(lease, clock, 'a');
    await clock.advance(0);
    const b = elector(lease, clock, 'b');
    await clock.advance(60_000);
    expect(a.e.isLeader()).toBe(true);
    expect(b.e.isLeader()).toBe(false);
    expect(b.log).toEqual(['leader a']);
  });

  test('of two candidates racing for a free lease exactly one wins', async () => {
    const lease = new FakeLease();
    const clock = new FakeClock();
    const a = elector(lease, clock, 'a');
    const b = elector(lease, clock, 'b');
    await clock.advance(10_000);
    expect([a.e.isLeader(), b.e.isLeader()].filter(Boolean)).toHaveLength(1);
  });
});

describe('losing and releasing', () => {
  test('steps down when it cannot renew within the renew deadline, then campaigns again', async () => {
    const lease = new FakeLease();
    const clock = new FakeClock();
    const { e, log } = elector(lease, clock, 'a');
    await clock.advance(2_000);
    lease.down = true;
    await clock.advance(9_000);
    expect(e.isLeader()).toBe(true);
    await clock.advance(4_000);
    expect(e.isLeader()).toBe(false);
    expect(log).toEqual(['leader a', 'started', 'signal aborted', 'stopped']);

    lease.down = false;
    await clock.advance(5_000);
    expect(e.isLeader()).toBe(true);
    expect(log.slice(4)).toEqual(['started']);
  });

  test('stop releases the lease so another candidate takes over within a retry period', async () => {
    const lease = new FakeLease();
    const clock = new FakeClock();
    const a = elector(lease, clock, 'a');
    await clock.advance(0);
    const b = elector(lease, clock, 'b');
    await clock.advance(1_000);

    await a.e.stop();
    expect(a.log).toEqual(['leader a', 'started', 'signal aborted', 'stopped']);
    expect(lease.current?.record).toMatchObject({ holderIdentity: '', leaseDurationSeconds: 1 });
    await clock.advance(2_000);
    expect(b.e.isLeader()).toBe(true);
  });

  test('stop without release leaves the lease to expire before anyone takes over', async () => {
    const lease = new FakeLease();
    const clock = new FakeClock();
    const a = elector(lease, clock, 'a');
    await clock.advance(0);
    const b = elector(lease, clock, 'b');
    await clock.advance(1_000);

    await a.e.stop({ release: false });
    expect(lease.current?.record.holderIdentity).toBe('a');
    await clock.advance(12_000);
    expect(b.e.isLeader()).toBe(false);
    await clock.advance(6_000);
    expect(b.e.isLeader()).toBe(true);
  });

  test('a replica that never led calls no leading callbacks on stop', async () => {
    const lease = new FakeLease();
    lease.down = true;
    const clock = new FakeClock();
    const { e, log } = elector(lease, clock, 'a');
    await clock.advance(5_000);
    await e.stop();
    expect(log).toEqual([]);
  });
});

test.each([
  { given: { leaseDurationMs: 10_000, renewDeadlineMs: 10_000 }, want: /leaseDurationMs/ },
  { given: { renewDeadlineMs: 2_000, retryPeriodMs: 2_000 }, want: /renewDeadlineMs/ },
  { given: { identity: '' }, want: /identity/ },
])('rejects inconsistent timing or identity: $given', ({ given, want }) => {
  expect(
    () => new LeaderElector({ lock: new FakeLease().lock(), identity: 'a', ...given }),
  ).toThrow(want);
});
