/**
 * What a run of a ClaraInstance is made of: the ClearML task the operator creates for it (name,
 * project, hyperparameters, launcher script, image, tags) and the fingerprint of the spec fields
 * that define it. Pure functions of the resource; no I/O.
 *
 * The tags are how the operator finds its own tasks again: a system tag with the resource's UID
 * (one per resource, so a crash between creating the task and writing its id to status never
 * makes a second task) and one with the launch fingerprint (so a changed spec is noticed even
 * after a restart, without keeping anything in status).
 */
import { createHash } from 'node:crypto';

import type { ClaraInstance } from '../../api/clarainstance.ts';
import type { ClaraInstanceSpec, MmarSource } from '../../api/clarainstance-spec.ts';
import type { CreateTaskRequest, ParamItem } from '../../clearml/index.ts';

/** Hyperparameter section the launcher reads its arguments from (argparse's section). */
export const ARGS_SECTION = 'Args';

const UID_TAG_PREFIX = 'clara-operator.io/uid=';
const LAUNCH_TAG_PREFIX = 'clara-operator.io/launch=';

/** Default training images per runtime, used when `agent.image` is not set. */
export const DEFAULT_IMAGES: Record<ClaraInstanceSpec['runtime'], string> = {
  ClaraTrain: 'nvcr.io/nvidia/clara-train-sdk:v4.1',
  MonaiBundle: 'projectmonai/monai:1.3.0',
};

/** Default environment file of a Clara MMAR (`../shared/reference/clara-mmar.md`). */
export const DEFAULT_ENVIRONMENT_FILE = 'config/environment.json';

/** The launcher as the task stores it: the script text and its file name. */
export interface LauncherScript {
  /** File name the agent writes the script to and runs, e.g. `clara_launcher.py`. */
  entryPoint: string;
  /** The whole script. */
  source: string;
}

/** The system tag that marks the task of the resource with this UID. */
export function uidTag(uid: string): string {
  return `${UID_TAG_PREFIX}${uid}`;
}

/** The launch fingerprint a task was created with, read back from its system tags. */
export function launchFingerprintOf(systemTags: readonly string[] | undefined): string | undefined {
  return systemTags?.find((t) => t.startsWith(LAUNCH_TAG_PREFIX))?.slice(LAUNCH_TAG_PREFIX.length);
}

/** Name of the ClearML task: `spec.taskName`, or the resource's name. */
export function taskNameOf(instance: ClaraInstance): string {
  return instance.spec.taskName ?? instance.metadata.name ?? 'clara-run';
}

/** The image the run trains in: `agent.image`, or the runtime's default. */
export function imageOf(spec: ClaraInstanceSpec): string {
  return spec.agent.image ?? DEFAULT_IMAGES[spec.runtime];
}

/** GPUs the run asks for: `agent.gpus`, default 1. */
export function gpusOf(spec: ClaraInstanceSpec): number {
  return spec.agent.gpus ?? 1;
}

/**
 * The fields that define a run. A change to any of them starts a new run; `agent` (where the
 * run executes), `suspend`, `deletionPolicy` and the credentials Secret do not.
 */
function launchFields(instance: ClaraInstance): unknown {
  const { spec } = instance;
  return {
    taskName: taskNameOf(instance),
    project: spec.project,
    runtime: spec.runtime,
    datasetTask: spec.datasetTask,
    trainingArch: spec.trainingArch,
    configFile: spec.configFile,
    environmentFile: spec.environmentFile,
    mmar: spec.mmar,
    set: spec.set,
    queue: spec.queue,
    outputUri: spec.clearml?.outputUri,
  };
}

/** A short digest of the launch fields; equal specs give equal fingerprints. */
export function launchFingerprint(instance: ClaraInstance): string {
  return createHash('sha256')
    .update(stableJson(launchFields(instance)))
    .digest('hex')
    .slice(0, 16);
}

/** JSON with object keys sorted, so the fingerprint does not depend on key order. */
function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The MMAR source as the launcher's `mmar` argument: `<kind>:<value>`. */
export function mmarArgument(mmar: MmarSource): string {
  if (mmar.path !== undefined) return `path:${mmar.path}`;
  if (mmar.ngc !== undefined) return `ngc:${mmar.ngc}`;
  if (mmar.url !== undefined) return `url:${mmar.url}`;
  if (mmar.artifact !== undefined) return `artifact:${mmar.artifact.task}/${mmar.artifact.name}`;
  if (mmar.dataset !== undefined) return `dataset:${mmar.dataset}`;
  if (mmar.bundle !== undefined) return `bundle:${mmar.bundle}`;
  // The CRD and the zod schema both require exactly one source.
  throw new Error('mmar has no source');
}

/**
 * The launcher's arguments, as the form's fields were: all values are strings (ClearML stores
 * hyperparameters as text); `set` is the YAML list form argparse's `nargs='*'` reads back.
 */
export function hyperparameters(instance: ClaraInstance): Record<string, ParamItem> {
  const { spec } = instance;
  const args: Record<string, string> = {
    runtime: spec.runtime,
    dataset_task: spec.datasetTask,
    mmar: mmarArgument(spec.mmar),
    training_arch: spec.trainingArch ?? '',
    config_file: spec.configFile ?? '',
    environment_file:
      spec.runtime === 'ClaraTrain' ? (spec.environmentFile ?? DEFAULT_ENVIRONMENT_FILE) : '',
    set: yamlList(Object.entries(spec.set ?? {}).map(([k, v]) => `${k}=${v}`)),
    gpus: String(gpusOf(spec)),
  };
  return Object.fromEntries(
    Object.entries(args).map(([name, value]) => [
      name,
      { section: ARGS_SECTION, name, value, type: 'str' },
    ]),
  );
}

/** A list of strings in YAML flow form with single-quoted items (`['a=1', 'b=2']`). */
function yamlList(items: string[]): string {
  return `[${items.map((i) => `'${i.replaceAll("'", "''")}'`).join(', ')}]`;
}

/**
 * The `tasks.create` body of a run. The launcher is stored in `script.diff` with no repository,
 * so clearml-agent writes it to `entry_point` and runs it: no git access is needed at run time
 * (`../shared/reference/clearml-api.md` §3.3).
 */
export function taskRequest(opts: {
  instance: ClaraInstance;
  /** metadata.uid of the resource. */
  uid: string;
  projectId: string;
  launcher: LauncherScript;
}): CreateTaskRequest {
  const { instance, uid, projectId, launcher } = opts;
  const { namespace = '', name = '' } = instance.metadata;
  const request: CreateTaskRequest = {
    name: taskNameOf(instance),
    type: 'training',
    project: projectId,
    comment: `Created by clara-operator for ClaraInstance ${namespace}/${name}`,
    tags: ['clara-operator', instance.spec.runtime],
    system_tags: [uidTag(uid), `${LAUNCH_TAG_PREFIX}${launchFingerprint(instance)}`],
    script: {
      binary: 'python3',
      entry_point: launcher.entryPoint,
      working_dir: '.',
      diff: launcher.source,
      // The launcher imports the clearml SDK. An agent that builds a virtualenv for the task
      // (External mode) installs it from here; the operator's agent pod uses the image's Python
      // as it is (CLEARML_AGENT_SKIP_PYTHON_ENV_INSTALL) and ignores it.
      requirements: { pip: 'clearml\n' },
    },
    container: { image: imageOf(instance.spec) },
    hyperparams: { [ARGS_SECTION]: hyperparameters(instance) },
  };
  if (instance.spec.clearml?.outputUri) request.output_dest = instance.spec.clearml.outputUri;
  return request;
}
