import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';

import { ClearmlUnavailableError } from '../../../src/clearml/index.ts';
import { hashFieldName } from '../../emulator/services/events.ts';
import { startEmulator, type RunningEmulator } from '../../emulator/emulator.ts';
import { clientFor, newTask, ok, raw, waitFor } from './helpers.ts';

let emulator: RunningEmulator;
beforeAll(async () => {
  emulator = await startEmulator();
});
afterAll(async () => {
  await emulator.stop();
});

function jsonLines(items: object[]): string {
  return items.map((i) => JSON.stringify(i)).join('\n');
}

describe('events', () => {
  test("last_metrics value is each variant's newest iteration, not the task's last iteration", async () => {
    const task = await newTask(emulator);
    const scalar = (metric: string, iter: number, value: number) => ({
      type: 'training_stats_scalar',
      task,
      iter,
      metric,
      variant: metric,
      value,
      timestamp: 1000 + iter,
    });
    // Loss per iteration (1..6), dice per epoch (1..2): as a Clara run reports them.
    const first = [1, 2, 3].map((i) => scalar('train_loss', i, 1 / i));
    first.push(scalar('val_mean_dice', 1, 0.6));
    const second = [4, 5, 6].map((i) => scalar('train_loss', i, 1 / i));
    second.push(scalar('val_mean_dice', 2, 0.8));
    for (const batch of [first, second]) {
      await raw(emulator, 'events.add_batch', jsonLines(batch), {
        contentType: 'application/json-lines',
      });
    }

    const [t] = await clientFor(emulator).getTasks({
      ids: [task],
      onlyFields: ['last_metrics', 'last_iteration'],
    });
    expect(t?.last_iteration).toBe(6);
    const dice =
      t?.last_metrics?.[hashFieldName('val_mean_dice')]?.[hashFieldName('val_mean_dice')];
    expect(dice).toMatchObject({ value: 0.8, max_value: 0.8, max_value_iteration: 2, count: 2 });
    const loss = t?.last_metrics?.[hashFieldName('train_loss')]?.[hashFieldName('train_loss')];
    expect(loss?.value).toBeCloseTo(1 / 6);
  });

  test('add_batch (json-lines) stores scalars and keeps last_metrics keyed by md5 names', async () => {
    const task = await newTask(emulator);
    const scalars = [0.2, 0.6, 0.5].map((value, i) => ({
      type: 'training_stats_scalar',
      task,
      iter: i + 1,
      metric: 'val_mean_dice',
      variant: 'val_mean_dice',
      value,
      timestamp: 1000 + i,
    }));
    const answer = await raw(emulator, 'events.add_batch', jsonLines(scalars), {
      contentType: 'application/json-lines',
    });
    expect(answer.body.data).toEqual({ added: 3, errors: 0, errors_info: {} });

    expect(hashFieldName('val_mean_dice')).toBe('861b8720e2513b1119c0e9bfb19c3c2d');
    const [t] = await clientFor(emulator).getTasks({
      ids: [task],
      onlyFields: ['last_metrics', 'last_iteration'],
    });
    expect(t?.last_iteration).toBe(3);
    expect(
      t?.last_metrics?.[hashFieldName('val_mean_dice')]?.[hashFieldName('val_mean_dice')],
    ).toMatchObject({
      metric: 'val_mean_dice',
      value: 0.5,
      min_value: 0.2,
      min_value_iteration: 1,
      max_value: 0.6,
      max_value_iteration: 2,
      first_value: 0.2,
      count: 3,
    });
    const series = await clientFor(emulator).getScalarHistogram({ task });
    expect(series.val_mean_dice?.val_mean_dice).toEqual({
      name: 'val_mean_dice',
      x: [1, 2, 3],
      y: [0.2, 0.6, 0.5],
    });
  });

  test('events for an unknown task are counted as errors, not stored', async () => {
    const answer = await raw(
      emulator,
      'events.add_batch',
      jsonLines([{ type: 'log', task: 'missing', msg: 'x' }]),
      { contentType: 'application/json-lines' },
    );
    expect(answer.body.data).toEqual({
      added: 0,
      errors: 1,
      errors_info: { 'Invalid task id': 1 },
    });
  });

  test('get_task_log pages newest-first or forward and returns every event at the boundary time', async () => {
    const task = await newTask(emulator);
    const lines = [1, 2, 2, 2, 3, 4].map((timestamp, i) => ({
      type: 'log',
      task,
      timestamp,
      msg: `l${i}`,
    }));
    await raw(emulator, 'events.add_batch', jsonLines(lines), {
      contentType: 'application/json-lines',
    });
    const client = clientFor(emulator);

    const newest = await client.getTaskLog({ task, batchSize: 2 });
    expect(newest.events.map((e) => e.msg)).toEqual(['l5', 'l4']);
    expect(newest.total).toBe(6);
    const older = await client.getTaskLog({ task, batchSize: 2, fromTimestampMs: 3 });
    expect(older.events.map((e) => e.msg)).toEqual(['l1', 'l2', 'l3']);

    const forward = await client.getTaskLog({ task, batchSize: 2, navigateEarlier: false });
    expect(forward.events.map((e) => e.msg)).toEqual(['l0', 'l1', 'l2', 'l3']);
    const all = await client.readNewLogEvents({ task, batchSize: 2 });
    expect(all.events.map((e) => e.msg)).toEqual(['l0', 'l1', 'l2', 'l3', 'l4', 'l5']);

    await raw(
      emulator,
      'events.add_batch',
      jsonLines([{ type: 'log', task, timestamp: 4, msg: 'late' }]),
      {
        contentType: 'application/json-lines',
      },
    );
    const more = await client.readNewLogEvents({ task, batchSize: 2, cursor: all.cursor! });
    expect(more.events.map((e) => e.msg)).toEqual(['late']);
  });

  test('download_task_log returns plain text lines outside the envelope', async () => {
    const task = await newTask(emulator);
    await ok(emulator, 'events.add', {
      type: 'log',
      task,
      timestamp: 0,
      msg: 'first line',
      level: 'info',
    });
    const { accessKey, secretKey } = emulator.credentials;
    const response = await fetch(
      `${emulator.apiUrl}/events.download_task_log?task=${task}&line_type=text`,
      {
        headers: {
          authorization: `Basic ${Buffer.from(`${accessKey}:${secretKey}`).toString('base64')}`,
        },
      },
    );
    expect(response.headers.get('content-disposition')).toContain('attachment');
    expect(await response.text()).toBe('1970-01-01 00:00:00.000  info first line\n');
  });
});

