import { afterEach, describe, expect, test } from '@jest/globals';
import type * as k8s from '@kubernetes/client-node';

import type { K8sLogger } from '../../../src/k8s/logger.ts';
import { Reflector, type ReflectorOptions } from '../../../src/k8s/reflector.ts';
import { FakeClock, settle } from './fake-clock.ts';
import { FakeSource, httpError, obj } from './fake-source.ts';

const running: Reflector<k8s.KubernetesObject>[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
});

/** Starts a reflector on a fake clock with random() = 0 (no jitter, shortest watch timeout). */
async function start(
  source: FakeSource,
  opts: Partial<ReflectorOptions<k8s.KubernetesObject>> = {},
) {
  const clock = new FakeClock();
  const events: string[] = [];
  const logs: string[] = [];
  const log = (level: string) => (_fields: Record<string, unknown>, msg: string) => {
    logs.push(`${level} ${msg}`);
  };
  const logger: K8sLogger = {
    debug: log('debug'),
    info: log('info'),
    warn: log('warn'),
    error: log('error'),
  };
  const name = (o: k8s.KubernetesObject) => `${o.metadata?.name}@${o.metadata?.resourceVersion}`;
  const reflector = new Reflector({
    source,
    clock,
    random: () => 0,
    logger,
    handlers: {
      onAdd: (o) => events.push(`add ${name(o)}`),
      onUpdate: (a, b) => events.push(`update ${name(a)} -> ${name(b)}`),
      onDelete: (o, info) =>
        events.push(`delete ${name(o)}${info.finalStateUnknown ? ' (inferred)' : ''}`),
    },
    ...opts,
  });
  running.push(reflector);
  reflector.start();
  await settle();
  return { reflector, clock, events, logs };
}

describe('list then watch', () => {
  test('lists, reports each object as added, then watches from the list resourceVersion', async () => {
    const source = new FakeSource().replyToLists({
      items: [obj('a', '10'), obj('b', '11')],
      resourceVersion: '12',
    });
    const { reflector, events } = await start(source, {
      namespace: 'ns',
      labelSelector: 'app=x',
      fieldSelector: 'metadata.name!=z',
    });
    expect(events).toEqual(['add a@10', 'add b@11']);
    expect(reflector.hasSynced()).toBe(true);
    expect(reflector.store.keys().sort()).toEqual(['ns/a', 'ns/b']);
    expect(source.listRequests).toEqual([
      { namespace: 'ns', labelSelector: 'app=x', fieldSelector: 'metadata.name!=z' },
    ]);
    expect(source.lastWatch.request).toEqual({
      namespace: 'ns',
      labelSelector: 'app=x',
      fieldSelector: 'metadata.name!=z',
      resourceVersion: '12',
      timeoutSeconds: 300,
      allowWatchBookmarks: true,
    });
  });

  test('draws the server-side watch timeout from [min, max] seconds', async () => {
    const source = new FakeSource().replyToLists({ items: [], resourceVersion: '1' });
    await start(source, { random: () => 0.5 });
    expect(source.lastWatch.request.timeoutSeconds).toBe(450);
  });

  test('applies watch events to the store and calls the handlers', async () => {
    const source = new FakeSource().replyToLists({ items: [obj('a', '1')], resourceVersion: '1' });
    const { reflector, events } = await start(source);
    source.lastWatch.emit('ADDED', obj('b', '2'));
    source.lastWatch.emit('MODIFIED', obj('a', '3'));
    source.lastWatch.emit('MODIFIED', obj('a', '3'));
    source.lastWatch.emit('DELETED', obj('b', '4'));
    expect(events).toEqual(['add a@1', 'add b@2', 'update a@1 -> a@3', 'delete b@4']);
    expect(reflector.store.list()).toEqual([obj('a', '3')]);
    expect(reflector.stats().resourceVersion).toBe('4');
  });

  test('stores and hands out objects without managedFields, or as the transform makes them', async () => {
    const managed = (name: string, rv: string): k8s.KubernetesObject => {
      const o = obj(name, rv);
      o.metadata!.managedFields = [{ manager: 'kubectl', operation: 'Update', fieldsV1: {} }];
      return o;
    };
    const source = new FakeSource().replyToLists({
      items: [managed('a', '1')],
      resourceVersion: '1',
    });
    const seen: k8s.KubernetesObject[] = [];
    const { reflector } = await start(source, { handlers: { onAdd: (o) => seen.push(o) } });
    source.lastWatch.emit('ADDED', managed('b', '2'));
    expect(reflector.store.list()).toEqual([obj('a', '1'), obj('b', '2')]);
    expect(seen).toEqual([obj('a', '1'), obj('b', '2')]);

    const labelled = new FakeSource().replyToLists({
      items: [managed('c', '3')],
      resourceVersion: '3',
    });
    const { reflector: custom } = await start(labelled, {
      transform: (o) => ({ ...o, metadata: { ...o.metadata, labels: { seen: 'yes' } } }),
    });
    expect(custom.store.list()[0]?.metadata?.labels).toEqual({ seen: 'yes' });
    expect(custom.store.list()[0]?.metadata?.managedFields).toHaveLength(1);
  });

  test('follows bookmarks and rewatches from the last one after a clean close', async () => {
    const source = new FakeSource().replyToLists({ items: [], resourceVersion: '5' });
    const { events } = await start(source);
    source.lastWatch.emit('BOOKMARK', { kind: 'ConfigMap', metadata: { resourceVersion: '90' } });
    source.lastWatch.close();
    await settle();
    expect(source.watches.map((w) => w.request.resourceVersion)).toEqual(['5', '90']);
    expect(source.listRequests).toHaveLength(1);
    expect(events).toEqual([]);
  });

  test('keeps running when a handler throws, and logs it', async () => {
    const source = new FakeSource().replyToLists({ items: [], resourceVersion: '1' });
    const { reflector, logs } = await start(source, {
      handlers: {
        onAdd: () => {
          throw new Error('handler bug');
        },
      },
    });
    source.lastWatch.emit('ADDED', obj('a', '2'));
    source.lastWatch.emit('ADDED', obj('b', '3'));
    expect(reflector.store.size).toBe(2);
    expect(logs.filter((l) => l === 'error reflector handler threw')).toHaveLength(2);
  });
});

