// Shared helpers for the emulator contract tests: raw HTTP calls with the real wire format,
// and a typed client pointed at the emulator.
import { ClearmlClient, type ClearmlClientOptions } from '../../../src/clearml/index.ts';
import type { RunningEmulator } from '../../emulator/emulator.ts';

export interface RawAnswer {
  status: number;
  headers: Headers;
  body: {
    meta: {
      endpoint: { name: string; requested_version: string | null; actual_version: string | null };
      result_code: number;
      result_subcode: number;
      result_msg: string;
    };
    data: Record<string, unknown>;
  };
}

/** Sends one call as the SDK would; `auth` defaults to Basic with the emulator's keys. */
export async function raw(
  emulator: RunningEmulator,
  endpoint: string,
  body: unknown = {},
  opts: { version?: string | null; authorization?: string | null; contentType?: string } = {},
): Promise<RawAnswer> {
  const { accessKey, secretKey } = emulator.credentials;
  const basic = `Basic ${Buffer.from(`${accessKey}:${secretKey}`).toString('base64')}`;
  const authorization = opts.authorization === undefined ? basic : opts.authorization;
  const version = opts.version === undefined ? '2.23' : opts.version;
  const path = version === null ? endpoint : `v${version}/${endpoint}`;
  const headers: Record<string, string> = {
    'content-type': opts.contentType ?? 'application/json',
  };
  if (authorization !== null) headers.authorization = authorization;
  const response = await fetch(`${emulator.apiUrl}/${path}`, {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return {
    status: response.status,
    headers: response.headers,
    body: (await response.json()) as RawAnswer['body'],
  };
}

/** Calls and returns `data`, failing the test on an error envelope. */
export async function ok(
  emulator: RunningEmulator,
  endpoint: string,
  body: unknown = {},
): Promise<Record<string, unknown>> {
  const answer = await raw(emulator, endpoint, body);
  if (answer.status !== 200) {
    throw new Error(`${endpoint} answered ${answer.status}: ${answer.body.meta.result_msg}`);
  }
  return answer.body.data;
}

/** The operator's client, pointed at the emulator, with instant retries. */
export function clientFor(
  emulator: RunningEmulator,
  opts: Partial<ClearmlClientOptions> = {},
): ClearmlClient {
  return new ClearmlClient({
    apiUrl: emulator.apiUrl,
    ...emulator.credentials,
    sleep: async () => undefined,
    ...opts,
  });
}

/** Creates a project and a training task; returns the task id. */
export async function newTask(emulator: RunningEmulator, name = 'contract-task'): Promise<string> {
  const client = clientFor(emulator);
  const project = await client.getOrCreateProject('Contract');
  return client.createTask({ name, type: 'training', project });
}

/** Polls `predicate` every 10 ms until it holds or `timeoutMs` passes. */
export async function waitFor(predicate: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
