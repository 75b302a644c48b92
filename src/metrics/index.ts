/**
 * Public surface of the metrics layer; only `src/main.ts` and tests import it.
 */
export * from './clearml-metrics.ts';
export * from './controller-metrics.ts';
export * from './instance-metrics.ts';
export * from './operator-metrics.ts';
