import { describe, expect, test } from '@jest/globals';

import {
  TerminalError,
  WorkQueue,
  type HandlerFailure,
  type KeyHandler,
  type WorkQueueOptions,
} from '../../../src/k8s/work-queue.ts';
import { deferred, FakeClock, settle } from './fake-clock.ts';

/** A queue on a fake clock whose handler records every call and can be held open per key. */
function harness(opts: WorkQueueOptions & { workers?: number } = {}) {
  const clock = new FakeClock();
  const queue = new WorkQueue({ clock, ...opts });
  const calls: string[] = [];
  const failures: HandlerFailure[] = [];
  const gates = new Map<string, ReturnType<typeof deferred<void>>>();
  let behaviour: KeyHandler = async (key) => {
    await gates.get(key)?.promise;
  };
  const handler: KeyHandler = (key, ctx) => {
    calls.push(key);
    return behaviour(key, ctx);
  };
  const running = queue.run({
    handler,
    workers: opts.workers ?? 2,
    onError: (f) => failures.push(f),
  });
  return {
    clock,
    queue,
    calls,
    failures,
    running,
    hold: (key: string) => {
      const gate = deferred();
      gates.set(key, gate);
      return () => {
        gates.delete(key);
        gate.resolve();
      };
    },
    behave: (fn: KeyHandler) => {
      behaviour = fn;
    },
  };
}

describe('de-duplication', () => {
  test('processes a key added several times while waiting only once', async () => {
    const h = harness({ workers: 1 });
    const release = h.hold('a');
    h.queue.add('a');
    await settle();
    h.queue.add('b');
    h.queue.add('b');
    h.queue.add('b');
    release();
    await settle();
    expect(h.calls).toEqual(['a', 'b']);
    expect(h.queue.stats().addsTotal).toBe(2);
  });

  test('runs a key added while it is being processed once more, afterwards', async () => {
    const h = harness({ workers: 4 });
    const release = h.hold('a');
    h.queue.add('a');
    await settle();
    h.queue.add('a');
    h.queue.add('a');
    await settle();
    expect(h.calls).toEqual(['a']);
    release();
    await settle();
    expect(h.calls).toEqual(['a', 'a']);
  });

  test('never gives one key to two workers at once', async () => {
    const h = harness({ workers: 4 });
    const gates: ReturnType<typeof deferred<void>>[] = [];
    let concurrent = 0;
    let maxConcurrent = 0;
    h.behave(async () => {
      concurrent++;
      maxConcurrent = Math.max(maxConcurrent, concurrent);
      const gate = deferred();
      gates.push(gate);
      await gate.promise;
      concurrent--;
    });
    h.queue.add('same');
    await settle();
    for (let round = 0; round < 3; round++) {
      h.queue.add('same');
      await settle();
      gates[round]!.resolve();
      await settle();
    }
    gates[3]!.resolve();
    await settle();
    expect(maxConcurrent).toBe(1);
    expect(h.calls).toEqual(['same', 'same', 'same', 'same']);
  });

  test('processes different keys in parallel up to the number of workers', async () => {
    const h = harness({ workers: 3 });
    for (const key of ['a', 'b', 'c', 'd']) h.hold(key);
    for (const key of ['a', 'b', 'c', 'd']) h.queue.add(key);
    await settle();
    expect(h.calls).toEqual(['a', 'b', 'c']);
    expect(h.queue.stats()).toMatchObject({ depth: 1, activeWorkers: 3 });
  });
});

describe('delays', () => {
  test('addAfter adds the key when the delay has passed, not before', async () => {
    const h = harness();
    h.queue.addAfter('a', 1_000);
    await h.clock.advance(999);
    expect(h.calls).toEqual([]);
    await h.clock.advance(1);
    expect(h.calls).toEqual(['a']);
  });

  test('collapses delayed adds of one key into the earliest', async () => {
    const h = harness();
    h.queue.addAfter('a', 5_000);
    h.queue.addAfter('a', 2_000);
    h.queue.addAfter('a', 9_000);
    expect(h.clock.pendingDelaysMs()).toEqual([2_000]);
    await h.clock.advance(10_000);
    expect(h.calls).toEqual(['a']);
  });

  test('honours requeueAfterMs returned by the handler and forgets the backoff', async () => {
    const h = harness();
    h.queue.addRateLimited('a');
    h.behave(async () => ({ requeueAfterMs: 15_000 }));
    await h.clock.advance(5);
    expect(h.calls).toEqual(['a']);
    expect(h.queue.numRequeues('a')).toBe(0);
    await h.clock.advance(14_999);
    expect(h.calls).toEqual(['a']);
    await h.clock.advance(1);
    expect(h.calls).toEqual(['a', 'a']);
  });
});

