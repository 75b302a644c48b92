import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';

import { EventRecorder } from '../../src/k8s/event-recorder.ts';
import {
  createTestNamespace,
  deleteTestNamespace,
  testKubeConfig,
} from '../harness/cluster-env.ts';

const kc = testKubeConfig();
const core = kc.makeApiClient(k8s.CoreV1Api);
const events = kc.makeApiClient(k8s.EventsV1Api);
let namespace: string;
let subject: k8s.V1ConfigMap;

beforeAll(async () => {
  namespace = await createTestNamespace(kc, 'k8s-events');
  subject = await core.createNamespacedConfigMap({
    namespace,
    body: { metadata: { name: 'subject' }, data: { a: '1' } },
  });
});

afterAll(async () => {
  await deleteTestNamespace(kc, namespace);
});

describe('EventRecorder against the API server', () => {
  test('creates one Event for a repeated transition and counts the repeats in its series', async () => {
    const recorder = new EventRecorder({
      kubeConfig: kc,
      reportingController: 'clara-operator.io/test',
      reportingInstance: 'test-0',
    });
    const failed = {
      type: 'Warning',
      reason: 'PodFailed',
      action: 'WatchPod',
      note: 'OOMKilled',
    } as const;
    const outcomes = [];
    for (let i = 0; i < 3; i++) outcomes.push(await recorder.record(subject, failed));
    outcomes.push(await recorder.record(subject, { ...failed, note: 'Evicted' }));
    expect(outcomes).toEqual(['created', 'aggregated', 'aggregated', 'created']);

    const list = await events.listNamespacedEvent({ namespace });
    const byNote = new Map(list.items.map((e) => [e.note, e]));
    expect(list.items).toHaveLength(2);
    expect(byNote.get('OOMKilled')).toMatchObject({
      reason: 'PodFailed',
      type: 'Warning',
      action: 'WatchPod',
      reportingController: 'clara-operator.io/test',
      reportingInstance: 'test-0',
      regarding: { kind: 'ConfigMap', name: 'subject', uid: subject.metadata?.uid },
      series: { count: 3 },
    });
    expect(byNote.get('Evicted')?.series).toBeUndefined();
  });
});
