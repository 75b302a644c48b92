/**
 * A reflector keeps an in-memory copy of one kind in one scope (a namespace, or all of them)
 * and tells handlers what changed: list, then watch from the list's resourceVersion, as
 * client-go's reflector does (../shared/reference/k8s-operator.md §4).
 *
 * What it adds over client-node's informer, and why:
 * - bookmarks (`allowWatchBookmarks`) keep the resourceVersion fresh on quiet watches, so a
 *   reconnect rarely needs a relist;
 * - a server-side `timeoutSeconds` drawn from [5, 10] min spreads reconnects of many replicas;
 * - an inactivity watchdog aborts a watch that sent nothing (not even a bookmark) for too long:
 *   half-open connections otherwise stall forever (client-node #364, #596, #958);
 * - every failure reconnects after a jittered exponential backoff; it never stops on an error;
 * - 410 Gone, as an HTTP status or as a watch ERROR event, makes it relist, and a relist
 *   reports objects that vanished meanwhile as deletes.
 *
 * What it leaves to others: how objects are listed and watched on the wire (a
 * {@link ReflectorSource}, see `api-source.ts`), several namespaces (`reflector-group.ts`), and
 * what the events mean (the handlers, which should only enqueue keys).
 */
import type * as k8s from '@kubernetes/client-node';

import { backoffDelayMs, sleep, systemClock, type Clock, type TimerHandle } from './clock.ts';
import { describeError, httpStatusOf, WatchExpiredError, WatchInactiveError } from './errors.ts';
import { silentLogger, type K8sLogger } from './logger.ts';
import { objectKey, ObjectStore, type ObjectStoreView } from './object-store.ts';

/** What a list returns: the objects and the resourceVersion to watch from. */
export interface ListResult<T> {
  items: T[];
  resourceVersion: string;
}

/** Scope and filters shared by list and watch; undefined namespace means all namespaces. */
export interface ListRequest {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
}

/** A watch request: the list's scope plus where to start and how long the server may hold it. */
export interface WatchRequest extends ListRequest {
  resourceVersion: string;
  timeoutSeconds: number;
  allowWatchBookmarks: boolean;
}

/** A running watch, as far as the reflector needs to control it. */
export interface WatchHandle {
  /** Closes the stream; `onDone` may or may not be called afterwards. */
  abort(): void;
}

/**
 * How a reflector reaches the API. `watch` calls `onEvent` once per line of the stream with the
 * event type (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR) and object, and `onDone` once when the
 * stream ends: with no error for a clean close, with the error otherwise.
 */
export interface ReflectorSource<T> {
  list(req: ListRequest): Promise<ListResult<T>>;
  watch(
    req: WatchRequest,
    onEvent: (type: string, object: unknown) => void,
    onDone: (err?: unknown) => void,
  ): Promise<WatchHandle>;
}

/** Callbacks for changes; they run synchronously and should only enqueue work. */
export interface ReflectorHandlers<T> {
  onAdd?(obj: T): void;
  /** Called only when the resourceVersion changed. */
  onUpdate?(oldObj: T, newObj: T): void;
  /**
   * `finalStateUnknown` is true when the delete was inferred by a relist (the object was gone
   * from the list); `obj` is then the last state the reflector saw, not the final one.
   */
  onDelete?(obj: T, info: { finalStateUnknown: boolean }): void;
}

/** Defaults, after client-go's reflector: watch 5–10 min, backoff 800 ms → 30 s. */
export const REFLECTOR_DEFAULTS = {
  minWatchTimeoutSeconds: 300,
  maxWatchTimeoutSeconds: 600,
  /** The API server sends a bookmark about once a minute; three missed ones mean trouble. */
  inactivityTimeoutMs: 180_000,
  initialBackoffMs: 800,
  maxBackoffMs: 30_000,
  /** Each delay is cut by a random share of up to this much. */
  backoffJitter: 0.5,
} as const;

