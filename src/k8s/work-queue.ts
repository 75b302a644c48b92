/**
 * A keyed, de-duplicating work queue with per-key exponential backoff, delayed adds and a pool
 * of workers, after client-go's workqueue (../shared/reference/k8s-operator.md §5).
 *
 * Guarantees: a key waits in the queue at most once however often it is added; no two workers
 * hold the same key at once; a key added while a worker holds it runs once more after that
 * worker finishes. Keys are opaque strings (the controller uses `namespace/name`).
 *
 * What the queue leaves to others: what a key means and how it is reconciled (the handler), and
 * how its counters become Prometheus metrics (read them through {@link WorkQueue.stats} and the
 * `metrics` callbacks). It never logs; handler failures are handed to `onError`.
 */
import { backoffDelayMs, systemClock, type Clock, type TimerHandle } from './clock.ts';

/** Defaults of the per-key backoff: client-go's item exponential limiter (5 ms → 1000 s). */
export const DEFAULT_BASE_BACKOFF_MS = 5;
export const DEFAULT_MAX_BACKOFF_MS = 1_000_000;
/** Default number of workers started by {@link WorkQueue.run}. */
export const DEFAULT_WORKERS = 4;

/**
 * What a handler asks for after it returned normally: nothing (the key is done and its backoff
 * forgotten) or to be looked at again after `requeueAfterMs` (polling).
 */
export type HandlerResult = undefined | { requeueAfterMs?: number };

/** Processes one key; throwing requeues the key with backoff unless it is a TerminalError. */
export type KeyHandler = (
  key: string,
  ctx: { signal: AbortSignal },
  // eslint-disable-next-line @typescript-eslint/no-invalid-void-type -- `async () => {}` handlers
) => Promise<HandlerResult | void>;

/**
 * Wrap a failure that retrying cannot fix: the queue forgets the key instead of backing off,
 * and still reports the failure through `onError` (controller-runtime's TerminalError).
 */
export class TerminalError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TerminalError';
  }
}

/** What happened to a key whose handler threw, as passed to `onError`. */
export interface HandlerFailure {
  key: string;
  error: unknown;
  /** True for a {@link TerminalError}: the key was forgotten, not requeued. */
  terminal: boolean;
  /** Delay before the retry; undefined when terminal or the queue is shutting down. */
  retryInMs: number | undefined;
  /** Failures of this key in a row, this one included. */
  failures: number;
}

/** Callbacks for controller-runtime-style workqueue metrics; all optional. */
export interface WorkQueueMetrics {
  /** A key entered the queue (workqueue_adds_total). */
  onAdd?(key: string): void;
  /** A key was scheduled for a backoff retry (workqueue_retries_total). */
  onRetry?(key: string): void;
  /** A key waited this long between entering the queue and a worker taking it. */
  onQueueDuration?(key: string, durationMs: number): void;
  /** A handler ran this long (workqueue_work_duration_seconds). */
  onWorkDuration?(key: string, durationMs: number): void;
  /** The number of waiting keys changed (workqueue_depth). */
  onDepth?(depth: number): void;
}

/** A point-in-time snapshot of the queue's counters. */
export interface WorkQueueStats {
  /** Keys waiting for a worker. */
  depth: number;
  /** Keys waiting for a delayed add (requeueAfter or backoff) to fire. */
  waiting: number;
  /** Keys being processed now (controller_runtime_active_workers). */
  activeWorkers: number;
  /** Keys that entered the queue since it was made. */
  addsTotal: number;
  /** Backoff retries scheduled since the queue was made. */
  retriesTotal: number;
  /** Age of the longest-running handler, 0 when idle. */
  longestRunningProcessorMs: number;
  /** Summed age of all running handlers (workqueue_unfinished_work_seconds). */
  unfinishedWorkMs: number;
}

/** Options of {@link WorkQueue}. */
export interface WorkQueueOptions {
  /** First backoff delay of a failing key; doubles per failure. Default 5 ms. */
  baseBackoffMs?: number;
  /** No backoff delay exceeds this. Default 1000 s. */
  maxBackoffMs?: number;
  /** Metric callbacks. */
  metrics?: WorkQueueMetrics;
  /** Injected for tests. */
  clock?: Clock;
}

/** Options of {@link WorkQueue.run}. */
export interface RunOptions {
  handler: KeyHandler;
  /** How many keys are processed at once. Default 4. */
  workers?: number;
  /** Told about every handler failure, after the queue decided what to do with the key. */
  onError?: (failure: HandlerFailure) => void;
}

/** Options of {@link WorkQueue.shutDown}. */
export interface ShutDownOptions {
  /** How long to wait for running handlers; after it their signals abort. Default 10 s. */
  timeoutMs?: number;
}

