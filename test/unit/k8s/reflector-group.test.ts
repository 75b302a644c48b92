import { describe, expect, test } from '@jest/globals';
import type * as k8s from '@kubernetes/client-node';

import { collectionPath } from '../../../src/k8s/api-source.ts';
import { objectKey, splitObjectKey } from '../../../src/k8s/object-store.ts';
import { ReflectorGroup } from '../../../src/k8s/reflector-group.ts';
import { FakeClock, settle } from './fake-clock.ts';
import { FakeSource, obj } from './fake-source.ts';

/** A source whose lists answer with the objects of the namespace asked for (or all). */
function sourceFor(objects: k8s.KubernetesObject[]): FakeSource {
  const source = new FakeSource();
  source.list = async (req) => {
    source.listRequests.push(req);
    const items = objects.filter((o) => !req.namespace || o.metadata?.namespace === req.namespace);
    return { items, resourceVersion: '100' };
  };
  return source;
}

const objects = [obj('a', '1', 'ns1'), obj('b', '2', 'ns2'), obj('c', '3', 'ns3')];

describe('ReflectorGroup', () => {
  test('runs one reflector per listed namespace and unions their stores', async () => {
    const source = sourceFor(objects);
    const group = new ReflectorGroup({
      source,
      namespaces: ['ns1', 'ns2', 'ns1'],
      clock: new FakeClock(),
    });
    group.start();
    await expect(group.waitForSync()).resolves.toBe(true);
    expect(source.listRequests.map((r) => r.namespace)).toEqual(['ns1', 'ns2']);
    expect(group.store.keys().sort()).toEqual(['ns1/a', 'ns2/b']);
    expect(group.store.get('ns2/b')).toEqual(objects[1]);
    expect(group.store.get('ns3/c')).toBeUndefined();
    expect(Object.keys(group.stats())).toEqual(['ns1', 'ns2']);
    await group.stop();
  });

  test('runs a single cluster-wide reflector for "all"', async () => {
    const source = sourceFor(objects);
    const group = new ReflectorGroup({ source, namespaces: 'all', clock: new FakeClock() });
    group.start();
    await settle();
    expect(group.hasSynced()).toBe(true);
    expect(source.listRequests).toEqual([{}]);
    expect(source.watches.map((w) => w.request.namespace)).toEqual([undefined]);
    expect(group.store.size).toBe(3);
    expect(group.store.get('ns3/c')).toEqual(objects[2]);
    await group.stop();
  });

  test('is not synced while any member has not listed', async () => {
    const source = sourceFor(objects);
    const plainList = source.list.bind(source);
    source.list = async (req) => {
      if (req.namespace === 'ns2') return new Promise(() => undefined);
      return plainList(req);
    };
    const group = new ReflectorGroup({
      source,
      namespaces: ['ns1', 'ns2'],
      clock: new FakeClock(),
    });
    group.start();
    await settle();
    expect(group.hasSynced()).toBe(false);
    expect(group.lastEventAgeMs()).toBeUndefined();
    const sync = group.waitForSync();
    await group.stop();
    await expect(sync).resolves.toBe(false);
  });

  test('refuses an empty namespace list', () => {
    expect(() => new ReflectorGroup({ source: new FakeSource(), namespaces: [] })).toThrow(
      RangeError,
    );
  });
});

describe('keys and paths', () => {
  test.each([
    { given: { apiVersion: 'v1', plural: 'pods' }, ns: undefined, want: '/api/v1/pods' },
    {
      given: { apiVersion: 'v1', plural: 'configmaps' },
      ns: 'team-a',
      want: '/api/v1/namespaces/team-a/configmaps',
    },
    {
      given: { apiVersion: 'clara-operator.io/v1alpha1', plural: 'clarainstances' },
      ns: 'x',
      want: '/apis/clara-operator.io/v1alpha1/namespaces/x/clarainstances',
    },
  ])('collectionPath($given.apiVersion, $ns) is $want', ({ given, ns, want }) => {
    expect(collectionPath(given, ns)).toBe(want);
  });

  test('keys namespaced objects by namespace/name and cluster-scoped ones by name', () => {
    expect(objectKey(obj('a', '1', 'ns'))).toBe('ns/a');
    expect(objectKey({ metadata: { name: 'node-1' } })).toBe('node-1');
    expect(splitObjectKey('ns/a')).toEqual({ namespace: 'ns', name: 'a' });
    expect(splitObjectKey('node-1')).toEqual({ namespace: undefined, name: 'node-1' });
    expect(() => objectKey({ metadata: {} })).toThrow('no cache key');
  });
});
