// deploy/argocd as a kustomize Component: merged into an Argo CD install's argocd-cm, it adds
// health.lua under the key Argo CD looks up, and leaves the rest of argocd-cm alone.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

import { afterAll, beforeAll, expect, test } from '@jest/globals';

import { REPO_ROOT } from '../../harness/go-build.ts';
import { kustomize } from '../../harness/helm.ts';
import type { Manifest } from '../../harness/helm.ts';

const BUILD_TIMEOUT_MS = 20 * 60_000;
const KEY = 'resource.customizations.health.clara-operator.io_ClaraInstance';

let dir: string;
let rendered: Manifest[];

beforeAll(async () => {
  // A stand-in for the kustomization that installs Argo CD; kustomize takes components by
  // relative path only.
  dir = mkdtempSync(join(tmpdir(), 'clara-argocd-kustomize-'));
  const component = relative(dir, join(REPO_ROOT, 'deploy/argocd'));
  writeFileSync(
    join(dir, 'argocd-cm.yaml'),
    'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\ndata:\n  url: https://argocd.example.com\n',
  );
  writeFileSync(
    join(dir, 'kustomization.yaml'),
    `namespace: argocd\nresources:\n  - argocd-cm.yaml\ncomponents:\n  - ${component}\n`,
  );
  rendered = await kustomize(dir);
}, BUILD_TIMEOUT_MS);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the component adds health.lua to argocd-cm, keeping its name and its other keys', () => {
  expect(rendered).toEqual([
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'argocd-cm', namespace: 'argocd' },
      data: {
        url: 'https://argocd.example.com',
        [KEY]: readFileSync(join(REPO_ROOT, 'deploy/argocd/health.lua'), 'utf8'),
      },
    },
  ]);
});
