/**
 * metav1.Condition helpers: set, find and remove conditions in a status' `conditions` list the
 * way the API conventions ask (../shared/reference/k8s-operator.md §5): one entry per `type`,
 * `lastTransitionTime` moved only when `status` flips, `observedGeneration` kept per condition,
 * and `type`, `reason` and `message` checked against the API server's own validation so a bad
 * condition fails here, with a typed error, instead of as a 422 from the status write.
 *
 * Functions are pure: they return new arrays and never mutate their input. What a condition
 * means is the caller's business.
 */
import { InvalidConditionError } from './errors.ts';

/** The status of a condition. */
export type ConditionStatus = 'True' | 'False' | 'Unknown';

/** A metav1.Condition as stored in status (timestamps as RFC 3339 strings, whole seconds). */
export interface Condition {
  type: string;
  status: ConditionStatus;
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

/** What a caller states about a condition; the time is filled in by {@link setCondition}. */
export interface ConditionInput {
  type: string;
  status: ConditionStatus;
  reason: string;
  /** Default empty. */
  message?: string;
  observedGeneration?: number;
}

// Patterns and limits of k8s.io/apimachinery pkg/apis/meta/v1 types.go (Condition markers).
const TYPE_PATTERN =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/;
const TYPE_MAX_LENGTH = 316;
const REASON_PATTERN = /^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/;
const REASON_MAX_LENGTH = 1024;
const MESSAGE_MAX_LENGTH = 32768;
const STATUSES: ReadonlySet<string> = new Set(['True', 'False', 'Unknown']);

/**
 * Throws {@link InvalidConditionError} naming the first field the API server would refuse:
 * `type` (qualified name, ≤ 316), `status` (True/False/Unknown), `reason` (CamelCase-like,
 * 1–1024), `message` (≤ 32768), `observedGeneration` (integer ≥ 0).
 */
export function validateCondition(input: ConditionInput): void {
  if (input.type.length > TYPE_MAX_LENGTH || !TYPE_PATTERN.test(input.type)) {
    throw new InvalidConditionError('type', `condition type "${input.type}" is not valid`);
  }
  if (!STATUSES.has(input.status)) {
    throw new InvalidConditionError('status', `condition status "${input.status}" is not valid`);
  }
  if (input.reason.length > REASON_MAX_LENGTH || !REASON_PATTERN.test(input.reason)) {
    throw new InvalidConditionError(
      'reason',
      `condition reason "${input.reason}" must match ${REASON_PATTERN.source}`,
    );
  }
  if ((input.message ?? '').length > MESSAGE_MAX_LENGTH) {
    throw new InvalidConditionError('message', 'condition message exceeds 32768 characters');
  }
  const generation = input.observedGeneration;
  if (generation !== undefined && !(Number.isInteger(generation) && generation >= 0)) {
    throw new InvalidConditionError('observedGeneration', 'observedGeneration must be ≥ 0');
  }
}

/** A metav1.Time string: RFC 3339 in UTC with whole seconds, as the API server stores it. */
export function formatConditionTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

/**
 * Returns `conditions` with `input` applied: a new type is appended with
 * `lastTransitionTime = nowMs`; an existing one takes the new reason, message and
 * observedGeneration, and a new `lastTransitionTime` only if its status changed. Other entries
 * and the order are kept. Throws {@link InvalidConditionError} for an invalid input. Pure and
 * idempotent: applying the same input twice gives equal lists.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  input: ConditionInput,
  opts: { nowMs: number },
): Condition[] {
  validateCondition(input);
  const list = [...(conditions ?? [])];
  const index = list.findIndex((c) => c.type === input.type);
  const previous = index >= 0 ? list[index] : undefined;
  const next: Condition = {
    type: input.type,
    status: input.status,
    ...(input.observedGeneration !== undefined && { observedGeneration: input.observedGeneration }),
    lastTransitionTime:
      previous && previous.status === input.status
        ? previous.lastTransitionTime
        : formatConditionTime(opts.nowMs),
    reason: input.reason,
    message: input.message ?? '',
  };
  if (index >= 0) list[index] = next;
  else list.push(next);
  return list;
}

/** The condition of `type`, or undefined. */
export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** True when the condition of `type` exists and its status is `True`. */
export function isConditionTrue(
  conditions: readonly Condition[] | undefined,
  type: string,
): boolean {
  return findCondition(conditions, type)?.status === 'True';
}

/** Returns `conditions` without the condition of `type` (unchanged if absent). Pure. */
export function removeCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition[] {
  return (conditions ?? []).filter((c) => c.type !== type);
}
