import { describe, expect, test } from '@jest/globals';
import type { Registry } from 'prom-client';

import type { ClaraObject } from '../../../src/controller/clarainstance/clara-api.ts';
import type { ReflectorStats, WorkQueueStats } from '../../../src/k8s/index.ts';
import { createOperatorMetrics } from '../../../src/metrics/index.ts';
import { cachedInstance } from './instances.ts';

/** The samples of one metric as `{labels} value` lines (histograms: their _count and _sum). */
async function samples(registry: Registry, name: string): Promise<string[]> {
  const metric = registry.getSingleMetric(name);
  if (!metric) throw new Error(`metric ${name} is not registered`);
  const { values } = await metric.get();
  return values
    .filter((v) => !('le' in v.labels))
    .map((v: { labels: object; value: number; metricName?: string }) => {
      // Histograms name each sample (`_sum`, `_count`); prom-client's types leave that out.
      const suffix = v.metricName && v.metricName !== name ? v.metricName.slice(name.length) : '';
      const labels = Object.entries(v.labels)
        .map(([k, l]) => `${k}=${String(l)}`)
        .join(',');
      return `${suffix}{${labels}} ${v.value}`;
    });
}

function metrics() {
  return createOperatorMetrics({ processMetrics: false });
}

describe('training metrics', () => {
  test('exports the four latest scalars and the iteration per instance', async () => {
    const m = metrics();
    m.collectInstances(() => [cachedInstance('team-a', 'spleen')]);

    expect(await samples(m.registry, 'clara_instance_val_mean_dice')).toEqual([
      '{namespace=team-a,name=spleen} 0.91',
    ]);
    expect(await samples(m.registry, 'clara_instance_val_acc')).toEqual([
      '{namespace=team-a,name=spleen} 0.97',
    ]);
    expect(await samples(m.registry, 'clara_instance_train_loss')).toEqual([
      '{namespace=team-a,name=spleen} 0.12',
    ]);
    expect(await samples(m.registry, 'clara_instance_train_acc')).toEqual([
      '{namespace=team-a,name=spleen} 0.95',
    ]);
    expect(await samples(m.registry, 'clara_instance_iteration')).toEqual([
      '{namespace=team-a,name=spleen} 1200',
    ]);
  });

  test('sets the current phase to 1 and every other phase to 0', async () => {
    const m = metrics();
    m.collectInstances(() => [cachedInstance('ns', 'a', { phase: 'Queued' })]);

    const phases = await samples(m.registry, 'clara_instance_phase');

    expect(phases).toHaveLength(7);
    expect(phases.filter((s) => s.endsWith(' 1'))).toEqual([
      '{namespace=ns,name=a,phase=Queued} 1',
    ]);
  });

  test('an instance without a phase yet has every phase at 0', async () => {
    const m = metrics();
    m.collectInstances(() => [cachedInstance('ns', 'new', {})]);
    const phases = await samples(m.registry, 'clara_instance_phase');
    expect(phases.every((s) => s.endsWith(' 0'))).toBe(true);
  });

  test('the info series carries task id and queue, empty before a task exists', async () => {
    const m = metrics();
    m.collectInstances(() => [
      cachedInstance('ns', 'running', { taskId: 'abc123', queue: 'gpu' }),
      cachedInstance('ns', 'pending', {}),
    ]);
    expect(await samples(m.registry, 'clara_instance_info')).toEqual([
      '{namespace=ns,name=running,task_id=abc123,queue=gpu} 1',
      '{namespace=ns,name=pending,task_id=,queue=} 1',
    ]);
  });

  test('a scalar the run has not reported has no sample rather than 0', async () => {
    const m = metrics();
    m.collectInstances(() => [
      cachedInstance('ns', 'early', { phase: 'Running', metrics: { train_loss: { latest: 1.5 } } }),
    ]);
    expect(await samples(m.registry, 'clara_instance_val_mean_dice')).toEqual([]);
    expect(await samples(m.registry, 'clara_instance_train_loss')).toEqual([
      '{namespace=ns,name=early} 1.5',
    ]);
  });

  test('the series of a deleted instance are gone from the next scrape', async () => {
    const m = metrics();
    let cache: ClaraObject[] = [cachedInstance('ns', 'kept'), cachedInstance('ns', 'deleted')];
    m.collectInstances(() => cache);
    expect(await m.metricsText()).toContain('name="deleted"');

    cache = [cachedInstance('ns', 'kept')];

    const text = await m.metricsText();
    expect(text).not.toContain('name="deleted"');
    expect(text).toContain('clara_instance_val_mean_dice{namespace="ns",name="kept"} 0.91');
  });

  test('exports no training series before a source is set', async () => {
    const m = metrics();
    expect(await m.metricsText()).not.toMatch(/^clara_instance_/m);
  });
});

