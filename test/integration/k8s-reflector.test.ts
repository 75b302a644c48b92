import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';

import { createApiSource } from '../../src/k8s/api-source.ts';
import type { ReflectorSource, WatchHandle, WatchRequest } from '../../src/k8s/reflector.ts';
import { ReflectorGroup } from '../../src/k8s/reflector-group.ts';
import {
  createTestNamespace,
  deleteTestNamespace,
  testKubeConfig,
  waitFor,
} from '../harness/cluster-env.ts';

const kc = testKubeConfig();
const core = kc.makeApiClient(k8s.CoreV1Api);
let ns1: string;
let ns2: string;

beforeAll(async () => {
  [ns1, ns2] = await Promise.all([
    createTestNamespace(kc, 'k8s-reflector'),
    createTestNamespace(kc, 'k8s-reflector'),
  ]);
});

afterAll(async () => {
  await Promise.all([deleteTestNamespace(kc, ns1), deleteTestNamespace(kc, ns2)]);
});

function configMap(namespace: string, name: string, data: Record<string, string>, app = 'x') {
  return core.createNamespacedConfigMap({
    namespace,
    body: { metadata: { name, namespace, labels: { app } }, data },
  });
}

/**
 * The real API source, with two test levers: `abortAll` cuts every open watch stream as a
 * network failure would, and `nextWatchFrom` makes the next watch of a namespace start from a
 * chosen resourceVersion (one the server has long forgotten, to provoke 410 Gone).
 */
function instrumentedSource() {
  const real = createApiSource<k8s.V1ConfigMap>({
    kubeConfig: kc,
    resource: { apiVersion: 'v1', plural: 'configmaps' },
  });
  const open = new Set<WatchHandle>();
  const requests: WatchRequest[] = [];
  const overrides = new Map<string | undefined, string>();
  const source: ReflectorSource<k8s.V1ConfigMap> = {
    list: (req) => real.list(req),
    watch: async (req, onEvent, onDone) => {
      const resourceVersion = overrides.get(req.namespace) ?? req.resourceVersion;
      overrides.delete(req.namespace);
      const effective = { ...req, resourceVersion };
      requests.push(effective);
      const handle = await real.watch(effective, onEvent, (err) => {
        open.delete(handle);
        onDone(err);
      });
      open.add(handle);
      return handle;
    },
  };
  return {
    source,
    requests,
    abortAll: () => {
      for (const handle of open) handle.abort();
      open.clear();
    },
    nextWatchFrom: (namespace: string, resourceVersion: string) => {
      overrides.set(namespace, resourceVersion);
    },
  };
}

/** A reflector group over ns1 and ns2 for ConfigMaps labelled app=x, recording its events. */
async function startGroup(opts: { inactivityTimeoutMs?: number } = {}) {
  const wire = instrumentedSource();
  const events: string[] = [];
  const group = new ReflectorGroup<k8s.V1ConfigMap>({
    source: wire.source,
    namespaces: [ns1, ns2],
    labelSelector: 'app=x',
    initialBackoffMs: 200,
    inactivityTimeoutMs: opts.inactivityTimeoutMs,
    handlers: {
      onAdd: (o) => events.push(`add ${o.metadata?.namespace}/${o.metadata?.name}`),
      onUpdate: (_, o) => events.push(`update ${o.metadata?.name} ${JSON.stringify(o.data)}`),
      onDelete: (o, { finalStateUnknown }) =>
        events.push(`delete ${o.metadata?.name}${finalStateUnknown ? ' (inferred)' : ''}`),
    },
  });
  group.start();
  await waitFor(async () => (group.hasSynced() ? true : undefined), { what: 'reflectors synced' });
  return { group, events, wire };
}

function expectEvent(events: string[], event: string) {
  return waitFor(async () => (events.includes(event) ? true : undefined), {
    what: `event "${event}" (seen: ${events.join(', ')})`,
    timeoutMs: 15_000,
  });
}

