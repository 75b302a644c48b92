/**
 * Backoff schedule for retriable ClearML failures: exponential with "equal" jitter, capped.
 *
 * Kept apart from the transport so the schedule can be tested as a pure function and so the
 * randomness is injectable (STYLE.md rule 23).
 */

/** How often and how slowly the client retries a retriable failure. */
export interface RetryPolicy {
  /** Total attempts including the first; 1 disables retries. */
  maxAttempts: number;
  /** Upper bound of the first delay. */
  baseDelayMs: number;
  /** No delay exceeds this. */
  maxDelayMs: number;
}

/** Defaults: five attempts, delays drawn from [0.25, 0.5] s, [0.5, 1] s, [1, 2] s, [2, 4] s. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxAttempts: 5,
  baseDelayMs: 500,
  maxDelayMs: 30_000,
};

/**
 * Delay before retry number `retry` (1 for the first retry): with `ceiling =
 * min(maxDelayMs, baseDelayMs * 2^(retry-1))`, a uniform draw from `[ceiling/2, ceiling)` using
 * `random` in [0, 1). Half of the delay is fixed so the schedule keeps growing; the other half
 * spreads replicas that failed together. Pure.
 */
export function computeBackoffMs(opts: {
  policy: RetryPolicy;
  retry: number;
  random: () => number;
}): number {
  const ceilingMs = Math.min(
    opts.policy.maxDelayMs,
    opts.policy.baseDelayMs * 2 ** Math.max(0, opts.retry - 1),
  );
  return Math.floor(ceilingMs / 2 + (ceilingMs / 2) * opts.random());
}
