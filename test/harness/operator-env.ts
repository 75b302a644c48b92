/**
 * An operator under test: the ClaraInstance controller run in-process against the test cluster
 * and a ClearML emulator with a simulated worker, plus helpers to make the objects a run needs
 * (a finalized dataset in ClearML, a credentials Secret, an instance from `examples/`).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import * as k8s from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';

import { API_VERSION, GROUP, PLURAL, VERSION } from '../../src/api/clarainstance.ts';
import { httpStatusOf } from '../../src/k8s/index.ts';
import type { ClaraObject } from '../../src/controller/clarainstance/clara-api.ts';
import type { EventNote, EventSink } from '../../src/controller/clarainstance/context.ts';
import { ClaraInstanceController } from '../../src/controller/clarainstance/controller.ts';
import type {
  ControllerLogger,
  ControllerOptions,
} from '../../src/controller/clarainstance/controller.ts';
import type { ClearmlRequestObservation } from '../../src/clearml/index.ts';
import type { ReconcileLogger } from '../../src/controller/clarainstance/context.ts';
import { startEmulator } from '../emulator/emulator.ts';
import type { RunningEmulator } from '../emulator/emulator.ts';
import { waitFor } from './cluster-env.ts';
import { REPO_ROOT } from './go-build.ts';

/** A launcher for tests: the simulated worker never runs it, the task only stores it. */
export const TEST_LAUNCHER = { entryPoint: 'clara_launcher.py', source: '# launcher under test\n' };

/** A logger that keeps lines in memory, so tests can assert on decisions. */
export class MemoryLogger implements ControllerLogger {
  readonly lines: { level: string; msg: string; fields: Record<string, unknown> }[] = [];
  readonly #bindings: Record<string, unknown>;

  constructor(bindings: Record<string, unknown> = {}, lines?: MemoryLogger['lines']) {
    this.#bindings = bindings;
    if (lines) this.lines = lines;
  }

