// What the chart renders for its values, and what it refuses: the Deployment's arguments are
// flags the operator accepts, secrets reach it only through secretKeyRef, and a bad value stops
// `helm template` with a message naming it.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { beforeAll, describe, expect, test } from '@jest/globals';

import { loadConfig } from '../../../src/config.ts';
import { REPO_ROOT } from '../../harness/go-build.ts';
import {
  CHART_DIR,
  helm,
  KUSTOMIZE_BASE,
  kustomize,
  renderChart,
  renderChartText,
  setArgs,
} from '../../harness/helm.ts';
import type { Manifest } from '../../harness/helm.ts';

const BUILD_TIMEOUT_MS = 20 * 60_000;

interface Container {
  image: string;
  args: string[];
  env: { name: string; value?: string; valueFrom?: Record<string, unknown> }[];
  ports: { name: string; containerPort: number }[];
  resources: unknown;
  securityContext: unknown;
  livenessProbe: unknown;
  readinessProbe: unknown;
}
interface SpreadConstraint {
  labelSelector?: { matchLabels: Record<string, string> };
  [field: string]: unknown;
}
interface PodSpec {
  securityContext: unknown;
  containers: Container[];
  volumes: unknown[];
  topologySpreadConstraints?: SpreadConstraint[];
  affinity?: unknown;
}
type Deployment = Manifest & {
  spec: {
    replicas: number;
    selector: { matchLabels: Record<string, string> };
    template: { metadata: { labels: Record<string, string> }; spec: PodSpec };
  };
};
type DisruptionBudget = Manifest & {
  spec: { selector: { matchLabels: Record<string, string> }; [field: string]: unknown };
};

const deploymentOf = (ms: Manifest[]) => {
  const deployment = ms.find((m) => m.kind === 'Deployment') as Deployment | undefined;
  if (!deployment) throw new Error('no Deployment rendered');
  return deployment;
};
const containerOf = (ms: Manifest[]) => deploymentOf(ms).spec.template.spec.containers[0]!;
const budgetsOf = (ms: Manifest[]) =>
  ms.filter((m): m is DisruptionBudget => m.kind === 'PodDisruptionBudget');

/** A spread constraint or budget without its selector, and whether that selector picks `pods`. */
function withoutSelector<T extends { labelSelector?: unknown; selector?: unknown }>(
  object: T,
  pods: Record<string, string>,
) {
  const { labelSelector, selector, ...rest } = object;
  const { matchLabels } = (labelSelector ?? selector) as { matchLabels: Record<string, string> };
  const selectsPods = Object.entries(matchLabels).every(([k, v]) => pods[k] === v);
  return { rest, selectsPods };
}

let chart: Manifest[];
let base: Manifest[];

beforeAll(async () => {
  chart = await renderChart();
  base = await kustomize(KUSTOMIZE_BASE);
}, BUILD_TIMEOUT_MS);

