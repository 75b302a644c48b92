/**
 * Public surface of the generic controller machinery: reflectors and their store, the work
 * queue, leader election, status writing, conditions, events, and the clock and logger seams.
 * Nothing here knows any custom resource; other layers import from this file only.
 */
export * from './api-client.ts';
export * from './api-source.ts';
export * from './clock.ts';
export * from './conditions.ts';
export * from './errors.ts';
export * from './event-recorder.ts';
export * from './leader-election.ts';
export * from './lease-lock.ts';
export * from './logger.ts';
export * from './object-store.ts';
export * from './reflector-group.ts';
export * from './reflector.ts';
export * from './status-writer.ts';
export * from './work-queue.ts';
