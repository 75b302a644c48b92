/**
 * With 200 live runs, polling ClearML stays batched (one tasks.get_all per page of ids per poll
 * interval, no per-instance calls) and an operator with nothing to do writes no status. The test
 * prints the numbers it measured.
 */
import { afterAll, beforeAll, expect, test } from '@jest/globals';

import type { ClaraObject } from '../../src/controller/clarainstance/clara-api.ts';
import {
  createTestNamespace,
  deleteTestNamespace,
  testKubeConfig,
  waitFor,
} from '../harness/cluster-env.ts';
import { installCrd } from '../harness/crd.ts';
import {
  createCredentialsSecret,
  createDataset,
  createInstance,
  exampleInstance,
  startOperator,
} from '../harness/operator-env.ts';
import type { OperatorEnv } from '../harness/operator-env.ts';

const INSTANCES = 200;
const POLL_INTERVAL_MS = 1_000;
const kc = testKubeConfig();
let namespace: string;
let env: OperatorEnv;

beforeAll(async () => {
  await installCrd(kc);
  namespace = await createTestNamespace(kc, 'operator-scale');
  env = await startOperator({ kc, namespaces: [namespace], pollIntervalMs: POLL_INTERVAL_MS });
  await createCredentialsSecret(kc, {
    namespace,
    name: 'clearml-credentials',
    emulator: env.emulator,
  });
  // The queue exists (a worker registered it) but nobody takes tasks: every run stays Queued,
  // live and polled.
  env.emulator.dispatch('queues.create', { name: 'q-scale' });
});

afterAll(async () => {
  await env?.stop();
  await deleteTestNamespace(kc, namespace);
});

test(`${INSTANCES} queued runs cost ceil(N/500)+2 ClearML requests per poll and no idle status writes`, async () => {
  const datasetId = createDataset(env.emulator);
  const template = exampleInstance('minimal.yaml');
  const creates: Promise<ClaraObject>[] = [];
  for (let i = 0; i < INSTANCES; i++) {
    const obj: ClaraObject = {
      ...template,
      metadata: { name: `run-${i}` },
      spec: {
        ...(template.spec as Record<string, unknown>),
        datasetTask: datasetId,
        queue: 'q-scale',
        clearml: { secretRef: { name: 'clearml-credentials' } },
        agent: { mode: 'External' },
      },
    };
    creates.push(createInstance(kc, namespace, obj));
  }
  await Promise.all(creates);

  await waitFor(
    async () => {
      const queued = env.controller.instances().filter((o) => o.status?.phase === 'Queued').length;
      return queued === INSTANCES ? true : undefined;
    },
    { what: `all ${INSTANCES} instances to be Queued`, timeoutMs: 120_000, intervalMs: 500 },
  );
  // Let the first polls after the last enqueue settle.
  await new Promise((r) => setTimeout(r, 3 * POLL_INTERVAL_MS));

  const callsBefore = env.emulator.calls.length;
  const writesBefore = env.controller.api.counts.statusWrites;
  const pollsBefore = env.controller.poller.stats().polls;
  await new Promise((r) => setTimeout(r, 5 * POLL_INTERVAL_MS + 200));
  const calls = env.emulator.calls.slice(callsBefore);
  const polls = env.controller.poller.stats().polls - pollsBefore;
  const writes = env.controller.api.counts.statusWrites - writesBefore;

  const perPoll = calls.length / polls;
  const bound = Math.ceil(INSTANCES / 500) + 2;
  const byEndpoint = calls.reduce<Record<string, number>>((acc, c) => {
    acc[c.endpoint] = (acc[c.endpoint] ?? 0) + 1;
    return acc;
  }, {});
  process.stdout.write(
    `scale: ${INSTANCES} live runs, ${polls} polls, ${calls.length} ClearML requests ` +
      `(${perPoll.toFixed(2)} per poll, bound ${bound}) ${JSON.stringify(byEndpoint)}, ` +
      `${writes} status writes while idle\n`,
  );
  expect(polls).toBeGreaterThanOrEqual(4);
  expect(perPoll).toBeLessThanOrEqual(bound);
  expect(Object.keys(byEndpoint)).toEqual(['tasks.get_all']);
  expect(writes).toBe(0);
});
