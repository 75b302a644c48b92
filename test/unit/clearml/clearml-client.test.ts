import { describe, expect, test } from '@jest/globals';

import {
  ClearmlClient,
  ClearmlNotFoundError,
  exactMatchRegex,
} from '../../../src/clearml/index.ts';
import { envelope, fakeJwt, FakeServer, type RecordedRequest } from './fake-server.ts';

function client(server: FakeServer, opts: { pageSize?: number; idsPerCall?: number } = {}) {
  server.on('auth.login', envelope({ token: fakeJwt(Date.now() / 1000 + 86_400) }));
  return new ClearmlClient({
    apiUrl: 'http://clearml.test:8008',
    accessKey: 'k',
    secretKey: 's',
    fetch: server.fetch as typeof fetch,
    sleep: async () => undefined,
    ...opts,
  });
}

describe('projects', () => {
  test('returns the id of an existing project found by an anchored, escaped name', async () => {
    const server = new FakeServer().on(
      'projects.get_all',
      envelope({ projects: [{ id: 'p1', name: 'Nvidia Clara (v4)' }] }),
    );
    await expect(client(server).getOrCreateProject('Nvidia Clara (v4)')).resolves.toBe('p1');
    expect(server.calls('projects.get_all')[0]?.body).toEqual({
      name: '^Nvidia Clara \\(v4\\)$',
      only_fields: ['id', 'name'],
      search_hidden: true,
    });
    expect(server.calls('projects.create')).toEqual([]);
  });

  test('creates the project when none matches', async () => {
    const server = new FakeServer()
      .on('projects.get_all', envelope({ projects: [] }))
      .on('projects.create', envelope({ id: 'new' }));
    await expect(client(server).getOrCreateProject('Clara')).resolves.toBe('new');
    expect(server.calls('projects.create')[0]?.body).toMatchObject({ name: 'Clara' });
  });

  test('looks up again when a parallel creator won the race (400/801)', async () => {
    const server = new FakeServer()
      .on(
        'projects.get_all',
        envelope({ projects: [] }),
        envelope({ projects: [{ id: 'theirs', name: 'Clara' }] }),
      )
      .on('projects.create', envelope(null, { code: 400, subcode: 801 }));
    await expect(client(server).getOrCreateProject('Clara')).resolves.toBe('theirs');
  });

  test('exact-match regexes escape every regex metacharacter', () => {
    const name = 'a.b*c+d?e^f$g{h}i(j)k|l[m]n\\o/p-q';
    expect(new RegExp(exactMatchRegex(name)).test(name)).toBe(true);
    expect(new RegExp(exactMatchRegex('a.b')).test('axb')).toBe(false);
  });
});

describe('tasks', () => {
  test('creates a task and returns its id', async () => {
    const server = new FakeServer().on('tasks.create', envelope({ id: 'f'.repeat(32) }));
    const id = await client(server).createTask({ name: 'run-1', type: 'training', project: 'p1' });
    expect(id).toBe('f'.repeat(32));
    expect(server.calls('tasks.create')[0]?.body).toEqual({
      name: 'run-1',
      type: 'training',
      project: 'p1',
    });
  });

  test('reads many ids in chunks and follows pages inside each chunk', async () => {
    const page = (req: RecordedRequest) => {
      const ids = req.body.id as string[];
      const start = (req.body.page as number) * (req.body.page_size as number);
      const slice = ids.slice(start, start + (req.body.page_size as number));
      return envelope({ tasks: slice.map((id) => ({ id })) });
    };
    const server = new FakeServer().on('tasks.get_all', page);
    const ids = Array.from({ length: 7 }, (_, i) => `t${i}`);

    const tasks = await client(server, { idsPerCall: 4, pageSize: 3 }).getTasks({
      ids,
      onlyFields: ['id', 'status'],
    });

    expect(tasks.map((t) => t.id)).toEqual(ids);
    expect(
      server.calls('tasks.get_all').map((r) => [(r.body.id as string[]).length, r.body.page]),
    ).toEqual([
      [4, 0],
      [4, 1],
      // 3 ids, 3 tasks on page 0: no id is left to match, so no call for page 1.
      [3, 0],
    ]);
    expect(server.calls('tasks.get_all')[0]?.body.only_fields).toEqual(['id', 'status']);
  });

  test('enqueues by queue name, asking whether a worker serves the queue', async () => {
    const server = new FakeServer().on(
      'tasks.enqueue',
      envelope({
        queued: 1,
        updated: 1,
        fields: { 'execution.queue': 'q1' },
        queue_watched: false,
      }),
    );
    const result = await client(server).enqueueTask({ task: 't1', queueName: 'gpu' });
    expect(result).toEqual({ queued: 1, queueWatched: false, queueId: 'q1' });
    expect(server.calls('tasks.enqueue')[0]?.body).toEqual({
      task: 't1',
      queue_name: 'gpu',
      verify_watched_queue: true,
    });
  });

  test.each([
    { call: 'dequeueTask', endpoint: 'tasks.dequeue', data: { updated: 1 }, want: 1 },
    { call: 'stopTask', endpoint: 'tasks.stop', data: { updated: 1 }, want: 1 },
    { call: 'markTaskStopped', endpoint: 'tasks.stopped', data: { updated: 0 }, want: 0 },
    { call: 'deleteTask', endpoint: 'tasks.delete', data: { deleted: true }, want: 1 },
  ] as const)(
    '$call sends $endpoint with force and reason',
    async ({ call, endpoint, data, want }) => {
      const server = new FakeServer().on(endpoint, envelope(data));
      const result = await client(server)[call]({
        task: 't1',
        force: true,
        statusReason: 'operator',
      });
      expect(result).toBe(want);
      expect(server.calls(endpoint)[0]?.body).toEqual({
        task: 't1',
        force: true,
        status_reason: 'operator',
      });
    },
  );

  test('archives a list of tasks', async () => {
    const server = new FakeServer().on('tasks.archive', envelope({ archived: 2 }));
    await expect(client(server).archiveTasks(['a', 'b'])).resolves.toBe(2);
    expect(server.calls('tasks.archive')[0]?.body).toEqual({ tasks: ['a', 'b'] });
  });

  test('deleting a task that is gone throws ClearmlNotFoundError', async () => {
    const server = new FakeServer().on('tasks.delete', envelope(null, { code: 400, subcode: 101 }));
    await expect(client(server).deleteTask({ task: 'gone' })).rejects.toBeInstanceOf(
      ClearmlNotFoundError,
    );
  });
});

