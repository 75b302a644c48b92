import { describe, expect, test } from '@jest/globals';

import { parseClaraInstance } from '../../../src/api/clarainstance.ts';
import type { ClaraInstance } from '../../../src/api/clarainstance.ts';
import {
  AGENT_POD_SELECTOR,
  agentPod,
  agentPodName,
  GPU_RESOURCE,
} from '../../../src/controller/clarainstance/agent-pod.ts';
import { claraInstance } from '../../fixtures/clara-instance.ts';
import type { Overrides } from '../../fixtures/clara-instance.ts';

const TASK = '0123456789abcdef0123456789abcdef';
const OWNER = { name: 'spleen-unet', namespace: 'ml', uid: '5d1c2f9e-0000-4000-8000-000000000001' };

function instance(overrides: Overrides = {}): ClaraInstance {
  const parsed = parseClaraInstance(claraInstance(overrides));
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  return parsed.value;
}

function podOf(overrides: Overrides = {}) {
  return agentPod({
    instance: instance(overrides),
    owner: OWNER,
    taskId: TASK,
    credentialsSecret: 'creds',
  });
}

describe('agentPod', () => {
  test('runs exactly the task with clearml-agent execute, as an argv list', () => {
    const container = podOf().spec!.containers[0]!;
    expect(container.command).toEqual([
      'clearml-agent',
      'execute',
      '--id',
      TASK,
      '--full-monitoring',
      '--require-queue',
    ]);
    expect(container.args).toBeUndefined();
  });

  test('takes ClearML credentials only through secretKeyRef', () => {
    const env = podOf().spec!.containers[0]!.env!;
    const credentials = env.filter(
      (e) => e.name.startsWith('CLEARML_API') || e.name.endsWith('_HOST'),
    );
    expect(credentials.map((e) => e.name).sort()).toEqual([
      'CLEARML_API_ACCESS_KEY',
      'CLEARML_API_HOST',
      'CLEARML_API_SECRET_KEY',
      'CLEARML_FILES_HOST',
      'CLEARML_WEB_HOST',
    ]);
    for (const e of credentials) {
      expect(e.value).toBeUndefined();
      expect(e.valueFrom?.secretKeyRef).toMatchObject({ name: 'creds', key: e.name });
    }
  });

  test.each([
    { given: 'no agent.gpus', agent: {}, want: '1' },
    { given: 'agent.gpus 4', agent: { gpus: 4 }, want: '4' },
  ])('limits nvidia.com/gpu from $given', ({ agent, want }) => {
    const limits = podOf({ spec: { agent } }).spec!.containers[0]!.resources!.limits!;
    expect(limits[GPU_RESOURCE]).toBe(want);
  });

  test('asks for no GPU when agent.gpus is 0', () => {
    const limits = podOf({ spec: { agent: { gpus: 0 } } }).spec!.containers[0]!.resources!.limits!;
    expect(limits).not.toHaveProperty(GPU_RESOURCE);
  });

  test('carries resources, nodeSelector, tolerations, pull secrets and service account', () => {
    const pod = podOf({
      spec: {
        agent: {
          image: 'registry.example/clara:4.1',
          resources: { requests: { cpu: '4', memory: '24Gi' }, limits: { memory: '32Gi' } },
          nodeSelector: { 'gpu-type': 'a100' },
          tolerations: [{ key: 'gpu', operator: 'Exists', effect: 'NoSchedule' }],
          imagePullSecrets: [{ name: 'ngc' }],
          serviceAccountName: 'trainer',
        },
      },
    });
    const spec = pod.spec!;
    expect(spec.containers[0]!.image).toBe('registry.example/clara:4.1');
    expect(spec.containers[0]!.resources).toEqual({
      requests: { cpu: '4', memory: '24Gi' },
      limits: { memory: '32Gi', [GPU_RESOURCE]: '1' },
    });
    expect(spec.nodeSelector).toEqual({ 'gpu-type': 'a100' });
    expect(spec.tolerations).toEqual([{ key: 'gpu', operator: 'Exists', effect: 'NoSchedule' }]);
    expect(spec.imagePullSecrets).toEqual([{ name: 'ngc' }]);
    expect(spec.serviceAccountName).toBe('trainer');
    expect(spec.automountServiceAccountToken).toBe(true);
  });

  test('is owned by the instance as its controller, never restarts, and is labelled for the watch', () => {
    const pod = podOf();
    expect(pod.metadata!.ownerReferences).toEqual([
      expect.objectContaining({
        kind: 'ClaraInstance',
        uid: OWNER.uid,
        controller: true,
        blockOwnerDeletion: true,
      }),
    ]);
    expect(pod.spec!.restartPolicy).toBe('Never');
    expect(pod.spec!.automountServiceAccountToken).toBe(false);
    const selector = Object.fromEntries(AGENT_POD_SELECTOR.split(',').map((kv) => kv.split('=')));
    expect(pod.metadata!.labels).toMatchObject({ ...selector, 'clara-operator.io/task-id': TASK });
  });

  test('drops every capability and privilege escalation', () => {
    expect(podOf().spec!.containers[0]!.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    });
  });
});

describe('agentPodName', () => {
  test.each([
    { name: 'spleen', want: 'spleen-01234567' },
    { name: 'x'.repeat(60), want: /^x{47}-[0-9a-f]{6}-01234567$/ },
  ])('names the pod of $name within 63 characters', ({ name, want }) => {
    const got = agentPodName(name, TASK);
    expect(got.length).toBeLessThanOrEqual(63);
    if (typeof want === 'string') expect(got).toBe(want);
    else expect(got).toMatch(want);
  });
});