describe('controller metrics', () => {
  test.each([
    {
      name: 'a success',
      outcomes: ['success'] as const,
      wantTotals: { success: 1, requeue_after: 0, error: 0 },
      wantErrors: 0,
    },
    {
      name: 'a requeue and two errors',
      outcomes: ['requeue_after', 'error', 'error'] as const,
      wantTotals: { success: 0, requeue_after: 1, error: 2 },
      wantErrors: 2,
    },
  ])('counts $name by result, in errors and in the duration histogram', async (c) => {
    const m = metrics();

    for (const outcome of c.outcomes) m.onReconcile(outcome, 250);

    const totals = await samples(m.registry, 'controller_runtime_reconcile_total');
    expect(totals).toEqual(
      Object.entries(c.wantTotals).map(
        ([result, n]) => `{controller=clarainstance,result=${result}} ${n}`,
      ),
    );
    expect(await samples(m.registry, 'controller_runtime_reconcile_errors_total')).toEqual([
      `{controller=clarainstance} ${c.wantErrors}`,
    ]);
    expect(await samples(m.registry, 'controller_runtime_reconcile_time_seconds')).toEqual([
      `_sum{controller=clarainstance} ${0.25 * c.outcomes.length}`,
      `_count{controller=clarainstance} ${c.outcomes.length}`,
    ]);
  });

  test('turns the queue callbacks into the workqueue family in seconds', async () => {
    const m = metrics();
    const q = m.queueMetrics;

    q.onAdd?.('ns/a');
    q.onAdd?.('ns/b');
    q.onDepth?.(2);
    q.onRetry?.('ns/a');
    q.onQueueDuration?.('ns/a', 1500);
    q.onWorkDuration?.('ns/a', 20);

    const labels = '{controller=clarainstance,name=clarainstance}';
    expect(await samples(m.registry, 'workqueue_adds_total')).toEqual([`${labels} 2`]);
    expect(await samples(m.registry, 'workqueue_depth')).toEqual([`${labels} 2`]);
    expect(await samples(m.registry, 'workqueue_retries_total')).toEqual([`${labels} 1`]);
    expect(await samples(m.registry, 'workqueue_queue_duration_seconds')).toContain(
      `_sum${labels} 1.5`,
    );
    expect(await samples(m.registry, 'workqueue_work_duration_seconds')).toContain(
      `_sum${labels} 0.02`,
    );
  });

  test('reads active workers and unfinished work from the queue stats at scrape time', async () => {
    const m = metrics();
    const stats: WorkQueueStats = {
      depth: 0,
      waiting: 0,
      activeWorkers: 3,
      addsTotal: 0,
      retriesTotal: 0,
      longestRunningProcessorMs: 4000,
      unfinishedWorkMs: 6500,
    };
    m.collectController({ queue: () => stats });

    expect(await samples(m.registry, 'controller_runtime_active_workers')).toEqual([
      '{controller=clarainstance} 3',
    ]);
    expect(await samples(m.registry, 'workqueue_unfinished_work_seconds')).toEqual([
      '{controller=clarainstance,name=clarainstance} 6.5',
    ]);
    expect(await samples(m.registry, 'workqueue_longest_running_processor_seconds')).toEqual([
      '{controller=clarainstance,name=clarainstance} 4',
    ]);
  });

  test('leader status follows setLeader and starts at 0', async () => {
    const m = createOperatorMetrics({ processMetrics: false, leaseName: 'clara-lease' });
    expect(await samples(m.registry, 'leader_election_master_status')).toEqual([
      '{name=clara-lease} 0',
    ]);
    m.setLeader(true);
    expect(await samples(m.registry, 'leader_election_master_status')).toEqual([
      '{name=clara-lease} 1',
    ]);
  });

  test('restates the reflectors list and watch counts at each scrape', async () => {
    const m = metrics();
    const stats = (watches: number): ReflectorStats => ({
      hasSynced: true,
      lastEventAgeMs: 10,
      resourceVersion: '42',
      lists: 1,
      watches,
      consecutiveFailures: watches - 1,
    });
    let watches = 1;
    m.collectController({ reflectors: () => ({ clarainstances: { '*': stats(watches) } }) });
    expect(await samples(m.registry, 'clara_reflector_watches_total')).toEqual([
      '{reflector=clarainstances,namespace=*} 1',
    ]);

    watches = 3;

    expect(await samples(m.registry, 'clara_reflector_watches_total')).toEqual([
      '{reflector=clarainstances,namespace=*} 3',
    ]);
    expect(await samples(m.registry, 'clara_reflector_lists_total')).toEqual([
      '{reflector=clarainstances,namespace=*} 1',
    ]);
    expect(await samples(m.registry, 'clara_reflector_consecutive_failures')).toEqual([
      '{reflector=clarainstances,namespace=*} 2',
    ]);
  });
});

