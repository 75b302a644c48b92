/**
 * The operator runs with exactly the RBAC the chart renders, and needs every rule of it.
 *
 * The chart is rendered for a release in one namespace watching another; its ServiceAccount,
 * Roles and RoleBindings are created in the test cluster, a token for the ServiceAccount comes
 * from the TokenRequest API, and the operator runs as a process with a kubeconfig holding only
 * that token, with the Deployment's own arguments (leader election on). The scenario is a run
 * and a deletion, with one suspend and resume in the middle: the resume repeats the TaskEnqueued
 * Event, which is the only way the operator patches an Event, and the suspend deletes the agent
 * pod, as the end of the run does again. With every rule, the scenario completes and the
 * operator sees no 403. Then, for each rule, the same scenario runs with that one rule removed:
 * it must stop with a 403 on the resource of that rule, within seconds of the step that needs it.
 *
 * The namespaced form of the chart (watchNamespaces) is the one run here: a ClusterRole would
 * let the operator act on other test files' instances. The ClusterRole carries the same rules
 * (test/unit/deploy/rbac.test.ts checks they are equal).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';

import { GROUP, PLURAL, VERSION } from '../../src/api/clarainstance.ts';
import type { ClaraObject } from '../../src/controller/clarainstance/clara-api.ts';
import { uidTag } from '../../src/controller/clarainstance/launch.ts';
import { startEmulator } from '../emulator/emulator.ts';
import type { RunningEmulator } from '../emulator/emulator.ts';
import {
  createTestNamespace,
  deleteTestNamespace,
  testKubeConfig,
} from '../harness/cluster-env.ts';
import { installCrd } from '../harness/crd.ts';
import { REPO_ROOT } from '../harness/go-build.ts';
import { rbacOf, renderChart, rolesOf } from '../harness/helm.ts';
import type { Manifest, PolicyRule, RoleManifest } from '../harness/helm.ts';
import {
  createCredentialsSecret,
  createDataset,
  createInstance,
  exampleInstance,
  readInstance,
} from '../harness/operator-env.ts';
import { startOperatorProcess } from '../harness/operator-process.ts';
import type { OperatorProcess } from '../harness/operator-process.ts';

const BUILD_TIMEOUT_MS = 20 * 60_000;
/** Bound on one step of the scenario with all rules (polling is every second). */
const STEP_TIMEOUT_MS = 45_000;
/** Bound on one step when a rule is missing: its 403 shows within seconds of the step. */
const STEP_TIMEOUT_MISSING_RULE_MS = 20_000;
const INSTANCE = 'rbac-run';

const kc = testKubeConfig();
let emulator: RunningEmulator;
let datasetId: string;
const cleanups: (() => Promise<void>)[] = [];
/** Every rule of the chart's RBAC, found by rendering it. */
let allRules: RuleRef[] = [];

/**
 * The rules' titles, read from deploy/base before any test runs (test.each needs them then);
 * the first test of 'without any one rule' checks the chart renders exactly these.
 */
const BASE_RULES: string[] = parseAllDocuments(
  readFileSync(join(REPO_ROOT, 'deploy/base/rbac.yaml'), 'utf8'),
)
  .map((doc) => doc.toJS() as Manifest | null)
  .flatMap((m) =>
    m && (m.kind === 'ClusterRole' || m.kind === 'Role')
      ? (m as RoleManifest).rules.map((rule, index) =>
          describeRule({
            role: m.kind === 'Role' ? 'release namespace' : 'watched namespace',
            index,
            rule,
          }),
        )
      : [],
  );

beforeAll(async () => {
  await installCrd(kc);
  emulator = await startEmulator({ port: 0, filesPort: 0 });
  datasetId = createDataset(emulator);
  // Rendering here also makes a cold helm build happen outside any test's time budget.
  const { rbac } = await renderRelease('rbac-release', 'rbac-watched');
  allRules = rulesOf(rbac, 'rbac-release');
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  await emulator?.stop();
});

