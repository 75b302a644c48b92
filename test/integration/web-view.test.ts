/**
 * The web view in a real browser: the operator runs the spleen example to Completed against the
 * test control plane and the ClearML emulator, the web app serves the controller's cache on
 * 127.0.0.1 behind a token, and headless Chromium (Debian's, driven by playwright-core) finds
 * the instance in the list, the uPlot plots drawn with points, the models table and the log tail.
 * A screenshot of the instance page goes to test-output/web-view.png.
 */
import { mkdirSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';

import {
  createTestNamespace,
  deleteTestNamespace,
  testKubeConfig,
} from '../harness/cluster-env.ts';
import { installCrd } from '../harness/crd.ts';
import { REPO_ROOT } from '../harness/go-build.ts';
import {
  createCredentialsSecret,
  createDataset,
  createInstance,
  exampleInstance,
  startOperator,
  waitForStatus,
} from '../harness/operator-env.ts';
import type { OperatorEnv } from '../harness/operator-env.ts';
import { METRIC_NAMES } from '../../src/api/clarainstance-status.ts';
import { createWebApp } from '../../src/web/index.ts';

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOT = join(REPO_ROOT, 'test-output', 'web-view.png');
const TOKEN = 'web-view-test-token';
const ITERATIONS = 12;
/** Bound of every browser wait; the page refreshes every 5 s, so this allows a few refreshes. */
const BROWSER_WAIT_MS = 20_000;

const kc = testKubeConfig();
let namespace: string;
let env: OperatorEnv;
let server: Server;
let baseUrl: string;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  await installCrd(kc);
  namespace = await createTestNamespace(kc, 'web-view');
  env = await startOperator({ kc, namespaces: [namespace] });
  await createCredentialsSecret(kc, {
    namespace,
    name: 'clearml-credentials',
    emulator: env.emulator,
  });
  const obj = exampleInstance('spleen-ct-segmentation.yaml');
  obj.metadata = { name: 'spleen' };
  const spec = obj.spec as Record<string, unknown>;
  spec.datasetTask = createDataset(env.emulator);
  spec.queue = 'q-web-view';
  env.emulator.startWorker({
    queues: ['q-web-view'],
    behaviour: { iterations: ITERATIONS, iterationMs: 50 },
  });
  await createInstance(kc, namespace, obj);
  await waitForStatus(
    kc,
    { namespace, name: 'spleen', what: 'Completed with models', timeoutMs: 60_000 },
    (o) => o.status?.phase === 'Completed' && (o.status.models?.length ?? 0) > 0,
  );
  // The web view reads the controller's cache, which may trail the apiserver by a watch event.
  await waitForCached();

  const app = createWebApp({
    instances: () => env.controller.instances(),
    clientFor: (o) => env.controller.clientFor(o),
    token: TOKEN,
  });
  server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    timeout: 30_000,
  });
  page = await browser.newPage({ viewport: { width: 1100, height: 1400 } });
  page.setDefaultTimeout(BROWSER_WAIT_MS);
});

afterAll(async () => {
  await browser?.close();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  await env?.stop();
  if (namespace) await deleteTestNamespace(kc, namespace);
});

async function waitForCached(): Promise<void> {
  const deadline = Date.now() + 10_000;
  const cached = () =>
    env.controller
      .instances()
      .find((o) => o.metadata.namespace === namespace && o.metadata.name === 'spleen');
  while (cached()?.status?.phase !== 'Completed' || !cached()?.status?.models) {
    if (Date.now() > deadline) throw new Error('the controller cache never saw spleen Completed');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test('the list shows the instance with its phase and dice', async () => {
  const response = await page.goto(`${baseUrl}/?token=${TOKEN}`);
  expect(response?.status()).toBe(200);
  const row = page.locator(`tr[data-instance="${namespace}/spleen"]`);
  await expect(row.locator('td.phase').textContent()).resolves.toBe('Completed');
  const dice = Number(await row.locator('td.num').textContent());
  expect(dice).toBeGreaterThan(0.5);
});

test('the instance page draws the four scalars with uPlot, with one point per iteration', async () => {
  await page.locator(`tr[data-instance="${namespace}/spleen"] a`).first().click();
  await page.waitForURL(`**/instances/${namespace}/spleen?token=${TOKEN}`);
  await page.waitForFunction(
    (metrics) => {
      const plots = (globalThis as unknown as { claraView?: { plots: Record<string, unknown> } })
        .claraView?.plots;
      return plots !== undefined && metrics.every((m) => m in plots);
    },
    [...METRIC_NAMES],
  );
  const points = await page.evaluate(() => {
    const view = (
      globalThis as unknown as { claraView: { plots: Record<string, { data: number[][] }> } }
    ).claraView;
    return Object.fromEntries(
      Object.entries(view.plots).map(([metric, plot]) => [metric, plot.data[1]?.length ?? 0]),
    );
  });
  expect(points).toEqual(Object.fromEntries(METRIC_NAMES.map((m) => [m, ITERATIONS])));
  await expect(page.locator('#plots .uplot canvas').count()).resolves.toBe(METRIC_NAMES.length);
  const title = await page.locator('#plots .uplot .u-title').allTextContents();
  expect(title.sort()).toEqual([...METRIC_NAMES].sort());
});

test('the instance page shows the models table, the conditions and the log tail', async () => {
  const models = page.locator('#models tbody tr');
  await models.first().waitFor();
  const first = await models.first().locator('td').allTextContents();
  expect(first[0]).not.toBe('');
  expect(first[1]).toMatch(/^\w+:\/\//);
  await expect(page.locator('#phase').textContent()).resolves.toBe('Completed');
  const ready = page.locator('#conditions tbody tr', { hasText: 'Ready' });
  await expect(ready.locator('td').nth(1).textContent()).resolves.toBe('True');
  await page.locator('#log', { hasText: 'Training finished' }).waitFor();
  await expect(page.locator('#errors').textContent()).resolves.toBe('');

  mkdirSync(join(REPO_ROOT, 'test-output'), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
});
