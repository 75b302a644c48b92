// The operator's grants, as the chart renders them and as deploy/base has them: the same rules,
// each with a comment saying why, nothing cluster-wide when namespaces are listed, and the Lease
// rule naming the Lease the operator is told to use.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { beforeAll, describe, expect, test } from '@jest/globals';
import { isMap, isSeq, parseAllDocuments } from 'yaml';

import { REPO_ROOT } from '../../harness/go-build.ts';
import {
  KUSTOMIZE_BASE,
  kustomize,
  rbacOf,
  renderChart,
  renderChartText,
  rolesOf,
} from '../../harness/helm.ts';
import type { Manifest } from '../../harness/helm.ts';

/** A cold helm or control-plane build takes minutes; later runs reuse the cached binaries. */
const BUILD_TIMEOUT_MS = 20 * 60_000;

let chartDefault: Manifest[];
let chartText: string;
let base: Manifest[];

beforeAll(async () => {
  chartText = await renderChartText();
  chartDefault = await renderChart();
  base = await kustomize(KUSTOMIZE_BASE);
}, BUILD_TIMEOUT_MS);

const byKind = (ms: Manifest[], kind: string) => ms.filter((m) => m.kind === kind);
const rulesByKind = (ms: Manifest[], kind: 'Role' | 'ClusterRole') =>
  rolesOf(ms)
    .filter((r) => r.kind === kind)
    .map((r) => r.rules);

describe('the chart and deploy/base agree on RBAC', () => {
  test('the same ClusterRole rules and the same leader-election Role rules', () => {
    expect(rulesByKind(chartDefault, 'ClusterRole')).toEqual(rulesByKind(base, 'ClusterRole'));
    expect(rulesByKind(chartDefault, 'Role')).toEqual(rulesByKind(base, 'Role'));
    expect(rulesByKind(base, 'ClusterRole')).toHaveLength(1);
    expect(rulesByKind(base, 'Role')).toHaveLength(1);
  });

  test.each([
    { name: 'chart', manifests: () => chartDefault },
    { name: 'deploy/base', manifests: () => base },
  ])('$name binds each role to the operator ServiceAccount only', ({ manifests }) => {
    const ms = manifests();
    const [sa] = byKind(ms, 'ServiceAccount');
    const deployment = byKind(ms, 'Deployment')[0] as unknown as {
      spec: { template: { spec: object } };
    };
    expect(deployment.spec.template.spec).toMatchObject({ serviceAccountName: sa!.metadata.name });
    const bindings = [...byKind(ms, 'RoleBinding'), ...byKind(ms, 'ClusterRoleBinding')];
    expect(bindings).toHaveLength(2);
    for (const binding of bindings) {
      expect(binding.subjects).toEqual([
        { kind: 'ServiceAccount', name: sa!.metadata.name, namespace: sa!.metadata.namespace },
      ]);
      const role = rolesOf(ms).find(
        (r) =>
          r.metadata.name === (binding.roleRef as { name: string }).name &&
          r.kind === (binding.roleRef as { kind: string }).kind,
      );
      expect(role).toBeDefined();
      if (binding.kind === 'RoleBinding') {
        expect(role?.metadata.namespace).toBe(binding.metadata.namespace);
      }
    }
  });
});