/** What {@link WorkQueue.shutDown} found. */
export interface ShutDownResult {
  /** True when every running handler finished before the deadline. */
  drained: boolean;
  /** Keys whose handlers were still running at the deadline. */
  unfinishedKeys: string[];
  /** Keys that were waiting or delayed and will not be processed. */
  droppedKeys: string[];
}

/**
 * The queue. Make one per controller, call {@link run} once, feed it keys with {@link add},
 * {@link addAfter} and {@link addRateLimited}, and call {@link shutDown} to stop.
 */
export class WorkQueue {
  readonly #clock: Clock;
  readonly #baseBackoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #metrics: WorkQueueMetrics;

  /** Keys in processing order; every key here is also in #dirty. */
  readonly #queue: string[] = [];
  /** Keys that need processing: queued, or re-added while being processed. Value: added at. */
  readonly #dirty = new Map<string, number>();
  /** Keys held by a worker, with the time the handler started. */
  readonly #processing = new Map<string, number>();
  /** Delayed adds: the earliest time each key is due and its timer. */
  readonly #delayed = new Map<string, { dueAtMs: number; timer: TimerHandle }>();
  readonly #failures = new Map<string, number>();
  /** Workers blocked waiting for a key. */
  #idleWorkers: (() => void)[] = [];
  readonly #runningHandlers = new Set<Promise<void>>();
  #shuttingDown = false;
  #running = false;
  readonly #abort = new AbortController();
  #addsTotal = 0;
  #retriesTotal = 0;

  constructor(opts: WorkQueueOptions = {}) {
    this.#clock = opts.clock ?? systemClock;
    this.#baseBackoffMs = opts.baseBackoffMs ?? DEFAULT_BASE_BACKOFF_MS;
    this.#maxBackoffMs = opts.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS;
    this.#metrics = opts.metrics ?? {};
  }

