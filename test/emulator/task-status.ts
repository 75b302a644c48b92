/**
 * Task status rules of the real server (`bll/task/utils.py` state machine; reference §3.1):
 * which status may follow which without `force`, and the common "change status" step every
 * lifecycle call shares.
 */
import { errors } from './api-error.ts';
import type { Doc, EmulatorState } from './state.ts';

const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  created: ['queued', 'in_progress'],
  queued: ['created', 'in_progress', 'stopped'],
  in_progress: ['stopped', 'failed', 'created', 'completed'],
  stopped: [
    'closed',
    'created',
    'failed',
    'queued',
    'in_progress',
    'published',
    'publishing',
    'completed',
  ],
  failed: ['created', 'stopped', 'published', 'queued'],
  completed: ['published', 'in_progress', 'created'],
  publishing: ['published'],
  published: [],
  closed: [],
  unknown: [],
};

/** True when `from → to` is allowed without force (same status is always allowed). */
export function isTransitionAllowed(from: string, to: string): boolean {
  return from === to || (ALLOWED[from] ?? []).includes(to);
}

/**
 * Moves a task to `status`, checking the rule unless `force`, and stamps `status_changed`,
 * `last_update`, reason and message. Returns the `fields` map the server echoes. Throws 400/110.
 */
export function changeStatus(
  state: EmulatorState,
  task: Doc,
  opts: {
    status: string;
    force?: unknown;
    reason?: unknown;
    message?: unknown;
    extra?: Record<string, unknown>;
  },
): Record<string, unknown> {
  const from = String(task.status);
  if (opts.force !== true && !isTransitionAllowed(from, opts.status)) {
    throw errors.invalidTaskStatus(
      { current_status: from, new_status: opts.status },
      `Invalid status change`,
    );
  }
  const now = state.isoNow();
  const fields: Record<string, unknown> = {
    status: opts.status,
    status_changed: now,
    last_update: now,
    last_change: now,
    status_reason: typeof opts.reason === 'string' ? opts.reason : '',
    status_message: typeof opts.message === 'string' ? opts.message : '',
    ...opts.extra,
  };
  for (const [key, value] of Object.entries(fields)) {
    const parts = key.split('.');
    if (parts.length === 1) task[key] = value;
    else (task[parts[0]!] as Record<string, unknown>)[parts[1]!] = value;
  }
  return fields;
}
