/**
 * The operator's logger: pino, JSON lines on stdout, with credentials redacted wherever they
 * could appear in a logged object (Secret data, env values, authorization headers, keys).
 */
import { pino } from 'pino';
import type { Logger, LoggerOptions } from 'pino';

/** Field paths whose values are replaced by `[redacted]` before a line is written. */
export const REDACTED_PATHS = [
  '*.accessKey',
  '*.secretKey',
  '*.token',
  '*.password',
  '*.authorization',
  '*.headers.authorization',
  '*.data',
  '*.stringData',
  'accessKey',
  'secretKey',
  'token',
  'authorization',
  'secret.data',
  'secret.stringData',
];

/**
 * Creates the root logger at `level`, writing to `destination` (stdout by default). Each
 * reconcile derives a child carrying namespace, name, generation and reconcileId.
 */
export function createLogger(opts: {
  level: string;
  destination?: pino.DestinationStream;
}): Logger {
  const options: LoggerOptions = {
    level: opts.level,
    base: { component: 'clara-operator' },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}
