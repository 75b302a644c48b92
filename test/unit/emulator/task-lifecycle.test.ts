import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';

import { ClearmlNotFoundError, ClearmlValidationError } from '../../../src/clearml/index.ts';
import { startEmulator, type RunningEmulator } from '../../emulator/emulator.ts';
import { isTransitionAllowed } from '../../emulator/task-status.ts';
import { clientFor, newTask, ok, raw } from './helpers.ts';

let emulator: RunningEmulator;
beforeAll(async () => {
  emulator = await startEmulator();
});
afterAll(async () => {
  await emulator.stop();
});

async function status(task: string): Promise<Record<string, unknown>> {
  const [t] = await clientFor(emulator).getTasks({
    ids: [task],
    onlyFields: ['status', 'status_message', 'status_reason', 'execution.queue', 'system_tags'],
  });
  return t as unknown as Record<string, unknown>;
}

async function toStatus(task: string, target: string): Promise<void> {
  await ok(emulator, 'tasks.enqueue', { task, queue_name: 'lifecycle' });
  if (target === 'queued') return;
  await ok(emulator, 'tasks.started', { task });
  if (target !== 'in_progress') await ok(emulator, `tasks.${target}`, { task });
}

describe('state machine', () => {
  test.each([
    { from: 'created', to: 'queued', want: true },
    { from: 'completed', to: 'queued', want: false },
    { from: 'failed', to: 'queued', want: true },
    { from: 'published', to: 'created', want: false },
    { from: 'in_progress', to: 'completed', want: true },
    { from: 'queued', to: 'queued', want: true },
  ])('$from → $to allowed: $want', ({ from, to, want }) => {
    expect(isTransitionAllowed(from, to)).toBe(want);
  });

  test('a completed task is not re-enqueued without a reset (400/110), and is after one', async () => {
    const task = await newTask(emulator);
    await toStatus(task, 'completed');
    const client = clientFor(emulator);
    const err = await client.enqueueTask({ task, queueName: 'lifecycle' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClearmlValidationError);
    expect(err).toMatchObject({ resultSubcode: 110, apiErrorName: 'invalid_task_status' });

    const reset = await ok(emulator, 'tasks.reset', { task });
    expect(reset.fields).toMatchObject({ status: 'created', status_reason: 'reset' });
    await expect(client.enqueueTask({ task, queueName: 'lifecycle' })).resolves.toMatchObject({
      queued: 1,
    });
  });

  test('enqueue by name creates the queue, sets execution.queue and reports whether it is watched', async () => {
    const task = await newTask(emulator);
    const client = clientFor(emulator);
    const first = await client.enqueueTask({ task, queueName: 'brand-new-queue' });
    expect(first.queueWatched).toBe(false);
    const [queue] = await client.getQueues({ exactName: 'brand-new-queue' });
    expect(queue?.entries?.map((e) => e.task)).toEqual([task]);
    expect(first.queueId).toBe(queue?.id);
    expect(await status(task)).toMatchObject({ status: 'queued', execution: { queue: queue?.id } });

    await ok(emulator, 'workers.register', { worker: 'w1', queues: [queue?.id] });
    const second = await client.enqueueTask({ task, queueName: 'brand-new-queue' });
    expect(second.queueWatched).toBe(true);
  });

  test('queue and queue_name together are a validation error (400/12)', async () => {
    const task = await newTask(emulator);
    const answer = await raw(emulator, 'tasks.enqueue', { task, queue: 'x', queue_name: 'y' });
    expect(answer.body.meta).toMatchObject({ result_code: 400, result_subcode: 12 });
  });

  test('dequeue returns a task to its pre-enqueue status', async () => {
    const task = await newTask(emulator);
    await toStatus(task, 'in_progress');
    await ok(emulator, 'tasks.stopped', { task });
    await ok(emulator, 'tasks.enqueue', { task, queue_name: 'lifecycle' });
    await expect(clientFor(emulator).dequeueTask({ task })).resolves.toBe(1);
    expect(await status(task)).toMatchObject({ status: 'stopped' });
  });

  test('stop: a created task needs force; a queued one stops at once and leaves its queue', async () => {
    const client = clientFor(emulator);
    const created = await newTask(emulator);
    await expect(client.stopTask({ task: created })).rejects.toMatchObject({ resultSubcode: 110 });

    const queued = await newTask(emulator);
    await toStatus(queued, 'queued');
    await client.stopTask({ task: queued });
    expect(await status(queued)).toMatchObject({
      status: 'stopped',
      status_message: 'Stopped by Emulator User',
    });
    const [queue] = await client.getQueues({ exactName: 'lifecycle' });
    expect(queue?.entries?.map((e) => e.task)).not.toContain(queued);
  });

  test('stop on a running task with a live worker only asks: status stays in_progress, "stopping"', async () => {
    const task = await newTask(emulator);
    await toStatus(task, 'in_progress');
    await ok(emulator, 'workers.status_report', { worker: 'w2', task, timestamp: Date.now() });
    await clientFor(emulator).stopTask({ task });
    expect(await status(task)).toMatchObject({ status: 'in_progress', status_message: 'stopping' });
    await clientFor(emulator).markTaskStopped({ task, force: true, statusReason: 'user abort' });
    expect(await status(task)).toMatchObject({ status: 'stopped', status_reason: 'user abort' });
  });

  test('stop on a running task without a worker report stops it at once', async () => {
    const task = await newTask(emulator);
    await toStatus(task, 'in_progress');
    await clientFor(emulator).stopTask({ task });
    expect(await status(task)).toMatchObject({ status: 'stopped' });
  });

  test('delete needs force unless created or archived (400/123); archive stops a running task', async () => {
    const client = clientFor(emulator);
    const task = await newTask(emulator);
    await toStatus(task, 'in_progress');
    await expect(client.deleteTask({ task })).rejects.toMatchObject({ resultSubcode: 123 });

    await expect(client.archiveTasks([task])).resolves.toBe(1);
    expect(await status(task)).toMatchObject({ status: 'stopped', system_tags: ['archived'] });
    await expect(client.deleteTask({ task })).resolves.toBe(1);
    await expect(client.deleteTask({ task })).rejects.toBeInstanceOf(ClearmlNotFoundError);
  });

  test('edit is refused once a task left created, unless forced', async () => {
    const task = await newTask(emulator);
    await toStatus(task, 'queued');
    const refused = await raw(emulator, 'tasks.edit', { task, comment: 'x' });
    expect(refused.body.meta).toMatchObject({ result_code: 400, result_subcode: 110 });
    await ok(emulator, 'tasks.edit', { task, comment: 'x', force: true });
  });

  test('task names shorter than 3 characters are refused (400/800); a bad project is 400/401', async () => {
    const short = await raw(emulator, 'tasks.create', { name: 'ab', type: 'training' });
    expect(short.body.meta).toMatchObject({ result_code: 400, result_subcode: 800 });
    const badProject = await raw(emulator, 'tasks.create', {
      name: 'abc',
      type: 'training',
      project: 'nope',
    });
    expect(badProject.body.meta).toMatchObject({ result_code: 400, result_subcode: 401 });
    const badType = await raw(emulator, 'tasks.create', { name: 'abc', type: 'juggling' });
    expect(badType.body.meta).toMatchObject({ result_code: 400, result_subcode: 12 });
  });
});

describe('queries', () => {
  test('get_all projects only_fields, including dotted paths and empty parents', async () => {
    const task = await newTask(emulator);
    const data = await ok(emulator, 'tasks.get_all', {
      id: [task],
      only_fields: ['name', 'runtime.version', 'execution.queue'],
    });
    expect(data.tasks).toEqual([{ id: task, name: 'contract-task', runtime: {}, execution: {} }]);
  });

  test('pages are capped at 500 and hidden tasks need search_hidden unless asked by id', async () => {
    const many = await startEmulator();
    try {
      for (let i = 0; i < 503; i++)
        await ok(many, 'tasks.create', { name: `bulk-${i}`, type: 'training' });
      const hidden = (
        await ok(many, 'tasks.create', {
          name: 'hidden-one',
          type: 'training',
          system_tags: ['hidden'],
        })
      ).id;
      const page0 = await ok(many, 'tasks.get_all', {
        page: 0,
        page_size: 1000,
        only_fields: ['id'],
      });
      const page1 = await ok(many, 'tasks.get_all', {
        page: 1,
        page_size: 1000,
        only_fields: ['id'],
      });
      expect([(page0.tasks as unknown[]).length, (page1.tasks as unknown[]).length]).toEqual([
        500, 3,
      ]);
      expect((await ok(many, 'tasks.get_all', { name: '^hidden' })).tasks).toEqual([]);
      expect(
        (await ok(many, 'tasks.get_all', { name: '^hidden', search_hidden: true })).tasks,
      ).toHaveLength(1);
      expect((await ok(many, 'tasks.get_all', { id: [hidden] })).tasks).toHaveLength(1);
      const all = await clientFor(many, {}).getTasks({ onlyFields: ['id'], searchHidden: true });
      expect(all).toHaveLength(504);
    } finally {
      await many.stop();
    }
  });

  test('tag filters support exclusion and the __$all / __$not operators', async () => {
    const make = async (tags: string[]) =>
      (await ok(emulator, 'tasks.create', { name: 'tagged', type: 'training', system_tags: tags }))
        .id as string;
    const a = await make(['dataset']);
    const b = await make(['dataset', 'archived']);
    const ids = [a, b];
    const query = async (system_tags: string[]) =>
      (
        (await ok(emulator, 'tasks.get_all', { id: ids, system_tags, only_fields: ['id'] }))
          .tasks as { id: string }[]
      ).map((t) => t.id);
    expect(await query(['__$all', 'dataset', '__$not', 'archived'])).toEqual([a]);
    expect(await query(['-archived'])).toEqual([a]);
    expect(await query(['archived'])).toEqual([b]);
  });

  test('projects get-or-create finds an existing project and creates missing parents', async () => {
    const client = clientFor(emulator);
    const id = await client.getOrCreateProject('Clara/Spleen (v1)');
    await expect(client.getOrCreateProject('Clara/Spleen (v1)')).resolves.toBe(id);
    const parents = await ok(emulator, 'projects.get_all', { name: '^Clara$' });
    expect(parents.projects).toHaveLength(1);
    const dup = await raw(emulator, 'projects.create', { name: 'Clara/Spleen (v1)' });
    expect(dup.body.meta).toMatchObject({ result_code: 400, result_subcode: 801 });
  });

  test('models.get_by_task_id works up to 2.13 and is 301/1 above', async () => {
    const task = await newTask(emulator);
    await ok(emulator, 'models.update_for_task', { task, uri: 'http://files/m.pt', name: 'm' });
    const old = await raw(emulator, 'models.get_by_task_id', { task }, { version: '2.13' });
    expect(old.status).toBe(200);
    expect(old.body.data).toMatchObject({
      model: { uri: 'http://files/m.pt', task, ready: false },
    });
    const now = await raw(emulator, 'models.get_by_task_id', { task }, { version: '2.23' });
    expect(now.body.meta).toMatchObject({ result_code: 301, result_subcode: 1 });
    const models = await clientFor(emulator).getModelsByTask({ tasks: [task] });
    expect(models.map((m) => m.uri)).toEqual(['http://files/m.pt']);
  });
});
