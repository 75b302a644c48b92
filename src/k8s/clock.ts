/**
 * Time as the controller machinery sees it: a clock with timers, injected everywhere a module
 * waits, measures an age or schedules a retry (STYLE.md rule 23).
 *
 * Production code uses {@link systemClock}; unit tests pass a fake whose time only moves when
 * the test says so, so backoff schedules and lease expiry can be asserted without real sleeps.
 * This module knows nothing of Kubernetes.
 */

/** Opaque handle of a timer started by {@link Clock.setTimeout}. */
export type TimerHandle = unknown;

/** Wall-clock time and one-shot timers. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls `fn` once after `delayMs` (0 or less: on the next turn of the event loop). */
  setTimeout(fn: () => void, delayMs: number): TimerHandle;
  /** Cancels a timer; a no-op for a timer that already fired or was cancelled. */
  clearTimeout(handle: TimerHandle): void;
}

/**
 * The process clock. Its timers are unref'd: a pending retry or watchdog never keeps the process
 * alive on its own, so shutdown is decided by the caller, not by a forgotten timer.
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, delayMs) => setTimeout(fn, Math.max(0, delayMs)).unref(),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/**
 * Resolves after `delayMs` on `clock`, or as soon as `signal` aborts (never rejects). Returns
 * true when the full delay elapsed, false when it was cut short by the signal.
 */
export function sleep(clock: Clock, delayMs: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      clock.clearTimeout(timer);
      resolve(false);
    };
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, delayMs);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Exponential backoff with jitter: `min(maxMs, baseMs * 2^attempt)` for `attempt` 0, 1, 2, …,
 * then multiplied by a factor drawn from `[1 - jitter, 1]` so replicas that failed together do
 * not retry together. `jitter` 0 gives the bare schedule. Pure.
 */
export function backoffDelayMs(opts: {
  attempt: number;
  baseMs: number;
  maxMs: number;
  jitter: number;
  random: () => number;
}): number {
  // NB: 2 ** 1100 is Infinity, and Math.min keeps the cap; no overflow guard is needed.
  const ceilingMs = Math.min(opts.maxMs, opts.baseMs * 2 ** Math.max(0, opts.attempt));
  return Math.round(ceilingMs * (1 - opts.jitter * opts.random()));
}
