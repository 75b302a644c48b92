/**
 * A simulated clearml-agent inside the emulator: registers as a worker on named queues, pulls
 * tasks, reports the four training scalars (val_mean_dice, val_acc, train_loss, train_acc) per
 * iteration along plausible curves, writes console lines, uploads a model file and registers it,
 * and ends the task completed — or fails, hangs or runs slowly when told to.
 *
 * It speaks to the emulator through the same endpoint handlers HTTP clients reach, with the
 * reasons and messages the real agent uses (reference §3.1, §8.1). Per-task knobs come from the
 * hyperparameter section `Emulator` (`outcome`, `iterations`, `iteration_ms`, `fail_at`), so a
 * test can choose an outcome per task without touching the worker.
 */
import type { Doc, EmulatorState } from './state.ts';

/** How a simulated run ends. */
export type RunOutcome = 'complete' | 'fail' | 'hang';

/** What the worker does with a task. */
export interface WorkerBehaviour {
  outcome: RunOutcome;
  /** Iterations to report (default 10). */
  iterations: number;
  /** Pause between iterations (default 20 ms); raise it for a slow run. */
  iterationMs: number;
  /** With `fail`: the iteration at which the run fails (default half way). */
  failAt?: number;
  /**
   * How long the agent takes to act on a stop request (default 0). The real one notices it at
   * its next status poll, seconds later; until then the task stays in_progress, "stopping".
   */
  stopAckMs?: number;
}

/** Options of {@link SimulatedWorker}. */
export interface WorkerOptions {
  /** Queue names to serve (created if missing). */
  queues: string[];
  /** Worker id (default `emulator-worker:<n>`). */
  id?: string;
  /** Queue poll interval (default 25 ms). */
  pollMs?: number;
  /** Defaults for every task; the task's `Emulator` hyperparameters override them. */
  behaviour?: Partial<WorkerBehaviour>;
  dispatch: (endpoint: string, data: Record<string, unknown>) => Record<string, unknown>;
  state: EmulatorState;
  filesUrl: string;
}

