/**
 * Wiring of the ClaraInstance controller: a reflector over ClaraInstances and one over the
 * operator's agent pods feed a keyed work queue; the task poller brings back instances whose
 * ClearML task changed; workers run `reconcile`. Nothing here decides anything about a run.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

import * as k8s from '@kubernetes/client-node';

import { API_VERSION, KIND, parseClaraInstance, PLURAL } from '../../api/clarainstance.ts';
import { MAX_PAGE_SIZE } from '../../clearml/index.ts';
import type { ClearmlClient, ClearmlClientOptions } from '../../clearml/index.ts';
import {
  ConflictError,
  createApiSource,
  makeApiClient,
  objectKey,
  ReflectorGroup,
  WorkQueue,
} from '../../k8s/index.ts';
import type { NamespaceScope, ReflectorStats, WorkQueueMetrics } from '../../k8s/index.ts';
import { AGENT_POD_SELECTOR } from './agent-pod.ts';
import { ClaraApi } from './clara-api.ts';
import type { ClaraObject } from './clara-api.ts';
import type {
  AgentPods,
  EventSink,
  ReconcileConfig,
  ReconcileContext,
  ReconcileLogger,
  SecretReader,
} from './context.ts';
import { ClearmlClients, readConnection } from './credentials.ts';
import type { LauncherScript } from './launch.ts';
import { reconcile } from './reconcile.ts';
import { TaskPoller } from './task-poller.ts';

/** How long a read credentials Secret is reused. */
const SECRET_CACHE_MS = 10_000;

/** A pino-like logger that can make children. */
export interface ControllerLogger extends ReconcileLogger {
  child(bindings: Record<string, unknown>): ReconcileLogger;
}

/** Options of {@link ClaraInstanceController}. */
export interface ControllerOptions {
  kubeConfig: k8s.KubeConfig;
  namespaces: NamespaceScope;
  config: ReconcileConfig & { workers: number; clearmlPageSize?: number };
  launcher: LauncherScript;
  events: EventSink;
  log: ControllerLogger;
  /** Passed to every ClearML client (timeouts, retry policy). */
  clearml?: Omit<ClearmlClientOptions, 'apiUrl' | 'accessKey' | 'secretKey'>;
  queueMetrics?: WorkQueueMetrics;
  /** Called after each reconcile with its outcome, for metrics. */
  onReconcile?: (outcome: 'success' | 'requeue_after' | 'error', durationMs: number) => void;
}

/**
 * Reads the launcher the tasks carry. Throws, naming the path, when it is missing: without it no
 * task could run, so the operator must not start.
 */
