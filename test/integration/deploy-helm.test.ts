/**
 * The chart against the test control plane: `helm lint`, `helm template` and `helm install` with
 * the pinned helm. kwok plays the kubelet, so the operator's pods are scheduled and marked
 * Running and Ready without running the image; what is checked is that the release installs,
 * its objects exist as rendered, and it uninstalls cleanly.
 */
import { randomBytes } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';

import {
  createTestNamespace,
  deleteTestNamespace,
  testKubeconfigPath,
  testKubeConfig,
  waitFor,
} from '../harness/cluster-env.ts';
import { installCrd } from '../harness/crd.ts';
import { CHART_DIR, helm, parseManifests, setArgs } from '../harness/helm.ts';

const BUILD_TIMEOUT_MS = 20 * 60_000;

const kc = testKubeConfig();
let namespace: string;
let watched: string;
let watchedLater: string;
const release = `clara-${randomBytes(3).toString('hex')}`;

beforeAll(async () => {
  await installCrd(kc);
  namespace = await createTestNamespace(kc, 'deploy-helm');
  watched = await createTestNamespace(kc, 'deploy-helm-watched');
  watchedLater = await createTestNamespace(kc, 'deploy-helm-later');
  await helm(['version']);
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  await helm(['uninstall', release, '--namespace', namespace], {
    kubeconfig: testKubeconfigPath(),
  });
  await deleteTestNamespace(kc, namespace);
  await deleteTestNamespace(kc, watched);
  await deleteTestNamespace(kc, watchedLater);
});

/**
 * Lines of helm's stderr other than the notices it may print on a good run: that a dry run of a
 * chart with CRDs may be inaccurate, and client-go's note that it throttled its own requests
 * (seen while waiting on a loaded machine).
 */
function unexpected(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter((l) => l.trim() && !/contains CRDs|client-side throttling/.test(l));
}

