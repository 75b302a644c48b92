/**
 * Lease-based leader election following client-go's `tools/leaderelection`
 * (../shared/reference/k8s-operator.md §4): several replicas compete for one Lease; the holder
 * renews it every retry period and steps down if it cannot renew within the renew deadline; a
 * candidate takes over only when the record it observed has not changed for the lease duration
 * as measured on its own clock, so clock skew between replicas does not matter.
 *
 * Timing defaults are controller-runtime's: lease 15 s, renew deadline 10 s, retry 2 s. On stop
 * the leader releases the lease (empty holder, 1 s duration, as client-go's ReleaseOnCancel), so
 * a successor starts within about a retry period instead of waiting out the lease.
 *
 * What it leaves to others: what leading means. `onStartedLeading` gets a signal that aborts
 * when leadership ends; the caller starts its controllers there and stops them on the abort.
 * After losing the lease the elector becomes a candidate again.
 */
import { sleep, systemClock, type Clock } from './clock.ts';
import { ConflictError, describeError } from './errors.ts';
import type { LeaseLock, LeaseRecord, VersionedLeaseRecord } from './lease-lock.ts';
import { silentLogger, type K8sLogger } from './logger.ts';

/** client-go's JitterFactor for the candidate's retry period. */
const RETRY_JITTER = 1.2;

/** What leadership changes call. Callbacks must not throw; a throw is logged and ignored. */
export interface LeaderCallbacks {
  /** This replica became leader; `signal` aborts when it stops leading. */
  onStartedLeading?(ctx: { signal: AbortSignal }): void;
  /** This replica stopped leading (lost the lease, or was stopped). Only after it led. */
  onStoppedLeading?(): void;
  /** The observed holder changed (to this replica or another). */
  onNewLeader?(identity: string): void;
}

/** Options of {@link LeaderElector}. */
export interface LeaderElectorOptions {
  lock: LeaseLock;
  /** Unique per replica, e.g. the pod name. */
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** Upper bound of one API call; default the retry period. */
  requestTimeoutMs?: number;
  callbacks?: LeaderCallbacks;
  logger?: K8sLogger;
  /** Injected for tests. */
  clock?: Clock;
  /** Injected for tests: a number in [0, 1). */
  random?: () => number;
}

/** Options of {@link LeaderElector.stop}. */
export interface StopOptions {
  /** Give the lease up so a successor need not wait for it to expire. Default true. */
  release?: boolean;
}

/** Campaigns for, holds and releases one lease. Call {@link run} once. */
export class LeaderElector {
  readonly #lock: LeaseLock;
  readonly #identity: string;
  readonly #leaseDurationMs: number;
  readonly #renewDeadlineMs: number;
  readonly #retryPeriodMs: number;
  readonly #requestTimeoutMs: number;
  readonly #callbacks: LeaderCallbacks;
  readonly #log: K8sLogger;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #stopping = new AbortController();
  #release = true;
  #loop: Promise<void> | undefined;

  /** The last record read or written, the time it was first seen unchanged, and its version. */
  #observed: VersionedLeaseRecord | undefined;
  #observedAtMs = 0;
  #leading: AbortController | undefined;
  #lastRenewMs = 0;

  /** Throws RangeError unless lease duration > renew deadline > retry period × 1.2. */
  constructor(opts: LeaderElectorOptions) {
    this.#lock = opts.lock;
    this.#identity = opts.identity;
    this.#leaseDurationMs = opts.leaseDurationMs ?? 15_000;
    this.#renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.#retryPeriodMs = opts.retryPeriodMs ?? 2_000;
    this.#requestTimeoutMs = opts.requestTimeoutMs ?? this.#retryPeriodMs;
    this.#callbacks = opts.callbacks ?? {};
    this.#log = opts.logger ?? silentLogger;
    this.#clock = opts.clock ?? systemClock;
    this.#random = opts.random ?? Math.random;
    if (!opts.identity) throw new RangeError('identity must not be empty');
    if (this.#leaseDurationMs <= this.#renewDeadlineMs) {
      throw new RangeError('leaseDurationMs must be greater than renewDeadlineMs');
    }
    if (this.#renewDeadlineMs <= this.#retryPeriodMs * RETRY_JITTER) {
      throw new RangeError('renewDeadlineMs must be greater than retryPeriodMs × 1.2');
    }
  }

