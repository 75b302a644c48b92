/**
 * zod schema and TypeScript types of a ClaraInstance's spec.
 *
 * The CRD (`crds/clarainstances.clara-operator.io.yaml`) is the source of truth: what
 * `kubectl apply` accepts is what users write. This schema mirrors it field for field, limit for
 * limit and rule for rule, so that the operator can re-validate what it reads and report anything
 * wrong as a condition. `test/unit/api-crd-agreement.test.ts` checks the two have the same fields,
 * enums, bounds and patterns; `test/integration/api-validation.test.ts` checks the apiserver and
 * this schema accept and reject the same manifests.
 */
import { z } from 'zod';

import {
  ARCHIVE_FILE,
  BUNDLE_REF,
  CLEARML_ID,
  DNS_SUBDOMAIN,
  HTTPS_URL,
  IMAGE_PATH,
  IMAGE_REF,
  NGC_MODEL_REF,
  OUTPUT_URI,
  QUANTITY,
  QUEUE_LOOKS_LIKE_ID,
  SET_KEY,
} from './patterns.ts';
import { RULE_MESSAGES } from './rule-messages.ts';

/** The largest `set` key; keys are checked by rule since OpenAPI cannot bound map keys. */
export const MAX_SET_KEY_LENGTH = 128;

/** Architectures the form offers; `../shared/reference/clara-mmar.md` §3 maps them to configs. */
export const TRAINING_ARCHS = ['UNet', 'SegResNet'] as const;

/** Runtimes: an MMAR run by Clara Train, or a MONAI bundle run by `monai.bundle`. */
export const RUNTIMES = ['ClaraTrain', 'MonaiBundle'] as const;

/** Agent modes: the operator runs the agent pod, or an external agent serves the queue. */
export const AGENT_MODES = ['Execute', 'External'] as const;

/** What happens to the ClearML task when the resource is deleted. */
export const DELETION_POLICIES = ['Archive', 'Delete', 'Orphan'] as const;

const clearmlId = z.string().regex(CLEARML_ID);
const secretName = z.string().max(253).regex(DNS_SUBDOMAIN);
const archiveFile = z.string().max(255).regex(ARCHIVE_FILE);

// A map with at most `maxProperties` entries. The bound is enforced by the refinement and declared
// in the JSON Schema (meta), where the CRD agreement test compares it with the CRD's maxProperties.
function boundedMap<T extends z.ZodType>(value: T, maxProperties: number) {
  return z
    .record(z.string(), value)
    .refine((m) => Object.keys(m).length <= maxProperties, {
      message: `must have at most ${maxProperties} items`,
    })
    .meta({ maxProperties });
}

// A string checked by a CEL `matches()` in the CRD rather than an OpenAPI pattern, so that the
// user reads a sentence instead of a regular expression.
const matching = (maxLength: number, pattern: RegExp, message: string) =>
  z.string().max(maxLength).regex(pattern, { message });

const mmarArtifactSchema = z.strictObject({
  task: clearmlId,
  name: z.string().min(1).max(255),
});

/** The MMAR source: exactly one of its fields is set. */
export const mmarSourceSchema = z
  .strictObject({
    path: z.string().max(1024).regex(IMAGE_PATH).optional(),
    ngc: matching(255, NGC_MODEL_REF, RULE_MESSAGES.mmarNgcRef).optional(),
    url: matching(2048, HTTPS_URL, RULE_MESSAGES.mmarUrlHttps).optional(),
    artifact: mmarArtifactSchema.optional(),
    dataset: clearmlId.optional(),
    bundle: matching(255, BUNDLE_REF, RULE_MESSAGES.mmarBundleRef).optional(),
  })
  .superRefine((mmar, ctx) => {
    const sources = Object.values(mmar).filter((v) => v !== undefined);
    if (sources.length !== 1) {
      ctx.addIssue({ code: 'custom', message: RULE_MESSAGES.oneMmarSource });
    }
  });

/** The `set` overrides: identifier keys, bounded count and value length. */
export const setOverridesSchema = boundedMap(z.string().max(1024), 64).superRefine((set, ctx) => {
  const keys = Object.keys(set);
  if (keys.some((k) => k === '')) {
    ctx.addIssue({ code: 'custom', message: RULE_MESSAGES.setKeyNotEmpty });
  }
  // Names the first offending key, as the CRD's messageExpression does.
  const notIdentifier = keys.find((k) => k !== '' && !SET_KEY.test(k));
  if (notIdentifier !== undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `${RULE_MESSAGES.setKeyIdentifier}; '${notIdentifier}' is not`,
    });
  }
  if (keys.some((k) => k.length > MAX_SET_KEY_LENGTH)) {
    ctx.addIssue({ code: 'custom', message: RULE_MESSAGES.setKeyLength });
  }
});

// A resource quantity as the core API takes it: a non-negative integer or a quantity string.
const quantity = z.union([z.number().int().min(0), z.string().regex(QUANTITY)]);
const resourceList = boundedMap(quantity, 16);

const resourcesSchema = z
  .strictObject({ requests: resourceList.optional(), limits: resourceList.optional() })
  .superRefine((resources, ctx) => {
    const asksForGpu = [resources.requests, resources.limits].some(
      (list) => list !== undefined && 'nvidia.com/gpu' in list,
    );
    if (asksForGpu) ctx.addIssue({ code: 'custom', message: RULE_MESSAGES.gpusViaAgentGpus });
  });