describe('queues and models', () => {
  test('keeps only the exact queue name from the regex search', async () => {
    const server = new FakeServer().on(
      'queues.get_all',
      envelope({
        queues: [
          { id: 'q1', name: 'gpu' },
          { id: 'q2', name: 'gpu-large' },
        ],
      }),
    );
    const queues = await client(server).getQueues({ exactName: 'gpu' });
    expect(queues.map((q) => q.id)).toEqual(['q1']);
    expect(server.calls('queues.get_all')[0]?.body).toMatchObject({ name: '^gpu$' });
  });

  test('reads models created by a task, newest first', async () => {
    const server = new FakeServer().on('models.get_all', envelope({ models: [{ id: 'm1' }] }));
    const models = await client(server).getModelsByTask({
      tasks: ['t1'],
      onlyFields: ['id', 'uri'],
    });
    expect(models).toEqual([{ id: 'm1' }]);
    expect(server.calls('models.get_all')[0]?.body).toEqual({
      task: ['t1'],
      order_by: ['-created'],
      only_fields: ['id', 'uri'],
      page: 0,
      page_size: 500,
    });
  });

  test('returns the scalar histogram as metric → variant → series', async () => {
    const series = { val_acc: { val_acc: { name: 'val_acc', x: [1, 2], y: [0.5, 0.6] } } };
    const server = new FakeServer().on('events.scalar_metrics_iter_histogram', envelope(series));
    await expect(client(server).getScalarHistogram({ task: 't1', samples: 100 })).resolves.toEqual(
      series,
    );
    expect(server.calls('events.scalar_metrics_iter_histogram')[0]?.body).toEqual({
      task: 't1',
      samples: 100,
    });
  });
});

describe('console log', () => {
  const line = (timestamp: number, msg: string) => ({ timestamp, msg, level: 'info', worker: 'w' });

  // The server's paging: sort ascending, strictly after from_timestamp, batch_size events plus
  // every further event sharing the last one's timestamp (reference §5.3).
  function logServer(events: ReturnType<typeof line>[]) {
    return (req: RecordedRequest) => {
      const from = req.body.from_timestamp as number | undefined;
      const size = req.body.batch_size as number;
      const after = events.filter((e) => from === undefined || e.timestamp > from);
      const page = after.slice(0, size);
      const last = page[page.length - 1];
      if (last) page.push(...after.slice(size).filter((e) => e.timestamp === last.timestamp));
      return envelope({ events: page, returned: page.length, total: events.length });
    };
  }

  test('follows the log forward page by page, past a boundary larger than a page', async () => {
    const events = [
      line(1, 'a'),
      line(2, 'b'),
      line(2, 'c'),
      line(2, 'd'),
      line(3, 'e'),
      line(4, 'f'),
    ];
    const server = new FakeServer().on('events.get_task_log', logServer(events));
    const result = await client(server).readNewLogEvents({ task: 't1', batchSize: 2 });
    expect(result.events.map((e) => e.msg)).toEqual(['a', 'b', 'c', 'd', 'e', 'f']);
    expect(result.cursor?.timestampMs).toBe(4);
    expect(server.calls('events.get_task_log')[0]?.body).toMatchObject({
      navigate_earlier: false,
      batch_size: 2,
    });
  });

  test('returns only lines newer than the cursor, including late lines at its timestamp', async () => {
    const events = [line(1, 'a'), line(2, 'b')];
    const server = new FakeServer().on('events.get_task_log', logServer(events));
    const c = client(server);
    const first = await c.readNewLogEvents({ task: 't1', batchSize: 10 });
    expect(first.events.map((e) => e.msg)).toEqual(['a', 'b']);

    events.push(line(2, 'b2'), line(5, 'c'));
    const second = await c.readNewLogEvents({ task: 't1', batchSize: 10, cursor: first.cursor! });
    expect(second.events.map((e) => e.msg)).toEqual(['b2', 'c']);
    expect(server.calls('events.get_task_log').map((r) => r.body.from_timestamp)).toEqual([
      undefined,
      1,
    ]);

    const third = await c.readNewLogEvents({ task: 't1', batchSize: 10, cursor: second.cursor! });
    expect(third.events).toEqual([]);
    expect(third.cursor).toEqual(second.cursor);
  });
});
