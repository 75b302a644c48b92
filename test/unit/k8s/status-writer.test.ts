import { describe, expect, test } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';

import { ConflictError } from '../../../src/k8s/errors.ts';
import {
  normaliseStatus,
  statusEqual,
  StatusWriter,
  type ObjectWithStatus,
  type StatusApi,
} from '../../../src/k8s/status-writer.ts';

/** A fake CustomObjectsApi that records calls and answers with `reply`. */
function fakeApi(reply: (body: ObjectWithStatus) => unknown) {
  const calls: { scope: string; req: Record<string, unknown> }[] = [];
  const api = {
    replaceNamespacedCustomObjectStatus: async (req: { body: ObjectWithStatus }) => {
      calls.push({ scope: 'namespaced', req });
      return reply(req.body);
    },
    replaceClusterCustomObjectStatus: async (req: { body: ObjectWithStatus }) => {
      calls.push({ scope: 'cluster', req });
      return reply(req.body);
    },
  } as unknown as StatusApi;
  return { api, calls };
}

const coordinates = { group: 'example.io', version: 'v1', plural: 'widgets' };

function widget(status?: unknown, scope: { namespace?: string } = { namespace: 'ns' }) {
  const object: ObjectWithStatus = {
    apiVersion: 'example.io/v1',
    kind: 'Widget',
    metadata: { name: 'w', namespace: scope.namespace, resourceVersion: '7' },
    status,
  };
  return object;
}

describe('StatusWriter', () => {
  test('makes no call when the status is unchanged', async () => {
    const { api, calls } = fakeApi(() => {
      throw new Error('must not be called');
    });
    const current = widget({ phase: 'Running', n: 1 });
    const result = await new StatusWriter({ api, ...coordinates }).writeStatus(current, {
      n: 1,
      phase: 'Running',
      ignored: undefined,
    });
    expect(result).toEqual({ outcome: 'unchanged', object: current });
    expect(calls).toEqual([]);
  });

  test('replaces /status at the read resourceVersion and returns the server copy', async () => {
    const { api, calls } = fakeApi((body) => ({
      ...body,
      metadata: { ...body.metadata, resourceVersion: '8' },
    }));
    const result = await new StatusWriter({ api, ...coordinates }).writeStatus(widget(), {
      phase: 'Queued',
    });
    expect(result.outcome).toBe('updated');
    expect(result.object.metadata?.resourceVersion).toBe('8');
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({
      scope: 'namespaced',
      req: {
        ...coordinates,
        namespace: 'ns',
        name: 'w',
        body: { metadata: { resourceVersion: '7' }, status: { phase: 'Queued' } },
      },
    });
  });

  test('uses the cluster-scoped call for an object without namespace', async () => {
    const { api, calls } = fakeApi((body) => body);
    await new StatusWriter({ api, ...coordinates }).writeStatus(widget(undefined, {}), {
      a: 1,
    });
    expect(calls.map((c) => c.scope)).toEqual(['cluster']);
  });

  test('maps 409 Conflict to ConflictError and passes other errors through', async () => {
    const conflict = new k8s.ApiException(409, 'Conflict', {}, {});
    const gone = new k8s.ApiException(404, 'Not Found', {}, {});
    const writer = (err: unknown) =>
      new StatusWriter({
        api: fakeApi(() => {
          throw err;
        }).api,
        ...coordinates,
      });
    await expect(writer(conflict).writeStatus(widget(), { a: 1 })).rejects.toMatchObject({
      constructor: ConflictError,
      objectKey: 'ns/w',
      resourceVersion: '7',
      cause: conflict,
    });
    await expect(writer(gone).writeStatus(widget(), { a: 1 })).rejects.toBe(gone);
  });

  test('refuses to write without a resourceVersion', async () => {
    const { api, calls } = fakeApi((body) => body);
    const current = { ...widget(), metadata: { name: 'w', namespace: 'ns' } };
    await expect(
      new StatusWriter({ api, ...coordinates }).writeStatus(current, { a: 1 }),
    ).rejects.toThrow('resourceVersion');
    expect(calls).toEqual([]);
  });
});

describe('statusEqual', () => {
  test.each([
    { name: 'key order', a: { x: 1, y: [1, 2] }, b: { y: [1, 2], x: 1 }, equal: true },
    { name: 'undefined members', a: { x: 1, z: undefined }, b: { x: 1 }, equal: true },
    {
      name: 'a Date and its metav1.Time string',
      a: { at: new Date('2026-01-01T00:00:00.789Z') },
      b: { at: '2026-01-01T00:00:00Z' },
      equal: true,
    },
    { name: 'array order', a: { l: [1, 2] }, b: { l: [2, 1] }, equal: false },
    { name: 'a changed value', a: { n: 1 }, b: { n: 2 }, equal: false },
    { name: 'a missing status', a: undefined, b: {}, equal: false },
    { name: 'null and absent', a: { x: null }, b: {}, equal: false },
  ])('$name → $equal', ({ a, b, equal }) => {
    expect(statusEqual(a, b)).toBe(equal);
  });

  test('normaliseStatus sorts nested keys', () => {
    expect(JSON.stringify(normaliseStatus({ b: { d: 1, c: 2 }, a: 0 }))).toBe(
      '{"a":0,"b":{"c":2,"d":1}}',
    );
  });
});
