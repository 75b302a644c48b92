/**
 * Everything a reconcile of a ClaraInstance reads and writes through, gathered in one object so
 * that the controller wires it once (`controller.ts`) and tests can build it around a real
 * apiserver and the ClearML emulator.
 */
import type * as k8s from '@kubernetes/client-node';

import type { ClaraApi, ClaraObject } from './clara-api.ts';
import type { ClearmlClients } from './credentials.ts';
import type { LauncherScript } from './launch.ts';
import type { TaskPoller } from './task-poller.ts';

/** The subset of pino the reconcile logs through; one child per reconcile. */
export interface ReconcileLogger {
  debug(fields: Record<string, unknown>, msg: string): void;
  info(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
  error(fields: Record<string, unknown>, msg: string): void;
}

/** An event about a ClaraInstance; recorded on transitions only. */
export interface EventNote {
  type: 'Normal' | 'Warning';
  /** CamelCase, constant per kind of transition. */
  reason: string;
  note: string;
}

/** Where reconciles record events. */
export interface EventSink {
  record(obj: ClaraObject, event: EventNote): void;
}

/** The agent pods of an instance, from the pod watch's cache, and the writes to them. */
export interface AgentPods {
  /** Pods the operator made for the instance with this UID (by owner reference). */
  ofInstance(namespace: string, uid: string): k8s.V1Pod[];
  /** Creates a pod; resolves with the existing one when it is already there. */
  create(namespace: string, pod: k8s.V1Pod): Promise<k8s.V1Pod>;
  /** Deletes a pod; resolves when it is gone or was never there. */
  delete(namespace: string, name: string): Promise<void>;
}

/** Reads credentials Secrets (not cached: they are read when a run needs ClearML). */
export interface SecretReader {
  read(namespace: string, name: string): Promise<k8s.V1Secret | undefined>;
}

/** Settings a reconcile follows. */
export interface ReconcileConfig {
  pollIntervalMs: number;
  defaultCredentialsSecret: string | undefined;
}

/** What {@link reconcile} works through. */
export interface ReconcileContext {
  /** ClaraInstances from the watch's cache, by `namespace/name`. */
  instances: { get(key: string): ClaraObject | undefined };
  api: ClaraApi;
  pods: AgentPods;
  secrets: SecretReader;
  clearml: ClearmlClients;
  poller: TaskPoller;
  events: EventSink;
  launcher: LauncherScript;
  config: ReconcileConfig;
  log: ReconcileLogger;
  now(): Date;
}
