// Helm and kustomize read files only under their own directories, so the chart and the base
// carry copies of the CRD and the Grafana dashboard; these must stay byte-identical to the
// sources of truth.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, test } from '@jest/globals';

import { REPO_ROOT } from '../../harness/go-build.ts';

const read = (path: string) => readFileSync(join(REPO_ROOT, path), 'utf8');

describe('copies of the sources of truth', () => {
  test.each([
    {
      source: 'crds/clarainstances.clara-operator.io.yaml',
      copy: 'charts/clara-operator/crds/clarainstances.clara-operator.io.yaml',
    },
    {
      source: 'crds/clarainstances.clara-operator.io.yaml',
      copy: 'deploy/base/clarainstances.clara-operator.io.yaml',
    },
    {
      source: 'deploy/grafana/clara-operator-dashboard.json',
      copy: 'charts/clara-operator/files/clara-operator-dashboard.json',
    },
  ])('$copy is identical to $source (cp the source over it after a change)', ({ source, copy }) => {
    expect(read(copy)).toBe(read(source));
  });

  test('the chart, its image tag and package.json carry one version', () => {
    const pkg = JSON.parse(read('package.json')) as { version: string };
    const chart = read('charts/clara-operator/Chart.yaml');
    expect(chart).toMatch(new RegExp(`^version: ${pkg.version}$`, 'm'));
    expect(chart).toMatch(new RegExp(`^appVersion: '${pkg.version}'$`, 'm'));
    expect(read('deploy/base/kustomization.yaml')).toContain(`newTag: ${pkg.version}`);
  });
});
