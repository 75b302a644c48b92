// The Grafana dashboard may only query metrics the operator exports: every PromQL expression in
// it must parse (promtool checks it as a recording rule) and name only exported series.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, test } from '@jest/globals';

import { createOperatorMetrics } from '../../../src/metrics/index.ts';
import { REPO_ROOT } from '../../harness/go-build.ts';
import { cachedInstance } from './instances.ts';

const DASHBOARD = join(REPO_ROOT, 'deploy/grafana/clara-operator-dashboard.json');

/** Grafana's variables, replaced by values that keep the expression valid PromQL. */
const VARIABLES: Record<string, string> = {
  __rate_interval: '5m',
  __interval: '1m',
  namespace: '.*',
  instance: '.*',
};

const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'le']);

/** Metric names an expression selects: identifiers outside label matchers, not functions. */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\[[^\]]*\]/g, '')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '');
  const names: string[] = [];
  for (const match of bare.matchAll(/(?<![\w.])[A-Za-z_:][\w:]*/g)) {
    const next = bare.slice(match.index + match[0].length).trimStart();
    if (next.startsWith('(') || KEYWORDS.has(match[0])) continue;
    names.push(match[0]);
  }
  return names;
}

/** Every PromQL expression of the dashboard: panel targets and query variables. */
function dashboardExpressions(): { where: string; expr: string }[] {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
    panels: { title: string; targets?: { expr: string }[] }[];
    templating: { list: { name: string; type: string; query?: { query: string } }[] };
  };
  const found = dashboard.panels.flatMap((p) =>
    (p.targets ?? []).map((t) => ({ where: `panel "${p.title}"`, expr: t.expr })),
  );
  for (const v of dashboard.templating.list) {
    if (v.type !== 'query' || !v.query) continue;
    // label_values(<selector>, <label>) is Grafana's; its selector is PromQL.
    const selector = /^label_values\((.*),\s*\w+\)$/.exec(v.query.query)?.[1];
    found.push({ where: `variable ${v.name}`, expr: selector ?? v.query.query });
  }
  return found.map(({ where, expr }) => ({
    where,
    expr: expr.replace(/\$\{?(\w+)\}?/g, (whole, name: string) => VARIABLES[name] ?? whole),
  }));
}

/** Sample names the operator exports once every kind of metric has a sample. */
async function exportedSampleNames(): Promise<Set<string>> {
  const m = createOperatorMetrics({ processMetrics: false });
  m.collectInstances(() => [cachedInstance('ns', 'a')]);
  m.onClearmlRequest({ endpoint: 'tasks.get_all', code: '200', durationMs: 1 });
  m.collectController({
    queue: () => ({
      depth: 0,
      waiting: 0,
      activeWorkers: 0,
      addsTotal: 0,
      retriesTotal: 0,
      longestRunningProcessorMs: 0,
      unfinishedWorkMs: 0,
    }),
    reflectors: () => ({
      clarainstances: {
        '*': {
          hasSynced: true,
          lastEventAgeMs: 0,
          resourceVersion: '1',
          lists: 1,
          watches: 1,
          consecutiveFailures: 0,
        },
      },
    }),
  });
  const text = await m.metricsText();
  return new Set(
    text
      .split('\n')
      .filter((line) => line !== '' && !line.startsWith('#'))
      .map((line) => /^[\w:]+/.exec(line)![0]),
  );
}

describe('metricNames', () => {
  test.each([
    { expr: 'up', want: ['up'] },
    {
      expr: 'sum by (le, endpoint) (rate(x_bucket{a="{b}", c=~"d"}[5m])) / on(a) y offset 1h',
      want: ['x_bucket', 'y'],
    },
    { expr: 'histogram_quantile(0.99, z) > 1e-3 and bool w', want: ['z', 'w'] },
  ])('finds $want in $expr', ({ expr, want }) => {
    expect(metricNames(expr)).toEqual(want);
  });
});

describe('the Grafana dashboard', () => {
  const expressions = dashboardExpressions();

  test('has panels for the scalars, the phase and the controller health', () => {
    const names = new Set(expressions.flatMap((e) => metricNames(e.expr)));
    for (const name of [
      'clara_instance_val_mean_dice',
      'clara_instance_val_acc',
      'clara_instance_train_loss',
      'clara_instance_train_acc',
      'clara_instance_phase',
      'controller_runtime_reconcile_total',
      'workqueue_depth',
      'leader_election_master_status',
    ]) {
      expect(names).toContain(name);
    }
  });

  test('names only metrics the operator exports', async () => {
    const exported = await exportedSampleNames();
    const unknown = expressions.flatMap(({ where, expr }) =>
      metricNames(expr)
        .filter((name) => !exported.has(name))
        .map((name) => `${where}: ${name}`),
    );
    expect(unknown).toEqual([]);
  });

  test('every expression parses as PromQL (promtool check rules)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dashboard-rules-'));
    try {
      const rules = expressions.map((e, i) => ({ record: `dashboard:expr_${i}`, expr: e.expr }));
      const file = join(dir, 'rules.yml');
      // JSON is YAML, so the rule file needs no YAML writer.
      writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboard', rules }] }));
      const run = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
      if (run.error) throw new Error('cannot run promtool', { cause: run.error });
      expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: '' });
      expect(run.stdout).toContain(`SUCCESS: ${rules.length} rules found`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
