/**
 * Typed errors of the controller machinery, and the one place that reads an HTTP status out of
 * whatever client-node threw.
 *
 * client-node reports API failures in two shapes: generated API methods throw `ApiException`
 * with `code`, and `Watch` hands its done-callback a plain `Error` carrying `statusCode`
 * (../shared/reference/k8s-operator.md §4). {@link httpStatusOf} hides that difference so
 * callers branch on a number or on the classes below, never on ad-hoc shapes.
 */
import * as k8s from '@kubernetes/client-node';

/**
 * HTTP status of a failed Kubernetes API call, or undefined when the failure carried none
 * (network error, timeout, abort). Accepts `ApiException`, `Watch` errors and `V1Status`-like
 * objects from a watch ERROR event.
 */
export function httpStatusOf(err: unknown): number | undefined {
  if (err instanceof k8s.ApiException) return err.code;
  if (typeof err !== 'object' || err === null) return undefined;
  // NB: client-node's Watch attaches `statusCode` to a plain Error and has no class to test for;
  // a watch ERROR event carries a metav1.Status whose `code` is the HTTP status.
  const { statusCode, code, kind } = err as {
    statusCode?: unknown;
    code?: unknown;
    kind?: unknown;
  };
  if (typeof statusCode === 'number') return statusCode;
  if (kind === 'Status' && typeof code === 'number') return code;
  return undefined;
}

/** Stable codes of the errors below, for callers that prefer a switch to `instanceof`. */
export type K8sErrorCode =
  'K8S_CONFLICT' | 'K8S_INVALID_CONDITION' | 'K8S_WATCH_EXPIRED' | 'K8S_WATCH_INACTIVE';

/** Base of every error this layer throws; `code` is stable across releases. */
export class K8sError extends Error {
  readonly code: K8sErrorCode;

  constructor(code: K8sErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/**
 * A write was refused with 409 Conflict: the object changed since the caller read it
 * (resourceVersion mismatch). Retrying with a fresh read is the remedy; a reconcile usually just
 * returns and lets the watch event requeue it.
 */
export class ConflictError extends K8sError {
  /** `namespace/name` (or `name`) of the object. */
  readonly objectKey: string;
  /** The resourceVersion the refused write was based on. */
  readonly resourceVersion: string | undefined;

  constructor(init: { objectKey: string; resourceVersion?: string; cause?: unknown }) {
    super(
      'K8S_CONFLICT',
      `conflict writing ${init.objectKey}: it changed since resourceVersion ` +
        `${init.resourceVersion ?? '(none)'} was read`,
      { cause: init.cause },
    );
    this.objectKey = init.objectKey;
    this.resourceVersion = init.resourceVersion;
  }
}

/** A condition that the API server would refuse (bad type, reason or message length). */
export class InvalidConditionError extends K8sError {
  /** The offending field: `type`, `reason`, `message` or `status`. */
  readonly field: string;

  constructor(field: string, message: string) {
    super('K8S_INVALID_CONDITION', message);
    this.field = field;
  }
}

/** The watch's resourceVersion is too old (410 Gone); a relist is needed. */
export class WatchExpiredError extends K8sError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('K8S_WATCH_EXPIRED', message, options);
  }
}

/** No event or bookmark arrived on a watch within the inactivity timeout. */
export class WatchInactiveError extends K8sError {
  /** How long the watch had been silent. */
  readonly silentMs: number;

  constructor(silentMs: number) {
    super('K8S_WATCH_INACTIVE', `watch silent for ${silentMs} ms; assuming a dead connection`);
    this.silentMs = silentMs;
  }
}

/**
 * A short, loggable description of any thrown value: message, name and the HTTP status when
 * there is one. Messages are cut to 256 characters (STYLE.md rule 16).
 */
export function describeError(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { error: String(err).slice(0, 256) };
  const fields: Record<string, unknown> = { error: err.message.slice(0, 256), errorName: err.name };
  const status = httpStatusOf(err);
  if (status !== undefined) fields.status = status;
  return fields;
}