/** One rule of the rendered RBAC: which role holds it, where, and the rule. */
interface RuleRef {
  role: 'watched namespace' | 'release namespace';
  index: number;
  rule: PolicyRule;
}

/** Short name of a rule for test titles: `pods: create`. */
function describeRule(ref: RuleRef): string {
  const names = ref.rule.resourceNames ? ` (${ref.rule.resourceNames.join(',')})` : '';
  return `${ref.role}: ${ref.rule.resources?.join(',')}${names} ${ref.rule.verbs.join(',')}`;
}

/** The release rendered for `release` (the operator's namespace) watching `watched`. */
async function renderRelease(release: string, watched: string) {
  const manifests = await renderChart({
    release: 'clara-operator',
    namespace: release,
    set: { 'watchNamespaces[0]': watched },
  });
  const deployment = manifests.find((m) => m.kind === 'Deployment') as Manifest & {
    spec: { template: { spec: { containers: { args: string[] }[] } } };
  };
  return { rbac: rbacOf(manifests), args: deployment.spec.template.spec.containers[0]!.args };
}

/** The rules of the rendered RBAC, in order: the watched namespace's Role, then the Lease's. */
function rulesOf(rbac: Manifest[], release: string): RuleRef[] {
  return rolesOf(rbac).flatMap((role) =>
    role.rules.map((rule, index) => ({
      role:
        role.metadata.namespace === release
          ? ('release namespace' as const)
          : ('watched namespace' as const),
      index,
      rule,
    })),
  );
}

/** Creates `objects`, leaving out rule `without` of its role. */
async function createRbac(objects: Manifest[], release: string, without?: RuleRef) {
  const api = k8s.KubernetesObjectApi.makeApiClient(kc);
  for (const object of objects) {
    let body = object as k8s.KubernetesObject;
    if (without && (object.kind === 'Role' || object.kind === 'ClusterRole')) {
      const role = object as RoleManifest;
      const where = role.metadata.namespace === release ? 'release namespace' : 'watched namespace';
      if (where === without.role) {
        body = { ...role, rules: role.rules.filter((_, i) => i !== without.index) } as never;
      }
    }
    await api.create(body);
  }
}