/** Options of {@link Reflector}. */
export interface ReflectorOptions<T> extends ListRequest {
  source: ReflectorSource<T>;
  handlers?: ReflectorHandlers<T>;
  /** Names the reflector in logs, e.g. `pods`. */
  name?: string;
  /**
   * Applied to each listed or watched object before it is stored and handed to the handlers.
   * Default: {@link dropManagedFields} (as controller-runtime's cache does), since no controller
   * decision reads them and they are often the largest part of an object.
   */
  transform?: (obj: T) => T;
  minWatchTimeoutSeconds?: number;
  maxWatchTimeoutSeconds?: number;
  /** Abort and rewatch when nothing arrived for this long. */
  inactivityTimeoutMs?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  backoffJitter?: number;
  logger?: K8sLogger;
  /** Injected for tests. */
  clock?: Clock;
  /** Injected for tests: a number in [0, 1). */
  random?: () => number;
}

/**
 * The object without `metadata.managedFields`: the field-manager bookkeeping of server-side
 * apply, several entries per writer, that a cache holding thousands of objects need not keep.
 * A status update sent without them leaves the server's copy unchanged.
 */
export function dropManagedFields<T extends k8s.KubernetesObject>(obj: T): T {
  if (!obj.metadata?.managedFields) return obj;
  const metadata = { ...obj.metadata };
  delete metadata.managedFields;
  return { ...obj, metadata };
}

/** Counters of a reflector, for health checks and metrics. */
export interface ReflectorStats {
  hasSynced: boolean;
  /** Time since the last list, event or bookmark; undefined before the first list. */
  lastEventAgeMs: number | undefined;
  resourceVersion: string | undefined;
  lists: number;
  watches: number;
  /** Failures since the last healthy watch (drives the backoff). */
  consecutiveFailures: number;
}

/** Log messages of a backoff, one per cause. */
type BackOffReason =
  | 'list failed; will retry'
  | 'watch failed; will rewatch'
  | 'watch closed empty; will rewatch'
  | 'watch expired at once; will relist';

/** How one watch ended. */
type WatchEnd =
  | { kind: 'stopped' }
  | { kind: 'closed' }
  | { kind: 'expired'; error: WatchExpiredError }
  | { kind: 'failed'; error: unknown };

/**
 * Lists and watches one scope until {@link stop}. Make it, then call {@link start} once.
 * Handlers never see an event before the list that precedes it has been applied in full.
 */
