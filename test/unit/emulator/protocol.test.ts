import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';

import { startEmulator, type RunningEmulator } from '../../emulator/emulator.ts';
import { ok, raw } from './helpers.ts';

let emulator: RunningEmulator;
beforeAll(async () => {
  emulator = await startEmulator({ port: 0, filesPort: 0 });
});
afterAll(async () => {
  await emulator.stop();
});

describe('envelope and paths', () => {
  test('answers in the meta/data envelope with the resolved versions and a clearml server header', async () => {
    const answer = await raw(emulator, 'debug.ping', {}, { version: '2.23', authorization: null });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('server')).toBe('clearml');
    expect(answer.body).toMatchObject({
      meta: {
        endpoint: { name: 'debug.ping', requested_version: '2.23', actual_version: '2.9' },
        result_code: 200,
        result_subcode: 0,
        result_msg: 'OK',
      },
      data: { msg: 'ClearML server' },
    });
  });

  test('an unversioned path is served at the maximum version', async () => {
    const answer = await raw(emulator, 'tasks.get_all', {}, { version: null });
    expect(answer.body.meta.endpoint).toEqual({
      name: 'tasks.get_all',
      requested_version: '2.31',
      actual_version: '2.1',
    });
  });

  test.each([
    { name: 'unknown endpoint', endpoint: 'tasks.frobnicate', version: '2.23' },
    { name: 'version below the minimum', endpoint: 'events.get_task_log', version: '2.5' },
  ])('$name → 404/0 without auth, recorded in unknownCalls', async ({ endpoint, version }) => {
    const answer = await raw(emulator, endpoint, {}, { version, authorization: null });
    expect(answer.status).toBe(404);
    expect(answer.body.meta).toMatchObject({
      result_code: 404,
      result_subcode: 0,
      result_msg: `Unable to find endpoint for name ${endpoint} and version ${version}`,
    });
    expect(emulator.unknownCalls).toContainEqual({ service: 'api', endpoint, version });
  });

  test('endpoints the open-source server lacks too answer 404 but are not counted as unknown', async () => {
    const unknownBefore = emulator.unknownCalls.length;
    const answer = await raw(emulator, 'workers.get_runtime_properties', { worker: 'w' });
    expect(answer.status).toBe(404);
    expect(emulator.unknownCalls).toHaveLength(unknownBefore);
    expect(emulator.absentCalls.map((c) => c.endpoint)).toContain('workers.get_runtime_properties');
  });

  test('query-string fields are merged into the body with numbers and booleans converted', async () => {
    const queue = (await ok(emulator, 'queues.create', { name: 'query-q' })).id as string;
    const { accessKey, secretKey } = emulator.credentials;
    const response = await fetch(
      `${emulator.apiUrl}/v2.23/queues.get_all?id[]=${queue}&page=0&page_size=1&search_hidden=true`,
      {
        headers: {
          authorization: `Basic ${Buffer.from(`${accessKey}:${secretKey}`).toString('base64')}`,
        },
      },
    );
    const body = (await response.json()) as { data: { queues: { id: string }[] } };
    expect(body.data.queues.map((q) => q.id)).toEqual([queue]);
  });
});

describe('authentication', () => {
  test.each([
    { name: 'no credentials', authorization: null, subcode: 20 },
    {
      name: 'wrong secret',
      authorization: `Basic ${Buffer.from('EMULATORACCESSKEY:nope').toString('base64')}`,
      subcode: 22,
    },
    {
      name: 'malformed basic',
      authorization: `Basic ${Buffer.from('nocolon').toString('base64')}`,
      subcode: 21,
    },
    { name: 'forged token', authorization: 'Bearer a.b.c', subcode: 30 },
    { name: 'unknown scheme', authorization: 'Digest xyz', subcode: 10 },
  ])('$name → 401/$subcode', async ({ authorization, subcode }) => {
    const answer = await raw(emulator, 'tasks.get_all', {}, { authorization });
    expect(answer.status).toBe(401);
    expect(answer.body.meta).toMatchObject({ result_code: 401, result_subcode: subcode });
  });

  test('auth.login returns a JWT whose claims carry the API level, usable as a bearer token', async () => {
    const { token } = (await ok(emulator, 'auth.login')) as { token: string };
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<
      string,
      unknown
    >;
    expect(claims).toMatchObject({
      api_version: '2.31',
      feature_set: 'basic',
      server_version: '2.0.0',
    });
    expect(Number(claims.exp) - Number(claims.iat)).toBe(2_592_000);
    const answer = await raw(emulator, 'tasks.get_all', {}, { authorization: `Bearer ${token}` });
    expect(answer.status).toBe(200);
  });

  test('an expired token is refused with 401/30', async () => {
    let nowMs = Date.now();
    const timed = await startEmulator({ now: () => nowMs });
    try {
      const { token } = (await ok(timed, 'auth.login', { expiration_sec: 60 })) as {
        token: string;
      };
      nowMs += 61_000;
      const answer = await raw(timed, 'tasks.get_all', {}, { authorization: `Bearer ${token}` });
      expect(answer.body.meta).toMatchObject({ result_code: 401, result_subcode: 30 });
    } finally {
      await timed.stop();
    }
  });
});

