/**
 * The ClaraInstance resource as a whole: its group, version and names, and the zod schema of a
 * full object (metadata, spec, status). Spec and status live in their own modules; this one adds
 * the one rule that spans both metadata and spec.
 */
import { z } from 'zod';

import { claraInstanceSpecSchema } from './clarainstance-spec.ts';
import { claraInstanceStatusSchema } from './clarainstance-status.ts';
import { RULE_MESSAGES } from './rule-messages.ts';

/** API group of the ClaraInstance CRD. */
export const GROUP = 'clara-operator.io';

/** The one served and stored version. */
export const VERSION = 'v1alpha1';

/** `apiVersion` of a ClaraInstance object. */
export const API_VERSION = `${GROUP}/${VERSION}`;

/** Kind of the resource. */
export const KIND = 'ClaraInstance';

/** Plural resource name, as used in API paths. */
export const PLURAL = 'clarainstances';

/** Name of the CustomResourceDefinition object. */
export const CRD_NAME = `${PLURAL}.${GROUP}`;

// Only what the root rule needs; the apiserver validates the rest of metadata itself.
const metadataSchema = z.looseObject({
  name: z.string().optional(),
  namespace: z.string().optional(),
});

/**
 * A whole ClaraInstance object. Unknown top-level fields are refused, as the apiserver's strict
 * field validation does. The task name falls back to metadata.name, so a short name needs an
 * explicit taskName (ClearML names need at least 3 characters).
 */
export const claraInstanceSchema = z
  .strictObject({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal(KIND),
    metadata: metadataSchema,
    spec: claraInstanceSpecSchema,
    status: claraInstanceStatusSchema.optional(),
  })
  .superRefine((obj, ctx) => {
    const name = obj.metadata.name;
    if (obj.spec.taskName === undefined && name !== undefined && name.length < 3) {
      ctx.addIssue({
        code: 'custom',
        message: RULE_MESSAGES.taskNameForShortName,
        path: ['spec', 'taskName'],
      });
    }
  });

/** A ClaraInstance as read from the apiserver, with spec defaults applied. */
export type ClaraInstance = z.output<typeof claraInstanceSchema>;

/** A ClaraInstance as a user writes it. */
export type ClaraInstanceInput = z.input<typeof claraInstanceSchema>;

/** The outcome of parseClaraInstance: the object, or the problems found in it. */
export type ParseResult =
  { ok: true; value: ClaraInstance } | { ok: false; problems: ValidationProblem[] };

/** One problem with a ClaraInstance: a dotted field path from the object root and a message. */
export interface ValidationProblem {
  field: string;
  message: string;
}

/**
 * Checks `input` against the ClaraInstance schema. Returns the object with defaults applied, or
 * every problem zod found, each with a field path such as `spec.mmar.url` (array indices and map
 * keys appear as further path segments). Never throws; pure, so calling it again gives the same
 * answer.
 */
export function parseClaraInstance(input: unknown): ParseResult {
  const result = claraInstanceSchema.safeParse(input);
  if (result.success) return { ok: true, value: result.data };

  const problems = result.error.issues.flatMap((issue) => {
    const field = issue.path.map(String).join('.');
    // An unknown key is reported on its parent; name the key itself, as the apiserver does.
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({
        field: field ? `${field}.${key}` : key,
        message: 'unknown field',
      }));
    }
    return [{ field, message: issue.message }];
  });
  return { ok: false, problems };
}