export function loadLauncher(path: string): LauncherScript {
  try {
    return { entryPoint: basename(path), source: readFileSync(path, 'utf8') };
  } catch (err) {
    throw new Error(
      `cannot read the launcher script ${path} (--launcher-script): ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}

/** The controller. Make it, `start()` it (when leading), `stop()` it on shutdown. */
export class ClaraInstanceController {
  readonly api: ClaraApi;
  readonly poller: TaskPoller;
  readonly queue: WorkQueue;
  readonly #instances: ReflectorGroup<ClaraObject>;
  readonly #pods: ReflectorGroup<k8s.V1Pod>;
  /** Instance UID → keys of its agent pods, kept by the pod handlers. */
  readonly #podsByOwner = new Map<string, Set<string>>();
  readonly #opts: ControllerOptions;
  readonly #clearml: ClearmlClients;
  readonly #secrets: SecretReader;
  #running: Promise<void> | undefined;
  #cacheStarted = false;
  /** Whether `start()` ran: before it, cache events only fill the cache (a standby's view). */
  #reconciling = false;

  constructor(opts: ControllerOptions) {
    this.#opts = opts;
    this.api = new ClaraApi(opts.kubeConfig);
    this.#secrets = secretReader(makeApiClient(opts.kubeConfig, k8s.CoreV1Api));
    // One tasks.get_all carries a whole poller page of ids (the client's default is smaller).
    const pageSize = opts.config.clearmlPageSize ?? MAX_PAGE_SIZE;
    this.#clearml = new ClearmlClients({ idsPerCall: pageSize, ...opts.clearml });
    this.queue = new WorkQueue({ metrics: opts.queueMetrics, maxBackoffMs: 300_000 });
    this.poller = new TaskPoller({
      intervalMs: opts.config.pollIntervalMs,
      onChange: (keys) => keys.forEach((k) => this.queue.add(k)),
      log: opts.log,
      pageSize,
    });

    this.#instances = new ReflectorGroup<ClaraObject>({
      name: 'clarainstances',
      namespaces: opts.namespaces,
      source: createApiSource<ClaraObject>({
        kubeConfig: opts.kubeConfig,
        resource: { apiVersion: API_VERSION, plural: PLURAL },
      }),
      logger: opts.log,
      handlers: {
        onAdd: (obj) => this.#enqueue(objectKey(obj)),
        onUpdate: (before, after) => {
          // Our own status writes come back as updates; only what can change a decision counts.
          if (needsReconcile(before, after)) this.#enqueue(objectKey(after));
        },
        onDelete: (obj) => this.#enqueue(objectKey(obj)),
      },
    });
    this.#pods = new ReflectorGroup<k8s.V1Pod>({
      name: 'agent-pods',
      namespaces: opts.namespaces,
      labelSelector: AGENT_POD_SELECTOR,
      source: createApiSource<k8s.V1Pod>({
        kubeConfig: opts.kubeConfig,
        resource: { apiVersion: 'v1', plural: 'pods' },
      }),
      logger: opts.log,
      handlers: {
        onAdd: (pod) => this.#onPod(pod, true),
        onUpdate: (_before, pod) => this.#onPod(pod, true),
        onDelete: (pod) => this.#onPod(pod, false),
      },
    });
  }

  /**
   * Starts the ClaraInstance cache alone, without reconciling: a standby replica calls it so
   * that its web view shows the runs as the leader's does (controller-runtime likewise starts
   * its caches before leader election). Idempotent; `start()` calls it too.
   */
  startCache(): void {
    if (this.#cacheStarted) return;
    this.#cacheStarted = true;
    this.#instances.start();
  }

  /** Whether the ClaraInstance cache has listed (a standby's readiness). */
  cacheSynced(): boolean {
    return this.#instances.hasSynced();
  }

  /** Starts watching and reconciling; resolves once the caches synced and workers run. */
  async start(): Promise<void> {
    this.#reconciling = true;
    this.startCache();
    // Instances cached while standing by had their events before reconciling began.
    for (const key of this.#instances.store.keys()) this.queue.add(key);
    this.#pods.start();
    const synced = await Promise.all([this.#instances.waitForSync(), this.#pods.waitForSync()]);
    if (!synced.every(Boolean)) return;
    const context = this.#context();
    const startedMs = performance.now();
    await this.#prime();
    this.poller.start();
    // Every cached instance is looked at once after a start; say when that is done.
    const unseen = new Set(this.#instances.store.keys());
    if (unseen.size === 0) this.#opts.log.info({ instances: 0, ms: 0 }, 'initial resync complete');
    const markSeen = (key: string) => {
      if (unseen.delete(key) && unseen.size === 0) {
        const ms = Math.round(performance.now() - startedMs);
        this.#opts.log.info(
          { instances: this.#instances.store.size, ms },
          'initial resync complete',
        );
      }
    };
    this.#running = this.queue.run({
      workers: this.#opts.config.workers,
      handler: async (key) => {
        const log = this.#opts.log.child({ key, reconcileId: randomUUID() });
        const startedMs = performance.now();
        try {
          const result = await reconcile({ ...context, log }, key);
          markSeen(key);
          this.#opts.onReconcile?.(
            result ? 'requeue_after' : 'success',
            performance.now() - startedMs,
          );
          return result;
        } catch (err) {
          this.#opts.onReconcile?.('error', performance.now() - startedMs);
          if (err instanceof ConflictError) {
            // The cache had not yet seen the object's newest write (often the operator's own):
            // expected, and the retry reads the newer version. Not worth a warning.
            log.debug(
              { err: summarize(err) },
              'object changed since it was read; reconciling again',
            );
          } else {
            log.warn({ err: summarize(err) }, 'reconcile failed; will retry with backoff');
          }
          throw err;
        }
      },
    });
    this.#opts.log.info({ workers: this.#opts.config.workers }, 'controller started');
  }

  /**
   * Reads the state of every known task in batches before the first reconcile, so a restart
   * with N instances costs ceil(N / page size) ClearML calls, not one per instance.
   */
  async #prime(): Promise<void> {
    const startedMs = performance.now();
    let primed = 0;
    for (const obj of this.#instances.store.list()) {
      const taskId = obj.status?.taskId;
      if (!taskId || obj.metadata.deletionTimestamp) continue;
      const client = await this.clientFor(obj);
      if (!client) continue;
      this.poller.track(objectKey(obj), client, taskId);
      primed += 1;
    }
    if (primed === 0) return;
    await this.poller
      .pollOnce()
      .catch((err: unknown) =>
        this.#opts.log.warn(
          { err: summarize(err) },
          'priming from ClearML failed; reconciles will read tasks one by one',
        ),
      );
    this.#opts.log.info(
      { primed, ms: Math.round(performance.now() - startedMs) },
      'task states primed from ClearML',
    );
  }

  /** Stops taking work, waits up to `timeoutMs` for running reconciles, stops the watches. */
  async stop(timeoutMs = 8_000): Promise<void> {
    const result = await this.queue.shutDown({ timeoutMs });
    await Promise.all([this.poller.stop(), this.#instances.stop(), this.#pods.stop()]);
    await this.#running;
    this.#opts.log.info(
      { drained: result.drained, unfinished: result.unfinishedKeys },
      'controller stopped',
    );
  }

  #enqueue(key: string): void {
    if (this.#reconciling) this.queue.add(key);
  }

  /** Whether both caches have synced (for /readyz). */
  hasSynced(): boolean {
    return this.#instances.hasSynced() && this.#pods.hasSynced();
  }

  /**
   * The ClearML client of an instance (from its credentials Secret), for read-only views of its
   * run; undefined when the spec is invalid or the credentials are missing. Never throws.
   */
  async clientFor(obj: ClaraObject): Promise<ClearmlClient | undefined> {
    const parsed = parseClaraInstance(obj);
    if (!parsed.ok) return undefined;
    const conn = await readConnection({
      instance: parsed.value,
      namespace: obj.metadata.namespace ?? '',
      secrets: this.#secrets,
      defaultSecret: this.#opts.config.defaultCredentialsSecret,
    }).catch(() => undefined);
    return conn === undefined || 'reason' in conn ? undefined : this.#clearml.clientFor(conn);
  }

  /** Stats of the reflectors, by reflector then namespace (`*` for all), for metrics. */
  reflectorStats(): Record<string, Record<string, ReflectorStats>> {
    return { clarainstances: this.#instances.stats(), 'agent-pods': this.#pods.stats() };
  }

  /** Every ClaraInstance in the cache (for the web view and metrics). */
  instances(): ClaraObject[] {
    return this.#instances.store.list();
  }

  #context(): Omit<ReconcileContext, 'log'> {
    const core = makeApiClient(this.#opts.kubeConfig, k8s.CoreV1Api);
    return {
      instances: { get: (key) => this.#instances.store.get(key) },
      api: this.api,
      pods: this.#agentPods(core),
      secrets: this.#secrets,
      clearml: this.#clearml,
      poller: this.poller,
      events: this.#opts.events,
      launcher: this.#opts.launcher,
      config: this.#opts.config,
      now: () => new Date(),
    };
  }

  #agentPods(core: k8s.CoreV1Api): AgentPods {
    return {
      ofInstance: (namespace, uid) =>
        [...(this.#podsByOwner.get(uid) ?? [])]
          .map((key) => this.#pods.store.get(key))
          .filter((p): p is k8s.V1Pod => p !== undefined && p.metadata?.namespace === namespace),
      create: async (namespace, pod) => {
        try {
          return await core.createNamespacedPod({
            namespace,
            body: pod,
            fieldManager: 'clara-operator',
          });
        } catch (err) {
          if (!(err instanceof k8s.ApiException && err.code === 409)) throw err;
          // Made by an earlier reconcile whose watch event has not arrived yet: the cache has it
          // soon. Read from the cache, not the API, so the operator needs no `get` on pods.
          const name = pod.metadata?.name ?? '';
          const cached = this.#pods.store.get(`${namespace}/${name}`);
          const owner = pod.metadata?.ownerReferences?.[0]?.uid;
          if (cached && cached.metadata?.ownerReferences?.some((o) => o.uid === owner))
            return cached;
          throw new Error(
            `pod ${namespace}/${name} already exists and is not (yet) this instance's agent pod ` +
              'in the cache; retrying (delete it if something else made it)',
            { cause: err },
          );
        }
      },
      delete: async (namespace, name) => {
        try {
          await core.deleteNamespacedPod({ namespace, name });
        } catch (err) {
          if (!(err instanceof k8s.ApiException && err.code === 404)) throw err;
        }
      },
    };
  }

  #onPod(pod: k8s.V1Pod, present: boolean): void {
    const owner = pod.metadata?.ownerReferences?.find((o) => o.kind === KIND && o.controller);
    if (!owner) return;
    const key = objectKey(pod);
    const keys = this.#podsByOwner.get(owner.uid) ?? new Set<string>();
    if (present) keys.add(key);
    else keys.delete(key);
    if (keys.size > 0) this.#podsByOwner.set(owner.uid, keys);
    else this.#podsByOwner.delete(owner.uid);
    this.queue.add(`${pod.metadata?.namespace}/${owner.name}`);
  }
}