describe('Reflector against the API server', () => {
  test('lists, then reports creates, updates and deletes in the watched namespaces', async () => {
    await configMap(ns1, 'listed', { v: '1' });
    await configMap(ns1, 'other-app', { v: '1' }, 'y');
    const { group, events } = await startGroup();
    try {
      expect(group.store.keys()).toEqual([`${ns1}/listed`]);
      expect(group.store.get(`${ns1}/listed`)).toMatchObject({
        kind: 'ConfigMap',
        data: { v: '1' },
      });

      await configMap(ns2, 'created', { v: '1' });
      await expectEvent(events, `add ${ns2}/created`);
      await core.patchNamespacedConfigMap(
        { namespace: ns2, name: 'created', body: { data: { v: '2' } } },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
      );
      await expectEvent(events, 'update created {"v":"2"}');
      expect(group.store.get(`${ns2}/created`)?.data).toEqual({ v: '2' });
      await core.deleteNamespacedConfigMap({ namespace: ns2, name: 'created' });
      await expectEvent(events, 'delete created');

      expect(group.store.get(`${ns2}/created`)).toBeUndefined();
      expect(events.some((e) => e.includes('other-app'))).toBe(false);
    } finally {
      await group.stop();
    }
  });

  test('resumes from its resourceVersion after the stream is cut, without a relist', async () => {
    const { group, events, wire } = await startGroup();
    try {
      wire.abortAll();
      await configMap(ns1, 'during-outage', { v: '1' });
      await expectEvent(events, `add ${ns1}/during-outage`);

      const stats = group.stats();
      expect(stats[ns1]).toMatchObject({ lists: 1 });
      expect(stats[ns1]!.watches).toBeGreaterThanOrEqual(2);
      expect(
        wire.requests.filter((r) => r.namespace === ns1).every((r) => r.allowWatchBookmarks),
      ).toBe(true);
    } finally {
      await group.stop();
    }
  });

  // NB: 410 Gone cannot be provoked here: the test cluster's etcd is not compacted within a run,
  // so the server still serves a watch from resourceVersion 1 by replaying history. The unit
  // tests cover 410 (as HTTP status and as ERROR event); this checks the replay is harmless.
  test('ignores replayed events when a watch restarts from an old resourceVersion', async () => {
    const { group, events, wire } = await startGroup();
    try {
      await configMap(ns2, 'replayed', { v: '1' });
      await expectEvent(events, `add ${ns2}/replayed`);
      wire.nextWatchFrom(ns2, '1');
      wire.abortAll();
      await core.deleteNamespacedConfigMap({ namespace: ns2, name: 'replayed' });
      await expectEvent(events, 'delete replayed');

      expect(wire.requests.some((r) => r.namespace === ns2 && r.resourceVersion === '1')).toBe(
        true,
      );
      expect(events.filter((e) => e.includes('replayed'))).toEqual([
        `add ${ns2}/replayed`,
        'delete replayed',
      ]);
      expect(group.store.get(`${ns2}/replayed`)).toBeUndefined();
    } finally {
      await group.stop();
    }
  });

  test('rewatches when the inactivity watchdog fires and keeps delivering events', async () => {
    const { group, events } = await startGroup({ inactivityTimeoutMs: 1_000 });
    try {
      await waitFor(async () => ((group.stats()[ns1]?.watches ?? 0) >= 3 ? true : undefined), {
        what: 'two watchdog-driven rewatches',
        timeoutMs: 15_000,
      });
      await configMap(ns1, 'after-watchdog', { v: '1' });
      await expectEvent(events, `add ${ns1}/after-watchdog`);
      expect(group.stats()[ns1]?.lists).toBe(1);
    } finally {
      await group.stop();
    }
  });

  test('says the kind is not served when its CRD is missing, instead of a bare 404', async () => {
    const missing = createApiSource<k8s.KubernetesObject>({
      kubeConfig: kc,
      resource: { apiVersion: 'nothing.example.com/v1', plural: 'widgets' },
    });
    await expect(missing.list({ namespace: ns1 })).rejects.toThrow(
      `list /apis/nothing.example.com/v1/namespaces/${ns1}/widgets: HTTP 404 (the API server does not serve /apis/nothing.example.com/v1/namespaces/${ns1}/widgets; is its CRD installed?)`,
    );
  });
});
