/**
 * The operator's API clients reuse one TLS connection pool, where client-node's own
 * `makeApiClient` opens a connection per request; both authenticate the same way.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';

import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';

import { makeApiClient } from '../../src/k8s/api-client.ts';
import { testKubeConfig } from '../harness/cluster-env.ts';

const kc = testKubeConfig();
let connects = 0;
const onConnect = (): void => {
  connects++;
};

beforeAll(() => {
  subscribe('undici:client:connected', onConnect);
});
afterAll(() => {
  unsubscribe('undici:client:connected', onConnect);
});

/** New connections made while `calls` reads of the default namespace run one after another. */
async function connectionsFor(api: k8s.CoreV1Api, calls: number): Promise<number> {
  const before = connects;
  for (let i = 0; i < calls; i++) {
    const ns = await api.readNamespace({ name: 'default' });
    expect(ns.metadata?.name).toBe('default');
  }
  return connects - before;
}

describe('makeApiClient', () => {
  test('30 requests share one connection; client-node alone opens one per request', async () => {
    const ours = makeApiClient(kc, k8s.CoreV1Api);
    const other = makeApiClient(kc, k8s.CoreV1Api);
    expect(await connectionsFor(ours, 30)).toBe(1);
    // A second client of the same KubeConfig uses the same pool.
    expect(await connectionsFor(other, 10)).toBe(0);
    // The reason this module exists (client-node 2.0.1); if this ever fails, upstream fixed it.
    expect(await connectionsFor(kc.makeApiClient(k8s.CoreV1Api), 10)).toBe(10);
  });

  test('errors keep their ApiException shape and the requests name the operator', async () => {
    const api = makeApiClient(kc, k8s.CoreV1Api);
    await expect(api.readNamespace({ name: 'no-such-namespace-here' })).rejects.toMatchObject({
      code: 404,
    });
    const seen: string[] = [];
    const onRequest = (message: unknown): void => {
      const { request } = message as { request: { headers: string[] | string } };
      const headers = Array.isArray(request.headers) ? request.headers : [request.headers];
      const at = headers.findIndex((h) => String(h).toLowerCase() === 'user-agent');
      if (at >= 0) seen.push(String(headers[at + 1]));
    };
    subscribe('undici:request:create', onRequest);
    try {
      await api.readNamespace({ name: 'default' });
    } finally {
      unsubscribe('undici:request:create', onRequest);
    }
    expect(seen).toContain('clara-operator');
  });
});
