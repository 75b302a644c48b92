/**
 * Checks shared by the `tasks.*` endpoints: required fields, name and project validation, the
 * server's "may this task still be changed" rules, and linking models to tasks.
 */
import { errors } from '../api-error.ts';
import type { Doc, EmulatorState } from '../state.ts';

/** The value if it is a string, else undefined. */
export function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** Throws 400/11 missing_required_fields naming every absent field. */
export function requireFields(data: Record<string, unknown>, ...names: string[]): void {
  const missing = names.filter((n) => data[n] === undefined || data[n] === null);
  if (missing.length > 0) throw errors.missingRequiredFields({ fields: missing });
}

/** Throws 400/800 for names under 3 characters (the model's `min_length=3`). */
export function checkName(name: unknown, field = 'name'): void {
  if (typeof name !== 'string' || name.length < 3) {
    throw errors.dataValidationError({}, `${field}: String value is too short`);
  }
}

/** Throws 400/401 invalid_project_id unless the project is empty or exists. */
export function checkProject(state: EmulatorState, project: unknown): void {
  if (project === undefined || project === null || project === '') return;
  if (typeof project !== 'string' || !state.projects.has(project)) {
    throw errors.invalidProjectId({ id: String(project) });
  }
}

/** Throws 400/110 unless the task's status is one of `allowed` or `force` is true. */
export function requireForce(task: Doc, force: unknown, allowed: string[]): void {
  if (force !== true && !allowed.includes(String(task.status))) {
    throw errors.invalidTaskStatus(
      { expected: allowed.join('|'), status: String(task.status) },
      'Invalid status for this operation',
    );
  }
}

/**
 * Server `get_task_for_update`: parameters and configuration change only on `created` tasks,
 * with `force` also on queued / in_progress ones; the `properties` section always.
 */
export function requireUpdatable(task: Doc, force: unknown, propertiesOnly = false): void {
  if (propertiesOnly) return;
  const allowed = force === true ? ['created', 'queued', 'in_progress'] : ['created'];
  if (!allowed.includes(String(task.status))) {
    throw errors.invalidTaskStatus({ expected: 'created', status: String(task.status) });
  }
}

/** True when every item targets the `properties` section (case-insensitive). */
export function isPropertiesOnly(items: unknown): boolean {
  return (
    Array.isArray(items) &&
    items.every((i) => String((i as { section?: unknown }).section).toLowerCase() === 'properties')
  );
}

/** Adds or replaces (by name) a model reference on a task. */
export function linkModel(
  state: EmulatorState,
  task: Doc,
  ref: { type: string; name: string; model: string },
): void {
  const models = task.models as Record<string, { name: string; model: string; updated: string }[]>;
  const list = (models[ref.type] ??= []);
  const entry = { name: ref.name, model: ref.model, updated: state.isoNow() };
  const index = list.findIndex((m) => m.name === ref.name);
  if (index >= 0) list[index] = entry;
  else list.push(entry);
  task.last_update = state.isoNow();
}