const DEFAULT_BEHAVIOUR: WorkerBehaviour = { outcome: 'complete', iterations: 10, iterationMs: 20 };
let workerCount = 0;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Deterministic pseudo-random numbers in [0, 1) from a string seed (mulberry32). */
function seededRandom(seed: string): () => number {
  let a = [...seed].reduce((h, c) => (Math.imul(h, 31) + c.charCodeAt(0)) | 0, 7);
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Scalar values at iteration `i` of `n`: saturating curves with a little noise. */
export function scalarsAt(i: number, n: number, random: () => number): Record<string, number> {
  const progress = Math.exp(-(3 * i) / Math.max(1, n));
  const noise = () => (random() - 0.5) * 0.02;
  const clamp = (v: number) => Math.min(1, Math.max(0, v));
  return {
    val_mean_dice: clamp(0.86 - 0.76 * progress + noise()),
    val_acc: clamp(0.95 - 0.55 * progress + noise()),
    train_loss: Math.max(0.01, 0.08 + 1.1 * progress + noise()),
    train_acc: clamp(0.97 - 0.6 * progress + noise()),
  };
}

/** A running simulated agent; `stop()` ends its loop (a running task is left as it is). */
export class SimulatedWorker {
  readonly id: string;
  /** Ids of tasks this worker has run, in order. */
  readonly ran: string[] = [];
  /** Messages of calls that failed during a run (the run was abandoned). */
  readonly errors: string[] = [];
  readonly #opts: WorkerOptions;
  #running = false;
  #loop: Promise<void> | undefined;

  constructor(opts: WorkerOptions) {
    this.#opts = opts;
    this.id = opts.id ?? `emulator-worker:${++workerCount}`;
  }

  /** Registers and starts polling. */
  start(): void {
    const queueIds = this.#opts.queues.map((name) => this.#queueId(name));
    this.#call('workers.register', { worker: this.id, queues: queueIds, timeout: 600 });
    this.#running = true;
    this.#loop = this.#poll(queueIds);
  }

  /** Stops polling and unregisters; resolves when the loop has ended. */
  async stop(): Promise<void> {
    this.#running = false;
    await this.#loop;
    if (this.#opts.state.workers.has(this.id))
      this.#call('workers.unregister', { worker: this.id });
  }

  #call(endpoint: string, data: Record<string, unknown>): Record<string, unknown> {
    return this.#opts.dispatch(endpoint, data);
  }

  #queueId(name: string): string {
    const existing = [...this.#opts.state.queues.values()].find((q) => q.name === name);
    return existing ? existing.id : String(this.#call('queues.create', { name }).id);
  }

  async #poll(queueIds: string[]): Promise<void> {
    while (this.#running) {
      this.#call('workers.status_report', {
        worker: this.id,
        timestamp: this.#opts.state.now(),
        queues: queueIds,
      });
      let ranOne = false;
      for (const queue of queueIds) {
        const next = this.#call('queues.get_next_task', { queue });
        const entry = next.entry as { task: string } | undefined;
        if (!entry) continue;
        ranOne = true;
        try {
          await this.#run(entry.task, queue);
        } catch (err) {
          // A call refused mid-run (the task was deleted or forced elsewhere) ends that run
          // only; the worker keeps serving its queues, as a real agent would.
          this.errors.push(err instanceof Error ? err.message : String(err));
        }
        break;
      }
      if (!ranOne) await sleep(this.#opts.pollMs ?? 25);
    }
  }

  #behaviourFor(task: Doc): WorkerBehaviour {
    const params =
      (task.hyperparams as Record<string, Record<string, { value: string }>>).Emulator ?? {};
    const pick = (key: string) => params[key]?.value;
    const merged = { ...DEFAULT_BEHAVIOUR, ...this.#opts.behaviour };
    const outcome = pick('outcome');
    const iterations = Number(pick('iterations'));
    const iterationMs = Number(pick('iteration_ms'));
    const failAt = Number(pick('fail_at'));
    return {
      outcome:
        outcome === 'fail' || outcome === 'hang' || outcome === 'complete'
          ? outcome
          : merged.outcome,
      iterations: Number.isInteger(iterations) && iterations > 0 ? iterations : merged.iterations,
      iterationMs:
        Number.isFinite(iterationMs) && iterationMs >= 0 ? iterationMs : merged.iterationMs,
      ...(merged.stopAckMs === undefined ? {} : { stopAckMs: merged.stopAckMs }),
      ...(Number.isInteger(failAt)
        ? { failAt }
        : merged.failAt === undefined
          ? {}
          : { failAt: merged.failAt }),
    };
  }

  #log(taskId: string, msg: string, level = 'info'): void {
    this.#call('events.add_batch', {
      requests: [
        {
          type: 'log',
          task: taskId,
          timestamp: this.#opts.state.now(),
          level,
          worker: this.id,
          msg,
        },
      ],
    });
  }

  /** True when the task should end now: deleted, or asked to stop, or moved by someone else. */
  #abortRequested(taskId: string): 'gone' | 'stop' | undefined {
    const task = this.#opts.state.tasks.get(taskId);
    if (!task) return 'gone';
    if (task.status !== 'in_progress') return 'stop';
    return task.status_message === 'stopping' ? 'stop' : undefined;
  }

  async #run(taskId: string, queue: string): Promise<void> {
    const task = this.#opts.state.tasks.get(taskId);
    if (!task) return;
    this.ran.push(taskId);
    const behaviour = this.#behaviourFor(task);
    this.#call('tasks.started', {
      task: taskId,
      status_reason: 'pulled by agent',
      status_message: 'launch by agent',
    });
    this.#call('workers.status_report', {
      worker: this.id,
      timestamp: this.#opts.state.now(),
      task: taskId,
      queue,
    });
    this.#log(taskId, `Running task id [${taskId}]:`);
    const random = seededRandom(taskId);
    const failAt = behaviour.failAt ?? Math.ceil(behaviour.iterations / 2);

    for (let i = 1; i <= behaviour.iterations; i++) {
      if (!this.#running && behaviour.outcome !== 'hang') return;
      const abort = this.#abortRequested(taskId);
      if (abort === 'gone') return;
      if (abort === 'stop') {
        await this.#reportStopped(taskId, behaviour);
        return;
      }
      if (behaviour.outcome === 'fail' && i === failAt) {
        this.#log(
          taskId,
          'Traceback (most recent call last):\nRuntimeError: CUDA out of memory',
          'error',
        );
        this.#call('tasks.failed', {
          task: taskId,
          status_reason: 'worker execution exit code 1',
          force: true,
        });
        return;
      }
      if (behaviour.outcome === 'hang' && i === failAt) {
        await this.#hang(taskId, behaviour);
        return;
      }
      const values = scalarsAt(i, behaviour.iterations, random);
      const timestamp = this.#opts.state.now();
      this.#call('events.add_batch', {
        requests: Object.entries(values).map(([name, value]) => ({
          type: 'training_stats_scalar',
          task: taskId,
          timestamp,
          iter: i,
          metric: name,
          variant: name,
          value,
        })),
      });
      this.#log(
        taskId,
        `Epoch ${i}/${behaviour.iterations}: train_loss=${values.train_loss!.toFixed(4)} val_mean_dice=${values.val_mean_dice!.toFixed(4)}`,
      );
      this.#call('workers.status_report', { worker: this.id, timestamp, task: taskId, queue });
      await sleep(behaviour.iterationMs);
    }
    this.#registerModel(taskId, behaviour.iterations);
    this.#log(taskId, 'Training finished');
    this.#call('tasks.completed', {
      task: taskId,
      status_reason: 'worker execution done',
      force: true,
    });
  }

  /** Stops reporting but keeps the task in_progress until it is stopped or the worker stops. */
  async #hang(taskId: string, behaviour: WorkerBehaviour): Promise<void> {
    this.#log(taskId, 'waiting for data loader...');
    while (this.#running && this.#abortRequested(taskId) === undefined)
      await sleep(this.#opts.pollMs ?? 25);
    if (this.#abortRequested(taskId) === 'stop') await this.#reportStopped(taskId, behaviour);
  }

  /**
   * What the real agent does when it sees "stopping" (after `stopAckMs`): kill, log, report
   * `stopped` if the task is still in_progress then.
   */
  async #reportStopped(taskId: string, behaviour: WorkerBehaviour): Promise<void> {
    if (behaviour.stopAckMs) await sleep(behaviour.stopAckMs);
    this.#log(taskId, 'Process aborted by user', 'warning');
    if (this.#opts.state.tasks.get(taskId)?.status === 'in_progress') {
      this.#call('tasks.stopped', {
        task: taskId,
        status_reason: 'task was stopped by tasks.stop',
      });
    }
  }

  #registerModel(taskId: string, iteration: number): void {
    const task = this.#opts.state.tasks.get(taskId);
    if (!task) return;
    const project = task.project ? this.#opts.state.projects.get(String(task.project)) : undefined;
    const path = `${String(project?.name ?? 'default')}/${String(task.name)}.${taskId}/models/model.pt`;
    this.#opts.state.files.set(path, {
      data: Buffer.from(`simulated weights of ${taskId}`),
      contentType: 'application/octet-stream',
    });
    this.#call('models.update_for_task', {
      task: taskId,
      uri: `${this.#opts.filesUrl}/${path.split('/').map(encodeURIComponent).join('/')}`,
      name: `${String(task.name)} - model`,
      iteration,
    });
  }
}
