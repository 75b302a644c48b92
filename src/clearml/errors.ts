/**
 * Typed errors of the ClearML REST client.
 *
 * Every failure the client reports is a {@link ClearmlError}: an error envelope from the server
 * (`meta.result_code` / `meta.result_subcode`), an HTTP failure from a proxy in front of it, a
 * network failure or a timeout. Each error says whether retrying can help (`retriable`), so
 * callers decide between a backoff and a terminal condition without inspecting codes. Subclasses
 * exist only for the outcomes callers branch on; everything else is the base class with its codes.
 *
 * Codes and subcodes follow the server's `apierrors/errors.conf`
 * (../shared/reference/clearml-api.md §2). This module formats nothing for logs; messages never
 * carry credentials because the client never puts them into an error.
 */

/** Subcodes of HTTP 400 that mean "the object you named does not exist (or is not visible)". */
const NOT_FOUND_SUBCODES_400: ReadonlySet<number> = new Set([
  10, // invalid_id
  101, // invalid_task_id
  201, // invalid_model_id
  401, // invalid_project_id
  403, // project_not_found
  701, // invalid_queue_id
  1001, // invalid_worker_id
]);

/** Names of the server error codes callers may branch on, keyed by `"<code>/<subcode>"`. */
const API_ERROR_NAMES: Readonly<Record<string, string>> = {
  '400/10': 'invalid_id',
  '400/11': 'missing_required_fields',
  '400/12': 'validation_error',
  '400/101': 'invalid_task_id',
  '400/110': 'invalid_task_status',
  '400/121': 'failed_changing_task_status',
  '400/123': 'task_cannot_be_deleted',
  '400/201': 'invalid_model_id',
  '400/401': 'invalid_project_id',
  '400/403': 'project_not_found',
  '400/701': 'invalid_queue_id',
  '400/702': 'queue_not_empty',
  '400/706': 'task_already_queued',
  '400/707': 'no_default_queue',
  '400/708': 'multiple_default_queues',
  '400/800': 'data_validation_error',
  '400/801': 'expected_unique_data',
  '401/10': 'bad_auth_type',
  '401/20': 'no_credentials',
  '401/21': 'bad_credentials',
  '401/22': 'invalid_credentials',
  '401/30': 'invalid_token',
  '401/31': 'blocked_token',
  '403/20': 'role_not_allowed',
  '403/21': 'no_write_permission',
  '500/0': 'general_error',
  '500/4': 'low_disk_space',
  '500/102': 'database_unavailable',
};

/** Why a request failed without a usable server envelope, or `api` when the server answered. */
export type ClearmlFailureKind = 'api' | 'http' | 'network' | 'timeout' | 'protocol';

/** Constructor fields of {@link ClearmlError}. */
export interface ClearmlErrorInit {
  /** The `service.action` name that was called, e.g. `tasks.enqueue`. */
  endpoint: string;
  /** What failed: an API envelope, a bare HTTP status, the network, a timeout or a bad body. */
  kind: ClearmlFailureKind;
  /** HTTP status of the response; undefined when no response arrived. */
  status?: number;
  /** `meta.result_code`; equals the HTTP status on the real server. */
  resultCode?: number;
  /** `meta.result_subcode`. */
  resultSubcode?: number;
  /** Whether the same request may succeed if sent again later. */
  retriable: boolean;
  /** The underlying failure (fetch error, JSON parse error), if any. */
  cause?: unknown;
}

/**
 * Base of every error the ClearML client throws. `status`, `resultCode` and `resultSubcode` are
 * the raw numbers; `apiErrorName` is the server's name for known pairs (`invalid_task_status`),
 * stable for callers to compare against. Never thrown for success envelopes.
 */
export class ClearmlError extends Error {
  /** The `service.action` that failed. */
  readonly endpoint: string;
  /** What kind of failure this is. */
  readonly kind: ClearmlFailureKind;
  /** HTTP status, undefined for network failures and timeouts. */
  readonly status: number | undefined;
  /** `meta.result_code`, undefined when there was no envelope. */
  readonly resultCode: number | undefined;
  /** `meta.result_subcode`, undefined when there was no envelope. */
  readonly resultSubcode: number | undefined;
  /** True when sending the same request again later may succeed. */
  readonly retriable: boolean;
  /** Server error name for the code pair (e.g. `invalid_task_id`), or undefined if unknown. */
  readonly apiErrorName: string | undefined;

  /** Builds the error; `message` is the server's `result_msg` or a description of the failure. */
  constructor(message: string, init: ClearmlErrorInit) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = new.target.name;
    this.endpoint = init.endpoint;
    this.kind = init.kind;
    this.status = init.status;
    this.resultCode = init.resultCode;
    this.resultSubcode = init.resultSubcode;
    this.retriable = init.retriable;
    this.apiErrorName =
      init.resultCode === undefined
        ? undefined
        : API_ERROR_NAMES[`${init.resultCode}/${init.resultSubcode ?? 0}`];
  }
}

/** The named object (task, model, project, queue, worker) does not exist. Terminal. */
export class ClearmlNotFoundError extends ClearmlError {}

/**
 * The server rejected the request as invalid: bad fields, a disallowed status transition
 * (`invalid_task_status`), a duplicate name, an unknown endpoint. Terminal for this request.
 */
export class ClearmlValidationError extends ClearmlError {}

/** Missing, malformed or rejected credentials, or a role that may not call this. Terminal. */
export class ClearmlAuthError extends ClearmlError {}

/**
 * The server could not be reached or could not serve the request now: network failure, timeout,
 * 5xx (including 503 maintenance and proxy errors) or 429. Retriable.
 */
export class ClearmlUnavailableError extends ClearmlError {}

/** HTTP statuses a proxy or the server uses for "try again later". */
const RETRIABLE_HTTP_STATUSES: ReadonlySet<number> = new Set([429, 502, 503, 504, 509]);

/**
 * Maps a server error envelope (or a bare HTTP status when the body was not an envelope) to the
 * matching error class. Pure; never throws.
 */
export function errorFromResult(opts: {
  endpoint: string;
  status: number;
  resultCode?: number;
  resultSubcode?: number;
  message: string;
  kind: 'api' | 'http';
}): ClearmlError {
  const code = opts.resultCode ?? opts.status;
  const subcode = opts.resultSubcode ?? 0;
  const init = {
    endpoint: opts.endpoint,
    kind: opts.kind,
    status: opts.status,
    resultCode: opts.resultCode,
    resultSubcode: opts.resultSubcode,
  };
  if (
    code >= 500 ||
    RETRIABLE_HTTP_STATUSES.has(code) ||
    RETRIABLE_HTTP_STATUSES.has(opts.status)
  ) {
    return new ClearmlUnavailableError(opts.message, { ...init, retriable: true });
  }
  if (code === 401 || code === 403) {
    return new ClearmlAuthError(opts.message, { ...init, retriable: false });
  }
  if (code === 400 && NOT_FOUND_SUBCODES_400.has(subcode)) {
    return new ClearmlNotFoundError(opts.message, { ...init, retriable: false });
  }
  return new ClearmlValidationError(opts.message, { ...init, retriable: false });
}