  child(bindings: Record<string, unknown>): ReconcileLogger {
    return new MemoryLogger({ ...this.#bindings, ...bindings }, this.lines);
  }

  debug(fields: Record<string, unknown>, msg: string): void {
    this.#push('debug', fields, msg);
  }
  info(fields: Record<string, unknown>, msg: string): void {
    this.#push('info', fields, msg);
  }
  warn(fields: Record<string, unknown>, msg: string): void {
    this.#push('warn', fields, msg);
  }
  error(fields: Record<string, unknown>, msg: string): void {
    this.#push('error', fields, msg);
  }

  #push(level: string, fields: Record<string, unknown>, msg: string): void {
    this.lines.push({ level, msg, fields: { ...this.#bindings, ...fields } });
  }
}

/** Events recorded in memory. */
export class MemoryEvents implements EventSink {
  readonly events: (EventNote & { name: string })[] = [];
  record(obj: ClaraObject, event: EventNote): void {
    this.events.push({ ...event, name: obj.metadata.name ?? '' });
  }
}

/** A running operator and emulator for one test file. */
export interface OperatorEnv {
  emulator: RunningEmulator;
  controller: ClaraInstanceController;
  log: MemoryLogger;
  events: MemoryEvents;
  stop(): Promise<void>;
}

/** Metric hooks a test may give the controller (as `src/main.ts` passes src/metrics' ones). */
export type OperatorHooks = Pick<ControllerOptions, 'queueMetrics' | 'onReconcile'> & {
  onClearmlRequest?: (request: ClearmlRequestObservation) => void;
};

/** Starts an emulator and a controller watching `namespaces`. */
export async function startOperator(opts: {
  kc: k8s.KubeConfig;
  namespaces: string[];
  pollIntervalMs?: number;
  hooks?: OperatorHooks;
  /** An emulator to use (and leave running at stop), e.g. to restart the operator against it. */
  emulator?: RunningEmulator;
}): Promise<OperatorEnv> {
  const emulator = opts.emulator ?? (await startEmulator({ port: 0, filesPort: 0 }));
  const log = new MemoryLogger();
  const events = new MemoryEvents();
  const controller = new ClaraInstanceController({
    kubeConfig: opts.kc,
    namespaces: opts.namespaces,
    config: {
      pollIntervalMs: opts.pollIntervalMs ?? 300,
      workers: 4,
      defaultCredentialsSecret: undefined,
    },
    launcher: TEST_LAUNCHER,
    events,
    log,
    clearml: {
      retry: { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 50 },
      requestTimeoutMs: 2_000,
      onRequest: opts.hooks?.onClearmlRequest,
    },
    queueMetrics: opts.hooks?.queueMetrics,
    onReconcile: opts.hooks?.onReconcile,
  });
  await controller.start();
  return {
    emulator,
    controller,
    log,
    events,
    stop: async () => {
      await controller.stop(2_000);
      if (!opts.emulator) await emulator.stop();
    },
  };
}

/**
 * Creates a finalized ClearML Dataset in the emulator and returns its id; with `id`, the dataset
 * gets that id (so a manifest naming it, such as an example, applies unchanged).
 */
export function createDataset(
  emulator: RunningEmulator,
  name = 'spleen-decathlon',
  id?: string,
): string {
  const created = (
    emulator.dispatch('tasks.create', {
      name,
      type: 'data_processing',
      system_tags: ['dataset'],
    }) as { id: string }
  ).id;
  emulator.dispatch('tasks.started', { task: created, force: true });
  emulator.dispatch('tasks.completed', { task: created, force: true });
  if (id === undefined || id === created) return created;
  const doc = emulator.state.tasks.get(created);
  if (!doc) throw new Error(`dataset ${created} vanished from the emulator`);
  emulator.state.tasks.delete(created);
  emulator.state.tasks.set(id, { ...doc, id });
  return id;
}

/**
 * Points `namespace`/`name` at the emulator for a hand-run or demo: creates the namespace when
 * missing and replaces a Secret of that name left from an earlier emulator.
 */
export async function replaceCredentialsSecret(
  kc: k8s.KubeConfig,
  opts: { namespace: string; name: string; emulator: RunningEmulator },
): Promise<void> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  await core
    .createNamespace({ body: { metadata: { name: opts.namespace } } })
    .catch((err: unknown) => {
      if (httpStatusOf(err) !== 409) throw err;
    });
  await core
    .deleteNamespacedSecret({ namespace: opts.namespace, name: opts.name })
    .catch((err: unknown) => {
      if (httpStatusOf(err) !== 404) throw err;
    });
  await createCredentialsSecret(kc, opts);
}

/** Creates the credentials Secret for the emulator in `namespace`. */
export async function createCredentialsSecret(
  kc: k8s.KubeConfig,
  opts: { namespace: string; name: string; emulator: RunningEmulator; secretKey?: string },
): Promise<void> {
  const { emulator } = opts;
  await kc.makeApiClient(k8s.CoreV1Api).createNamespacedSecret({
    namespace: opts.namespace,
    body: {
      metadata: { name: opts.name },
      stringData: {
        CLEARML_API_HOST: emulator.apiUrl,
        CLEARML_WEB_HOST: emulator.url,
        CLEARML_FILES_HOST: emulator.filesUrl,
        CLEARML_API_ACCESS_KEY: emulator.credentials.accessKey,
        CLEARML_API_SECRET_KEY: opts.secretKey ?? emulator.credentials.secretKey,
      },
    },
  });
}

/** The ClaraInstance of an `examples/` file (the first document of that kind in it). */
export function exampleInstance(file: string): ClaraObject {
  const docs = readFileSync(join(REPO_ROOT, 'examples', file), 'utf8')
    .split(/^---$/m)
    .map((d) => parseYaml(d) as ClaraObject | null);
  const instance = docs.find((d) => d?.kind === 'ClaraInstance');
  if (!instance) throw new Error(`no ClaraInstance in examples/${file}`);
  return instance;
}

/** Creates a ClaraInstance and returns it as stored. */
export async function createInstance(
  kc: k8s.KubeConfig,
  namespace: string,
  obj: ClaraObject,
): Promise<ClaraObject> {
  return (await kc.makeApiClient(k8s.CustomObjectsApi).createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace,
    plural: PLURAL,
    body: { ...obj, apiVersion: API_VERSION, metadata: { ...obj.metadata, namespace } },
  })) as ClaraObject;
}

/** Reads a ClaraInstance; undefined once it is gone. */
export async function readInstance(
  kc: k8s.KubeConfig,
  namespace: string,
  name: string,
): Promise<ClaraObject | undefined> {
  try {
    return (await kc.makeApiClient(k8s.CustomObjectsApi).getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: PLURAL,
      name,
    })) as ClaraObject;
  } catch (err) {
    if (err instanceof k8s.ApiException && err.code === 404) return undefined;
    throw err;
  }
}

/** Waits until the instance's status satisfies `check`, and returns the instance. */
export async function waitForStatus(
  kc: k8s.KubeConfig,
  opts: { namespace: string; name: string; what: string; timeoutMs?: number },
  check: (obj: ClaraObject) => boolean,
): Promise<ClaraObject> {
  let last: ClaraObject | undefined;
  try {
    return await waitFor(
      async () => {
        last = await readInstance(kc, opts.namespace, opts.name);
        return last && check(last) ? last : undefined;
      },
      { what: `${opts.namespace}/${opts.name}: ${opts.what}`, timeoutMs: opts.timeoutMs ?? 30_000 },
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last status: ${JSON.stringify(last?.status)}`, {
      cause: err,
    });
  }
}
