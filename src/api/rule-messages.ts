/**
 * The messages of the ClaraInstance rules that OpenAPI alone cannot express. Each one is written
 * twice on purpose: as the `message` of a CEL rule in `crds/clarainstances.clara-operator.io.yaml`,
 * which is what `kubectl apply` prints, and as the zod issue raised by `src/api/` for the same
 * rule, which is what the operator writes into a condition. A unit test checks that the CRD's CEL
 * messages and this table are the same set, so neither can drift alone.
 */

/** Messages keyed by rule; values are user-facing sentences, stable enough to match in tests. */
export const RULE_MESSAGES = {
  archOrConfig: 'exactly one of trainingArch or configFile must be set',
  archNeedsClaraTrain:
    'trainingArch applies to runtime ClaraTrain only; a MonaiBundle run names its config with configFile',
  environmentNeedsClaraTrain:
    'environmentFile applies to runtime ClaraTrain only; a MONAI bundle has no environment file',
  bundleNeedsMonaiBundle: 'mmar.bundle needs runtime MonaiBundle',
  taskNameForShortName:
    'taskName is required when metadata.name is shorter than 3 characters (ClearML names need at least 3)',
  oneMmarSource: 'exactly one MMAR source must be set: path, ngc, url, artifact, dataset or bundle',
  mmarUrlHttps: 'mmar.url must be an https:// URL with a host; other schemes are refused',
  mmarNgcRef:
    'mmar.ngc must be an NGC model reference name:version, optionally prefixed by org/ or org/team/',
  mmarBundleRef: 'mmar.bundle must be a Model Zoo bundle name, optionally followed by :version',
  projectLevels: "project levels are separated by single '/' characters and must not be empty",
  queueNotAnId:
    'queue must not be 30 or more hex characters: clearml-agent would read it as a queue id',
  setKeyNotEmpty: 'set keys must not be empty',
  setKeyIdentifier:
    "set keys must be identifiers (letters, digits, '_'; '#' joins nested MONAI bundle ids)",
  setKeyLength: 'set keys must be at most 128 characters',
  externalHasNoPod:
    'agent.mode External runs no pod: image, gpus, resources, nodeSelector, tolerations, imagePullSecrets and serviceAccountName must not be set',
  gpusViaAgentGpus: 'request GPUs with agent.gpus, not as nvidia.com/gpu in agent.resources',
  tolerationExistsNoValue: 'a toleration with operator Exists must not set a value',
} as const;

/** Names of the rules in RULE_MESSAGES. */
export type RuleName = keyof typeof RULE_MESSAGES;
