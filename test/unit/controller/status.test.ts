import { describe, expect, test } from '@jest/globals';
import type * as k8s from '@kubernetes/client-node';

import {
  conditionsOf,
  metricsOf,
  phaseOfTask,
  podTrouble,
} from '../../../src/controller/clarainstance/status.ts';
import type { ConditionInputs } from '../../../src/controller/clarainstance/status.ts';

describe('phaseOfTask', () => {
  test.each([
    ['created', false, 'Pending'],
    ['queued', false, 'Queued'],
    ['in_progress', false, 'Running'],
    ['completed', false, 'Completed'],
    ['published', false, 'Completed'],
    ['failed', false, 'Failed'],
    ['stopped', false, 'Aborted'],
    ['stopped', true, 'Suspended'],
    ['created', true, 'Suspended'],
  ] as const)('task %s (suspend %s) is phase %s', (status, suspended, phase) => {
    expect(phaseOfTask(status, suspended)).toBe(phase);
  });
});

const pod = (status: k8s.V1PodStatus): k8s.V1Pod => ({ metadata: { name: 'p' }, status });

describe('podTrouble', () => {
  test.each([
    {
      given: 'a pod the scheduler cannot place',
      status: {
        phase: 'Pending',
        conditions: [
          {
            type: 'PodScheduled',
            status: 'False',
            reason: 'Unschedulable',
            message: '0/2 nodes are available: 2 Insufficient nvidia.com/gpu.',
          },
        ],
      },
      want: {
        reason: 'Unschedulable',
        message: '0/2 nodes are available: 2 Insufficient nvidia.com/gpu.',
      },
    },
    {
      given: 'an image that cannot be pulled',
      status: {
        phase: 'Pending',
        containerStatuses: [
          {
            name: 'agent',
            image: 'x',
            imageID: '',
            ready: false,
            restartCount: 0,
            state: {
              waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image "x"' },
            },
          },
        ],
      },
      want: { reason: 'ImagePullBackOff', message: 'Back-off pulling image "x"' },
    },
    {
      given: 'a container killed for memory',
      status: {
        phase: 'Failed',
        containerStatuses: [
          {
            name: 'agent',
            image: 'x',
            imageID: '',
            ready: false,
            restartCount: 0,
            state: { terminated: { exitCode: 137, reason: 'OOMKilled' } },
          },
        ],
      },
      want: { reason: 'OOMKilled', message: 'container agent ran out of memory (OOMKilled)' },
    },
    {
      given: 'an evicted pod',
      status: {
        phase: 'Failed',
        reason: 'Evicted',
        message: 'The node was low on resource: memory.',
      },
      want: { reason: 'Evicted', message: 'The node was low on resource: memory.' },
    },
  ])('reports $given with the reason Kubernetes gave', ({ status, want }) => {
    expect(podTrouble(pod(status as k8s.V1PodStatus))).toEqual({ on: 'AgentReady', ...want });
  });

  test('finds nothing wrong with a starting pod', () => {
    expect(podTrouble(pod({ phase: 'Pending' }))).toBeUndefined();
  });
});

describe('metricsOf', () => {
  test('matches scalars on their names and keeps the best by direction', () => {
    const task = {
      last_iteration: 40,
      last_metrics: {
        a: {
          b: {
            metric: 'val_mean_dice',
            variant: 'val_mean_dice',
            value: 0.81,
            max_value: 0.83,
            min_value: 0.1,
          },
        },
        c: {
          d: {
            metric: 'train_loss',
            variant: 'train_loss',
            value: 0.2,
            max_value: 0.9,
            min_value: 0.18,
          },
        },
        e: { f: { metric: 'lr', variant: 'lr', value: 0.001 } },
      },
    };
    expect(metricsOf(task)).toEqual({
      val_mean_dice: { latest: 0.81, best: 0.83, iteration: 40 },
      train_loss: { latest: 0.2, best: 0.18, iteration: 40 },
    });
  });
});

describe('conditionsOf', () => {
  const base: ConditionInputs = {
    phase: 'Running',
    podExpected: true,
    pod: pod({
      phase: 'Running',
      containerStatuses: [{ name: 'agent', image: 'x', imageID: '', ready: true, restartCount: 0 }],
    }),
    problem: undefined,
    taskMessage: undefined,
    taskId: '0123456789abcdef0123456789abcdef',
    queue: 'gpu',
  };
  const ready = (inputs: Partial<ConditionInputs>) =>
    conditionsOf({ ...base, ...inputs }).find((c) => c.type === 'Ready');

  test.each([
    { given: 'a running run with its agent up', inputs: {}, want: ['True', 'Running'] },
    {
      given: 'a completed run',
      inputs: { phase: 'Completed' as const },
      want: ['True', 'Completed'],
    },
    {
      given: 'a queued run',
      inputs: { phase: 'Queued' as const, pod: undefined },
      want: ['Unknown', 'Queued'],
    },
    {
      given: 'a failed run',
      inputs: { phase: 'Failed' as const, taskMessage: 'worker execution exit code 1' },
      want: ['False', 'Failed'],
    },
    {
      given: 'a missing Secret',
      inputs: {
        phase: 'Pending' as const,
        taskId: undefined,
        problem: {
          on: 'TaskReady' as const,
          reason: 'CredentialsSecretMissing',
          message: 'Secret ml/x does not exist',
        },
      },
      want: ['False', 'CredentialsSecretMissing'],
    },
    {
      given: 'an unschedulable pod',
      inputs: {
        pod: pod({
          phase: 'Pending',
          conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable' }],
        }),
      },
      want: ['False', 'Unschedulable'],
    },
    {
      given: 'External mode',
      inputs: { podExpected: false, pod: undefined },
      want: ['True', 'Running'],
    },
  ])('Ready for $given', ({ inputs, want }) => {
    const got = ready(inputs);
    expect([got?.status, got?.reason]).toEqual(want);
  });

  test('has no AgentReady condition in External mode', () => {
    expect(conditionsOf({ ...base, podExpected: false }).map((c) => c.type)).toEqual([
      'Ready',
      'TaskReady',
    ]);
  });
});
