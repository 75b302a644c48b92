/**
 * deploy/ against the test control plane: `kubectl apply -k deploy/base`, exactly as
 * docs/install.md says, is accepted without a warning (its namespace enforces the restricted Pod
 * Security Standard on the operator's own pods), the Deployment's two replicas become available
 * (kwok plays the kubelet), the monitoring overlay adds its ServiceMonitor and changes nothing
 * else, and removing it all leaves only the CRD behind.
 *
 * NB: the base names its namespace and its cluster-wide objects `clara-operator`. No other test
 * uses those names (deploy-helm's and deploy-rbac's namespaces carry random suffixes, and their
 * cluster-wide objects their release's name), and this test refuses to start when they exist
 * rather than take over an install. The CRD is never deleted: tests running beside this one use
 * it.
 *
 * The cluster has no Prometheus Operator, so unless it already serves ServiceMonitors the test
 * installs a stand-in CRD with a schema for the fields the component sets, strictly validated,
 * and deletes it at the end.
 */
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';

import { kubectl, testKubeConfig, waitFor } from '../harness/cluster-env.ts';
import { REPO_ROOT } from '../harness/go-build.ts';
import { KUSTOMIZE_BASE, kustomize } from '../harness/helm.ts';
import type { Manifest } from '../harness/helm.ts';

const BUILD_TIMEOUT_MS = 20 * 60_000;
const AVAILABLE_TIMEOUT_MS = 120_000;
const REMOVAL_TIMEOUT_MS = 120_000;

const MONITORING_OVERLAY = join(REPO_ROOT, 'deploy', 'overlays', 'monitoring');
const NAMESPACE = 'clara-operator';
const SERVICE_MONITORS = 'servicemonitors.monitoring.coreos.com';
const STAND_IN_LABEL = { 'clara-operator.io/test': 'servicemonitor-stand-in' };

const kc = testKubeConfig();
const core = kc.makeApiClient(k8s.CoreV1Api);
const apps = kc.makeApiClient(k8s.AppsV1Api);
const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
const extensions = kc.makeApiClient(k8s.ApiextensionsV1Api);

/** What the monitoring overlay builds to (the base's objects and the ServiceMonitor). */
let overlay: Manifest[];
/** Whether the base was applied (not when the names were taken), and so must be removed. */
let applied = false;
/** Whether this test made the ServiceMonitor CRD, and so must delete it. */
let madeStandIn = false;

beforeAll(async () => {
  overlay = await kustomize(MONITORING_OVERLAY);
  const taken = [
    await core.readNamespace({ name: NAMESPACE }).then(() => `namespace ${NAMESPACE}`, absent),
    await rbac
      .readClusterRole({ name: 'clara-operator' })
      .then(() => 'ClusterRole clara-operator', absent),
  ].filter((name) => name !== undefined);
  if (taken.length > 0) {
    throw new Error(
      `${taken.join(' and ')} ${taken.length > 1 ? 'exist' : 'exists'} in the test cluster: ` +
        'this test applies deploy/base as it is and would take them over; remove them (not ' +
        'the CRD) or use another cluster',
    );
  }
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  // Normally done by the last test; here in case an earlier one failed.
  if (applied) await removeAllButCrds();
  if (madeStandIn) {
    await extensions.deleteCustomResourceDefinition({ name: SERVICE_MONITORS }).catch(absent);
  }
}, REMOVAL_TIMEOUT_MS);

/** Resolves a 404 as undefined; anything else is rethrown. */
function absent(err: unknown): undefined {
  if (err instanceof k8s.ApiException && err.code === 404) return undefined;
  throw err;
}

/**
 * Lines of kubectl's stderr other than its notice that an object it did not create (the CRD,
 * made by another test's installCrd) lacks the last-applied annotation, which it then adds.
 */
function unexpected(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter(
      (l) => l.trim() && !/missing the kubectl.kubernetes.io\/last-applied-configuration/.test(l),
    )
    .filter((l) => !/kubectl apply should only be used on resources created declaratively/.test(l))
    .filter((l) => !/The missing annotation will be patched automatically/.test(l));
}

