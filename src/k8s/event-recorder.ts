/**
 * Records events.k8s.io/v1 Events about objects, folding repeats into one Event.
 *
 * The caller decides what deserves an Event (transitions only, as cert-manager does); this
 * module makes sure a transition that flaps does not flood the namespace: an event identical to
 * one recorded within the aggregation window (same object, type, reason, action and note) does
 * not create a new Event but raises the `series.count` of the first and moves its
 * `series.lastObservedTime`, as client-go's events broadcaster does. Every Event names the
 * reporting controller and instance, which events.k8s.io/v1 requires.
 *
 * Recording is best effort: `record` never throws, and a failed write is logged as a warning.
 * The dedup cache is per process and bounded; after a restart the first repeat creates a new
 * Event.
 */
import * as k8s from '@kubernetes/client-node';

import { makeApiClient } from './api-client.ts';

import { systemClock, type Clock } from './clock.ts';
import { describeError } from './errors.ts';
import { silentLogger, type K8sLogger } from './logger.ts';

/** Event severity. */
export type EventType = 'Normal' | 'Warning';

/** What happened, as the caller states it. */
export interface EventInput {
  type: EventType;
  /** Why, in CamelCase (≤ 128 characters), e.g. `TaskCreated`. */
  reason: string;
  /** What the controller did or failed to do (≤ 128 characters), e.g. `CreateTask`. */
  action: string;
  /** Human-readable detail; cut to 1024 characters. */
  note?: string;
}

/** What {@link EventRecorder.record} did: a new Event, a repeat folded into one, or nothing. */
export type RecordOutcome = 'created' | 'aggregated' | 'failed';

/** The EventsV1Api calls the recorder uses; tests may pass a fake. */
export type EventsApi = Pick<k8s.EventsV1Api, 'createNamespacedEvent' | 'patchNamespacedEvent'>;

/** Options of {@link EventRecorder}. */
export interface EventRecorderOptions {
  /** Used to build the API client unless `api` is given. */
  kubeConfig?: k8s.KubeConfig;
  api?: EventsApi;
  /** e.g. `clara-operator.io/controller`. */
  reportingController: string;
  /** e.g. the pod name; distinguishes replicas. */
  reportingInstance: string;
  /** Repeats within this time of the previous occurrence are folded. Default 10 min. */
  aggregationWindowMs?: number;
  /** How many distinct events are remembered for folding. Default 4096. */
  maxTracked?: number;
  /**
   * Event writes sent to the API server at once. Default 4. Recording is fire-and-forget, so
   * without a bound a burst of transitions (thousands of new runs) would open as many
   * connections as there are Events.
   */
  maxInFlight?: number;
  /**
   * Writes waiting for a slot; beyond this, new Events are dropped with a warning, as client-go's
   * broadcaster drops beyond its 1000-event queue. Default 1000.
   */
  maxBacklog?: number;
  logger?: K8sLogger;
  /** Injected for tests. */
  clock?: Clock;
}

const NOTE_MAX_LENGTH = 1024;

interface Tracked {
  name: string;
  namespace: string;
  count: number;
  lastSeenMs: number;
  /** Writes for one Event run one after another, so counts arrive in order. */
  writes: Promise<unknown>;
}

/** Records Events; one per controller process. */
export class EventRecorder {
  readonly #api: EventsApi;
  readonly #opts: EventRecorderOptions;
  readonly #clock: Clock;
  readonly #log: K8sLogger;
  readonly #windowMs: number;
  readonly #maxTracked: number;
  readonly #tracked = new Map<string, Tracked>();
  readonly #maxInFlight: number;
  readonly #maxBacklog: number;
  readonly #waiting: (() => void)[] = [];
  #inFlight = 0;
  /** Writes accepted and not finished (waiting for their Event's earlier writes or a slot). */
  #queued = 0;
  #dropping = false;
  #sequence = 0;

  /** Throws if neither `api` nor `kubeConfig` is given. */
  constructor(opts: EventRecorderOptions) {
    if (opts.api) this.#api = opts.api;
    else if (opts.kubeConfig) this.#api = makeApiClient(opts.kubeConfig, k8s.EventsV1Api);
    else throw new Error('EventRecorder needs a kubeConfig or an api');
    this.#opts = opts;
    this.#clock = opts.clock ?? systemClock;
    this.#log = opts.logger ?? silentLogger;
    this.#windowMs = opts.aggregationWindowMs ?? 600_000;
    this.#maxTracked = opts.maxTracked ?? 4096;
    this.#maxInFlight = opts.maxInFlight ?? 4;
    this.#maxBacklog = opts.maxBacklog ?? 1000;
  }