describe('simulated worker', () => {
  test('runs a queued task to completed with four scalars, log lines and a registered model', async () => {
    const worker = emulator.startWorker({
      queues: ['sim-ok'],
      behaviour: { iterations: 6, iterationMs: 1 },
    });
    const client = clientFor(emulator);
    const task = await newTask(emulator, 'sim-complete');
    await client.enqueueTask({ task, queueName: 'sim-ok' });
    await waitFor(() => emulator.state.tasks.get(task)?.status === 'completed');
    await worker.stop();

    const [t] = await client.getTasks({
      ids: [task],
      onlyFields: ['status_reason', 'last_iteration', 'last_metrics'],
    });
    expect(t).toMatchObject({ status_reason: 'worker execution done', last_iteration: 6 });
    const names = Object.values(t?.last_metrics ?? {}).flatMap((v) =>
      Object.values(v).map((s) => s.metric),
    );
    expect(names.sort()).toEqual(['train_acc', 'train_loss', 'val_acc', 'val_mean_dice']);
    const dice = (await client.getScalarHistogram({ task })).val_mean_dice?.val_mean_dice;
    expect(dice?.x).toEqual([1, 2, 3, 4, 5, 6]);
    expect(dice!.y[5]!).toBeGreaterThan(dice!.y[0]! + 0.3);

    const log = await client.readNewLogEvents({ task });
    expect(log.events.map((e) => e.msg)).toContain('Training finished');
    const [model] = await client.getModelsByTask({ tasks: [task] });
    const file = await fetch(model!.uri!);
    expect(await file.text()).toBe(`simulated weights of ${task}`);
  });

  test.each([
    { outcome: 'fail', want: 'failed', reason: 'worker execution exit code 1' },
    { outcome: 'hang', want: 'stopped', reason: 'task was stopped by tasks.stop' },
  ])('per-task knob outcome=$outcome ends $want', async ({ outcome, want, reason }) => {
    const worker = emulator.startWorker({
      queues: [`sim-${outcome}`],
      behaviour: { iterationMs: 1 },
    });
    const client = clientFor(emulator);
    const project = await client.getOrCreateProject('Contract');
    const task = await client.createTask({
      name: `sim-${outcome}`,
      type: 'training',
      project,
      hyperparams: {
        Emulator: { outcome: { section: 'Emulator', name: 'outcome', value: outcome } },
      },
    });
    await client.enqueueTask({ task, queueName: `sim-${outcome}` });
    if (outcome === 'hang') {
      await waitFor(() => emulator.state.tasks.get(task)?.last_iteration === 4);
      await client.stopTask({ task });
      expect(emulator.state.tasks.get(task)?.status_message).toBe('stopping');
    }
    await waitFor(() => emulator.state.tasks.get(task)?.status === want);
    await worker.stop();
    expect(emulator.state.tasks.get(task)?.status_reason).toBe(reason);
  });
});

