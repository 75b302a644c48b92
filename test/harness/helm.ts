/**
 * What the deploy tests use to look at the chart and the kustomize manifests: the pinned helm
 * (built by go-build.ts), kubectl's kustomize, and YAML documents out of both.
 *
 * helm runs with its cache, config and data under `.cache/helm-home` of the repository, so a
 * test never reads or writes the user's repositories and plugins. Nothing here needs a cluster except `helm`
 * calls given a kubeconfig.
 */
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { parseAllDocuments } from 'yaml';

import { ensureControlPlaneBinary, ensureHelmBinary, REPO_ROOT } from './go-build.ts';

/** The chart under test. */
export const CHART_DIR = join(REPO_ROOT, 'charts', 'clara-operator');

/** The kustomize base. */
export const KUSTOMIZE_BASE = join(REPO_ROOT, 'deploy', 'base');

/** A Kubernetes object as parsed from YAML. */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

/** Exit code and output of a command; commands never reject for a non-zero exit. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** helm's home for the tests (its cache, config and data); local charts leave it empty. */
const HELM_HOME = join(REPO_ROOT, '.cache', 'helm-home');

/**
 * Runs the pinned helm with `args` (no shell). With `kubeconfig`, it talks to that cluster.
 * Builds helm first if needed (minutes when cold; progress goes to stderr).
 */
export async function helm(
  args: string[],
  opts: { kubeconfig?: string; timeoutMs?: number } = {},
): Promise<CommandResult> {
  const binary = await ensureHelmBinary();
  mkdirSync(HELM_HOME, { recursive: true });
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: HELM_HOME,
    HELM_CACHE_HOME: join(HELM_HOME, 'cache'),
    HELM_CONFIG_HOME: join(HELM_HOME, 'config'),
    HELM_DATA_HOME: join(HELM_HOME, 'data'),
  };
  if (opts.kubeconfig) env.KUBECONFIG = opts.kubeconfig;
  return run(binary, args, { env, timeoutMs: opts.timeoutMs ?? 120_000 });
}

/**
 * Options of {@link renderChart}: `--set` pairs, `--set-json` pairs (for what `--set` cannot
 * say, such as an empty list or a number from a values file), and the release's name and
 * namespace.
 */
export interface RenderOptions {
  release?: string;
  namespace?: string;
  set?: Record<string, string>;
  setJson?: Record<string, unknown>;
}

/** `--set key=value` arguments for `set`. */
export function setArgs(set: Record<string, string> = {}): string[] {
  return Object.entries(set).flatMap(([key, value]) => ['--set', `${key}=${value}`]);
}

/** `--set-json key=<value as JSON>` arguments for `setJson`. */
export function setJsonArgs(setJson: Record<string, unknown> = {}): string[] {
  return Object.entries(setJson).flatMap(([key, value]) => [
    '--set-json',
    `${key}=${JSON.stringify(value)}`,
  ]);
}

/**
 * `helm template` of the chart; resolves with the rendered text. Throws with helm's stderr when
 * it refuses (a schema violation, a `fail` in a template).
 */
export async function renderChartText(opts: RenderOptions = {}): Promise<string> {
  const result = await helm([
    'template',
    opts.release ?? 'clara-operator',
    CHART_DIR,
    '--namespace',
    opts.namespace ?? 'clara-operator',
    ...setArgs(opts.set),
    ...setJsonArgs(opts.setJson),
  ]);
  if (result.code !== 0) throw new Error(`helm template failed: ${result.stderr.trim()}`);
  return result.stdout;
}

/** `helm template` of the chart, as objects. */
export async function renderChart(opts: RenderOptions = {}): Promise<Manifest[]> {
  return parseManifests(await renderChartText(opts));
}

/**
 * `kubectl kustomize dir`, as objects. Uses the test cluster's kubectl when the integration
 * setup published one, else the control plane's own (built if needed; same release).
 */
export async function kustomize(dir: string): Promise<Manifest[]> {
  const fromSetup = process.env.CLARA_TEST_KUBECTL;
  const [binary, prefix] = fromSetup
    ? [fromSetup, []]
    : [await ensureControlPlaneBinary(), ['kubectl']];
  const result = await run(binary, [...prefix, 'kustomize', dir], {
    env: process.env,
    timeoutMs: 60_000,
  });
  if (result.code !== 0) throw new Error(`kubectl kustomize ${dir}: ${result.stderr.trim()}`);
  return parseManifests(result.stdout);
}

/** Every non-empty YAML document of `text`. Throws on a YAML error. */
export function parseManifests(text: string): Manifest[] {
  return parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`bad YAML: ${doc.errors[0]!.message}`);
      return doc.toJS() as Manifest | null;
    })
    .filter((m): m is Manifest => m !== null);
}

function run(
  binary: string,
  args: string[],
  opts: { env: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, {
      env: opts.env,
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: opts.timeoutMs,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** One RBAC PolicyRule. */
export interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  verbs: string[];
}

/** A Role or ClusterRole. */
export interface RoleManifest extends Manifest {
  kind: 'Role' | 'ClusterRole';
  rules: PolicyRule[];
}

/** The Roles and ClusterRoles among `manifests`. */
export function rolesOf(manifests: Manifest[]): RoleManifest[] {
  return manifests.filter((m): m is RoleManifest => m.kind === 'Role' || m.kind === 'ClusterRole');
}

/** The RBAC objects and the ServiceAccount among `manifests`: what the operator is granted. */
export function rbacOf(manifests: Manifest[]): Manifest[] {
  const kinds = ['ServiceAccount', 'Role', 'ClusterRole', 'RoleBinding', 'ClusterRoleBinding'];
  return manifests.filter((m) => kinds.includes(m.kind));
}
