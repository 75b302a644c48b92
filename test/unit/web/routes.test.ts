/**
 * The web view's routes over a fixed cache and a fake ClearML client: the list, the instance
 * page and its JSON, and what happens when an instance, its task, its credentials or ClearML
 * are missing.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';

import { TASK_ID } from '../../fixtures/clara-instance.ts';
import { instance, serve } from './serve.ts';
import type { ServedApp } from './serve.ts';

let app: ServedApp;
const objects = [
  instance('team-b', 'liver', { phase: 'Completed' }),
  instance('team-a', 'spleen'),
  instance('team-a', 'fresh', { phase: undefined, taskId: undefined, metrics: undefined }),
];

beforeAll(async () => {
  app = await serve(objects);
});

afterAll(async () => {
  await app.close();
});

async function getJson(path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(app.url + path);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('the instance list', () => {
  test('lists every instance sorted by namespace and name, with phase, dice and task link', async () => {
    const res = await fetch(`${app.url}/`);
    const html = await res.text();
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const rows = [...html.matchAll(/data-instance="([^"]+)"/g)].map((m) => m[1]);
    expect(rows).toEqual(['team-a/fresh', 'team-a/spleen', 'team-b/liver']);
    expect(html).toContain('<td class="num">0.9100</td>');
    expect(html).toContain(`href="${RUNNING_URL}">${TASK_ID}</a>`);
    expect(html).toContain('<a href="/instances/team-a/spleen">spleen</a>');
    expect(html).toContain('http-equiv="refresh"');
  });

  test('shows an instance without status as Pending', async () => {
    const { body } = await getJson('/api/instances');
    const fresh = (body.instances as Record<string, unknown>[]).find((i) => i.name === 'fresh');
    expect(fresh).toMatchObject({ namespace: 'team-a', phase: 'Pending' });
    expect(fresh?.dice).toBeUndefined();
  });
});

const RUNNING_URL = `https://app.clearml.example.com/projects/*/experiments/${TASK_ID}`;

describe('an instance', () => {
  test('page is a skeleton naming the instance and loading uPlot and its script', async () => {
    const html = await (await fetch(`${app.url}/instances/team-a/spleen`)).text();
    expect(html).toContain('data-namespace="team-a" data-name="spleen"');
    expect(html).toContain('<script src="/static/uPlot.iife.min.js" defer>');
    expect(html).toContain('<script src="/static/instance-page.js" defer>');
    expect(html).toMatch(/<table id="models">.*<th>framework<\/th>/);
  });

  test('detail carries phase, models, conditions and message from status', async () => {
    const { status, body } = await getJson('/api/instances/team-a/spleen');
    expect(status).toBe(200);
    expect(body).toMatchObject({
      phase: 'Running',
      message: 'training',
      queue: 'clara-gpu',
      lastIteration: 1200,
      models: [{ name: 'model.pt', uri: 's3://models/model.pt', framework: 'PyTorch' }],
      conditions: [{ type: 'TaskCreated', reason: 'Created' }],
    });
  });

  test('scalars come from the task histogram, four scalars only, as aligned plots', async () => {
    app.clearml.histogram = {
      val_mean_dice: { val_mean_dice: { name: 'val_mean_dice', x: [2, 1], y: [0.6, 0.4] } },
      ':monitor:gpu': { gpu_0_utilization: { name: 'gpu', x: [1], y: [90] } },
    };
    const { body } = await getJson('/api/instances/team-a/spleen/scalars');
    expect(body.plots).toEqual([
      { metric: 'val_mean_dice', x: [1, 2], series: [{ variant: 'val_mean_dice', y: [0.4, 0.6] }] },
    ]);
    expect(app.clearml.calls.at(-1)).toEqual({
      endpoint: 'events.scalar_metrics_iter_histogram',
      task: TASK_ID,
    });
  });

  test('log tail is the task log oldest line first', async () => {
    app.clearml.log = [
      { timestamp: 2000, level: 'info', msg: 'Epoch 2/2' },
      { timestamp: 1000, msg: 'Epoch 1/2' },
    ];
    const { body } = await getJson('/api/instances/team-a/spleen/log');
    expect(body.lines).toEqual([
      { timestamp: 1000, level: 'info', msg: 'Epoch 1/2' },
      { timestamp: 2000, level: 'info', msg: 'Epoch 2/2' },
    ]);
  });

  test('without a task yet has empty plots and log and asks ClearML nothing', async () => {
    const before = app.clearml.calls.length;
    expect((await getJson('/api/instances/team-a/fresh/scalars')).body).toEqual({ plots: [] });
    expect((await getJson('/api/instances/team-a/fresh/log')).body).toEqual({ lines: [] });
    expect(app.clearml.calls).toHaveLength(before);
  });
});

describe('failures', () => {
  test.each([
    ['/instances/team-a/nope'],
    ['/api/instances/team-a/nope'],
    ['/api/instances/team-a/nope/scalars'],
    ['/api/instances/other/spleen/log'],
  ])('%s is 404 for an instance not in the cache', async (path) => {
    expect((await fetch(app.url + path)).status).toBe(404);
  });

  test('a ClearML failure is 502 with a cut message, logged as a warning', async () => {
    app.clearml.fail = new Error(`server exploded ${'x'.repeat(1000)}`);
    try {
      const { status, body } = await getJson('/api/instances/team-a/spleen/scalars');
      expect(status).toBe(502);
      expect(String(body.detail)).toHaveLength(256);
      expect(app.warnings.at(-1)).toMatchObject({
        fields: { namespace: 'team-a', name: 'spleen', task: TASK_ID },
      });
    } finally {
      delete app.clearml.fail;
    }
  });

  test('an instance without usable credentials is 503', async () => {
    const noCreds = await serve(objects, { credentials: false });
    try {
      expect((await fetch(`${noCreds.url}/api/instances/team-a/spleen/log`)).status).toBe(503);
    } finally {
      await noCreds.close();
    }
  });
});

describe('static files', () => {
  test.each([
    ['/static/uPlot.iife.min.js', /javascript/, 'uPlot'],
    ['/static/uPlot.min.css', /css/, '.uplot'],
    ['/static/instance-page.js', /javascript/, 'claraView'],
  ])('%s is served', async (path, type, marker) => {
    const res = await fetch(app.url + path);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(type);
    expect(await res.text()).toContain(marker);
  });

  test('nothing else under /static, such as a path out of node_modules', async () => {
    expect((await fetch(`${app.url}/static/package.json`)).status).toBe(404);
    expect((await fetch(`${app.url}/static/..%2F..%2Fpackage.json`)).status).toBe(404);
  });

  test('the instance page script parses as JavaScript', async () => {
    const source = await (await fetch(`${app.url}/static/instance-page.js`)).text();
    expect(() => new Function(source)).not.toThrow();
  });
});