/** Deletes what the overlay holds except CRDs, waiting until it is gone. */
async function removeAllButCrds(): Promise<void> {
  const doomed = overlay.filter((m) => m.kind !== 'CustomResourceDefinition');
  const served = await extensions.readCustomResourceDefinition({ name: SERVICE_MONITORS }).then(
    () => true,
    () => false,
  );
  // Without the CRD kubectl cannot map the ServiceMonitor to a resource; it went with the CRD.
  const input = doomed
    .filter((m) => served || m.kind !== 'ServiceMonitor')
    .map((m) => JSON.stringify(m))
    .join('\n');
  const result = await kubectl(
    [
      'delete',
      '-f',
      '-',
      '--ignore-not-found',
      '--wait',
      `--timeout=${REMOVAL_TIMEOUT_MS / 1000}s`,
    ],
    { input, timeoutMs: REMOVAL_TIMEOUT_MS + 10_000 },
  );
  if (result.code !== 0) throw new Error(`kubectl delete: ${result.stderr.trim()}`);
}

/**
 * What was applied of each object the base holds, but the CRD (other tests replace it at will):
 * kubectl's record of the last configuration applied, and the generation, which moves with any
 * change of a spec.
 */
async function appliedState(): Promise<Record<string, unknown>> {
  const input = overlay
    .filter((m) => m.kind !== 'CustomResourceDefinition' && m.kind !== 'ServiceMonitor')
    .map((m) => JSON.stringify(m))
    .join('\n');
  const result = await kubectl(['get', '-f', '-', '-o', 'json'], { input });
  if (result.code !== 0) throw new Error(`kubectl get: ${result.stderr.trim()}`);
  const { items } = JSON.parse(result.stdout) as { items: k8s.KubernetesObject[] };
  expect(items).toHaveLength(overlay.length - 2);
  return Object.fromEntries(
    items.map((item) => [
      `${item.kind}/${item.metadata?.name}`,
      {
        applied: item.metadata?.annotations?.['kubectl.kubernetes.io/last-applied-configuration'],
        generation: item.metadata?.generation,
      },
    ]),
  );
}

/** Makes the stand-in ServiceMonitor CRD unless the cluster serves ServiceMonitors already. */
async function ensureServiceMonitorCrd(): Promise<void> {
  const existing = await extensions
    .readCustomResourceDefinition({ name: SERVICE_MONITORS })
    .catch(absent);
  const ours = Object.entries(STAND_IN_LABEL).every(
    ([k, v]) => existing?.metadata?.labels?.[k] === v,
  );
  if (existing && !ours) return;
  madeStandIn = true;
  if (!existing) {
    await extensions.createCustomResourceDefinition({ body: serviceMonitorStandIn() });
  }
  await waitFor(
    async () => {
      const crd = await extensions.readCustomResourceDefinition({ name: SERVICE_MONITORS });
      const established = crd.status?.conditions?.some(
        (c) => c.type === 'Established' && c.status === 'True',
      );
      return established ? true : undefined;
    },
    { what: `CRD ${SERVICE_MONITORS} to be Established` },
  );
}

/**
 * A ServiceMonitor CRD that knows only the fields deploy/components/servicemonitor sets; with
 * kubectl's strict field validation a misspelt or misplaced field is refused, not pruned.
 */
function serviceMonitorStandIn(): k8s.V1CustomResourceDefinition {
  const text = { type: 'string', minLength: 1 };
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: SERVICE_MONITORS, labels: STAND_IN_LABEL },
    spec: {
      group: 'monitoring.coreos.com',
      scope: 'Namespaced',
      names: {
        kind: 'ServiceMonitor',
        listKind: 'ServiceMonitorList',
        plural: 'servicemonitors',
        singular: 'servicemonitor',
      },
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              required: ['spec'],
              properties: {
                spec: {
                  type: 'object',
                  required: ['selector', 'endpoints'],
                  properties: {
                    selector: {
                      type: 'object',
                      properties: {
                        matchLabels: { type: 'object', additionalProperties: { type: 'string' } },
                      },
                    },
                    endpoints: {
                      type: 'array',
                      minItems: 1,
                      items: {
                        type: 'object',
                        required: ['port'],
                        properties: {
                          port: text,
                          path: text,
                          interval: { type: 'string', pattern: '^([0-9]+(ms|s|m|h))+$' },
                        },
                      },
                    },
                  },
                },
              },
            },
          },
        },
      ],
    },
  };
}

