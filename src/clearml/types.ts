/**
 * Shapes of the ClearML objects the client reads and writes: tasks, queues, models, log events
 * and scalar series, with the enums the server defines.
 *
 * Field names are the server's (snake_case) so responses need no renaming; every field of a
 * read object is optional because `only_fields` projections return only what was asked for.
 * Sources: ../shared/reference/clearml-api.md §3–§7.
 */

/** Task types (`task_type_enum`). */
export type TaskType =
  | 'training'
  | 'testing'
  | 'inference'
  | 'data_processing'
  | 'application'
  | 'monitor'
  | 'controller'
  | 'optimizer'
  | 'service'
  | 'qc'
  | 'custom';

/** Task statuses (`task_status_enum`); the UI calls `stopped` "Aborted". */
export type TaskStatus =
  | 'created'
  | 'queued'
  | 'in_progress'
  | 'stopped'
  | 'published'
  | 'publishing'
  | 'closed'
  | 'failed'
  | 'completed'
  | 'unknown';

/** One hyperparameter; all values are strings on the server. */
export interface ParamItem {
  section: string;
  name: string;
  value: string;
  type?: string;
  description?: string;
}

/** One configuration object (e.g. a whole JSON file as text). */
export interface ConfigurationItem {
  name: string;
  value: string;
  type?: string;
  description?: string;
}

/** Summary of one scalar series inside `task.last_metrics`. */
export interface MetricSummary {
  metric?: string;
  variant?: string;
  value?: number;
  min_value?: number;
  min_value_iteration?: number;
  max_value?: number;
  max_value_iteration?: number;
  first_value?: number;
  first_value_iteration?: number;
  mean_value?: number;
  count?: number;
  x_axis_label?: string;
}

/** An artifact entry of `task.execution.artifacts`. */
export interface Artifact {
  key: string;
  type: string;
  mode?: string;
  uri?: string;
  content_size?: number;
  hash?: string;
  timestamp?: number;
  type_data?: { preview?: string; content_type?: string; data_hash?: string };
  display_data?: [string, string][];
}

/** A model reference in `task.models.input|output`. */
export interface TaskModelRef {
  name: string;
  model: string;
  updated?: string;
}

/** The task's `script` block. */
export interface TaskScript {
  binary?: string;
  repository?: string;
  tag?: string;
  branch?: string;
  version_num?: string;
  entry_point?: string;
  working_dir?: string;
  requirements?: Record<string, unknown>;
  diff?: string;
}

/** A task as `tasks.get_all` returns it; fields present depend on `only_fields`. */
export interface Task {
  id: string;
  name?: string;
  user?: string;
  company?: string;
  type?: TaskType;
  status?: TaskStatus;
  status_reason?: string;
  status_message?: string;
  status_changed?: string;
  comment?: string;
  created?: string;
  started?: string;
  completed?: string;
  parent?: string;
  project?: string;
  output?: { destination?: string; model?: string; result?: string; error?: string };
  execution?: {
    queue?: string;
    parameters?: Record<string, unknown>;
    artifacts?: Artifact[];
    [key: string]: unknown;
  };
  container?: Record<string, string>;
  models?: { input?: TaskModelRef[]; output?: TaskModelRef[] };
  script?: TaskScript;
  tags?: string[];
  system_tags?: string[];
  last_worker?: string;
  last_worker_report?: string;
  last_update?: string;
  last_change?: string;
  last_iteration?: number;
  /** md5(metric) → md5(variant) → summary; match on `metric`/`variant`, not on the keys. */
  last_metrics?: Record<string, Record<string, MetricSummary>>;
  hyperparams?: Record<string, Record<string, ParamItem>>;
  configuration?: Record<string, ConfigurationItem>;
  runtime?: Record<string, unknown>;
}

/** A queue as `queues.get_all` returns it. */
export interface Queue {
  id: string;
  name?: string;
  display_name?: string;
  created?: string;
  tags?: string[];
  system_tags?: string[];
  entries?: { task: string; added?: string }[];
}

/** A model as `models.get_all` returns it. */
export interface Model {
  id: string;
  name?: string;
  task?: string;
  project?: string;
  uri?: string;
  framework?: string;
  ready?: boolean;
  created?: string;
  last_update?: string;
  tags?: string[];
  system_tags?: string[];
  comment?: string;
  design?: unknown;
  labels?: Record<string, number>;
}

/** One console log line as `events.get_task_log` returns it. */
export interface LogEvent {
  /** Milliseconds since the epoch, set by the reporter. */
  timestamp: number;
  type?: string;
  task?: string;
  level?: string;
  worker?: string;
  msg?: string;
  iter?: number;
}

/** One series of `events.scalar_metrics_iter_histogram`. */
export interface ScalarSeries {
  name: string;
  x: number[];
  y: number[];
  x_axis_label?: string;
}

/** metric → variant → series. */
export type ScalarHistogram = Record<string, Record<string, ScalarSeries>>;
