/**
 * The logging seam of `src/k8s`: a structural subset of pino's logger.
 *
 * Modules here never create a logger or write to stdout; they report to the logger they are
 * given, with a constant message and the variable data in a fields object (STYLE.md rule 13).
 * A pino logger (or a child of one) satisfies {@link K8sLogger} as it is.
 */

/** The pino-compatible methods the machinery calls. */
export interface K8sLogger {
  debug(fields: Record<string, unknown>, msg: string): void;
  info(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
  error(fields: Record<string, unknown>, msg: string): void;
}

/** A logger that drops everything; the default when none is injected. */
export const silentLogger: K8sLogger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};