/** A kubeconfig that authenticates as `serviceAccount` with a fresh bound token, and only so. */
async function serviceAccountKubeconfig(namespace: string, serviceAccount: string) {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const request = await core.createNamespacedServiceAccountToken({
    namespace,
    name: serviceAccount,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('the test kubeconfig has no cluster');
  const scoped = new k8s.KubeConfig();
  scoped.loadFromOptions({
    clusters: [{ ...cluster, name: 'test' }],
    users: [{ name: serviceAccount, token: request.status?.token }],
    contexts: [{ name: 'operator', cluster: 'test', user: serviceAccount }],
    currentContext: 'operator',
  });
  const dir = mkdtempSync(join(tmpdir(), 'clara-rbac-'));
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'kubeconfig');
  writeFileSync(path, scoped.exportConfig(), { mode: 0o600 });
  return path;
}

/** How far the scenario got. */
interface ScenarioResult {
  completed: boolean;
  /** The step that did not happen, when not completed. */
  failedStep?: string;
  /** Operator log lines that report an HTTP 403 from the apiserver. */
  forbidden: Record<string, unknown>[];
  /** UID of the instance, once created. */
  uid?: string;
}

function forbiddenLines(operator: OperatorProcess): Record<string, unknown>[] {
  return operator.logLines().filter((l) => {
    const line = l as Record<string, unknown>;
    const err = line.err as { code?: number } | undefined;
    return line.status === 403 || line.code === 403 || err?.code === 403;
  });
}

class StepFailed extends Error {}

/**
 * Runs a run and a deletion against `operator` watching `namespace`; stops at the first step
 * that does not happen within `stepTimeoutMs`, or as soon as the operator logs a 403.
 */
async function runScenario(opts: {
  operator: OperatorProcess;
  namespace: string;
  queue: string;
  stepTimeoutMs: number;
}): Promise<ScenarioResult> {
  const { operator, namespace } = opts;
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  const events = kc.makeApiClient(k8s.EventsV1Api);

  const step = async (what: string, check: () => Promise<boolean>) => {
    const deadline = Date.now() + opts.stepTimeoutMs;
    for (;;) {
      if (forbiddenLines(operator).length > 0) throw new StepFailed(what);
      if (await check().catch(() => false)) return;
      if (Date.now() > deadline) throw new StepFailed(what);
      await new Promise((r) => setTimeout(r, 250));
    }
  };
  const phase = async () => (await readInstance(kc, namespace, INSTANCE))?.status?.phase;
  const agentPods = async () =>
    (
      await core.listNamespacedPod({
        namespace,
        labelSelector: 'app.kubernetes.io/managed-by=clara-operator',
      })
    ).items.filter((p) => !p.metadata?.deletionTimestamp);
  const setSuspend = (suspend: boolean) =>
    custom.patchNamespacedCustomObject(
      {
        group: GROUP,
        version: VERSION,
        namespace,
        plural: PLURAL,
        name: INSTANCE,
        body: { spec: { suspend } },
      },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );

  try {
    const instance = exampleInstance('spleen-ct-segmentation.yaml');
    instance.metadata = { name: INSTANCE };
    instance.spec = {
      ...(instance.spec as Record<string, unknown>),
      datasetTask: datasetId,
      queue: opts.queue,
      createQueue: true,
    };
    let created: ClaraObject | undefined;
    await step('the instance is created', async () => {
      created = await createInstance(kc, namespace, instance);
      return true;
    });
    await step(
      'the run is Queued with its agent pod',
      async () => (await phase()) === 'Queued' && (await agentPods()).length === 1,
    );
    await setSuspend(true);
    await step(
      'the suspended run has no agent pod',
      async () => (await phase()) === 'Suspended' && (await agentPods()).length === 0,
    );
    await setSuspend(false);
    await step(
      'the resumed run is Queued with a new agent pod',
      async () => (await phase()) === 'Queued' && (await agentPods()).length === 1,
    );
    emulator.startWorker({ queues: [opts.queue], behaviour: { iterations: 3, iterationMs: 100 } });
    await step(
      'the run is Completed and its lingering agent pod deleted',
      async () => (await phase()) === 'Completed' && (await agentPods()).length === 0,
    );
    await step('the Events of the run are recorded, the repeated one folded', async () => {
      const list = await events.listNamespacedEvent({ namespace });
      const mine = list.items.filter((e) => e.regarding?.uid === created?.metadata.uid);
      const reasons = new Set(mine.map((e) => e.reason));
      const folded = mine.some((e) => e.reason === 'TaskEnqueued' && (e.series?.count ?? 0) >= 2);
      return ['TaskCreated', 'AgentPodCreated', 'Completed'].every((r) => reasons.has(r)) && folded;
    });
    await custom.deleteNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: PLURAL,
      name: INSTANCE,
    });
    await step(
      'the deletion completes (finalizer removed)',
      async () => (await readInstance(kc, namespace, INSTANCE)) === undefined,
    );
    return { completed: true, forbidden: forbiddenLines(operator), uid: created?.metadata.uid };
  } catch (err) {
    if (!(err instanceof StepFailed)) throw err;
    return { completed: false, failedStep: err.message, forbidden: forbiddenLines(operator) };
  }
}

