/**
 * Acceptance of the operator's /metrics with a real Prometheus (Debian package): the controller
 * runs in-process with src/metrics' hooks, a Prometheus binary scrapes it every second while the
 * spleen example runs to Completed, and a PromQL query gives back the instance's val_mean_dice.
 * Deleting the instance then removes its series from /metrics.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';

import { GROUP, PLURAL, VERSION } from '../../src/api/clarainstance.ts';
import { createOperatorMetrics } from '../../src/metrics/index.ts';
import type { OperatorMetrics } from '../../src/metrics/index.ts';
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
  readInstance,
  startOperator,
  waitForStatus,
} from '../harness/operator-env.ts';
import type { OperatorEnv } from '../harness/operator-env.ts';

const kc = testKubeConfig();
let namespace: string;
let env: OperatorEnv;
let metrics: OperatorMetrics;
let metricsServer: Server;
let metricsUrl: string;
let prometheus: ChildProcess | undefined;
let prometheusUrl: string;
let prometheusLog = '';
let workDir: string;

beforeAll(async () => {
  await installCrd(kc);
  namespace = await createTestNamespace(kc, 'metrics-prom');
  metrics = createOperatorMetrics();
  env = await startOperator({
    kc,
    namespaces: [namespace],
    hooks: {
      queueMetrics: metrics.queueMetrics,
      onReconcile: metrics.onReconcile,
      onClearmlRequest: metrics.onClearmlRequest,
    },
  });
  metrics.collectInstances(() => env.controller.instances());
  metrics.collectController({ queue: () => env.controller.queue.stats() });
  metrics.setLeader(true);

  metricsServer = createServer((req, res) => {
    if (req.url === '/metrics') metrics.handler(req, res);
    else res.writeHead(404).end();
  });
  metricsUrl = `http://127.0.0.1:${await listen(metricsServer)}/metrics`;

  workDir = mkdtempSync(join(tmpdir(), 'clara-prometheus-'));
  prometheusUrl = await startPrometheus(new URL(metricsUrl).host);
});

afterAll(async () => {
  await stopPrometheus();
  await new Promise((resolve) => metricsServer?.close(resolve));
  await env?.stop();
  await deleteTestNamespace(kc, namespace);
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

/** Listens on a free port of 127.0.0.1 and returns it. */
async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return (server.address() as AddressInfo).port;
}

