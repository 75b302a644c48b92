/**
 * `npm run demo`: for now, brings up the local control plane with its fake GPU nodes and shows
 * the real scheduler placing a one-GPU training pod. The operator and the ClearML emulator join
 * the demo as their issues land.
 */
import * as k8s from '@kubernetes/client-node';

import { GPU_RESOURCE, loadKubeConfig } from '../test/harness/cluster.ts';
import { HarnessError } from '../test/harness/errors.ts';
import { up } from './cluster.ts';

async function main(): Promise<void> {
  const state = await up();
  const kc = loadKubeConfig(state.kubeconfig);
  const core = kc.makeApiClient(k8s.CoreV1Api);

  const nodes = await core.listNode();
  console.log('\nFake GPU nodes (kwok):');
  for (const node of nodes.items) {
    console.log(
      `  ${node.metadata?.name}  ${GPU_RESOURCE}=${node.status?.allocatable?.[GPU_RESOURCE] ?? 0}`,
    );
  }

  const name = `demo-gpu-${Date.now().toString(36)}`;
  await core.createNamespacedPod({
    namespace: 'default',
    body: {
      metadata: { name, labels: { app: 'clara-demo' } },
      spec: {
        restartPolicy: 'Never',
        containers: [
          {
            name: 'train',
            image: 'nvcr.io/nvidia/clara-train-sdk:v4.1',
            resources: { limits: { [GPU_RESOURCE]: '1' } },
          },
        ],
      },
    },
  });
  const deadline = Date.now() + 60_000;
  for (;;) {
    const pod = await core.readNamespacedPod({ namespace: 'default', name });
    if (pod.status?.phase === 'Running') {
      console.log(
        `\nPod ${name} asked for 1 ${GPU_RESOURCE}; the scheduler put it on ${pod.spec?.nodeName}; it is Running.`,
      );
      break;
    }
    if (Date.now() > deadline)
      throw new HarnessError(`pod ${name} did not reach Running within 60 s`);
    await new Promise((r) => setTimeout(r, 200));
  }
  await core.deleteNamespacedPod({ namespace: 'default', name });
  console.log('The control plane keeps running; stop it with: npm run cluster:down');
}

main().catch((err: unknown) => {
  const message = err instanceof HarnessError ? err.message : String(err);
  console.error(`clara-operator demo: ${message}`);
  process.exitCode = 1;
});