  /**
   * True while this replica holds the lease and renewed it less than a lease duration ago on
   * its own clock (a stalled event loop must not leave a stale leader believing it leads).
   */
  isLeader(): boolean {
    return (
      this.#leading !== undefined && this.#clock.now() - this.#lastRenewMs < this.#leaseDurationMs
    );
  }

  /** The holder this replica last observed, or undefined (none, or released). */
  leader(): string | undefined {
    return this.#observed?.record.holderIdentity || undefined;
  }

  /** Campaigns and leads until {@link stop}; resolves when stopped. Throws if called twice. */
  run(): Promise<void> {
    if (this.#loop) throw new Error('LeaderElector.run was already called');
    this.#loop = this.#campaign();
    return this.#loop;
  }

  /**
   * Stops campaigning; a leader stops renewing, releases the lease unless `release` is false,
   * and calls onStoppedLeading. Resolves when done. Idempotent.
   */
  async stop(opts: StopOptions = {}): Promise<void> {
    this.#release = opts.release ?? true;
    this.#stopping.abort();
    await this.#loop;
  }

  async #campaign(): Promise<void> {
    const stopped = this.#stopping.signal;
    while (!stopped.aborted) {
      if (await this.#tryAcquireOrRenew()) {
        this.#startLeading();
        await this.#renewWhileLeading();
        await this.#stopLeading();
        continue;
      }
      const delayMs = this.#retryPeriodMs * (1 + RETRY_JITTER * this.#random());
      await sleep(this.#clock, delayMs, stopped);
    }
  }

  /**
   * Renews every retry period; returns on stop or when no renewal succeeded within the renew
   * deadline. NB: the deadline counts from the last successful renewal (client-go counts from
   * the start of a renew round), so a leader that cannot write steps down at most
   * renewDeadlineMs after its last write, well before a candidate may take over.
   */
  async #renewWhileLeading(): Promise<void> {
    const stopped = this.#stopping.signal;
    while (!stopped.aborted) {
      await sleep(this.#clock, this.#retryPeriodMs, stopped);
      if (stopped.aborted) return;
      if (await this.#tryAcquireOrRenew()) continue;
      if (this.#clock.now() - this.#lastRenewMs + this.#retryPeriodMs <= this.#renewDeadlineMs) {
        continue;
      }
      this.#log.warn(
        { lease: this.#lock.description, identity: this.#identity },
        'failed to renew the lease within the renew deadline; stepping down',
      );
      return;
    }
  }

  /** One round of client-go's tryAcquireOrRenew; true when this replica holds the lease now. */
  async #tryAcquireOrRenew(): Promise<boolean> {
    const nowMs = this.#clock.now();
    const desired: LeaseRecord = {
      holderIdentity: this.#identity,
      leaseDurationSeconds: Math.ceil(this.#leaseDurationMs / 1000),
      acquireTimeMs: nowMs,
      renewTimeMs: nowMs,
      leaseTransitions: 0,
    };
    try {
      const current = await this.#call(this.#lock.get());
      if (current === undefined) return this.#won(await this.#call(this.#lock.create(desired)));

      this.#observe(current);
      const { record } = current;
      const heldByOther = record.holderIdentity !== '' && record.holderIdentity !== this.#identity;
      const expiresAtMs = this.#observedAtMs + record.leaseDurationSeconds * 1000;
      if (heldByOther && expiresAtMs > nowMs) return false;

      if (record.holderIdentity === this.#identity) {
        desired.acquireTimeMs = record.acquireTimeMs;
        desired.leaseTransitions = record.leaseTransitions;
      } else {
        desired.leaseTransitions = record.leaseTransitions + 1;
      }
      return this.#won(await this.#call(this.#lock.update(desired, current.resourceVersion)));
    } catch (err) {
      // A conflict means another replica wrote first; anything else is retried the same way.
      const level = err instanceof ConflictError ? 'debug' : 'warn';
      this.#log[level](
        { lease: this.#lock.description, identity: this.#identity, ...describeError(err) },
        'lease not acquired or renewed; will retry',
      );
      return false;
    }
  }

  #won(written: VersionedLeaseRecord): true {
    this.#observe(written);
    this.#lastRenewMs = this.#clock.now();
    return true;
  }

  /** Restarts the expiry clock whenever the record differs from the one last observed. */
  #observe(current: VersionedLeaseRecord): void {
    const previous = this.#observed;
    if (previous && sameRecord(previous.record, current.record)) {
      this.#observed = current;
      return;
    }
    this.#observed = current;
    this.#observedAtMs = this.#clock.now();
    const holder = current.record.holderIdentity;
    if (holder && holder !== previous?.record.holderIdentity) {
      this.#log.info({ lease: this.#lock.description, leader: holder }, 'new leader observed');
      this.#notify(() => this.#callbacks.onNewLeader?.(holder));
    }
  }