  /**
   * Marks `key` as needing processing. Idempotent while the key waits; a key being processed
   * runs once more afterwards. Returns false (and does nothing) once shutdown has begun.
   */
  add(key: string): boolean {
    if (this.#shuttingDown) return false;
    if (this.#dirty.has(key)) return true;

    this.#dirty.set(key, this.#clock.now());
    this.#addsTotal++;
    this.#metrics.onAdd?.(key);
    // The worker holding the key re-queues it when it finishes (no two workers on one key).
    if (this.#processing.has(key)) return true;
    this.#push(key);
    return true;
  }

  /**
   * Adds `key` after `delayMs` (requeueAfter). Several delayed adds of one key collapse into
   * the earliest. A delay of 0 or less adds at once. Returns false once shutdown has begun.
   */
  addAfter(key: string, delayMs: number): boolean {
    if (this.#shuttingDown) return false;
    if (delayMs <= 0) return this.add(key);

    const dueAtMs = this.#clock.now() + delayMs;
    const pending = this.#delayed.get(key);
    if (pending !== undefined) {
      if (pending.dueAtMs <= dueAtMs) return true;
      this.#clock.clearTimeout(pending.timer);
    }
    const timer = this.#clock.setTimeout(() => {
      this.#delayed.delete(key);
      this.add(key);
    }, delayMs);
    this.#delayed.set(key, { dueAtMs, timer });
    return true;
  }

  /**
   * Adds `key` after its backoff delay (base × 2^failures, capped) and counts one more failure
   * for it. Returns the delay, or undefined once shutdown has begun.
   */
  addRateLimited(key: string): number | undefined {
    if (this.#shuttingDown) return undefined;
    const failures = this.#failures.get(key) ?? 0;
    const delayMs = backoffDelayMs({
      attempt: failures,
      baseMs: this.#baseBackoffMs,
      maxMs: this.#maxBackoffMs,
      jitter: 0,
      random: Math.random,
    });
    this.#failures.set(key, failures + 1);
    this.#retriesTotal++;
    this.#metrics.onRetry?.(key);
    this.addAfter(key, delayMs);
    return delayMs;
  }

  /** Clears the failure count of `key`, so its next backoff starts from the base. Idempotent. */
  forget(key: string): void {
    this.#failures.delete(key);
  }

  /** How many times in a row `key` was rate-limited since it was last forgotten. */
  numRequeues(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  /** True once {@link shutDown} was called. */
  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  /** The queue's counters now. */
  stats(): WorkQueueStats {
    const nowMs = this.#clock.now();
    let longestRunningProcessorMs = 0;
    let unfinishedWorkMs = 0;
    for (const startedMs of this.#processing.values()) {
      longestRunningProcessorMs = Math.max(longestRunningProcessorMs, nowMs - startedMs);
      unfinishedWorkMs += nowMs - startedMs;
    }
    return {
      depth: this.#queue.length,
      waiting: this.#delayed.size,
      activeWorkers: this.#processing.size,
      addsTotal: this.#addsTotal,
      retriesTotal: this.#retriesTotal,
      longestRunningProcessorMs,
      unfinishedWorkMs,
    };
  }

  /**
   * Starts `workers` workers that take keys and call `handler`, and resolves once
   * {@link shutDown} stopped them (running handlers are awaited by shutDown, not here). A handler
   * that returns forgets the key's backoff and honours `requeueAfterMs`; one that throws requeues
   * the key with backoff, or forgets it for a {@link TerminalError}. Throws if called twice.
   */
  async run(opts: RunOptions): Promise<void> {
    if (this.#running) throw new Error('WorkQueue.run was already called');
    this.#running = true;
    const workers = opts.workers ?? DEFAULT_WORKERS;
    if (!Number.isInteger(workers) || workers < 1) {
      throw new RangeError(`workers must be a positive integer, got ${workers}`);
    }
    await Promise.all(Array.from({ length: workers }, () => this.#work(opts)));
  }

  /**
   * Stops the queue: adds are refused, waiting and delayed keys are dropped, idle workers exit,
   * and running handlers get until `timeoutMs` to finish; then their signals abort and the
   * method resolves without waiting further. Idempotent: later calls report the same keys.
   */
  async shutDown(opts: ShutDownOptions = {}): Promise<ShutDownResult> {
    const droppedKeys = this.#shuttingDown ? [] : this.#dropPending();
    this.#shuttingDown = true;
    for (const wake of this.#idleWorkers) wake();
    this.#idleWorkers = [];

    const timeoutMs = opts.timeoutMs ?? 10_000;
    let timer: TimerHandle | undefined;
    const deadline = new Promise<'timeout'>((resolve) => {
      timer = this.#clock.setTimeout(() => resolve('timeout'), timeoutMs);
    });
    const handlersDone = Promise.all([...this.#runningHandlers]).then(() => 'done' as const);
    const outcome = await Promise.race([handlersDone, deadline]);
    this.#clock.clearTimeout(timer);

    const unfinishedKeys = [...this.#processing.keys()];
    if (outcome === 'timeout') this.#abort.abort(new Error('work queue shutdown deadline passed'));
    return { drained: outcome === 'done', unfinishedKeys, droppedKeys };
  }

  #dropPending(): string[] {
    for (const { timer } of this.#delayed.values()) this.#clock.clearTimeout(timer);
    const dropped = new Set([...this.#queue, ...this.#delayed.keys()]);
    this.#queue.length = 0;
    this.#delayed.clear();
    this.#dirty.clear();
    this.#metrics.onDepth?.(0);
    return [...dropped];
  }

  #push(key: string): void {
    this.#queue.push(key);
    this.#metrics.onDepth?.(this.#queue.length);
    this.#idleWorkers.shift()?.();
  }

  /** Waits for the next key; undefined means the queue is shutting down. */
  async #take(): Promise<string | undefined> {
    while (!this.#shuttingDown) {
      const key = this.#queue.shift();
      if (key !== undefined) {
        const addedMs = this.#dirty.get(key) ?? this.#clock.now();
        this.#dirty.delete(key);
        this.#processing.set(key, this.#clock.now());
        this.#metrics.onDepth?.(this.#queue.length);
        this.#metrics.onQueueDuration?.(key, this.#clock.now() - addedMs);
        return key;
      }
      await new Promise<void>((resolve) => this.#idleWorkers.push(resolve));
    }
    return undefined;
  }

  async #work(opts: RunOptions): Promise<void> {
    for (;;) {
      const key = await this.#take();
      if (key === undefined) return;
      const handled = this.#handle(key, opts);
      this.#runningHandlers.add(handled);
      await handled;
      this.#runningHandlers.delete(handled);
    }
  }

  async #handle(key: string, opts: RunOptions): Promise<void> {
    const startedMs = this.#processing.get(key) ?? this.#clock.now();
    try {
      const result = await opts.handler(key, { signal: this.#abort.signal });
      this.forget(key);
      const requeueAfterMs = result ? result.requeueAfterMs : undefined;
      if (requeueAfterMs !== undefined) this.addAfter(key, requeueAfterMs);
    } catch (error) {
      this.#reportFailure(key, error, opts);
    } finally {
      this.#metrics.onWorkDuration?.(key, this.#clock.now() - startedMs);
      this.#done(key);
    }
  }

  #reportFailure(key: string, error: unknown, opts: RunOptions): void {
    const terminal = error instanceof TerminalError;
    const failures = this.numRequeues(key) + 1;
    let retryInMs: number | undefined;
    if (terminal) this.forget(key);
    else retryInMs = this.addRateLimited(key);
    try {
      opts.onError?.({ key, error, terminal, retryInMs, failures });
    } catch {
      // An observer that throws must not take the worker down; the key's fate is already decided.
    }
  }

  /** Releases `key`; if it was added while held, it goes back into the queue now. */
  #done(key: string): void {
    this.#processing.delete(key);
    if (this.#dirty.has(key) && !this.#shuttingDown) this.#push(key);
  }
}