describe('files server', () => {
  test('stores multipart uploads under their field names and serves them back', async () => {
    const form = new FormData();
    form.append('proj/task.1/artifacts/data.bin', new Blob([Buffer.from('payload')]), 'data.bin');
    const upload = await fetch(`${emulator.filesUrl}/`, { method: 'POST', body: form });
    expect(upload.status).toBe(200);
    expect(await upload.json()).toEqual(['proj/task.1/artifacts/data.bin']);

    const download = await fetch(`${emulator.filesUrl}/proj/task.1/artifacts/data.bin`);
    expect(download.status).toBe(200);
    expect(await download.text()).toBe('payload');
    expect((await fetch(`${emulator.filesUrl}/missing`)).status).toBe(404);

    expect(
      (await fetch(`${emulator.filesUrl}/proj/task.1/artifacts/data.bin`, { method: 'DELETE' }))
        .status,
    ).toBe(200);
    expect((await fetch(`${emulator.filesUrl}/proj/task.1/artifacts/data.bin`)).status).toBe(404);
  });

  test('a POST to a sub-path is refused with 405, as the real files server does, and recorded', async () => {
    const response = await fetch(`${emulator.filesUrl}/sub/dir`, { method: 'POST', body: 'x' });
    expect(response.status).toBe(405);
    expect(emulator.unknownCalls).toContainEqual({ service: 'files', endpoint: 'POST /sub/dir' });
  });
});

describe('test-only admin routes', () => {
  const post = (path: string, body: unknown) =>
    fetch(`${emulator.apiUrl}/_emulator/${path}`, { method: 'POST', body: JSON.stringify(body) });

  test('faults set over HTTP apply to the named endpoint and can be cleared', async () => {
    expect(
      (await post('faults', { endpoint: 'queues.get_default', status: 500, subcode: 102 })).status,
    ).toBe(200);
    const failing = await raw(emulator, 'queues.get_default');
    expect(failing.body.meta).toMatchObject({ result_code: 500, result_subcode: 102 });
    await post('faults', { endpoint: 'queues.get_default', clear: true });
    expect((await raw(emulator, 'queues.get_default')).status).toBe(200);
  });

  test('the call log lists answered calls and unknown ones', async () => {
    await raw(emulator, 'tasks.nonexistent_call', {}, { authorization: null });
    const log = (await (await fetch(`${emulator.apiUrl}/_emulator/calls`)).json()) as {
      calls: { endpoint: string; status: number }[];
      unknownCalls: { endpoint: string }[];
    };
    expect(log.calls).toContainEqual(
      expect.objectContaining({ endpoint: 'tasks.nonexistent_call', status: 404 }),
    );
    expect(log.unknownCalls.map((c) => c.endpoint)).toContain('tasks.nonexistent_call');
  });

  test('a simulated worker started over HTTP serves its queue', async () => {
    const answer = await post('workers', {
      queues: ['admin-q'],
      behaviour: { iterations: 2, iterationMs: 1 },
    });
    const { id } = (await answer.json()) as { id: string };
    expect(emulator.state.workers.has(id)).toBe(true);
    const queue = [...emulator.state.queues.values()].find((q) => q.name === 'admin-q');
    expect((await ok(emulator, 'workers.get_all')).workers).toContainEqual(
      expect.objectContaining({
        id,
        queues: [expect.objectContaining({ id: queue?.id, name: 'admin-q' })],
      }),
    );
  });
});