describe('410 Gone', () => {
  test.each([
    {
      how: 'a watch ERROR event with code 410',
      expire: (s: FakeSource) =>
        s.lastWatch.emit('ERROR', { kind: 'Status', code: 410, reason: 'Expired' }),
    },
    { how: 'an HTTP 410 answer', expire: (s: FakeSource) => s.lastWatch.close(httpError(410)) },
  ])('relists after $how and reports what changed meanwhile', async ({ expire }) => {
    const source = new FakeSource().replyToLists(
      { items: [obj('a', '1'), obj('b', '2'), obj('c', '3')], resourceVersion: '3' },
      { items: [obj('a', '1'), obj('b', '7'), obj('d', '8')], resourceVersion: '9' },
    );
    const { reflector, events } = await start(source);
    source.lastWatch.emit('MODIFIED', obj('a', '1'));
    events.length = 0;

    expire(source);
    await settle();
    expect(events).toEqual(['update b@2 -> b@7', 'add d@8', 'delete c@3 (inferred)']);
    expect(reflector.store.keys().sort()).toEqual(['ns/a', 'ns/b', 'ns/d']);
    expect(source.lastWatch.request.resourceVersion).toBe('9');
    expect(source.watches[0]!.aborted).toBe(true);
  });

  test('backs off instead of spinning when a fresh watch expires before any event', async () => {
    const source = new FakeSource().replyToLists(
      { items: [], resourceVersion: '1' },
      { items: [], resourceVersion: '2' },
    );
    const { clock } = await start(source);
    source.lastWatch.close(httpError(410));
    await settle();
    expect(source.listRequests).toHaveLength(1);
    await clock.advance(800);
    expect(source.listRequests).toHaveLength(2);
  });
});