/** Namespaces, RBAC without `without`, and the operator running as the ServiceAccount. */
async function deploy(name: string, without?: RuleRef) {
  const release = await createTestNamespace(kc, `rbac-op-${name}`);
  const watched = await createTestNamespace(kc, `rbac-${name}`);
  cleanups.push(async () => {
    await deleteTestNamespace(kc, release);
    await removeFinalizers(watched);
    await deleteTestNamespace(kc, watched);
  });
  await createCredentialsSecret(kc, {
    namespace: watched,
    name: 'clearml-credentials',
    emulator,
  });
  const { rbac, args } = await renderRelease(release, watched);
  await createRbac(rbac, release, without);
  const [serviceAccount] = rbac.filter((m) => m.kind === 'ServiceAccount');
  const kubeconfig = await serviceAccountKubeconfig(release, serviceAccount!.metadata.name);
  // The Deployment's own arguments, but ports from the harness (tests run side by side), the
  // Lease namespace that POD_NAMESPACE would give in a pod, and a 1 s poll (the last flag wins)
  // so the run's phases show within the step bounds.
  const operator = await startOperatorProcess({
    kubeconfig,
    name: `rbac-${name}`,
    args: [
      ...args.filter((a) => !/^--(metrics|health|web)-address=/.test(a)),
      `--leader-election-namespace=${release}`,
      '--poll-interval=1s',
    ],
  });
  cleanups.push(() => operator.kill());
  return { release, watched, rbac, operator };
}

async function removeFinalizers(namespace: string): Promise<void> {
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  const obj = await readInstance(kc, namespace, INSTANCE);
  if (!obj?.metadata.finalizers?.length) return;
  await custom.patchNamespacedCustomObject(
    {
      group: GROUP,
      version: VERSION,
      namespace,
      plural: PLURAL,
      name: INSTANCE,
      body: [{ op: 'remove', path: '/metadata/finalizers' }],
    },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch),
  );
}

describe("the operator with exactly the chart's RBAC", () => {
  test(
    'completes a run and a deletion without a single 403',
    async () => {
      const { operator, watched, rbac, release } = await deploy('all');
      expect(rulesOf(rbac, release)).toEqual(allRules);

      const result = await runScenario({
        operator,
        namespace: watched,
        queue: 'q-rbac-all',
        stepTimeoutMs: STEP_TIMEOUT_MS,
      }).finally(() => operator.kill());
      expect(result).toEqual({ completed: true, forbidden: [], uid: expect.any(String) });
      // The deletion archived the run's task (deletionPolicy Archive), then let the instance go.
      const tasks = [...emulator.state.tasks.values()].filter((t) =>
        ((t.system_tags as string[] | undefined) ?? []).includes(uidTag(result.uid!)),
      );
      expect(tasks.map((t) => t.system_tags)).toEqual([expect.arrayContaining(['archived'])]);
    },
    7 * STEP_TIMEOUT_MS + 30_000,
  );
});

describe('without any one rule', () => {
  test('the chart renders the rules of deploy/base, which name these tests', () => {
    expect(allRules.map(describeRule)).toEqual(BASE_RULES);
  });

  test.each(BASE_RULES.map((title, position) => ({ title, position })))(
    'without "$title" the scenario stops at a 403 on that resource',
    async ({ position }) => {
      const rule = allRules[position]!;
      const { operator, watched } = await deploy(`r${position}`, rule);
      const result = await runScenario({
        operator,
        namespace: watched,
        queue: `q-rbac-r${position}`,
        stepTimeoutMs: STEP_TIMEOUT_MISSING_RULE_MS,
      }).finally(() => operator.kill());
      // Each 403 line names the resource of the missing rule (a reflector names its kind, an
      // API error body the resource), so no other rule is missing too.
      const resource = rule.rule.resources![0]!;
      const lines = result.forbidden.map((l) => JSON.stringify(l));
      const detail = `failed at "${result.failedStep}"; 403s: ${lines.join('\n').slice(0, 2000)}`;
      expect({ detail, completed: result.completed }).toEqual({ detail, completed: false });
      expect({ detail, count: lines.length > 0 }).toEqual({ detail, count: true });
      expect({ detail, others: lines.filter((l) => !l.includes(resource)) }).toEqual({
        detail,
        others: [],
      });
    },
    7 * STEP_TIMEOUT_MISSING_RULE_MS + 30_000,
  );
});