export class Reflector<T extends k8s.KubernetesObject> {
  readonly #opts: ReflectorOptions<T>;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #log: K8sLogger;
  readonly #store = new ObjectStore<T>();
  readonly #stopping = new AbortController();
  /** Settles (to undefined) when stop() is called. */
  readonly #stopped = new Promise<undefined>((resolve) =>
    this.#stopping.signal.addEventListener('abort', () => resolve(undefined), { once: true }),
  );
  #loop: Promise<void> | undefined;
  #resourceVersion: string | undefined;
  #hasSynced = false;
  #lastEventMs: number | undefined;
  #lists = 0;
  #watches = 0;
  #failures = 0;
  #eventsInWatch = 0;
  #syncWaiters: (() => void)[] = [];

  constructor(opts: ReflectorOptions<T>) {
    this.#opts = opts;
    this.#clock = opts.clock ?? systemClock;
    this.#random = opts.random ?? Math.random;
    this.#log = opts.logger ?? silentLogger;
  }

  /** The cache. Read-only for callers; empty until the first list. */
  get store(): ObjectStoreView<T> {
    return this.#store;
  }

  /** True once the first list has been applied. */
  hasSynced(): boolean {
    return this.#hasSynced;
  }

  /** Resolves true once synced, or false if the reflector is stopped before that. */
  waitForSync(): Promise<boolean> {
    if (this.#hasSynced) return Promise.resolve(true);
    if (this.#stopping.signal.aborted) return Promise.resolve(false);
    return new Promise((resolve) => this.#syncWaiters.push(() => resolve(this.#hasSynced)));
  }

  /** Time since the last list, event or bookmark; undefined before the first list. */
  lastEventAgeMs(): number | undefined {
    return this.#lastEventMs === undefined ? undefined : this.#clock.now() - this.#lastEventMs;
  }

  stats(): ReflectorStats {
    return {
      hasSynced: this.#hasSynced,
      lastEventAgeMs: this.lastEventAgeMs(),
      resourceVersion: this.#resourceVersion,
      lists: this.#lists,
      watches: this.#watches,
      consecutiveFailures: this.#failures,
    };
  }

  /** Starts listing and watching in the background. Throws if called twice. */
  start(): void {
    if (this.#loop) throw new Error('Reflector.start was already called');
    this.#loop = this.#run();
  }

  /** Closes the watch, cancels any backoff and resolves when the loop has exited. Idempotent. */
  async stop(): Promise<void> {
    this.#stopping.abort();
    this.#wakeSyncWaiters();
    await this.#loop;
  }

  async #run(): Promise<void> {
    const stopped = this.#stopping.signal;
    while (!stopped.aborted) {
      if (this.#resourceVersion === undefined) {
        try {
          await this.#relist();
        } catch (error) {
          await this.#backOff('list failed; will retry', error);
          continue;
        }
      }
      const resourceVersion = this.#resourceVersion;
      if (stopped.aborted || resourceVersion === undefined) return;

      const end = await this.#watchOnce(resourceVersion);
      // A watch that ends before it delivered anything is no sign of health: without a backoff a
      // proxy that closes at once, or a 410 right after a relist, would spin list/watch calls.
      const hollow = this.#eventsInWatch === 0;
      switch (end.kind) {
        case 'stopped':
          return;
        case 'closed':
          this.#log.debug(this.#fields(), 'watch closed by the server; rewatching');
          if (hollow) await this.#backOff('watch closed empty; will rewatch', undefined);
          break;
        case 'expired':
          this.#log.info(this.#fields(describeError(end.error)), 'watch expired; relisting');
          this.#resourceVersion = undefined;
          if (hollow) await this.#backOff('watch expired at once; will relist', end.error);
          break;
        case 'failed':
          await this.#backOff('watch failed; will rewatch', end.error);
          break;
        default:
          end satisfies never;
      }
    }
  }

  async #relist(): Promise<void> {
    const { namespace, labelSelector, fieldSelector } = this.#opts;
    const listed = this.#opts.source.list({ namespace, labelSelector, fieldSelector });
    // A list that hangs must not hold up stop(); its late answer (or failure) is dropped.
    listed.catch(() => undefined);
    const result = await Promise.race([listed, this.#stopped]);
    if (result === undefined || this.#stopping.signal.aborted) return;
    this.#lists++;
    this.#lastEventMs = this.#clock.now();
    this.#replace(result.items);
    this.#resourceVersion = result.resourceVersion;
    if (!this.#hasSynced) {
      this.#hasSynced = true;
      this.#wakeSyncWaiters();
    }
    this.#log.debug(this.#fields({ objects: result.items.length }), 'listed');
  }

  /** Makes the store equal to `items`, reporting adds, changes and inferred deletes. */
  #replace(items: T[]): void {
    const seen = new Set<string>();
    for (const obj of items) {
      seen.add(objectKey(obj));
      this.#apply('ADDED', obj);
    }
    for (const key of this.#store.keys()) {
      if (seen.has(key)) continue;
      const gone = this.#store.remove(key);
      if (gone)
        this.#call(() => this.#opts.handlers?.onDelete?.(gone, { finalStateUnknown: true }));
    }
  }

  #apply(type: 'ADDED' | 'MODIFIED' | 'DELETED', received: T): void {
    const handlers = this.#opts.handlers;
    const obj = (this.#opts.transform ?? dropManagedFields)(received);
    if (type === 'DELETED') {
      const known = this.#store.remove(objectKey(obj));
      if (known) this.#call(() => handlers?.onDelete?.(obj, { finalStateUnknown: false }));
      return;
    }
    const previous = this.#store.put(obj);
    if (previous === undefined) {
      this.#call(() => handlers?.onAdd?.(obj));
    } else if (previous.metadata?.resourceVersion !== obj.metadata?.resourceVersion) {
      this.#call(() => handlers?.onUpdate?.(previous, obj));
    }
  }

  /** Runs a handler; a throwing handler is logged and must not break the watch loop. */
  #call(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.#log.error(this.#fields(describeError(error)), 'reflector handler threw');
    }
  }

  #watchOnce(resourceVersion: string): Promise<WatchEnd> {
    const opts = this.#opts;
    const minS = opts.minWatchTimeoutSeconds ?? REFLECTOR_DEFAULTS.minWatchTimeoutSeconds;
    const maxS = opts.maxWatchTimeoutSeconds ?? REFLECTOR_DEFAULTS.maxWatchTimeoutSeconds;
    const inactivityMs = opts.inactivityTimeoutMs ?? REFLECTOR_DEFAULTS.inactivityTimeoutMs;
    const request: WatchRequest = {
      namespace: opts.namespace,
      labelSelector: opts.labelSelector,
      fieldSelector: opts.fieldSelector,
      resourceVersion,
      timeoutSeconds: Math.floor(minS + (maxS - minS) * this.#random()),
      allowWatchBookmarks: true,
    };
    this.#watches++;
    this.#eventsInWatch = 0;

    return new Promise<WatchEnd>((resolve) => {
      let handle: WatchHandle | undefined;
      let watchdog: TimerHandle | undefined;
      let ended = false;
      const end = (result: WatchEnd) => {
        if (ended) return;
        ended = true;
        this.#clock.clearTimeout(watchdog);
        this.#stopping.signal.removeEventListener('abort', onStop);
        handle?.abort();
        resolve(result);
      };
      const armWatchdog = () => {
        this.#clock.clearTimeout(watchdog);
        watchdog = this.#clock.setTimeout(
          () => end({ kind: 'failed', error: new WatchInactiveError(inactivityMs) }),
          inactivityMs,
        );
      };
      const onStop = () => end({ kind: 'stopped' });
      const onEvent = (type: string, object: unknown) => {
        if (ended) return;
        armWatchdog();
        const error = this.#handleEvent(type, object);
        if (error) end(error);
      };
      const onDone = (err?: unknown) => {
        if (!err) return end({ kind: 'closed' });
        if (httpStatusOf(err) === 410) {
          return end({
            kind: 'expired',
            error: new WatchExpiredError('watch: HTTP 410', { cause: err }),
          });
        }
        end({ kind: 'failed', error: err });
      };

      this.#stopping.signal.addEventListener('abort', onStop, { once: true });
      armWatchdog();
      opts.source.watch(request, onEvent, onDone).then(
        (h) => {
          handle = h;
          if (ended) h.abort();
        },
        (err: unknown) => onDone(err ?? new Error('watch failed to start')),
      );
    });
  }

  /** Applies one watch event; returns how the watch must end, if it must. */
  #handleEvent(type: string, object: unknown): WatchEnd | undefined {
    this.#lastEventMs = this.#clock.now();
    if (type === 'ERROR') {
      const status = object as k8s.V1Status | undefined;
      const message = `watch ERROR event: ${status?.code ?? '?'} ${status?.reason ?? ''} ${status?.message ?? ''}`;
      if (httpStatusOf(object) === 410) {
        return { kind: 'expired', error: new WatchExpiredError(message.trim()) };
      }
      return { kind: 'failed', error: new Error(message.trim()) };
    }

    this.#eventsInWatch++;
    const obj = object as T;
    const resourceVersion = obj?.metadata?.resourceVersion;
    if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') this.#apply(type, obj);
    else if (type !== 'BOOKMARK') {
      this.#log.warn(this.#fields({ type }), 'unknown watch event type ignored');
      return undefined;
    }
    // A healthy stream resets the backoff: the next failure starts from the initial delay.
    this.#failures = 0;
    if (resourceVersion) this.#resourceVersion = resourceVersion;
    return undefined;
  }

  async #backOff(msg: BackOffReason, error: unknown): Promise<void> {
    const opts = this.#opts;
    const delayMs = backoffDelayMs({
      attempt: this.#failures,
      baseMs: opts.initialBackoffMs ?? REFLECTOR_DEFAULTS.initialBackoffMs,
      maxMs: opts.maxBackoffMs ?? REFLECTOR_DEFAULTS.maxBackoffMs,
      jitter: opts.backoffJitter ?? REFLECTOR_DEFAULTS.backoffJitter,
      random: this.#random,
    });
    this.#failures++;
    const cause = error === undefined ? {} : describeError(error);
    this.#log.warn(this.#fields({ ...cause, retryInMs: delayMs, failures: this.#failures }), msg);
    await sleep(this.#clock, delayMs, this.#stopping.signal);
  }

  #fields(extra: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      reflector: this.#opts.name,
      namespace: this.#opts.namespace ?? '*',
      resourceVersion: this.#resourceVersion,
      ...extra,
    };
  }

  #wakeSyncWaiters(): void {
    for (const wake of this.#syncWaiters) wake();
    this.#syncWaiters = [];
  }
}