describe('backoff', () => {
  test('doubles the per-key delay on every failure up to the maximum', () => {
    const queue = new WorkQueue({ clock: new FakeClock(), baseBackoffMs: 5, maxBackoffMs: 100 });
    const delays = Array.from({ length: 7 }, () => queue.addRateLimited('a'));
    expect(delays).toEqual([5, 10, 20, 40, 80, 100, 100]);
    expect(queue.addRateLimited('b')).toBe(5);
    expect(queue.stats().retriesTotal).toBe(8);
  });

  test('starts again from the base delay after forget', () => {
    const queue = new WorkQueue({ clock: new FakeClock() });
    queue.addRateLimited('a');
    queue.addRateLimited('a');
    queue.forget('a');
    expect(queue.addRateLimited('a')).toBe(5);
  });

  test('retries a failing handler with growing delays and reports each failure', async () => {
    const h = harness({ baseBackoffMs: 100 });
    h.behave(async () => {
      throw new Error('apiserver said no');
    });
    h.queue.add('a');
    await h.clock.advance(0);
    await h.clock.advance(100);
    await h.clock.advance(200);
    expect(h.calls).toEqual(['a', 'a', 'a']);
    expect(h.failures.map((f) => [f.failures, f.retryInMs, f.terminal])).toEqual([
      [1, 100, false],
      [2, 200, false],
      [3, 400, false],
    ]);
  });

  test('forgets a key whose handler throws a TerminalError and does not retry it', async () => {
    const h = harness();
    h.behave(async () => {
      throw new TerminalError('spec cannot work');
    });
    h.queue.add('a');
    await h.clock.advance(60_000);
    expect(h.calls).toEqual(['a']);
    expect(h.failures).toMatchObject([{ key: 'a', terminal: true, retryInMs: undefined }]);
    expect(h.queue.numRequeues('a')).toBe(0);
  });
});

describe('metrics', () => {
  test('reports adds, depth, queue and work durations through the callbacks', async () => {
    const seen: string[] = [];
    const h = harness({
      workers: 1,
      metrics: {
        onAdd: (key) => seen.push(`add ${key}`),
        onDepth: (depth) => seen.push(`depth ${depth}`),
        onQueueDuration: (key, ms) => seen.push(`queued ${key} ${ms}`),
        onWorkDuration: (key, ms) => seen.push(`worked ${key} ${ms}`),
      },
    });
    const release = h.hold('a');
    h.queue.add('a');
    await settle();
    await h.clock.advance(250);
    release();
    await settle();
    expect(seen).toEqual(['add a', 'depth 1', 'depth 0', 'queued a 0', 'worked a 250']);
  });

  test('reports the longest running and the summed unfinished work', async () => {
    const h = harness({ workers: 2 });
    h.hold('a');
    h.hold('b');
    h.queue.add('a');
    await h.clock.advance(300);
    h.queue.add('b');
    await h.clock.advance(100);
    expect(h.queue.stats()).toMatchObject({
      longestRunningProcessorMs: 400,
      unfinishedWorkMs: 500,
      activeWorkers: 2,
    });
  });
});

describe('shutdown', () => {
  test('refuses new keys, drops waiting ones and waits for running handlers', async () => {
    const h = harness({ workers: 1 });
    const release = h.hold('a');
    h.queue.add('a');
    await settle();
    h.queue.add('b');
    h.queue.addAfter('c', 1_000);

    const result = h.queue.shutDown({ timeoutMs: 5_000 });
    expect(h.queue.add('d')).toBe(false);
    await h.clock.advance(1_000);
    release();
    await expect(result).resolves.toEqual({
      drained: true,
      unfinishedKeys: [],
      droppedKeys: ['b', 'c'],
    });
    await h.running;
    expect(h.calls).toEqual(['a']);
  });

  test('gives up at the deadline, names the unfinished keys and aborts their signal', async () => {
    const h = harness({ workers: 1 });
    let signal: AbortSignal | undefined;
    h.behave((_key, ctx) => {
      signal = ctx.signal;
      return new Promise(() => undefined);
    });
    h.queue.add('stuck');
    await settle();
    const result = h.queue.shutDown({ timeoutMs: 2_000 });
    await h.clock.advance(1_999);
    expect(signal?.aborted).toBe(false);
    await h.clock.advance(1);
    await expect(result).resolves.toEqual({
      drained: false,
      unfinishedKeys: ['stuck'],
      droppedKeys: [],
    });
    expect(signal?.aborted).toBe(true);
  });

  test('does not requeue a key that fails during shutdown', async () => {
    const h = harness({ workers: 1 });
    const gate = deferred();
    h.behave(async () => {
      await gate.promise;
      throw new Error('late failure');
    });
    h.queue.add('a');
    await settle();
    const result = h.queue.shutDown();
    gate.resolve();
    await expect(result).resolves.toMatchObject({ drained: true });
    expect(h.failures).toMatchObject([{ key: 'a', retryInMs: undefined }]);
    expect(h.clock.pendingDelaysMs()).toEqual([]);
  });
});

test('run rejects a worker count that is not a positive integer', async () => {
  const queue = new WorkQueue({ clock: new FakeClock() });
  await expect(queue.run({ handler: async () => undefined, workers: 0 })).rejects.toThrow(
    RangeError,
  );
});
