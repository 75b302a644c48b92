/**
 * Fault injection for reliability tests: per endpoint (or `*` for all), answer with an error
 * envelope, add latency, or drop the connection without an answer, a limited number of times
 * or until cleared.
 */

/** What to do to matching calls. */
export interface Fault {
  /** HTTP status / result_code to answer with (e.g. 503, 500). */
  status?: number;
  /** result_subcode of the injected error (default 0). */
  subcode?: number;
  /** result_msg of the injected error. */
  message?: string;
  /** Delay before handling (or before the injected error). */
  latencyMs?: number;
  /** Destroy the socket without any answer. */
  drop?: boolean;
  /**
   * Apply `latencyMs` and `drop` after the call was handled instead of before: the server did
   * the work but the client hears late or never (a crash or lost answer after tasks.create).
   */
  afterHandling?: boolean;
  /** Apply to this many calls, then disappear (default: until cleared). */
  times?: number;
}

/** The fault table; `take` is called once per API call. */
export class FaultInjector {
  readonly #faults = new Map<string, Fault>();

  /** Installs (replaces) the fault for `endpoint` (`service.action` or `*`). */
  set(endpoint: string, fault: Fault): void {
    this.#faults.set(endpoint, { ...fault });
  }

  /** Removes one fault, or all when no endpoint is given. */
  clear(endpoint?: string): void {
    if (endpoint === undefined) this.#faults.clear();
    else this.#faults.delete(endpoint);
  }

  /** The fault applying to this call, counting it down. */
  take(endpoint: string): Fault | undefined {
    const key = this.#faults.has(endpoint) ? endpoint : this.#faults.has('*') ? '*' : undefined;
    if (key === undefined) return undefined;
    const fault = this.#faults.get(key)!;
    if (fault.times !== undefined) {
      fault.times--;
      if (fault.times <= 0) this.#faults.delete(key);
    }
    return fault;
  }
}
