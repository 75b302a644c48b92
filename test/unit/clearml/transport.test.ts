import { describe, expect, test } from '@jest/globals';

import {
  ClearmlAuthError,
  ClearmlError,
  ClearmlNotFoundError,
  ClearmlTransport,
  ClearmlUnavailableError,
  ClearmlValidationError,
  computeBackoffMs,
  DEFAULT_RETRY_POLICY,
  type ClearmlTransportOptions,
} from '../../../src/clearml/index.ts';
import { envelope, fakeJwt, FakeServer, type Reply } from './fake-server.ts';

const NOW_MS = 1_700_000_000_000;

function setup(server: FakeServer, overrides: Partial<ClearmlTransportOptions> = {}) {
  const sleeps: number[] = [];
  const logs: { level: string; fields: Record<string, unknown>; msg: string }[] = [];
  const transport = new ClearmlTransport({
    apiUrl: 'http://clearml.test:8008/',
    accessKey: 'ACCESSKEY123',
    secretKey: 'SECRETVALUE456',
    fetch: server.fetch as typeof fetch,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    random: () => 0.5,
    now: () => NOW_MS,
    logger: {
      debug: (fields, msg) => logs.push({ level: 'debug', fields, msg }),
      warn: (fields, msg) => logs.push({ level: 'warn', fields, msg }),
    },
    ...overrides,
  });
  return { transport, sleeps, logs };
}

const validToken = fakeJwt(NOW_MS / 1000 + 86_400, 'first');

describe('authentication', () => {
  test('logs in once with Basic auth and sends the cached bearer token on every call', async () => {
    const server = new FakeServer()
      .on('auth.login', envelope({ token: validToken }))
      .on('tasks.get_all', envelope({ tasks: [] }));
    const { transport } = setup(server);

    await transport.call('tasks.get_all', {});
    await transport.call('tasks.get_all', {});

    const basic = Buffer.from('ACCESSKEY123:SECRETVALUE456').toString('base64');
    expect(server.calls('auth.login').map((r) => r.authorization)).toEqual([`Basic ${basic}`]);
    expect(server.calls('tasks.get_all').map((r) => r.authorization)).toEqual([
      `Bearer ${validToken}`,
      `Bearer ${validToken}`,
    ]);
  });

  test('pins the API version in the path and strips a trailing slash of the host', async () => {
    const server = new FakeServer()
      .on('auth.login', envelope({ token: validToken }))
      .on('queues.get_all', envelope({ queues: [] }));
    await setup(server).transport.call('queues.get_all', {});
    expect(server.requests.map((r) => r.url)).toEqual([
      'http://clearml.test:8008/v2.23/auth.login',
      'http://clearml.test:8008/v2.23/queues.get_all',
    ]);
  });

  test('logs in again once when a call answers 401, then repeats the call', async () => {
    const second = fakeJwt(NOW_MS / 1000 + 86_400, 'second');
    const server = new FakeServer()
      .on('auth.login', envelope({ token: validToken }), envelope({ token: second }))
      .on(
        'tasks.get_all',
        envelope({ tasks: [] }),
        envelope(null, { code: 401, subcode: 30, msg: 'Invalid token' }),
        envelope({ tasks: [{ id: 'x' }] }),
      );
    const { transport } = setup(server);

    await transport.call('tasks.get_all', {});
    const data = await transport.call('tasks.get_all', {});

    expect(data).toEqual({ tasks: [{ id: 'x' }] });
    expect(server.calls('tasks.get_all').map((r) => r.authorization)).toEqual([
      `Bearer ${validToken}`,
      `Bearer ${validToken}`,
      `Bearer ${second}`,
    ]);
  });

  test('gives up with ClearmlAuthError when the call still answers 401 after one re-login', async () => {
    const server = new FakeServer()
      .on('auth.login', envelope({ token: validToken }))
      .on('tasks.get_all', envelope(null, { code: 401, subcode: 30, msg: 'Invalid token' }));
    const err = await setup(server)
      .transport.call('tasks.get_all', {})
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClearmlAuthError);
    expect(server.calls('auth.login')).toHaveLength(2);
    expect(server.calls('tasks.get_all')).toHaveLength(2);
  });

  test('logs in again before the token expires, within the refresh margin', async () => {
    let nowMs = NOW_MS;
    const shortLived = fakeJwt(NOW_MS / 1000 + 600, 'short');
    const server = new FakeServer()
      .on('auth.login', envelope({ token: shortLived }), envelope({ token: validToken }))
      .on('tasks.get_all', envelope({ tasks: [] }));
    const { transport } = setup(server, { now: () => nowMs });

    await transport.call('tasks.get_all', {});
    nowMs += 300_000; // 5 min later: 5 min of validity left, less than the 6 min margin
    await transport.call('tasks.get_all', {});

    expect(server.calls('auth.login')).toHaveLength(2);
    expect(server.calls('tasks.get_all')[1]?.authorization).toBe(`Bearer ${validToken}`);
  });

  test('wrong keys fail at once with ClearmlAuthError naming the server error', async () => {
    const server = new FakeServer().on(
      'auth.login',
      envelope(null, { code: 401, subcode: 22, msg: 'Invalid credentials' }),
    );
    const { transport, sleeps } = setup(server);
    const err = await transport.call('tasks.get_all', {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClearmlAuthError);
    expect(err).toMatchObject({
      endpoint: 'auth.login',
      status: 401,
      resultCode: 401,
      resultSubcode: 22,
      apiErrorName: 'invalid_credentials',
      retriable: false,
    });
    expect(server.calls('auth.login')).toHaveLength(1);
    expect(sleeps).toEqual([]);
  });

  test('keys, secrets and tokens never reach the logger or an error message', async () => {
    const server = new FakeServer()
      .on('auth.login', envelope({ token: validToken }))
      .on('tasks.get_all', envelope(null, { code: 503, msg: 'maintenance' }));
    const { transport, logs } = setup(server, { retry: { maxAttempts: 3 } });
    const err = await transport.call('tasks.get_all', {}).catch((e: unknown) => e);
    const seen = JSON.stringify(logs) + String(err) + JSON.stringify(err);
    expect(logs.length).toBeGreaterThan(0);
    for (const secret of ['ACCESSKEY123', 'SECRETVALUE456', validToken, 'Bearer', 'Basic']) {
      expect(seen).not.toContain(secret);
    }
  });
});

