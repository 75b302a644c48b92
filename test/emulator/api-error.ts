/**
 * Errors the emulated API server answers with, named after the real server's
 * `apierrors/errors.conf` entries (code, subcode, message) so clients see the same envelope.
 */

/** A failed call: becomes `meta.result_code/result_subcode/result_msg` and the HTTP status. */
export class ApiError extends Error {
  readonly code: number;
  readonly subcode: number;
  readonly errorData: Record<string, unknown>;

  constructor(
    code: number,
    subcode: number,
    message: string,
    errorData: Record<string, unknown> = {},
  ) {
    super(message);
    this.code = code;
    this.subcode = subcode;
    this.errorData = errorData;
  }
}

/** Builds the real server's message form: `<default message>: key=value, ...`. */
function withData(message: string, data: Record<string, unknown>): string {
  const parts = Object.entries(data).map(
    ([k, v]) => `${k}=${Array.isArray(v) ? `(${v.join(', ')})` : String(v)}`,
  );
  return parts.length === 0 ? message : `${message}: ${parts.join(', ')}`;
}

function factory(code: number, subcode: number, message: string) {
  return (data: Record<string, unknown> = {}, extra?: string) =>
    new ApiError(code, subcode, withData(extra ? `${message} (${extra})` : message, data), data);
}

/** The error codes the emulator uses, by server name. */
export const errors = {
  notSupported301: factory(
    301,
    1,
    'this endpoint is no longer supported for the requested API version',
  ),
  invalidId: factory(400, 10, 'Invalid object id'),
  missingRequiredFields: factory(400, 11, 'Missing required fields'),
  validationError: factory(400, 12, 'Validation error'),
  invalidTaskId: factory(400, 101, 'Invalid task id'),
  invalidTaskStatus: factory(400, 110, 'Invalid task status'),
  missingTaskFields: factory(400, 122, 'Task is missing expected fields'),
  taskCannotBeDeleted: factory(400, 123, 'Task cannot be deleted'),
  invalidModelId: factory(400, 201, 'Invalid model id'),
  invalidProjectId: factory(400, 401, 'Invalid project id'),
  invalidQueueId: factory(400, 701, 'Invalid queue id'),
  queueNotEmpty: factory(400, 702, 'Queue is not empty'),
  noDefaultQueue: factory(400, 707, 'No queue is tagged as the default queue for this company'),
  dataValidationError: factory(400, 800, 'Data validation error'),
  expectedUniqueData: factory(
    400,
    801,
    'Value combination already exists (unique field already contains this value)',
  ),
  invalidWorkerId: factory(400, 1001, 'Invalid worker id'),
  badAuthType: factory(401, 10, 'Bad authentication type'),
  noCredentials: factory(401, 20, 'Unauthorized (missing credentials)'),
  badCredentials: factory(401, 21, 'Unauthorized (malformed credentials)'),
  invalidCredentials: factory(401, 22, 'Unauthorized (invalid credentials)'),
  invalidToken: factory(401, 30, 'Invalid token'),
  generalError: factory(500, 0, 'General error'),
};