describe('failures', () => {
  test('rewatches after a jittered exponential backoff that grows per failure', async () => {
    const source = new FakeSource().replyToLists({ items: [], resourceVersion: '1' });
    const { clock } = await start(source, { random: () => 0.5, backoffJitter: 0.5 });
    const delays: number[] = [];
    for (let i = 0; i < 7; i++) {
      source.lastWatch.close(httpError(500));
      await settle();
      delays.push(clock.pendingDelaysMs()[0]!);
      await clock.advance(delays.at(-1)!);
    }
    // random 0.5 with jitter 0.5 cuts each delay by a quarter: 800 → 600, capped at 30 s → 22.5 s.
    expect(delays).toEqual([600, 1200, 2400, 4800, 9600, 19200, 22500]);
    expect(source.watches).toHaveLength(8);
  });

  test('starts the backoff over once a watch delivered an event', async () => {
    const source = new FakeSource().replyToLists({ items: [], resourceVersion: '1' });
    const { clock, reflector } = await start(source);
    source.lastWatch.close(httpError(503));
    await clock.advance(800);
    source.lastWatch.close(httpError(503));
    await clock.advance(1_600);
    source.lastWatch.emit('BOOKMARK', { metadata: { resourceVersion: '2' } });
    expect(reflector.stats().consecutiveFailures).toBe(0);
    source.lastWatch.close(new Error('socket hang up'));
    await settle();
    expect(clock.pendingDelaysMs()).toContain(800);
  });

  test('retries a failed list with backoff and is not synced until one succeeds', async () => {
    const source = new FakeSource().replyToLists(httpError(500), httpError(500), {
      items: [obj('a', '1')],
      resourceVersion: '1',
    });
    const { clock, reflector, logs } = await start(source);
    expect(reflector.hasSynced()).toBe(false);
    await clock.advance(800);
    expect(reflector.hasSynced()).toBe(false);
    await clock.advance(1_600);
    expect(reflector.hasSynced()).toBe(true);
    expect(logs.filter((l) => l === 'warn list failed; will retry')).toHaveLength(2);
  });

  test('aborts a watch that stays silent past the inactivity timeout and rewatches', async () => {
    const source = new FakeSource().replyToLists({ items: [], resourceVersion: '1' });
    const { clock, logs } = await start(source, { inactivityTimeoutMs: 60_000 });
    await clock.advance(59_000);
    source.lastWatch.emit('BOOKMARK', { metadata: { resourceVersion: '2' } });
    await clock.advance(59_000);
    expect(source.watches).toHaveLength(1);
    await clock.advance(1_000);
    expect(source.watches[0]!.aborted).toBe(true);
    expect(logs).toContain('warn watch failed; will rewatch');
    await clock.advance(800);
    expect(source.watches).toHaveLength(2);
    expect(source.lastWatch.request.resourceVersion).toBe('2');
  });

  test('backs off when the server closes a watch before sending anything', async () => {
    const source = new FakeSource().replyToLists({ items: [], resourceVersion: '1' });
    const { clock } = await start(source);
    source.lastWatch.close();
    await settle();
    expect(source.watches).toHaveLength(1);
    await clock.advance(800);
    expect(source.watches).toHaveLength(2);
  });
});

describe('health and stop', () => {
  test('reports the age of the last list, event or bookmark', async () => {
    const source = new FakeSource().replyToLists({ items: [], resourceVersion: '1' });
    const { clock, reflector } = await start(source);
    await clock.advance(5_000);
    expect(reflector.lastEventAgeMs()).toBe(5_000);
    source.lastWatch.emit('BOOKMARK', { metadata: { resourceVersion: '2' } });
    await clock.advance(1_000);
    expect(reflector.lastEventAgeMs()).toBe(1_000);
  });

  test('stop closes the watch and ends the loop', async () => {
    const source = new FakeSource().replyToLists({ items: [], resourceVersion: '1' });
    const { reflector, clock } = await start(source);
    await reflector.stop();
    expect(source.lastWatch.aborted).toBe(true);
    await clock.advance(600_000);
    expect(source.watches).toHaveLength(1);
  });

  test('stop during a backoff ends the loop without another attempt', async () => {
    const source = new FakeSource().replyToLists(httpError(500));
    const { reflector, clock } = await start(source);
    const sync = reflector.waitForSync();
    await reflector.stop();
    await expect(sync).resolves.toBe(false);
    await clock.advance(60_000);
    expect(source.listRequests).toHaveLength(1);
  });
});
