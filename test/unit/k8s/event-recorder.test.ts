import { describe, expect, test } from '@jest/globals';
import type * as k8s from '@kubernetes/client-node';

import { EventRecorder, type EventsApi } from '../../../src/k8s/event-recorder.ts';
import { FakeClock } from './fake-clock.ts';

/** A fake EventsV1Api that records creates and patches; `fail` makes the next call throw. */
function fakeApi() {
  const calls: { op: 'create' | 'patch'; namespace: string; body: Record<string, unknown> }[] = [];
  const state = { fail: false };
  const api = {
    createNamespacedEvent: async (req: { namespace: string; body: k8s.EventsV1Event }) => {
      if (state.fail) throw new Error('apiserver unavailable');
      calls.push({
        op: 'create',
        namespace: req.namespace,
        body: req.body as unknown as Record<string, unknown>,
      });
      return req.body;
    },
    patchNamespacedEvent: async (req: { name: string; namespace: string; body: object }) => {
      if (state.fail) throw new Error('apiserver unavailable');
      calls.push({ op: 'patch', namespace: req.namespace, body: { name: req.name, ...req.body } });
      return {};
    },
  } as unknown as EventsApi;
  return { api, calls, state };
}

const pod: k8s.KubernetesObject = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'agent-1', namespace: 'team', uid: 'u-1', resourceVersion: '5' },
};
const created = {
  type: 'Normal',
  reason: 'TaskCreated',
  action: 'CreateTask',
  note: 'task abc',
} as const;

function recorder(opts: { windowMs?: number; maxTracked?: number } = {}) {
  const clock = new FakeClock();
  const { api, calls, state } = fakeApi();
  const r = new EventRecorder({
    api,
    clock,
    reportingController: 'clara-operator.io/controller',
    reportingInstance: 'operator-0',
    aggregationWindowMs: opts.windowMs ?? 60_000,
    maxTracked: opts.maxTracked,
  });
  return { r, clock, calls, state };
}

describe('EventRecorder', () => {
  test('creates an events.k8s.io/v1 Event naming the object and the reporter', async () => {
    const { r, calls, clock } = recorder();
    await expect(r.record(pod, created)).resolves.toBe('created');
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({
      op: 'create',
      namespace: 'team',
      body: {
        reportingController: 'clara-operator.io/controller',
        reportingInstance: 'operator-0',
        regarding: { kind: 'Pod', name: 'agent-1', namespace: 'team', uid: 'u-1' },
        type: 'Normal',
        reason: 'TaskCreated',
        action: 'CreateTask',
        note: 'task abc',
      },
    });
    const body = calls[0]!.body as { metadata: { name: string }; eventTime: Date };
    expect(body.metadata.name).toMatch(/^agent-1\.[0-9a-f]+$/);
    expect(body.eventTime.getTime()).toBe(clock.now());
  });

  test('folds identical events within the window into a series on the first Event', async () => {
    const { r, calls, clock } = recorder();
    await r.record(pod, created);
    await clock.advance(30_000);
    await expect(r.record(pod, created)).resolves.toBe('aggregated');
    await clock.advance(30_000);
    await r.record(pod, created);
    const name = (calls[0]!.body as { metadata: { name: string } }).metadata.name;
    expect(calls.map((c) => c.op)).toEqual(['create', 'patch', 'patch']);
    expect(calls[2]!.body).toMatchObject({ name, series: { count: 3 } });
    const series = (calls[2]!.body as { series: { lastObservedTime: Date } }).series;
    expect(series.lastObservedTime.getTime()).toBe(clock.now());
  });

  test.each([
    { differs: 'note', event: { ...created, note: 'task def' } },
    { differs: 'reason', event: { ...created, reason: 'TaskEnqueued' } },
    { differs: 'type', event: { ...created, type: 'Warning' as const } },
  ])('creates a separate Event when the $differs differs', async ({ event }) => {
    const { r, calls } = recorder();
    await r.record(pod, created);
    await r.record(pod, event);
    expect(calls.map((c) => c.op)).toEqual(['create', 'create']);
  });

  test('creates a new Event once the window has passed since the last occurrence', async () => {
    const { r, calls, clock } = recorder({ windowMs: 60_000 });
    await r.record(pod, created);
    await clock.advance(60_001);
    await r.record(pod, created);
    expect(calls.map((c) => c.op)).toEqual(['create', 'create']);
  });

  test('never throws: a failed create resolves "failed" and the next occurrence creates again', async () => {
    const { r, calls, state } = recorder();
    state.fail = true;
    await expect(r.record(pod, created)).resolves.toBe('failed');
    state.fail = false;
    await expect(r.record(pod, created)).resolves.toBe('created');
    expect(calls.map((c) => c.op)).toEqual(['create']);
  });

  test('cuts long notes and puts events of cluster-scoped objects in default', async () => {
    const { r, calls } = recorder();
    const node = { apiVersion: 'v1', kind: 'Node', metadata: { name: 'gpu-1' } };
    await r.record(node, { ...created, note: 'x'.repeat(5000) });
    expect(calls[0]!.namespace).toBe('default');
    expect((calls[0]!.body.note as string).length).toBe(1024);
  });

  test('forgets the oldest events beyond maxTracked', async () => {
    const { r, calls } = recorder({ maxTracked: 2 });
    for (const note of ['a', 'b', 'c']) await r.record(pod, { ...created, note });
    await r.record(pod, { ...created, note: 'a' });
    await r.record(pod, { ...created, note: 'c' });
    expect(calls.map((c) => c.op)).toEqual(['create', 'create', 'create', 'create', 'patch']);
  });

  test('sends at most maxInFlight writes at once and drops beyond the backlog', async () => {
    let inFlight = 0;
    let peak = 0;
    const release: (() => void)[] = [];
    const api = {
      createNamespacedEvent: async (req: { body: k8s.EventsV1Event }) => {
        inFlight++;
        peak = Math.max(peak, inFlight);
        await new Promise<void>((resolve) => release.push(resolve));
        inFlight--;
        return req.body;
      },
      patchNamespacedEvent: async () => ({}),
    } as unknown as EventsApi;
    const r = new EventRecorder({
      api,
      reportingController: 'clara-operator.io/controller',
      reportingInstance: 'operator-0',
      maxInFlight: 3,
      maxBacklog: 5,
    });
    const objects = Array.from({ length: 10 }, (_, i) => ({
      ...pod,
      metadata: { ...pod.metadata, name: `agent-${i}`, uid: `u-${i}` },
    }));
    const outcomes = objects.map((o) => r.record(o, created));
    await new Promise((resolve) => setImmediate(resolve));
    // 3 writing, 5 waiting, the last 2 dropped at once.
    expect(inFlight).toBe(3);
    await expect(outcomes[8]).resolves.toBe('failed');
    await expect(outcomes[9]).resolves.toBe('failed');
    while (release.length > 0 || inFlight > 0) {
      release.shift()?.();
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(await Promise.all(outcomes.slice(0, 8))).toEqual(Array(8).fill('created'));
    expect(peak).toBe(3);
  });
});
