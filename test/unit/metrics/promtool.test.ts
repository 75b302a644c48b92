// Runs Prometheus' own linter over what /metrics serves (promtool comes with the Debian
// `prometheus` package; CI installs it).
import { spawnSync } from 'node:child_process';

import { expect, test } from '@jest/globals';

import { createOperatorMetrics } from '../../../src/metrics/index.ts';
import { cachedInstance } from './instances.ts';

/** Pipes `text` into `promtool check metrics` and returns its exit status and output. */
function promtoolCheck(text: string): { status: number | null; output: string } {
  const run = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (run.error)
    throw new Error('cannot run promtool (apt-get install prometheus)', { cause: run.error });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

test('promtool check metrics accepts every metric with samples of all kinds', async () => {
  const m = createOperatorMetrics();
  m.collectInstances(() => [
    cachedInstance('team-a', 'spleen'),
    cachedInstance('team-b', 'liver', {}),
  ]);
  m.onReconcile('success', 120);
  m.onReconcile('error', 30);
  m.queueMetrics.onAdd?.('team-a/spleen');
  m.queueMetrics.onQueueDuration?.('team-a/spleen', 3);
  m.onClearmlRequest({ endpoint: 'tasks.get_all', code: '200', durationMs: 12 });
  m.setLeader(true);

  const text = await m.metricsText();

  expect(text).toContain('clara_instance_val_mean_dice{namespace="team-a",name="spleen"} 0.91');
  expect(promtoolCheck(text)).toEqual({ status: 0, output: '' });
});

test('promtool check metrics rejects a counter without _total (the check can fail)', () => {
  const bad = '# HELP clara_things Things.\n# TYPE clara_things counter\nclara_things 1\n';
  const result = promtoolCheck(bad);
  expect(result.status).not.toBe(0);
  expect(result.output).toContain('_total');
});
