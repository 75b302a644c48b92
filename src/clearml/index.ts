/**
 * Public surface of the ClearML client layer: the typed client, its transport options, the
 * error classes and the object types. Other layers import from here only.
 */
export * from './clearml-client.ts';
export * from './errors.ts';
export * from './retry-policy.ts';
export * from './transport.ts';
export type * from './types.ts';
