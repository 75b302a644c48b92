import { describe, expect, test } from '@jest/globals';

import {
  findCondition,
  formatConditionTime,
  isConditionTrue,
  removeCondition,
  setCondition,
  validateCondition,
  type Condition,
  type ConditionInput,
} from '../../../src/k8s/conditions.ts';
import { InvalidConditionError } from '../../../src/k8s/errors.ts';

const T0 = Date.UTC(2026, 0, 1, 12, 0, 0, 456);
const T1 = T0 + 60_000;

const ready = (over: Partial<ConditionInput> = {}): ConditionInput => ({
  type: 'Ready',
  status: 'False',
  reason: 'TaskQueued',
  message: 'waiting for an agent',
  observedGeneration: 1,
  ...over,
});

describe('setCondition', () => {
  test('appends a new condition with the current time in whole seconds', () => {
    expect(setCondition(undefined, ready(), { nowMs: T0 })).toEqual([
      {
        type: 'Ready',
        status: 'False',
        observedGeneration: 1,
        lastTransitionTime: '2026-01-01T12:00:00Z',
        reason: 'TaskQueued',
        message: 'waiting for an agent',
      },
    ]);
  });

  test('keeps lastTransitionTime when the status stays, but takes reason, message and generation', () => {
    const before = setCondition(undefined, ready(), { nowMs: T0 });
    const after = setCondition(
      before,
      ready({ reason: 'PodPending', message: 'unschedulable', observedGeneration: 2 }),
      { nowMs: T1 },
    );
    expect(after[0]).toMatchObject({
      lastTransitionTime: '2026-01-01T12:00:00Z',
      reason: 'PodPending',
      message: 'unschedulable',
      observedGeneration: 2,
    });
  });

  test('moves lastTransitionTime when the status flips', () => {
    const before = setCondition(undefined, ready(), { nowMs: T0 });
    const after = setCondition(before, ready({ status: 'True', reason: 'Running' }), { nowMs: T1 });
    expect(after[0]?.lastTransitionTime).toBe('2026-01-01T12:01:00Z');
  });

  test('replaces in place, keeps other conditions and order, and does not mutate its input', () => {
    const first = setCondition(undefined, ready(), { nowMs: T0 });
    const two = setCondition(
      first,
      { type: 'Degraded', status: 'False', reason: 'AsExpected' },
      {
        nowMs: T0,
      },
    );
    const frozen = structuredClone(two);
    const updated = setCondition(two, ready({ status: 'True', reason: 'Running' }), { nowMs: T1 });
    expect(updated.map((c) => `${c.type}=${c.status}`)).toEqual(['Ready=True', 'Degraded=False']);
    expect(two).toEqual(frozen);
  });

  test('is idempotent', () => {
    const once = setCondition(undefined, ready(), { nowMs: T0 });
    expect(setCondition(once, ready(), { nowMs: T1 })).toEqual(once);
  });

  test('omits observedGeneration when none is given and defaults the message to empty', () => {
    const [c] = setCondition(
      [],
      { type: 'Ready', status: 'Unknown', reason: 'Starting' },
      {
        nowMs: T0,
      },
    );
    expect(c).not.toHaveProperty('observedGeneration');
    expect(c?.message).toBe('');
  });
});

describe('validateCondition', () => {
  test.each([
    { field: 'type', given: { type: 'not a type' } },
    { field: 'type', given: { type: `${'x'.repeat(317)}` } },
    { field: 'status', given: { status: 'Maybe' as never } },
    { field: 'reason', given: { reason: 'Has spaces' } },
    { field: 'reason', given: { reason: '9StartsWithDigit' } },
    { field: 'reason', given: { reason: 'EndsWithColon:' } },
    { field: 'reason', given: { reason: '' } },
    { field: 'message', given: { message: 'm'.repeat(32769) } },
    { field: 'observedGeneration', given: { observedGeneration: -1 } },
  ])('refuses a bad $field ($given.type $given.reason)', ({ field, given }) => {
    const attempt = () => validateCondition(ready(given));
    expect(attempt).toThrow(InvalidConditionError);
    try {
      attempt();
    } catch (err) {
      expect((err as InvalidConditionError).field).toBe(field);
    }
  });

  test.each(['Ready', 'clara-operator.io/TaskReady', 'Pod_Scheduled'])(
    'accepts the type %s',
    (type) => {
      expect(() => validateCondition(ready({ type }))).not.toThrow();
    },
  );

  test.each(['ImagePullBackOff', 'OOMKilled', 'A', 'Reason_with,comma:colon_1'])(
    'accepts the reason %s',
    (reason) => {
      expect(() => validateCondition(ready({ reason }))).not.toThrow();
    },
  );
});

describe('lookups', () => {
  const conditions: Condition[] = setCondition(
    setCondition(undefined, ready({ status: 'True', reason: 'Running' }), { nowMs: T0 }),
    { type: 'Degraded', status: 'False', reason: 'AsExpected' },
    { nowMs: T0 },
  );

  test('find, isTrue and remove work by type', () => {
    expect(findCondition(conditions, 'Degraded')?.reason).toBe('AsExpected');
    expect(findCondition(undefined, 'Ready')).toBeUndefined();
    expect(isConditionTrue(conditions, 'Ready')).toBe(true);
    expect(isConditionTrue(conditions, 'Degraded')).toBe(false);
    expect(isConditionTrue(conditions, 'Missing')).toBe(false);
    expect(removeCondition(conditions, 'Ready').map((c) => c.type)).toEqual(['Degraded']);
  });

  test('formats times as metav1.Time does', () => {
    expect(formatConditionTime(T0)).toBe('2026-01-01T12:00:00Z');
  });
});