describe('helm', () => {
  test('lint passes with no warnings, strict', async () => {
    const result = await helm(['lint', '--strict', CHART_DIR]);
    expect(result.stdout + result.stderr).toContain('0 chart(s) failed');
    expect(result.code).toBe(0);
  });

  test('template renders objects the apiserver accepts (server-side dry run)', async () => {
    const rendered = await helm([
      'template',
      release,
      CHART_DIR,
      '--namespace',
      namespace,
      ...setArgs({ 'watchNamespaces[0]': watched, 'grafanaDashboard.enabled': 'true' }),
    ]);
    expect(rendered.code).toBe(0);
    const manifests = parseManifests(rendered.stdout);
    expect(manifests.length).toBeGreaterThan(5);
    const dryRun = await helm(
      [
        'install',
        `${release}-dry`,
        CHART_DIR,
        '--namespace',
        namespace,
        '--dry-run=server',
        ...setArgs({ 'watchNamespaces[0]': watched }),
      ],
      { kubeconfig: testKubeconfigPath() },
    );
    expect(unexpected(dryRun.stderr)).toEqual([]);
    expect(dryRun.code).toBe(0);
  });

  test('install creates a release whose two replicas become ready; upgrade and uninstall leave no grant behind', async () => {
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const token = randomBytes(24).toString('hex');
    await core.createNamespacedSecret({
      namespace,
      body: { metadata: { name: 'web-token' }, stringData: { token } },
    });

    const install = await helm(
      [
        'install',
        release,
        CHART_DIR,
        '--namespace',
        namespace,
        '--wait',
        '--timeout=120s',
        ...setArgs({
          'watchNamespaces[0]': watched,
          'grafanaDashboard.enabled': 'true',
          'web.expose': 'true',
          'web.tokenSecret.name': 'web-token',
          'web.ingress.enabled': 'true',
          'web.ingress.host': 'clara.example.com',
        }),
      ],
      { kubeconfig: testKubeconfigPath(), timeoutMs: 150_000 },
    );
    expect(unexpected(install.stderr)).toEqual([]);
    expect(install.code).toBe(0);
    expect(install.stdout).toContain('STATUS: deployed');

    const apps = kc.makeApiClient(k8s.AppsV1Api);
    const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
    const deployment = await apps.readNamespacedDeployment({
      namespace,
      name: `${release}-clara-operator`,
    });
    expect(deployment.status?.readyReplicas).toBe(2);
    const pods = await core.listNamespacedPod({
      namespace,
      labelSelector: `app.kubernetes.io/instance=${release}`,
    });
    expect(pods.items.map((p) => p.status?.phase)).toEqual(['Running', 'Running']);
    expect(new Set(pods.items.map((p) => p.spec?.nodeName)).size).toBeGreaterThan(0);
    const policy = kc.makeApiClient(k8s.PolicyV1Api);
    const budget = await policy.readNamespacedPodDisruptionBudget({
      namespace,
      name: `${release}-clara-operator`,
    });
    expect(budget.spec?.selector?.matchLabels).toEqual(deployment.spec?.selector.matchLabels);
    expect(deployment.spec?.template.spec?.topologySpreadConstraints?.[0]).toMatchObject({
      topologyKey: 'kubernetes.io/hostname',
      matchLabelKeys: ['pod-template-hash'],
    });
    await rbac.readNamespacedRole({ namespace: watched, name: `${release}-clara-operator` });
    await rbac.readNamespacedRoleBinding({ namespace: watched, name: `${release}-clara-operator` });
    await rbac.readNamespacedRole({
      namespace,
      name: `${release}-clara-operator-leader-election`,
    });
    await core.readNamespacedConfigMap({ namespace, name: `${release}-clara-operator-dashboard` });
    const service = await core.readNamespacedService({
      namespace,
      name: `${release}-clara-operator`,
    });
    expect(service.spec?.ports?.map((p) => p.name)).toEqual(['metrics', 'web']);
    const ingress = await kc
      .makeApiClient(k8s.NetworkingV1Api)
      .readNamespacedIngress({ namespace, name: `${release}-clara-operator-web` });
    expect(ingress.spec?.rules?.[0]?.host).toBe('clara.example.com');

    // An upgrade that watches another namespace moves the grant: none is left behind.
    const upgrade = await helm(
      [
        'upgrade',
        release,
        CHART_DIR,
        '--namespace',
        namespace,
        '--reuse-values',
        '--wait',
        '--timeout=120s',
        ...setArgs({ 'watchNamespaces[0]': watchedLater }),
      ],
      { kubeconfig: testKubeconfigPath(), timeoutMs: 150_000 },
    );
    expect(unexpected(upgrade.stderr)).toEqual([]);
    expect(upgrade.code).toBe(0);
    await rbac.readNamespacedRole({ namespace: watchedLater, name: `${release}-clara-operator` });
    await expect(
      rbac.readNamespacedRole({ namespace: watched, name: `${release}-clara-operator` }),
    ).rejects.toMatchObject({ code: 404 });
    const upgraded = await apps.readNamespacedDeployment({
      namespace,
      name: `${release}-clara-operator`,
    });
    expect(upgraded.spec?.template.spec?.containers[0]?.args).toContain(
      `--namespaces=${watchedLater}`,
    );

    const status = await helm(['status', release, '--namespace', namespace], {
      kubeconfig: testKubeconfigPath(),
    });
    expect(status.stdout).toContain('STATUS: deployed');
    expect(status.stdout).toContain('REVISION: 2');

    const uninstall = await helm(['uninstall', release, '--namespace', namespace, '--wait'], {
      kubeconfig: testKubeconfigPath(),
    });
    expect(uninstall.code).toBe(0);
    await waitFor(
      async () => {
        const left = await core.listNamespacedPod({
          namespace,
          labelSelector: `app.kubernetes.io/instance=${release}`,
        });
        return left.items.length === 0 ? true : undefined;
      },
      { what: 'the release pods to go', timeoutMs: 60_000 },
    );
    await expect(
      rbac.readNamespacedRole({ namespace: watchedLater, name: `${release}-clara-operator` }),
    ).rejects.toMatchObject({ code: 404 });
    await expect(
      policy.readNamespacedPodDisruptionBudget({ namespace, name: `${release}-clara-operator` }),
    ).rejects.toMatchObject({ code: 404 });
  });
});