/** Whether an update of a ClaraInstance can change what the reconcile does. */
function needsReconcile(before: ClaraObject, after: ClaraObject): boolean {
  return (
    before.metadata.generation !== after.metadata.generation ||
    before.metadata.deletionTimestamp !== after.metadata.deletionTimestamp ||
    JSON.stringify(before.metadata.finalizers ?? []) !==
      JSON.stringify(after.metadata.finalizers ?? [])
  );
}

/**
 * Reads Secrets through a short-lived cache: every reconcile needs its credentials, and many
 * instances share one Secret, so a resync of thousands of instances costs a few reads, not one
 * each. A changed or new Secret is seen within SECRET_CACHE_MS.
 */
function secretReader(core: k8s.CoreV1Api): SecretReader {
  const cache = new Map<string, { readAtMs: number; secret: Promise<k8s.V1Secret | undefined> }>();
  const fetchSecret = async (namespace: string, name: string) => {
    try {
      return await core.readNamespacedSecret({ namespace, name });
    } catch (err) {
      if (err instanceof k8s.ApiException && err.code === 404) return undefined;
      throw err;
    }
  };
  return {
    read: (namespace, name) => {
      const key = `${namespace}/${name}`;
      const nowMs = Date.now();
      const hit = cache.get(key);
      if (hit && nowMs - hit.readAtMs < SECRET_CACHE_MS) return hit.secret;
      if (cache.size > 1_000) {
        for (const [k, v] of cache) if (nowMs - v.readAtMs >= SECRET_CACHE_MS) cache.delete(k);
      }
      const secret = fetchSecret(namespace, name);
      cache.set(key, { readAtMs: nowMs, secret });
      // A failed read is not cached: the next reconcile tries again.
      secret.catch(() => cache.delete(key));
      return secret;
    },
  };
}

/** An error as a short loggable object: no response bodies beyond 256 characters. */
function summarize(err: unknown): Record<string, unknown> {
  if (err instanceof k8s.ApiException) {
    return { kind: 'ApiException', code: err.code, body: String(err.body).slice(0, 256) };
  }
  if (err instanceof Error) return { kind: err.name, message: err.message.slice(0, 512) };
  return { kind: typeof err };
}