/** A port free right now (Prometheus takes no port 0, so one is picked for it). */
async function freePort(): Promise<number> {
  const probe = createServer();
  const port = await listen(probe);
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** Starts Prometheus scraping `target` every second; resolves with its URL once it is ready. */
async function startPrometheus(target: string): Promise<string> {
  const config = join(workDir, 'prometheus.yml');
  // JSON is YAML, so the config needs no YAML writer.
  const scrape = { job_name: 'clara-operator', static_configs: [{ targets: [target] }] };
  writeFileSync(
    config,
    JSON.stringify({
      global: { scrape_interval: '1s', evaluation_interval: '1s' },
      scrape_configs: [scrape],
    }),
  );
  const listenAddress = `127.0.0.1:${await freePort()}`;
  prometheus = spawn(
    'prometheus',
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(workDir, 'tsdb')}`,
      `--web.listen-address=${listenAddress}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  prometheus.stderr?.on('data', (chunk: Buffer) => {
    prometheusLog = (prometheusLog + chunk.toString()).slice(-4_000);
  });
  const exited = new Promise<never>((_resolve, reject) => {
    prometheus?.once('error', (err) => reject(new Error('cannot run prometheus', { cause: err })));
    prometheus?.once('exit', (code) =>
      reject(new Error(`prometheus exited with ${code}: ${prometheusLog}`)),
    );
  });
  const url = `http://${listenAddress}`;
  const ready = waitFor(() => fetch(`${url}/-/ready`).then((r) => (r.ok ? true : undefined)), {
    what: 'Prometheus ready',
    timeoutMs: 20_000,
    intervalMs: 200,
  });
  await Promise.race([ready, exited]);
  exited.catch(() => undefined);
  return url;
}

/** Stops Prometheus: SIGTERM, then SIGKILL if it has not exited within 5 s. */
async function stopPrometheus(): Promise<void> {
  const child = prometheus;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await gone;
  clearTimeout(timer);
}

/** The samples of an instant PromQL query through Prometheus' HTTP API. */
async function query(promql: string): Promise<{ metric: Record<string, string>; value: number }[]> {
  const response = await fetch(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent(promql)}`);
  const body = (await response.json()) as {
    status: string;
    error?: string;
    data?: { result: { metric: Record<string, string>; value: [number, string] }[] };
  };
  if (body.status !== 'success') throw new Error(`query ${promql} failed: ${body.error}`);
  return (body.data?.result ?? []).map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
}

describe('Prometheus scraping the operator', () => {
  test('scrapes /metrics successfully', async () => {
    const up = await waitFor(
      async () => {
        const samples = await query('up{job="clara-operator"}');
        return samples[0]?.value === 1 ? samples : undefined;
      },
      { what: 'up{job="clara-operator"} == 1', timeoutMs: 15_000, intervalMs: 500 },
    );
    expect(up).toHaveLength(1);
  });

  test("gives back the spleen run's val_mean_dice from a PromQL query", async () => {
    const datasetId = createDataset(env.emulator);
    await createCredentialsSecret(kc, {
      namespace,
      name: 'clearml-credentials',
      emulator: env.emulator,
    });
    const obj = exampleInstance('spleen-ct-segmentation.yaml');
    obj.metadata = { name: 'spleen' };
    Object.assign(obj.spec as Record<string, unknown>, { datasetTask: datasetId, queue: 'q-prom' });
    env.emulator.startWorker({
      queues: ['q-prom'],
      behaviour: { iterations: 20, iterationMs: 100 },
    });
    await createInstance(kc, namespace, obj);

    const done = await waitForStatus(
      kc,
      { namespace, name: 'spleen', what: 'phase Completed', timeoutMs: 60_000 },
      (o) =>
        o.status?.phase === 'Completed' && o.status.metrics?.val_mean_dice?.latest !== undefined,
    );
    const dice = done.status!.metrics!.val_mean_dice!.latest!;

    const promql = `clara_instance_val_mean_dice{namespace="${namespace}",name="spleen"}`;
    const samples = await waitFor(
      async () => {
        const result = await query(promql);
        return result[0]?.value === dice ? result : undefined;
      },
      { what: `${promql} == ${dice} in Prometheus`, timeoutMs: 15_000, intervalMs: 500 },
    );
    expect(samples).toEqual([
      {
        metric: expect.objectContaining({
          __name__: 'clara_instance_val_mean_dice',
          name: 'spleen',
        }),
        value: dice,
      },
    ]);
    expect(dice).toBeGreaterThan(0.5);

    // The phase and the controller's and ClearML's health went through Prometheus too.
    // The dice may reach its final value one scrape before the phase does: wait for the phase.
    const phasePromql = `clara_instance_phase{namespace="${namespace}",name="spleen"} == 1`;
    const phase = await waitFor(
      async () => {
        const result = await query(phasePromql);
        return result[0]?.metric.phase === 'Completed' ? result : undefined;
      },
      { what: `${phasePromql} to say Completed in Prometheus`, timeoutMs: 15_000, intervalMs: 500 },
    );
    expect(phase.map((s) => s.metric.phase)).toEqual(['Completed']);
    const reconciles = await query('sum(controller_runtime_reconcile_total{result="success"})');
    expect(reconciles[0]?.value).toBeGreaterThan(0);
    const calls = await query('sum(clara_clearml_requests_total{endpoint="tasks.create"})');
    expect(calls[0]?.value).toBeGreaterThanOrEqual(1);
  });

  test('what a real run exports passes promtool check metrics', async () => {
    const text = await (await fetch(metricsUrl)).text();
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(check.error).toBeUndefined();
    expect({ status: check.status, output: check.stdout + check.stderr }).toEqual({
      status: 0,
      output: '',
    });
  });

  test('deleting the instance removes its series from /metrics', async () => {
    expect(await (await fetch(metricsUrl)).text()).toContain(`name="spleen"`);

    await kc.makeApiClient(k8s.CustomObjectsApi).deleteNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: PLURAL,
      name: 'spleen',
    });
    await waitFor(async () => ((await readInstance(kc, namespace, 'spleen')) ? undefined : true), {
      what: 'spleen deleted',
      timeoutMs: 30_000,
    });

    const text = await waitFor(
      async () => {
        const body = await (await fetch(metricsUrl)).text();
        return body.includes(`namespace="${namespace}"`) ? undefined : body;
      },
      { what: 'no series of the deleted instance in /metrics', timeoutMs: 10_000, intervalMs: 200 },
    );
    expect(text).toContain('controller_runtime_reconcile_total');
    expect(text).not.toMatch(/^clara_instance_\w+\{[^}]*name="spleen"/m);
  });
});