describe('kubectl apply -k', () => {
  test(
    'deploy/base is accepted as built, and its two replicas become available',
    async () => {
      applied = true;
      const result = await kubectl(['apply', '-k', KUSTOMIZE_BASE]);
      expect(unexpected(result.stderr)).toEqual([]);
      expect(result.code).toBe(0);

      const deployment = await waitFor(
        async () => {
          const d = await apps.readNamespacedDeployment({
            namespace: NAMESPACE,
            name: 'clara-operator',
          });
          const settled =
            (d.status?.observedGeneration ?? 0) >= (d.metadata?.generation ?? 1) &&
            d.status?.updatedReplicas === 2 &&
            d.status?.availableReplicas === 2;
          return settled ? d : undefined;
        },
        {
          what: 'the two replicas of deploy/base to be available',
          timeoutMs: AVAILABLE_TIMEOUT_MS,
        },
      );
      // Kept as sent: a field the apiserver dropped (a feature gate off) would be missing here.
      expect(deployment.spec?.template.spec?.topologySpreadConstraints).toEqual([
        expect.objectContaining({
          topologyKey: 'kubernetes.io/hostname',
          matchLabelKeys: ['pod-template-hash'],
        }),
      ]);
      const selector = Object.entries(deployment.spec!.selector.matchLabels!)
        .map(([k, v]) => `${k}=${v}`)
        .join(',');
      const pods = await core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: selector });
      expect(pods.items.map((p) => p.status?.phase)).toEqual(['Running', 'Running']);
      const budget = await kc
        .makeApiClient(k8s.PolicyV1Api)
        .readNamespacedPodDisruptionBudget({ namespace: NAMESPACE, name: 'clara-operator' });
      expect(budget.spec?.selector?.matchLabels).toEqual(deployment.spec!.selector.matchLabels);
    },
    AVAILABLE_TIMEOUT_MS + 30_000,
  );

  test('its namespace refuses a pod that the restricted Pod Security Standard forbids', async () => {
    const pod: k8s.V1Pod = {
      metadata: { name: 'not-restricted' },
      spec: { containers: [{ name: 'c', image: 'busybox' }] },
    };
    const refusal = await core
      .createNamespacedPod({ namespace: NAMESPACE, body: pod, dryRun: 'All' })
      .catch((e: unknown) => e);
    expect(refusal).toBeInstanceOf(k8s.ApiException);
    const { code, body } = refusal as k8s.ApiException<unknown>;
    expect({ code, body: JSON.stringify(body) }).toMatchObject({
      code: 403,
      body: expect.stringContaining('violates PodSecurity'),
    });
  });

  test('the monitoring overlay adds the ServiceMonitor and leaves the rest as it was', async () => {
    await ensureServiceMonitorCrd();
    const before = await appliedState();
    const result = await waitFor(
      async () => {
        // A kubectl whose discovery predates the CRD may not know the kind yet; ask again.
        const r = await kubectl(['apply', '-k', MONITORING_OVERLAY]);
        return /no matches for kind/.test(r.stderr) ? undefined : r;
      },
      { what: 'kubectl to know the ServiceMonitor kind' },
    );
    expect(unexpected(result.stderr)).toEqual([]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('servicemonitor.monitoring.coreos.com/clara-operator created');
    // NB: kubectl reports the PodDisruptionBudget `configured` on every apply (it always sends
    // the selector, whose patch strategy is replace) although nothing changes; hence the state,
    // not kubectl's words, is compared.
    expect(await appliedState()).toEqual(before);
  });

  test(
    'deleting all but the CRD leaves nothing of it behind',
    async () => {
      await removeAllButCrds();
      await expect(core.readNamespace({ name: NAMESPACE })).rejects.toMatchObject({ code: 404 });
      await expect(rbac.readClusterRole({ name: 'clara-operator' })).rejects.toMatchObject({
        code: 404,
      });
      await expect(rbac.readClusterRoleBinding({ name: 'clara-operator' })).rejects.toMatchObject({
        code: 404,
      });
      const crd = await extensions.readCustomResourceDefinition({
        name: 'clarainstances.clara-operator.io',
      });
      expect(crd.metadata?.deletionTimestamp).toBeUndefined();
    },
    REMOVAL_TIMEOUT_MS + 30_000,
  );
});