  /**
   * Records `event` about `regarding`: creates an Event, or folds it into an identical one seen
   * within the window. Never rejects; resolves with what it did.
   */
  async record(regarding: k8s.KubernetesObject, event: EventInput): Promise<RecordOutcome> {
    const nowMs = this.#clock.now();
    const note = (event.note ?? '').slice(0, NOTE_MAX_LENGTH);
    const key = JSON.stringify([
      regarding.metadata?.uid ?? '',
      regarding.kind ?? '',
      regarding.metadata?.namespace ?? '',
      regarding.metadata?.name ?? '',
      event.type,
      event.reason,
      event.action,
      note,
    ]);
    const seen = this.#tracked.get(key);
    if (seen && nowMs - seen.lastSeenMs <= this.#windowMs) {
      seen.count++;
      seen.lastSeenMs = nowMs;
      return this.#chain(seen, () => this.#patchSeries(seen, nowMs), 'aggregated');
    }

    this.#forgetOld(nowMs);
    const tracked: Tracked = {
      name: `${regarding.metadata?.name ?? 'object'}.${this.#uniqueSuffix(nowMs)}`,
      namespace: regarding.metadata?.namespace || 'default',
      count: 1,
      lastSeenMs: nowMs,
      writes: Promise.resolve(),
    };
    this.#tracked.delete(key);
    this.#tracked.set(key, tracked);
    const body = this.#newEvent(tracked, regarding, { ...event, note }, nowMs);
    const outcome = await this.#chain(
      tracked,
      () => this.#api.createNamespacedEvent({ namespace: tracked.namespace, body }),
      'created',
    );
    // With no Event to fold into, the next occurrence must create one again.
    if (outcome === 'failed' && this.#tracked.get(key) === tracked) this.#tracked.delete(key);
    return outcome;
  }

  #newEvent(
    tracked: Tracked,
    regarding: k8s.KubernetesObject,
    event: EventInput,
    nowMs: number,
  ): k8s.EventsV1Event {
    return {
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { name: tracked.name, namespace: tracked.namespace },
      eventTime: new k8s.V1MicroTime(nowMs),
      reportingController: this.#opts.reportingController,
      reportingInstance: this.#opts.reportingInstance,
      regarding: {
        apiVersion: regarding.apiVersion,
        kind: regarding.kind,
        namespace: regarding.metadata?.namespace,
        name: regarding.metadata?.name,
        uid: regarding.metadata?.uid,
        resourceVersion: regarding.metadata?.resourceVersion,
      },
      type: event.type,
      reason: event.reason,
      action: event.action,
      note: event.note,
    };
  }

  async #patchSeries(tracked: Tracked, nowMs: number): Promise<unknown> {
    const body = { series: { count: tracked.count, lastObservedTime: new k8s.V1MicroTime(nowMs) } };
    return this.#api.patchNamespacedEvent(
      { name: tracked.name, namespace: tracked.namespace, body },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
  }

  /** Runs `write` after the Event's earlier writes and turns any failure into a log line. */
  async #chain(
    tracked: Tracked,
    write: () => Promise<unknown>,
    outcome: 'created' | 'aggregated',
  ): Promise<RecordOutcome> {
    if (this.#queued >= this.#maxInFlight + this.#maxBacklog) {
      if (!this.#dropping)
        this.#log.warn(
          { backlog: this.#queued, event: tracked.name, namespace: tracked.namespace },
          'event backlog full; dropping events until it drains',
        );
      this.#dropping = true;
      return 'failed';
    }
    this.#dropping = false;
    this.#queued++;
    const result = tracked.writes
      .then(() => this.#throttled(write))
      .finally(() => this.#queued--)
      .then(
        () => outcome,
        (err: unknown) => {
          this.#log.warn(
            { event: tracked.name, namespace: tracked.namespace, ...describeError(err) },
            'event not recorded; dropping it',
          );
          return 'failed' as const;
        },
      );
    tracked.writes = result;
    return result;
  }

  /** Runs `write` once fewer than maxInFlight writes are in flight. */
  async #throttled<T>(write: () => Promise<T>): Promise<T> {
    if (this.#inFlight < this.#maxInFlight) this.#inFlight++;
    // A finishing write hands its slot straight to the next waiter, so the bound holds.
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    try {
      return await write();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#inFlight--;
    }
  }

  /** Drops expired entries, and the oldest ones while over the bound (Map keeps insert order). */
  #forgetOld(nowMs: number): void {
    if (this.#tracked.size < this.#maxTracked) return;
    for (const [key, tracked] of this.#tracked) {
      if (nowMs - tracked.lastSeenMs > this.#windowMs) this.#tracked.delete(key);
    }
    for (const key of this.#tracked.keys()) {
      if (this.#tracked.size < this.#maxTracked) break;
      this.#tracked.delete(key);
    }
  }

  /** Hex of the time in nanoseconds, as client-go names Events, plus a per-process sequence. */
  #uniqueSuffix(nowMs: number): string {
    return `${(BigInt(nowMs) * 1_000_000n + BigInt(this.#sequence++ % 1_000_000)).toString(16)}`;
  }
}