describe('least privilege', () => {
  const allRules = () => rolesOf(chartDefault).flatMap((r) => r.rules);

  test('no wildcard, and no verb the operator never calls', () => {
    const used = new Set(['list', 'watch', 'create', 'patch', 'update', 'delete', 'get']);
    for (const rule of allRules()) {
      for (const field of [rule.apiGroups, rule.resources, rule.verbs]) {
        expect(field).not.toContain('*');
      }
      for (const verb of rule.verbs) expect(used).toContain(verb);
    }
  });

  test('Secrets are only read by name, never listed or watched', () => {
    const secretVerbs = allRules()
      .filter((r) => r.resources?.includes('secrets'))
      .flatMap((r) => r.verbs);
    expect(secretVerbs).toEqual(['get']);
  });

  test('the Lease rule names exactly the Lease the operator is told to use', async () => {
    const rendered = await renderChart({ set: { 'leaderElection.leaseName': 'my-lease' } });
    const [role] = rolesOf(rendered).filter((r) => r.kind === 'Role');
    const named = role!.rules.filter((r) => r.resourceNames);
    expect(named).toEqual([
      {
        apiGroups: ['coordination.k8s.io'],
        resources: ['leases'],
        resourceNames: ['my-lease'],
        verbs: ['get', 'update'],
      },
    ]);
    expect(JSON.stringify(byKind(rendered, 'Deployment'))).toContain(
      '--leader-election-id=my-lease',
    );
  });

  test('watched namespaces get a Role each, and nothing cluster-wide is granted', async () => {
    const rendered = await renderChart({
      namespace: 'ops',
      set: { 'watchNamespaces[0]': 'team-a', 'watchNamespaces[1]': 'team-b' },
    });
    const kinds = rbacOf(rendered).map((m) => `${m.kind}/${m.metadata.namespace ?? '-'}`);
    expect(kinds.sort()).toEqual([
      'Role/ops',
      'Role/team-a',
      'Role/team-b',
      'RoleBinding/ops',
      'RoleBinding/team-a',
      'RoleBinding/team-b',
      'ServiceAccount/ops',
    ]);
    const watchRules = rolesOf(rendered)
      .filter((r) => r.metadata.namespace !== 'ops')
      .map((r) => r.rules);
    const clusterRules = rulesByKind(chartDefault, 'ClusterRole')[0];
    expect(watchRules).toEqual([clusterRules, clusterRules]);
    const deployment = JSON.stringify(byKind(rendered, 'Deployment'));
    expect(deployment).toContain('--namespaces=team-a,team-b');
  });

  test('without leader election there is no Lease grant', async () => {
    const rendered = await renderChart({
      set: { replicaCount: '1', 'leaderElection.enabled': 'false' },
    });
    expect(rolesOf(rendered).map((r) => r.kind)).toEqual(['ClusterRole']);
  });
});

describe('every RBAC rule says why', () => {
  /** Rules of every Role/ClusterRole in `text` with no comment right before them. */
  function uncommentedRules(text: string): string[] {
    const missing: string[] = [];
    for (const doc of parseAllDocuments(text)) {
      const contents = doc.contents;
      if (!isMap(contents)) continue;
      const kind = String(contents.get('kind'));
      if (kind !== 'Role' && kind !== 'ClusterRole') continue;
      const rules = contents.get('rules', true);
      if (!isSeq(rules)) throw new Error(`${kind} without a rules list`);
      rules.items.forEach((item, index) => {
        // NB: the yaml parser hangs the comment before a list's first item on the list itself.
        const holder = index === 0 ? rules : (item as { commentBefore?: string | null });
        const comment =
          (item as { commentBefore?: string | null }).commentBefore ?? holder.commentBefore ?? '';
        if (comment.trim().length < 20) missing.push(`${kind} rule ${index}`);
      });
      expect(rules.items.length).toBeGreaterThan(0);
    }
    return missing;
  }

  test('in deploy/base/rbac.yaml', () => {
    const text = readFileSync(join(REPO_ROOT, 'deploy/base/rbac.yaml'), 'utf8');
    expect(uncommentedRules(text)).toEqual([]);
  });

  test('in what the chart renders, cluster-wide and per namespace', async () => {
    const namespaced = await renderChartText({ set: { 'watchNamespaces[0]': 'team-a' } });
    expect(uncommentedRules(chartText)).toEqual([]);
    expect(uncommentedRules(namespaced)).toEqual([]);
  });

  test('the check finds a rule without a comment', () => {
    const text =
      'kind: Role\nrules:\n  # why this rule exists, at length\n  - verbs: [get]\n  - verbs: [list]\n';
    expect(uncommentedRules(text)).toEqual(['Role rule 1']);
  });
});