describe('error mapping', () => {
  test.each<{ name: string; reply: Reply; wantClass: typeof ClearmlError; want: object }>([
    {
      name: 'missing task → not found',
      reply: envelope(null, { code: 400, subcode: 101, msg: 'Invalid task id: id=abc' }),
      wantClass: ClearmlNotFoundError,
      want: {
        retriable: false,
        apiErrorName: 'invalid_task_id',
        message: 'Invalid task id: id=abc',
      },
    },
    {
      name: 'unknown queue → not found',
      reply: envelope(null, { code: 400, subcode: 701 }),
      wantClass: ClearmlNotFoundError,
      want: { retriable: false, apiErrorName: 'invalid_queue_id' },
    },
    {
      name: 'disallowed transition → validation',
      reply: envelope(null, { code: 400, subcode: 110 }),
      wantClass: ClearmlValidationError,
      want: { retriable: false, apiErrorName: 'invalid_task_status', resultSubcode: 110 },
    },
    {
      name: 'unknown endpoint → validation',
      reply: envelope(null, { code: 404, subcode: 0 }),
      wantClass: ClearmlValidationError,
      want: { retriable: false, status: 404 },
    },
    {
      name: 'forbidden → auth',
      reply: envelope(null, { code: 403, subcode: 21 }),
      wantClass: ClearmlAuthError,
      want: { retriable: false, apiErrorName: 'no_write_permission' },
    },
    {
      name: 'database down → unavailable',
      reply: envelope(null, { code: 500, subcode: 102 }),
      wantClass: ClearmlUnavailableError,
      want: { retriable: true, apiErrorName: 'database_unavailable', kind: 'api' },
    },
    {
      name: 'proxy 502 page → unavailable',
      reply: { status: 502, text: '<html>Bad Gateway</html>' },
      wantClass: ClearmlUnavailableError,
      want: { retriable: true, kind: 'http', status: 502, resultCode: undefined },
    },
    {
      name: 'connection refused → unavailable',
      reply: { networkError: 'connect ECONNREFUSED', code: 'ECONNREFUSED' },
      wantClass: ClearmlUnavailableError,
      want: { retriable: true, kind: 'network', status: undefined },
    },
    {
      name: '200 without an envelope → protocol error',
      reply: { status: 200, text: 'hello' },
      wantClass: ClearmlError,
      want: { retriable: false, kind: 'protocol' },
    },
  ])('$name', async ({ reply, wantClass, want }) => {
    const server = new FakeServer()
      .on('auth.login', envelope({ token: validToken }))
      .on('tasks.get_by_id', reply);
    const { transport } = setup(server, { retry: { maxAttempts: 1 } });
    const err = await transport.call('tasks.get_by_id', { task: 'abc' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(wantClass);
    expect(err).toMatchObject({ endpoint: 'tasks.get_by_id', ...want });
  });

  test('an upstream error page is cut to 256 characters in the message', async () => {
    const server = new FakeServer()
      .on('auth.login', envelope({ token: validToken }))
      .on('tasks.get_all', { status: 504, text: 'x'.repeat(5000) });
    const { transport } = setup(server, { retry: { maxAttempts: 1 } });
    const err = (await transport.call('tasks.get_all', {}).catch((e: unknown) => e)) as Error;
    expect(err.message.length).toBeLessThan(300);
  });
});

describe('retries', () => {
  test('retries retriable failures with growing jittered delays, then succeeds', async () => {
    const server = new FakeServer()
      .on('auth.login', envelope({ token: validToken }))
      .on(
        'tasks.get_all',
        envelope(null, { code: 503 }),
        { networkError: 'socket hang up', code: 'ECONNRESET' },
        envelope(null, { code: 500, subcode: 102 }),
        envelope({ tasks: [] }),
      );
    const { transport, sleeps, logs } = setup(server);

    await expect(transport.call('tasks.get_all', {})).resolves.toEqual({ tasks: [] });

    // random() = 0.5 → 3/4 of each ceiling: 500, 1000, 2000 ms
    expect(sleeps).toEqual([375, 750, 1500]);
    expect(logs.filter((l) => l.level === 'warn').map((l) => l.fields.attempt)).toEqual([1, 2, 3]);
  });

  test('stops after maxAttempts and throws the last failure', async () => {
    const server = new FakeServer()
      .on('auth.login', envelope({ token: validToken }))
      .on('tasks.get_all', envelope(null, { code: 503, msg: 'maintenance' }));
    const { transport, sleeps } = setup(server, { retry: { maxAttempts: 3 } });
    const err = await transport.call('tasks.get_all', {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClearmlUnavailableError);
    expect(server.calls('tasks.get_all')).toHaveLength(3);
    expect(sleeps).toHaveLength(2);
  });

  test('does not retry terminal failures', async () => {
    const server = new FakeServer()
      .on('auth.login', envelope({ token: validToken }))
      .on('tasks.enqueue', envelope(null, { code: 400, subcode: 110 }));
    const { transport, sleeps } = setup(server);
    await expect(transport.call('tasks.enqueue', {})).rejects.toBeInstanceOf(
      ClearmlValidationError,
    );
    expect(server.calls('tasks.enqueue')).toHaveLength(1);
    expect(sleeps).toEqual([]);
  });

  test('a request without an answer times out as a retriable failure', async () => {
    const server = new FakeServer()
      .on('auth.login', envelope({ token: validToken }))
      .on('tasks.get_all', { hang: true }, envelope({ tasks: [] }));
    const { transport, sleeps } = setup(server, { requestTimeoutMs: 20 });
    await expect(transport.call('tasks.get_all', {})).resolves.toEqual({ tasks: [] });
    expect(sleeps).toHaveLength(1);

    const once = setup(server, { requestTimeoutMs: 20, retry: { maxAttempts: 1 } });
    server.on('tasks.get_all', { hang: true });
    const err = await once.transport.call('tasks.get_all', {}).catch((e: unknown) => e);
    expect(err).toMatchObject({
      kind: 'timeout',
      retriable: true,
      message: 'no answer within 20 ms',
    });
  });

  test.each([
    { name: 'timeout', reply: { hang: true } as Reply, wantCalls: 1 },
    {
      name: 'reset connection',
      reply: { networkError: 'reset', code: 'ECONNRESET' },
      wantCalls: 1,
    },
    {
      name: 'refused connection',
      reply: { networkError: 'refused', code: 'ECONNREFUSED' },
      wantCalls: 2,
    },
    { name: '503 maintenance', reply: envelope(null, { code: 503 }), wantCalls: 2 },
  ])(
    'a create is retried after a $name only if the server cannot have acted',
    async ({ reply, wantCalls }) => {
      const server = new FakeServer()
        .on('auth.login', envelope({ token: validToken }))
        .on('tasks.create', reply, envelope({ id: 'new' }));
      const { transport } = setup(server, { requestTimeoutMs: 20 });
      await transport
        .call('tasks.create', { name: 'abc' }, { idempotent: false })
        .catch(() => undefined);
      expect(server.calls('tasks.create')).toHaveLength(wantCalls);
    },
  );

  test('the default schedule doubles its ceiling and respects maxDelayMs', () => {
    const delays = [1, 2, 3, 4, 10].map((retry) =>
      computeBackoffMs({ policy: DEFAULT_RETRY_POLICY, retry, random: () => 0 }),
    );
    expect(delays).toEqual([250, 500, 1000, 2000, 15_000]);
    const top = computeBackoffMs({ policy: DEFAULT_RETRY_POLICY, retry: 10, random: () => 0.9999 });
    expect(top).toBeLessThan(DEFAULT_RETRY_POLICY.maxDelayMs);
  });
});

describe('request observer', () => {
  test('reports every HTTP request with its endpoint, status or failure kind, and duration', async () => {
    const server = new FakeServer()
      .on('auth.login', envelope({ token: validToken }))
      .on(
        'tasks.get_all',
        envelope(null, { code: 503 }),
        { networkError: 'socket hang up', code: 'ECONNRESET' },
        envelope({ tasks: [] }),
      );
    const seen: unknown[] = [];
    let nowMs = NOW_MS;
    const { transport } = setup(server, {
      // Each reading of the clock moves it on by 5 ms, so every request lasts 5 ms.
      now: () => (nowMs += 5),
      onRequest: (r) => seen.push(r),
    });

    await transport.call('tasks.get_all', {});

    expect(seen).toEqual([
      { endpoint: 'auth.login', code: '200', durationMs: 5 },
      { endpoint: 'tasks.get_all', code: '503', durationMs: 5 },
      { endpoint: 'tasks.get_all', code: 'network', durationMs: 5 },
      { endpoint: 'tasks.get_all', code: '200', durationMs: 5 },
    ]);
    expect(JSON.stringify(seen)).not.toMatch(/SECRETVALUE456|ACCESSKEY123|first/);
  });

  test('reports a request without an answer as a timeout', async () => {
    const server = new FakeServer()
      .on('auth.login', envelope({ token: validToken }))
      .on('tasks.get_all', { hang: true });
    const codes: string[] = [];
    const { transport } = setup(server, {
      requestTimeoutMs: 20,
      retry: { maxAttempts: 1 },
      onRequest: (r) => codes.push(`${r.endpoint} ${r.code}`),
    });
    await transport.call('tasks.get_all', {}).catch(() => undefined);
    expect(codes).toEqual(['auth.login 200', 'tasks.get_all timeout']);
  });
});