const tolerationSchema = z
  .strictObject({
    key: z.string().max(316).optional(),
    operator: z.enum(['Exists', 'Equal']).optional(),
    value: z.string().max(63).optional(),
    effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
    tolerationSeconds: z.number().int().min(0).optional(),
  })
  .superRefine((t, ctx) => {
    if (t.operator === 'Exists' && t.value !== undefined && t.value !== '') {
      ctx.addIssue({ code: 'custom', message: RULE_MESSAGES.tolerationExistsNoValue });
    }
  });

// The fields that only make sense for a pod the operator starts (agent.mode Execute).
const POD_FIELDS = [
  'image',
  'gpus',
  'resources',
  'nodeSelector',
  'tolerations',
  'imagePullSecrets',
  'serviceAccountName',
] as const;

/** How the task's clearml-agent runs; defaults to an operator-made pod (mode Execute). */
export const agentSchema = z
  .strictObject({
    mode: z.enum(AGENT_MODES).default('Execute'),
    image: z.string().max(512).regex(IMAGE_REF).optional(),
    gpus: z.number().int().min(0).max(16).optional(),
    resources: resourcesSchema.optional(),
    nodeSelector: boundedMap(z.string().max(63), 16).optional(),
    tolerations: z.array(tolerationSchema).max(16).optional(),
    imagePullSecrets: z
      .array(z.strictObject({ name: secretName }))
      .max(8)
      .optional(),
    serviceAccountName: secretName.optional(),
  })
  .superRefine((agent, ctx) => {
    if (agent.mode === 'External' && POD_FIELDS.some((f) => agent[f] !== undefined)) {
      ctx.addIssue({ code: 'custom', message: RULE_MESSAGES.externalHasNoPod });
    }
  });

/** Where ClearML is: a same-namespace credentials Secret, by name only, and an output URI. */
export const clearmlConnectionSchema = z.strictObject({
  secretRef: z.strictObject({ name: secretName }).optional(),
  outputUri: z.string().max(2048).regex(OUTPUT_URI).optional(),
});

/**
 * The spec of a ClaraInstance, with the CRD's defaults applied on parse (project, runtime, agent
 * mode, suspend, deletionPolicy). Parsing never throws on bad input through `safeParse`; issue
 * paths are relative to the spec.
 */
export const claraInstanceSpecSchema = z
  .strictObject({
    taskName: z.string().min(3).max(255).optional(),
    datasetTask: clearmlId,
    trainingArch: z.enum(TRAINING_ARCHS).optional(),
    configFile: archiveFile.optional(),
    environmentFile: archiveFile.optional(),
    mmar: mmarSourceSchema,
    set: setOverridesSchema.optional(),
    queue: z
      .string()
      .min(3)
      .max(255)
      .refine((q) => !QUEUE_LOOKS_LIKE_ID.test(q), { message: RULE_MESSAGES.queueNotAnId }),
    project: z
      .string()
      .min(3)
      .max(255)
      .refine((p) => !p.startsWith('/') && !p.endsWith('/') && !p.includes('//'), {
        message: RULE_MESSAGES.projectLevels,
      })
      .default('Nvidia Clara'),
    runtime: z.enum(RUNTIMES).default('ClaraTrain'),
    clearml: clearmlConnectionSchema.optional(),
    agent: agentSchema.prefault({}),
    createQueue: z.boolean().default(false),
    suspend: z.boolean().default(false),
    deletionPolicy: z.enum(DELETION_POLICIES).default('Archive'),
  })
  .superRefine((spec, ctx) => {
    if ((spec.trainingArch === undefined) === (spec.configFile === undefined)) {
      ctx.addIssue({ code: 'custom', message: RULE_MESSAGES.archOrConfig });
    }
    if (spec.trainingArch !== undefined && spec.runtime !== 'ClaraTrain') {
      ctx.addIssue({
        code: 'custom',
        message: RULE_MESSAGES.archNeedsClaraTrain,
        path: ['trainingArch'],
      });
    }
    if (spec.environmentFile !== undefined && spec.runtime !== 'ClaraTrain') {
      ctx.addIssue({
        code: 'custom',
        message: RULE_MESSAGES.environmentNeedsClaraTrain,
        path: ['environmentFile'],
      });
    }
    if (spec.mmar.bundle !== undefined && spec.runtime !== 'MonaiBundle') {
      ctx.addIssue({
        code: 'custom',
        message: RULE_MESSAGES.bundleNeedsMonaiBundle,
        path: ['mmar', 'bundle'],
      });
    }
  });

/** A spec as stored, with defaults applied: what the operator works from. */
export type ClaraInstanceSpec = z.output<typeof claraInstanceSpecSchema>;

/** A spec as a user may write it, before defaults. */
export type ClaraInstanceSpecInput = z.input<typeof claraInstanceSpecSchema>;

/** The MMAR source of a spec. */
export type MmarSource = ClaraInstanceSpec['mmar'];

/** The agent settings of a spec, with mode defaulted. */
export type AgentSpec = ClaraInstanceSpec['agent'];