  #startLeading(): void {
    this.#leading = new AbortController();
    this.#log.info(
      { lease: this.#lock.description, identity: this.#identity },
      'became leader; starting to lead',
    );
    const signal = this.#leading.signal;
    this.#notify(() => this.#callbacks.onStartedLeading?.({ signal }));
  }

  async #stopLeading(): Promise<void> {
    const leading = this.#leading;
    this.#leading = undefined;
    leading?.abort();
    if (this.#stopping.signal.aborted && this.#release) await this.#releaseLease();
    this.#log.info({ lease: this.#lock.description, identity: this.#identity }, 'stopped leading');
    this.#notify(() => this.#callbacks.onStoppedLeading?.());
  }

  /** Writes an empty holder with a 1 s duration, so a successor may take over at once. */
  async #releaseLease(): Promise<void> {
    const observed = this.#observed;
    if (!observed || observed.record.holderIdentity !== this.#identity) return;
    const nowMs = this.#clock.now();
    const released: LeaseRecord = {
      holderIdentity: '',
      leaseDurationSeconds: 1,
      acquireTimeMs: nowMs,
      renewTimeMs: nowMs,
      leaseTransitions: observed.record.leaseTransitions,
    };
    try {
      this.#observe(await this.#call(this.#lock.update(released, observed.resourceVersion)));
      this.#log.info({ lease: this.#lock.description }, 'lease released');
    } catch (err) {
      this.#log.warn(
        { lease: this.#lock.description, ...describeError(err) },
        'lease release failed; successors wait for it to expire',
      );
    }
  }

  /** Bounds an API call by the request timeout; the late answer of a timed-out call is dropped. */
  async #call<T>(promise: Promise<T>): Promise<T> {
    promise.catch(() => undefined);
    let timer: unknown;
    const timeout = new Promise<never>((_, reject) => {
      timer = this.#clock.setTimeout(
        () => reject(new Error(`lease call took longer than ${this.#requestTimeoutMs} ms`)),
        this.#requestTimeoutMs,
      );
    });
    try {
      return await Promise.race([promise, timeout]);
    } finally {
      this.#clock.clearTimeout(timer);
    }
  }

  #notify(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#log.error({ identity: this.#identity, ...describeError(err) }, 'leader callback threw');
    }
  }
}

function sameRecord(a: LeaseRecord, b: LeaseRecord): boolean {
  return (
    a.holderIdentity === b.holderIdentity &&
    a.leaseDurationSeconds === b.leaseDurationSeconds &&
    a.acquireTimeMs === b.acquireTimeMs &&
    a.renewTimeMs === b.renewTimeMs &&
    a.leaseTransitions === b.leaseTransitions
  );
}