describe('ClearML request metrics', () => {
  test('counts requests by endpoint and code, errors by endpoint, durations in seconds', async () => {
    const m = metrics();

    m.onClearmlRequest({ endpoint: 'tasks.get_all', code: '200', durationMs: 40 });
    m.onClearmlRequest({ endpoint: 'tasks.get_all', code: '503', durationMs: 10 });
    m.onClearmlRequest({ endpoint: 'tasks.enqueue', code: 'timeout', durationMs: 2000 });
    m.onClearmlRequest({ endpoint: 'auth.login', code: '200', durationMs: 5 });

    expect(await samples(m.registry, 'clara_clearml_requests_total')).toEqual([
      '{endpoint=tasks.get_all,code=200} 1',
      '{endpoint=tasks.get_all,code=503} 1',
      '{endpoint=tasks.enqueue,code=timeout} 1',
      '{endpoint=auth.login,code=200} 1',
    ]);
    expect(await samples(m.registry, 'clara_clearml_request_errors_total')).toEqual([
      '{endpoint=tasks.get_all} 1',
      '{endpoint=tasks.enqueue} 1',
      '{endpoint=auth.login} 0',
    ]);
    expect(await samples(m.registry, 'clara_clearml_request_duration_seconds')).toContain(
      '_sum{endpoint=tasks.get_all} 0.05',
    );
  });
});

describe('handler', () => {
  /** A response that records what the handler wrote. */
  function recordingResponse() {
    const got = { status: 0, headers: {} as Record<string, string>, body: '' };
    let ended: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (ended = resolve));
    const res = {
      writeHead(status: number, headers: Record<string, string> = {}) {
        Object.assign(got, { status, headers });
        return res;
      },
      end(body = '') {
        got.body = body;
        ended();
        return res;
      },
    };
    return { res, got, done };
  }

  test('serves the exposition text with its content type on GET', async () => {
    const m = metrics();
    m.onReconcile('success', 10);
    const { res, got, done } = recordingResponse();

    m.handler({ method: 'GET' } as never, res as never);

    await done;
    expect(got.status).toBe(200);
    expect(got.headers['content-type']).toBe(m.contentType);
    expect(got.body).toContain(
      'controller_runtime_reconcile_total{controller="clarainstance",result="success"} 1',
    );
  });

  test('refuses other methods with 405', () => {
    const { res, got } = recordingResponse();
    metrics().handler({ method: 'POST' } as never, res as never);
    expect(got.status).toBe(405);
  });
});
