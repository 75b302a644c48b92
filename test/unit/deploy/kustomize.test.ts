// deploy/: the base builds into one namespace with the operator's objects, and the monitoring
// overlay adds a ServiceMonitor that scrapes the base's metrics Service.
import { join } from 'node:path';

import { beforeAll, describe, expect, test } from '@jest/globals';

import { REPO_ROOT } from '../../harness/go-build.ts';
import { KUSTOMIZE_BASE, kustomize } from '../../harness/helm.ts';
import type { Manifest } from '../../harness/helm.ts';

const BUILD_TIMEOUT_MS = 20 * 60_000;

let base: Manifest[];
let monitoring: Manifest[];

beforeAll(async () => {
  base = await kustomize(KUSTOMIZE_BASE);
  monitoring = await kustomize(join(REPO_ROOT, 'deploy/overlays/monitoring'));
}, BUILD_TIMEOUT_MS);

describe('deploy/', () => {
  test('the base holds the operator objects, every namespaced one in clara-operator', () => {
    expect(base.map((m) => `${m.kind}/${m.metadata.name}`).sort()).toEqual([
      'ClusterRole/clara-operator',
      'ClusterRoleBinding/clara-operator',
      'CustomResourceDefinition/clarainstances.clara-operator.io',
      'Deployment/clara-operator',
      'Namespace/clara-operator',
      'PodDisruptionBudget/clara-operator',
      'Role/clara-operator-leader-election',
      'RoleBinding/clara-operator-leader-election',
      'Service/clara-operator-metrics',
      'ServiceAccount/clara-operator',
    ]);
    const clusterScoped = ['ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition'];
    for (const m of base) {
      if (clusterScoped.includes(m.kind) || m.kind === 'Namespace') continue;
      expect({ object: m.metadata.name, ns: m.metadata.namespace }).toEqual({
        object: m.metadata.name,
        ns: 'clara-operator',
      });
    }
  });

  test('the Service selects the Deployment pods, by the port name the pods declare', () => {
    const service = base.find((m) => m.kind === 'Service') as Manifest & {
      spec: { selector: Record<string, string>; ports: { targetPort: string }[] };
    };
    const deployment = base.find((m) => m.kind === 'Deployment') as Manifest & {
      spec: {
        template: {
          metadata: { labels: Record<string, string> };
          spec: { containers: { ports: { name: string }[] }[] };
        };
      };
    };
    expect(deployment.spec.template.metadata.labels).toMatchObject(service.spec.selector);
    const portNames = deployment.spec.template.spec.containers[0]!.ports.map((p) => p.name);
    expect(portNames).toContain(service.spec.ports[0]!.targetPort);
  });

  test('the budget and the spread constraint count the Deployment pods and no others', () => {
    const deployment = base.find((m) => m.kind === 'Deployment') as Manifest & {
      spec: {
        selector: { matchLabels: Record<string, string> };
        template: {
          spec: { topologySpreadConstraints: { labelSelector: { matchLabels: object } }[] };
        };
      };
    };
    const budget = base.find((m) => m.kind === 'PodDisruptionBudget') as Manifest & {
      spec: { selector: { matchLabels: object } };
    };
    const selector = deployment.spec.selector.matchLabels;
    expect(budget.spec.selector.matchLabels).toEqual(selector);
    const spread = deployment.spec.template.spec.topologySpreadConstraints;
    expect(spread.map((c) => c.labelSelector.matchLabels)).toEqual([selector]);
  });

  test('the monitoring overlay adds a ServiceMonitor for the metrics Service', () => {
    const added = monitoring.filter(
      (m) => !base.some((b) => b.kind === m.kind && b.metadata.name === m.metadata.name),
    ) as (Manifest & { spec: { selector: { matchLabels: Record<string, string> } } })[];
    expect(added.map((m) => m.kind)).toEqual(['ServiceMonitor']);
    expect(added[0]!.metadata.namespace).toBe('clara-operator');
    const service = base.find((m) => m.kind === 'Service')!;
    expect(service.metadata.labels).toMatchObject(added[0]!.spec.selector.matchLabels);
  });
});
