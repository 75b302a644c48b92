/**
 * A manual clock for unit tests of src/k8s: time moves only through `advance`, which fires due
 * timers in order and lets the promise chains they start settle before firing the next one.
 */
import type { Clock, TimerHandle } from '../../../src/k8s/clock.ts';

interface FakeTimer {
  id: number;
  dueAtMs: number;
  fn: () => void;
}

/** Lets pending promise callbacks (and the ones they schedule) run. */
export async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
}

export class FakeClock implements Clock {
  #nowMs: number;
  #nextId = 1;
  #timers: FakeTimer[] = [];

  constructor(startMs = Date.UTC(2026, 0, 1)) {
    this.#nowMs = startMs;
  }

  now(): number {
    return this.#nowMs;
  }

  setTimeout(fn: () => void, delayMs: number): TimerHandle {
    const timer = { id: this.#nextId++, dueAtMs: this.#nowMs + Math.max(0, delayMs), fn };
    this.#timers.push(timer);
    return timer.id;
  }

  clearTimeout(handle: TimerHandle): void {
    this.#timers = this.#timers.filter((t) => t.id !== handle);
  }

  /** Delays of the timers pending now, from now, in the order they are due. */
  pendingDelaysMs(): number[] {
    return this.#timers.map((t) => t.dueAtMs - this.#nowMs).sort((a, b) => a - b);
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way. */
  async advance(ms: number): Promise<void> {
    const targetMs = this.#nowMs + ms;
    await settle();
    for (;;) {
      const next = [...this.#timers]
        .sort((a, b) => a.dueAtMs - b.dueAtMs || a.id - b.id)
        .find((t) => t.dueAtMs <= targetMs);
      if (next === undefined) break;
      this.#timers = this.#timers.filter((t) => t !== next);
      this.#nowMs = Math.max(this.#nowMs, next.dueAtMs);
      next.fn();
      await settle();
    }
    this.#nowMs = targetMs;
    await settle();
  }
}

/** A promise with its resolve and reject exposed, for handlers a test finishes by hand. */
export function deferred<T = void>(): {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (err: unknown) => void;
} {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
