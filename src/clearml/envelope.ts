/**
 * Parsing of the ClearML response envelope `{meta: {...}, data: {...}}`.
 *
 * The server wraps every JSON answer, success or failure, in this envelope and sets the HTTP
 * status to `meta.result_code` (../shared/reference/clearml-api.md §2). This module turns raw
 * response text into either the `data` object or a typed {@link ClearmlError}; it does no I/O.
 */
import { ClearmlError, errorFromResult } from './errors.ts';

/** The `meta` block of a ClearML response, as far as the client reads it. */
export interface ResponseMeta {
  /** Server call id. */
  id?: string;
  /** Transaction id, echoed from `X-Clearml-Trx`. */
  trx?: string;
  /** Endpoint name and versions the server resolved. */
  endpoint?: { name?: string; requested_version?: string; actual_version?: string };
  /** Equals the HTTP status. */
  result_code: number;
  /** Detail code; 0 when none. */
  result_subcode: number;
  /** Human text, `OK` on success. */
  result_msg: string;
  /** Structured extra info on some errors. */
  error_data?: unknown;
}

const MAX_MESSAGE_CHARS = 256;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function readMeta(body: unknown): ResponseMeta | undefined {
  if (!isRecord(body) || !isRecord(body.meta)) return undefined;
  const meta = body.meta;
  if (typeof meta.result_code !== 'number') return undefined;
  return {
    ...meta,
    result_code: meta.result_code,
    result_subcode: typeof meta.result_subcode === 'number' ? meta.result_subcode : 0,
    result_msg: typeof meta.result_msg === 'string' ? meta.result_msg : '',
  };
}

/**
 * Parses one response. Returns `data` (an empty object when the server sent `null`, as it does
 * for an empty queue in `queues.get_next_task`). Throws a {@link ClearmlError} for error
 * envelopes, for non-2xx answers without an envelope (proxy pages are cut to 256 characters so
 * upstream bodies never flood a log), and for a 2xx answer that is not an envelope.
 */
export function parseEnvelope(opts: {
  endpoint: string;
  status: number;
  text: string;
}): Record<string, unknown> {
  let body: unknown;
  let parseError: unknown;
  try {
    body = opts.text === '' ? undefined : JSON.parse(opts.text);
  } catch (err) {
    parseError = err;
  }

  const meta = readMeta(body);
  if (meta === undefined) {
    if (opts.status >= 200 && opts.status < 300) {
      throw new ClearmlError('response is not a ClearML envelope', {
        endpoint: opts.endpoint,
        kind: 'protocol',
        status: opts.status,
        retriable: false,
        cause: parseError,
      });
    }
    return throwError(
      errorFromResult({
        endpoint: opts.endpoint,
        status: opts.status,
        message: `HTTP ${opts.status}: ${opts.text.slice(0, MAX_MESSAGE_CHARS)}`,
        kind: 'http',
      }),
    );
  }

  if (meta.result_code >= 300 || opts.status >= 300) {
    return throwError(
      errorFromResult({
        endpoint: opts.endpoint,
        status: opts.status,
        resultCode: meta.result_code,
        resultSubcode: meta.result_subcode,
        message: meta.result_msg.slice(0, MAX_MESSAGE_CHARS),
        kind: 'api',
      }),
    );
  }
  const data = isRecord(body) ? body.data : undefined;
  return isRecord(data) ? data : {};
}

function throwError(err: ClearmlError): never {
  throw err;
}
