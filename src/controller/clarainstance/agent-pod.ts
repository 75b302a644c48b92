/**
 * The agent pod of a run (agent mode Execute): one pod per ClearML task whose clearml-agent runs
 * exactly that task and exits (`../shared/reference/clearml-api.md` §8.1, §8.5 option B). Pure
 * functions of the resource and the task id; no I/O.
 *
 * Nothing a user wrote reaches a shell: the command is an argv list whose only variable part is
 * the task id ClearML generated (32 hex characters), and the ClearML keys reach the container
 * only through secretKeyRef, never as literal values.
 */
import { createHash } from 'node:crypto';

import type * as k8s from '@kubernetes/client-node';

import type { ClaraInstance } from '../../api/clarainstance.ts';
import { API_VERSION, KIND } from '../../api/clarainstance.ts';
import { gpusOf, imageOf } from './launch.ts';

/** The extended resource name GPUs are requested by (NVIDIA device plugin). */
export const GPU_RESOURCE = 'nvidia.com/gpu';

/** Labels linking a pod to its instance and task; the operator watches pods by the first. */
export const LABELS = {
  managedBy: 'app.kubernetes.io/managed-by',
  component: 'app.kubernetes.io/component',
  instance: 'clara-operator.io/instance',
  taskId: 'clara-operator.io/task-id',
} as const;

export const MANAGED_BY = 'clara-operator';

/** Label selector of every pod the operator makes. */
export const AGENT_POD_SELECTOR = `${LABELS.managedBy}=${MANAGED_BY},${LABELS.component}=agent`;

/** The keys of the credentials Secret the agent reads (the SDK's and agent's own variables). */
const CREDENTIAL_KEYS = [
  { key: 'CLEARML_API_HOST', optional: false },
  { key: 'CLEARML_API_ACCESS_KEY', optional: false },
  { key: 'CLEARML_API_SECRET_KEY', optional: false },
  { key: 'CLEARML_WEB_HOST', optional: true },
  { key: 'CLEARML_FILES_HOST', optional: true },
] as const;

/** The identity of the resource a pod belongs to. */
export interface Owner {
  name: string;
  namespace: string;
  uid: string;
}

/**
 * Name of the agent pod of `taskId`: the instance name and the task id's first 8 characters,
 * shortened (with a digest, to stay unique) when the whole would pass 63 characters.
 */
export function agentPodName(instanceName: string, taskId: string): string {
  const suffix = `-${taskId.slice(0, 8)}`;
  if (instanceName.length + suffix.length <= 63) return `${instanceName}${suffix}`;
  const digest = createHash('sha256').update(instanceName).digest('hex').slice(0, 6);
  return `${instanceName.slice(0, 63 - suffix.length - 7).replace(/[-.]+$/, '')}-${digest}${suffix}`;
}

/**
 * A label value for the instance name: the name itself when it is a valid label value (at most
 * 63 characters), else a digest of it.
 */
export function instanceLabelValue(name: string): string {
  return name.length <= 63 ? name : createHash('sha256').update(name).digest('hex').slice(0, 40);
}

/** Quantities as the Pod API takes them: strings (the CRD allows int-or-string). */
function quantities(values: Record<string, string | number> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(values ?? {}).map(([k, v]) => [k, String(v)]));
}

/**
 * The agent pod of a run. `credentialsSecret` names the Secret in the instance's namespace that
 * holds the ClearML keys (the instance's own, or the operator's default).
 */
export function agentPod(opts: {
  instance: ClaraInstance;
  owner: Owner;
  taskId: string;
  credentialsSecret: string;
}): k8s.V1Pod {
  const { instance, owner, taskId, credentialsSecret } = opts;
  const agent = instance.spec.agent;
  const gpus = gpusOf(instance.spec);

  const limits = quantities(agent.resources?.limits);
  if (gpus > 0) limits[GPU_RESOURCE] = String(gpus);
  const resources: k8s.V1ResourceRequirements = { limits };
  if (agent.resources?.requests) resources.requests = quantities(agent.resources.requests);

  const env: k8s.V1EnvVar[] = CREDENTIAL_KEYS.map(({ key, optional }) => ({
    name: key,
    valueFrom: { secretKeyRef: { name: credentialsSecret, key, optional } },
  }));
  env.push(
    // The training image is the environment: use its Python and packages as they are.
    { name: 'CLEARML_AGENT_SKIP_PYTHON_ENV_INSTALL', value: '1' },
    { name: 'CLEARML_AGENT_NO_UPDATE', value: '1' },
    { name: 'CLEARML_WORKER_ID', value: `clara-operator:${owner.namespace}:${taskId}` },
  );

  const pod: k8s.V1Pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: agentPodName(owner.name, taskId),
      namespace: owner.namespace,
      labels: {
        [LABELS.managedBy]: MANAGED_BY,
        [LABELS.component]: 'agent',
        [LABELS.instance]: instanceLabelValue(owner.name),
        [LABELS.taskId]: taskId,
      },
      ownerReferences: [
        {
          apiVersion: API_VERSION,
          kind: KIND,
          name: owner.name,
          uid: owner.uid,
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: {
      restartPolicy: 'Never',
      enableServiceLinks: false,
      // The agent talks to ClearML, not to Kubernetes; mount a token only for an account the
      // user chose (it may carry cloud credentials for the dataset or the output storage).
      automountServiceAccountToken: agent.serviceAccountName !== undefined,
      securityContext: { seccompProfile: { type: 'RuntimeDefault' } },
      containers: [
        {
          name: 'agent',
          image: imageOf(instance.spec),
          command: [
            'clearml-agent',
            'execute',
            '--id',
            taskId,
            '--full-monitoring',
            '--require-queue',
          ],
          env,
          resources,
          securityContext: {
            allowPrivilegeEscalation: false,
            capabilities: { drop: ['ALL'] },
          },
        },
      ],
    },
  };
  const spec = pod.spec as k8s.V1PodSpec;
  if (agent.serviceAccountName) spec.serviceAccountName = agent.serviceAccountName;
  if (agent.nodeSelector) spec.nodeSelector = { ...agent.nodeSelector };
  if (agent.tolerations) spec.tolerations = agent.tolerations.map((t) => ({ ...t }));
  if (agent.imagePullSecrets) spec.imagePullSecrets = agent.imagePullSecrets.map((s) => ({ ...s }));
  return pod;
}