describe('the default release', () => {
  test('runs two replicas of the pinned image with leader election', () => {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
      version: string;
    };
    expect(deploymentOf(chart).spec.replicas).toBe(2);
    expect(containerOf(chart).image).toBe(`ghcr.io/clara-operator/clara-operator:${pkg.version}`);
    expect(containerOf(chart).args).toContain('--leader-elect');
  });

  test.each([
    { name: 'chart', manifests: () => chart },
    { name: 'deploy/base', manifests: () => base },
  ])('$name passes only flags the operator accepts, with the agreed ports', ({ manifests }) => {
    const config = loadConfig(containerOf(manifests()).args, {});
    expect(config).toMatchObject({
      leaderElect: true,
      leaderElectionId: 'clara-operator-leader',
      metricsAddress: ':8080',
      healthAddress: ':8081',
      webAddress: '127.0.0.1:8082',
      namespaces: [],
    });
  });

  test('deploy/base and the chart configure the operator and its pod alike', () => {
    const [fromChart, fromBase] = [containerOf(chart), containerOf(base)];
    expect(loadConfig(fromChart.args, {})).toEqual(loadConfig(fromBase.args, {}));
    for (const field of [
      'env',
      'ports',
      'resources',
      'securityContext',
      'livenessProbe',
      'readinessProbe',
    ] as const) {
      expect({ field, value: fromChart[field] }).toEqual({ field, value: fromBase[field] });
    }
    const [podChart, podBase] = [chart, base].map((m) => deploymentOf(m).spec.template.spec);
    expect(podChart!.securityContext).toEqual(podBase!.securityContext);
    expect(podChart!.volumes).toEqual(podBase!.volumes);
  });

  test('deploy/base and the chart spread the replicas and budget their evictions alike', () => {
    // Each selects its own pods (the chart's carry the release's instance label too); apart
    // from the selector the constraint and the budget are the same.
    const [fromChart, fromBase] = [chart, base].map((ms) => {
      const deployment = deploymentOf(ms);
      const pods = deployment.spec.template.metadata.labels;
      const budgets = budgetsOf(ms);
      expect(budgets).toHaveLength(1);
      return {
        spread: deployment.spec.template.spec.topologySpreadConstraints!.map((c) =>
          withoutSelector(c, pods),
        ),
        budget: withoutSelector(budgets[0]!.spec, pods),
      };
    });
    expect(fromChart).toEqual(fromBase);
    expect(fromBase!.spread).toEqual([
      {
        rest: {
          maxSkew: 1,
          topologyKey: 'kubernetes.io/hostname',
          whenUnsatisfiable: 'ScheduleAnyway',
          matchLabelKeys: ['pod-template-hash'],
        },
        selectsPods: true,
      },
    ]);
    expect(fromBase!.budget).toEqual({
      rest: { maxUnavailable: 1, unhealthyPodEvictionPolicy: 'AlwaysAllow' },
      selectsPods: true,
    });
  });

  test('runs restricted: non-root 65532, read-only root with /tmp writable, no capabilities', () => {
    const pod = deploymentOf(chart).spec.template.spec;
    expect(pod.securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 65532,
      runAsGroup: 65532,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(containerOf(chart).securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    expect(pod.volumes).toEqual([{ name: 'tmp', emptyDir: { sizeLimit: '64Mi' } }]);
  });

  test('requests and limits, and a V8 heap under the limit', () => {
    const container = containerOf(chart);
    expect(container.resources).toEqual({
      requests: { cpu: '100m', memory: '128Mi' },
      limits: { memory: '256Mi' },
    });
    expect(container.env).toContainEqual({
      name: 'NODE_OPTIONS',
      value: '--max-old-space-size=96',
    });
  });

  test('renders no ServiceMonitor, dashboard or web port unless asked', () => {
    expect(chart.map((m) => m.kind).sort()).toEqual([
      'ClusterRole',
      'ClusterRoleBinding',
      'Deployment',
      'PodDisruptionBudget',
      'Role',
      'RoleBinding',
      'Service',
      'ServiceAccount',
    ]);
    expect(containerOf(chart).ports.map((p) => p.name)).toEqual(['metrics', 'health']);
  });
});

describe('the packaged chart', () => {
  test('carries the CRD and the dashboard, and renders as the directory does', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'clara-chart-'));
    try {
      const packaged = await helm(['package', CHART_DIR, '--destination', dir]);
      expect(packaged.code).toBe(0);
      const archive = join(dir, 'clara-operator-0.1.0.tgz');
      const crds = await helm(['show', 'crds', archive]);
      // helm prints each CRD file as one document, after a `---`.
      expect(crds.stdout.replace(/^---\n/, '').trim()).toBe(
        readFileSync(join(REPO_ROOT, 'crds/clarainstances.clara-operator.io.yaml'), 'utf8').trim(),
      );
      const set = setArgs({ 'grafanaDashboard.enabled': 'true' });
      const fromArchive = await helm(['template', 'clara-operator', archive, ...set]);
      const fromDir = await helm(['template', 'clara-operator', CHART_DIR, ...set]);
      expect(fromArchive.code).toBe(0);
      expect(fromArchive.stdout).toBe(fromDir.stdout);
      expect(fromArchive.stdout).toContain('clara-operator-dashboard.json');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('values', () => {
  test('an exposed web view listens on :8082 and reads its token from the Secret', async () => {
    const ms = await renderChart({
      set: { 'web.expose': 'true', 'web.tokenSecret.name': 'web-token' },
    });
    const container = containerOf(ms);
    const token = container.env.find((e) => e.name === 'CLARA_WEB_TOKEN');
    expect(token).toEqual({
      name: 'CLARA_WEB_TOKEN',
      valueFrom: { secretKeyRef: { name: 'web-token', key: 'token' } },
    });
    const config = loadConfig(container.args, { CLARA_WEB_TOKEN: 'a-token-of-16-chars' });
    expect(config.webAddress).toBe(':8082');
    const service = ms.find((m) => m.kind === 'Service') as Manifest & {
      spec: { ports: { name: string; port: number }[] };
    };
    expect(service.spec.ports.map((p) => [p.name, p.port])).toEqual([
      ['metrics', 8080],
      ['web', 8082],
    ]);
  });

  test('an Ingress reaches the exposed web view through the Service port `web`', async () => {
    const ms = await renderChart({
      set: {
        'web.expose': 'true',
        'web.tokenSecret.name': 'web-token',
        'web.ingress.enabled': 'true',
        'web.ingress.host': 'clara.example.com',
        'web.ingress.tlsSecretName': 'clara-tls',
      },
    });
    const ingress = ms.find((m) => m.kind === 'Ingress') as Manifest & { spec: unknown };
    const service = ms.find((m) => m.kind === 'Service')!;
    expect(ingress.spec).toEqual({
      tls: [{ hosts: ['clara.example.com'], secretName: 'clara-tls' }],
      rules: [
        {
          host: 'clara.example.com',
          http: {
            paths: [
              {
                path: '/',
                pathType: 'Prefix',
                backend: { service: { name: service.metadata.name, port: { name: 'web' } } },
              },
            ],
          },
        },
      ],
    });
  });

  test('watched namespaces, the default credentials Secret, polling and size pass through', async () => {
    const ms = await renderChart({
      set: {
        'watchNamespaces[0]': 'team-a',
        'clearml.defaultCredentialsSecret': 'clearml-credentials',
        pollInterval: '30s',
        workers: '8',
        replicaCount: '3',
        maxOldSpaceSizeMb: '200',
        'resources.limits.memory': '300Mi',
      },
    });
    const container = containerOf(ms);
    expect(loadConfig(container.args, {})).toMatchObject({
      namespaces: ['team-a'],
      defaultCredentialsSecret: 'clearml-credentials',
      pollInterval: 30_000,
      workers: 8,
    });
    expect(deploymentOf(ms).spec.replicas).toBe(3);
    expect(container.env).toContainEqual({
      name: 'NODE_OPTIONS',
      value: '--max-old-space-size=200',
    });
    expect(container.resources).toMatchObject({ limits: { memory: '300Mi' } });
  });

  test('the ServiceMonitor scrapes the metrics port of the Service it selects', async () => {
    const ms = await renderChart({
      set: {
        'metrics.serviceMonitor.enabled': 'true',
        'metrics.serviceMonitor.labels.release': 'kube-prometheus-stack',
      },
    });
    const monitor = ms.find((m) => m.kind === 'ServiceMonitor') as Manifest & {
      spec: { selector: { matchLabels: Record<string, string> }; endpoints: unknown[] };
    };
    const service = ms.find((m) => m.kind === 'Service')!;
    expect(monitor.metadata.labels).toMatchObject({ release: 'kube-prometheus-stack' });
    expect(service.metadata.labels).toMatchObject(monitor.spec.selector.matchLabels);
    expect(monitor.spec.endpoints).toEqual([
      { port: 'metrics', path: '/metrics', interval: '30s' },
    ]);
  });

  test('the Grafana dashboard ConfigMap holds the dashboard of deploy/grafana', async () => {
    const ms = await renderChart({ set: { 'grafanaDashboard.enabled': 'true' } });
    const configMap = ms.find((m) => m.kind === 'ConfigMap') as Manifest & {
      data: Record<string, string>;
    };
    expect(configMap.metadata.labels).toMatchObject({ grafana_dashboard: '1' });
    const dashboard = readFileSync(
      join(REPO_ROOT, 'deploy/grafana/clara-operator-dashboard.json'),
      'utf8',
    );
    expect(JSON.parse(configMap.data['clara-operator-dashboard.json']!)).toEqual(
      JSON.parse(dashboard),
    );
  });

  test('no Secret value, token or key ever appears in what the chart renders', async () => {
    const text = await renderChartText({
      set: {
        'web.expose': 'true',
        'web.tokenSecret.name': 'web-token',
        'grafanaDashboard.enabled': 'true',
        'clearml.defaultCredentialsSecret': 'clearml-credentials',
      },
    });
    expect(text).not.toMatch(/kind: Secret\b/);
    expect(text).not.toMatch(/CLEARML_API_(ACCESS|SECRET)_KEY/);
    expect(text).not.toMatch(/--.*token/i);
  });

  // helm's own messages, checked so a schema change that loses one is noticed.
  test.each<{ set: Record<string, string>; error: string }>([
    { set: { replicaCount: 'two' }, error: "at '/replicaCount': got string, want integer" },
    {
      set: { 'watchNamespaces[0]': 'Team_A' },
      error: "at '/watchNamespaces/0': 'Team_A' does not match pattern",
    },
    {
      set: { logLevel: 'verbose' },
      error: "at '/logLevel': value must be one of 'debug', 'info', 'warn', 'error'",
    },
    { set: { pollInterval: 'soon' }, error: "at '/pollInterval': 'soon' does not match pattern" },
    { set: { workers: '0' }, error: "at '/workers': minimum: got 0, want 1" },
    { set: { colour: 'blue' }, error: "additional properties 'colour' not allowed" },
    // resources is checked at template time, naming the value, not left to the apiserver.
    {
      set: { 'resources.limits.cpu': 'lots' },
      error: "at '/resources/limits/cpu': 'lots' does not match pattern",
    },
    {
      set: { 'resources.limit.memory': '1Gi' },
      error: "at '/resources': additional properties 'limit' not allowed",
    },
    {
      set: { 'web.expose': 'true' },
      error: 'web.expose needs web.tokenSecret.name: an exposed web view asks for a bearer token',
    },
    {
      set: { 'web.ingress.enabled': 'true', 'web.ingress.host': 'clara.example.com' },
      error: 'web.ingress.enabled needs web.expose',
    },
    {
      set: {
        'web.expose': 'true',
        'web.tokenSecret.name': 'web-token',
        'web.ingress.enabled': 'true',
      },
      error: 'web.ingress.host is required with web.ingress.enabled',
    },
    {
      set: { 'serviceAccount.create': 'false' },
      error: 'serviceAccount.name is required when serviceAccount.create is false',
    },
    {
      set: { replicaCount: '2', 'leaderElection.enabled': 'false' },
      error: 'replicaCount above 1 needs leaderElection.enabled',
    },
    {
      set: { maxOldSpaceSizeMb: '400' },
      error: 'maxOldSpaceSizeMb 400 leaves too little of resources.limits.memory 256Mi',
    },
    {
      set: { maxOldSpaceSizeMb: '1000', 'resources.limits.memory': '1Gi' },
      error: 'maxOldSpaceSizeMb 1000 leaves too little of resources.limits.memory 1Gi',
    },
    {
      set: { 'resources.limits.memory': '256 Mi' },
      error: "at '/resources/limits/memory': '256 Mi' does not match pattern",
    },
    {
      set: { 'resources.limits.memory': '2GB' },
      error: "at '/resources/limits/memory': '2GB' does not match pattern",
    },
    {
      // m is a thousandth of a byte: 256m is no memory at all, and the message shows it.
      set: { 'resources.limits.memory': '256m' },
      error: 'maxOldSpaceSizeMb 96 leaves too little of resources.limits.memory 256m (0 MiB)',
    },
    {
      set: { 'web.port': '8080' },
      error: "web.port 8080 is the operator's metrics port (--metrics-address=:8080)",
    },
    {
      set: { 'web.port': '8081', 'web.expose': 'true', 'web.tokenSecret.name': 'web-token' },
      error: "web.port 8081 is the operator's health port (--health-address=:8081)",
    },
    {
      set: {
        'web.port': '9090',
        'metrics.service.port': '9090',
        'web.expose': 'true',
        'web.tokenSecret.name': 'web-token',
      },
      error: 'web.port 9090 equals metrics.service.port 9090',
    },
    {
      set: { 'podDisruptionBudget.maxUnavailable': '0' },
      error: "at '/podDisruptionBudget/maxUnavailable': minimum: got 0, want 1",
    },
    {
      set: {
        'topologySpreadConstraints[0].maxSkew': '1',
        'topologySpreadConstraints[0].topologyKey': 'kubernetes.io/hostname',
        'topologySpreadConstraints[0].whenUnsatisfiable': 'Sometimes',
      },
      error: "at '/topologySpreadConstraints/0/whenUnsatisfiable': value must be one of",
    },
  ])('refuses $set with "$error"', async ({ set, error }) => {
    await expect(renderChartText({ set })).rejects.toThrow(error);
  });

  // Every form a memory limit takes, with the largest heap it leaves room for: the limit in MiB,
  // rounded down, less 96.
  test.each<{ limit: string | number; largestHeapMb: number; shown?: string }>([
    { limit: '256Mi', largestHeapMb: 160 },
    { limit: '1Gi', largestHeapMb: 928 },
    { limit: '0.5Gi', largestHeapMb: 416 },
    { limit: '.5Gi', largestHeapMb: 416 },
    { limit: '524288Ki', largestHeapMb: 416 },
    { limit: '0.001Ti', largestHeapMb: 952 },
    { limit: '536870912', largestHeapMb: 416 },
    // a number in a values file, not a string
    { limit: 536870912, largestHeapMb: 416, shown: '536870912' },
    { limit: '512M', largestHeapMb: 392 },
    { limit: '1G', largestHeapMb: 857 },
    { limit: '600000k', largestHeapMb: 476 },
    { limit: '5e8', largestHeapMb: 380 },
    // 1.2Gi as the apiserver writes it back
    { limit: '1288490188800m', largestHeapMb: 1132 },
  ])(
    'a memory limit of $limit takes a heap of $largestHeapMb MiB and refuses one more',
    async ({ limit, largestHeapMb, shown }) => {
      const render = (heapMb: number) =>
        renderChartText({
          set: { maxOldSpaceSizeMb: String(heapMb) },
          setJson: { 'resources.limits.memory': limit },
        });
      await expect(render(largestHeapMb)).resolves.toContain(
        `--max-old-space-size=${largestHeapMb}`,
      );
      await expect(render(largestHeapMb + 1)).rejects.toThrow(
        `maxOldSpaceSizeMb ${largestHeapMb + 1} leaves too little of resources.limits.memory ` +
          (shown ?? String(limit)),
      );
    },
  );

  test('without a memory limit there is nothing to check the heap against', async () => {
    const ms = await renderChart({
      set: { maxOldSpaceSizeMb: '4000' },
      setJson: { resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: null } },
    });
    expect(containerOf(ms).resources).toEqual({ requests: { cpu: '100m', memory: '128Mi' } });
  });
});

describe('disruptions and spread', () => {
  test.each<{
    replicaCount: string;
    set: Record<string, string>;
    budget: { maxUnavailable: number | string } | 'none';
  }>([
    { replicaCount: '2', set: {}, budget: { maxUnavailable: 1 } },
    { replicaCount: '3', set: {}, budget: { maxUnavailable: 1 } },
    {
      replicaCount: '4',
      set: { 'podDisruptionBudget.maxUnavailable': '50%' },
      budget: { maxUnavailable: '50%' },
    },
    // One replica: no standby for a budget to keep, so none.
    { replicaCount: '1', set: { 'leaderElection.enabled': 'false' }, budget: 'none' },
    { replicaCount: '0', set: {}, budget: 'none' },
    { replicaCount: '2', set: { 'podDisruptionBudget.enabled': 'false' }, budget: 'none' },
  ])(
    'with $replicaCount replicas and $set the budget is $budget',
    async ({ replicaCount, set, budget }) => {
      const ms = await renderChart({ set: { replicaCount, ...set } });
      const budgets = budgetsOf(ms);
      if (budget === 'none') {
        expect(budgets).toEqual([]);
        return;
      }
      expect(budgets).toHaveLength(1);
      expect(budgets[0]!.spec).toMatchObject(budget);
      expect(budgets[0]!.spec.selector).toEqual(deploymentOf(ms).spec.selector);
    },
  );

  test('[] drops the spread; a list of your own is rendered as given; affinity stays apart', async () => {
    const none = await renderChart({ setJson: { topologySpreadConstraints: [] } });
    expect(deploymentOf(none).spec.template.spec.topologySpreadConstraints).toBeUndefined();

    const zone = {
      maxSkew: 1,
      topologyKey: 'topology.kubernetes.io/zone',
      whenUnsatisfiable: 'DoNotSchedule',
      labelSelector: { matchLabels: { team: 'ml' } },
    };
    const affinity = {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [
            { matchExpressions: [{ key: 'pool', operator: 'In', values: ['ops'] }] },
          ],
        },
      },
    };
    const own = await renderChart({ setJson: { topologySpreadConstraints: [zone], affinity } });
    const pod = deploymentOf(own).spec.template.spec;
    expect(pod.topologySpreadConstraints).toEqual([zone]);
    expect(pod.affinity).toEqual(affinity);
  });

  test('a constraint without a selector of its own counts the release pods of one ReplicaSet', async () => {
    const ms = await renderChart({
      release: 'other',
      setJson: {
        topologySpreadConstraints: [
          {
            maxSkew: 2,
            topologyKey: 'topology.kubernetes.io/zone',
            whenUnsatisfiable: 'ScheduleAnyway',
          },
        ],
      },
    });
    const deployment = deploymentOf(ms);
    expect(deployment.spec.template.spec.topologySpreadConstraints).toEqual([
      {
        maxSkew: 2,
        topologyKey: 'topology.kubernetes.io/zone',
        whenUnsatisfiable: 'ScheduleAnyway',
        labelSelector: deployment.spec.selector,
        matchLabelKeys: ['pod-template-hash'],
      },
    ]);
    expect(deployment.spec.selector.matchLabels).toMatchObject({
      'app.kubernetes.io/instance': 'other',
    });
  });
});
