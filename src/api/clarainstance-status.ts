/**
 * zod schema and TypeScript types of a ClaraInstance's status, mirroring the CRD's status schema
 * (`crds/clarainstances.clara-operator.io.yaml`). The operator builds status values of these
 * types and may parse what it reads back with `claraInstanceStatusSchema`.
 */
import { z } from 'zod';

import { CLEARML_ID, CONDITION_REASON, CONDITION_TYPE } from './patterns.ts';

/** Phases of a run, in the order a successful run passes through the first four. */
export const PHASES = [
  'Pending',
  'Queued',
  'Running',
  'Completed',
  'Failed',
  'Aborted',
  'Suspended',
] as const;

/** Where a run is; see PHASES. */
export type Phase = (typeof PHASES)[number];

/** The scalars the status carries, named as ClearML captures them from Clara's TensorBoard. */
export const METRIC_NAMES = ['val_mean_dice', 'val_acc', 'train_loss', 'train_acc'] as const;

/** One of METRIC_NAMES. */
export type MetricName = (typeof METRIC_NAMES)[number];

// RFC 3339 with a zone, as metav1.Time serialises (`2026-01-02T03:04:05Z`).
const timestamp = z.iso.datetime({ offset: true });
const int64 = z.number().int().min(0);

/** A condition in the metav1.Condition shape. */
export const conditionSchema = z.strictObject({
  type: z.string().max(316).regex(CONDITION_TYPE),
  status: z.enum(['True', 'False', 'Unknown']),
  observedGeneration: int64.optional(),
  lastTransitionTime: timestamp,
  reason: z.string().min(1).max(1024).regex(CONDITION_REASON),
  message: z.string().max(32768),
});

/** A condition of a ClaraInstance's status. */
export type Condition = z.infer<typeof conditionSchema>;

/** The latest and best value of one scalar, and the iteration of the latest. */
export const metricSummarySchema = z.strictObject({
  latest: z.number().optional(),
  best: z.number().optional(),
  iteration: int64.optional(),
});

/** Latest and best value of one scalar. */
export type MetricSummary = z.infer<typeof metricSummarySchema>;

/** A model file the run registered, as a row of the form's Models Table. */
export const modelEntrySchema = z.strictObject({
  name: z.string().max(255),
  uri: z.string().max(2048),
  framework: z.string().max(64).optional(),
  created: timestamp.optional(),
});

/** One row of status.models. */
export type ModelEntry = z.infer<typeof modelEntrySchema>;

/** An earlier run of the same ClaraInstance, kept in status.history. */
export const historyEntrySchema = z.strictObject({
  taskId: z.string().regex(CLEARML_ID),
  phase: z.enum(PHASES).optional(),
  completedAt: timestamp.optional(),
});

/** One entry of status.history. */
export type HistoryEntry = z.infer<typeof historyEntrySchema>;

/**
 * The status of a ClaraInstance. Conditions are unique by type, as the CRD's `listType=map`
 * enforces on the server.
 */
export const claraInstanceStatusSchema = z.strictObject({
  observedGeneration: int64.optional(),
  phase: z.enum(PHASES).optional(),
  conditions: z
    .array(conditionSchema)
    .max(16)
    .refine((cs) => new Set(cs.map((c) => c.type)).size === cs.length, {
      message: 'conditions must have unique types',
    })
    .optional(),
  taskId: z.string().regex(CLEARML_ID).optional(),
  taskUrl: z.string().max(2048).optional(),
  queue: z.string().max(255).optional(),
  agentPod: z.string().max(253).optional(),
  startedAt: timestamp.optional(),
  completedAt: timestamp.optional(),
  lastIteration: int64.optional(),
  metrics: z
    .strictObject({
      val_mean_dice: metricSummarySchema.optional(),
      val_acc: metricSummarySchema.optional(),
      train_loss: metricSummarySchema.optional(),
      train_acc: metricSummarySchema.optional(),
    })
    .optional(),
  models: z.array(modelEntrySchema).max(64).optional(),
  message: z.string().max(1024).optional(),
  history: z.array(historyEntrySchema).max(10).optional(),
});

/** The status of a ClaraInstance. */
export type ClaraInstanceStatus = z.infer<typeof claraInstanceStatusSchema>;