describe('simulated worker robustness', () => {
  test('a task force-deleted while running is abandoned and the worker runs the next one', async () => {
    const worker = emulator.startWorker({
      queues: ['sim-delete'],
      behaviour: { iterations: 500, iterationMs: 5 },
    });
    const client = clientFor(emulator);
    const doomed = await newTask(emulator, 'sim-doomed');
    await client.enqueueTask({ task: doomed, queueName: 'sim-delete' });
    await waitFor(() => Number(emulator.state.tasks.get(doomed)?.last_iteration) >= 2);
    await client.deleteTask({ task: doomed, force: true });

    const project = await client.getOrCreateProject('Contract');
    const next = await client.createTask({
      name: 'sim-next',
      type: 'training',
      project,
      hyperparams: {
        Emulator: { iterations: { section: 'Emulator', name: 'iterations', value: '2' } },
      },
    });
    await client.enqueueTask({ task: next, queueName: 'sim-delete' });
    await waitFor(() => emulator.state.tasks.get(next)?.status === 'completed');
    await worker.stop();
    expect(worker.ran).toEqual([doomed, next]);
    expect(worker.errors).toEqual([]);
  });
});

describe('fault injection', () => {
  test('injected 503s are retried by the client until the fault runs out', async () => {
    emulator.faults.set('queues.get_all', { status: 503, message: 'maintenance', times: 2 });
    const queues = await clientFor(emulator).getQueues({ exactName: 'default' });
    expect(queues).toHaveLength(1);
    const answered = emulator.calls.filter((c) => c.endpoint === 'queues.get_all').slice(-3);
    expect(answered.map((c) => c.status)).toEqual([503, 503, 200]);
  });

  test('a dropped connection is a retriable network failure', async () => {
    emulator.faults.set('tasks.get_all', { drop: true });
    try {
      const client = clientFor(emulator);
      const err = await client.getTasks({ ids: ['x'] }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ClearmlUnavailableError);
      expect(err).toMatchObject({ kind: 'network', retriable: true });
    } finally {
      emulator.faults.clear('tasks.get_all');
    }
  });

  test('an answer lost after handling: the task exists, and the client does not create it twice', async () => {
    const client = clientFor(emulator);
    const project = await client.getOrCreateProject('Contract');
    emulator.faults.set('tasks.create', { drop: true, afterHandling: true, times: 1 });
    const err = await client
      .createTask({ name: 'lost-answer', type: 'training', project })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'network', retriable: true });
    const found = await client.getTasks({ exactName: 'lost-answer', onlyFields: ['id'] });
    expect(found).toHaveLength(1);
  });

  test('latency beyond the client timeout is a timeout', async () => {
    emulator.faults.set('tasks.get_all', { latencyMs: 300, times: 1 });
    const client = clientFor(emulator, { requestTimeoutMs: 50, retry: { maxAttempts: 1 } });
    const err = await client.callRaw('tasks.get_all', {}).catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'timeout' });
  });
});
