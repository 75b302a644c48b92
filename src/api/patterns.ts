/**
 * The regular expressions of the ClaraInstance schema. The CRD carries the same expressions, in
 * OpenAPI `pattern` fields or inside CEL `matches()` calls; the CRD/zod agreement test compares
 * the OpenAPI ones with these literally. Each is written in the subset that JavaScript and Go's
 * RE2 read the same way (no lookaround, no backreferences).
 */

/** A ClearML object id: 32 lowercase hex characters (`../shared/reference/clearml-api.md` §3.2). */
export const CLEARML_ID = /^[0-9a-f]{32}$/;

/** A Kubernetes object name in DNS-subdomain form, as Secrets and ServiceAccounts need. */
export const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * A JSON or YAML file inside the MMAR or bundle, relative to its root. No segment may start with
 * a dot, which rules out `..` and so any path that leaves the archive.
 */
export const ARCHIVE_FILE =
  /^([A-Za-z0-9_-][A-Za-z0-9_.-]*\/)*[A-Za-z0-9_-][A-Za-z0-9_.-]*\.(json|yaml|yml)$/;

/** An absolute directory in the training image; as ARCHIVE_FILE, no segment starts with a dot. */
export const IMAGE_PATH = /^(\/[A-Za-z0-9_-][A-Za-z0-9_.-]*)+\/?$/;

/** An https URL with a host and no user-info part (credentials never belong in the spec). */
export const HTTPS_URL = /^https:\/\/[^\s/?#@]+([/?#]\S*)?$/;

/** An NGC model `name:version`, optionally `org/name:version` or `org/team/name:version`. */
export const NGC_MODEL_REF =
  /^([a-z0-9][a-z0-9_-]*\/){0,2}[a-z0-9][a-z0-9_.-]*:[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** A MONAI Model Zoo bundle name, optionally with `:version`. */
export const BUNDLE_REF = /^[A-Za-z0-9_]+(:[A-Za-z0-9][A-Za-z0-9_.+-]*)?$/;

/**
 * A `set` key: an identifier, or identifiers joined by `#` for nested MONAI bundle config ids
 * (`train#dataloader#batch_size`; `../shared/reference/clara-mmar.md` §6 "Running a bundle").
 */
export const SET_KEY = /^[A-Za-z_][A-Za-z0-9_]*(#[A-Za-z0-9_]+)*$/;

/**
 * A queue name clearml-agent would take for an id: it treats strings of 30 or more hex characters
 * as ids (`../shared/reference/clearml-api.md` §4.2).
 */
export const QUEUE_LOOKS_LIKE_ID = /^[0-9a-fA-F]{30,}$/;

/** A container image reference: any non-empty string without whitespace. */
export const IMAGE_REF = /^\S+$/;

/** Where ClearML uploads models: an http(s), S3, Google Storage or Azure URI. */
export const OUTPUT_URI = /^(https?|s3|gs|azure):\/\/\S+$/;

/**
 * A Kubernetes resource quantity without sign (`500m`, `16Gi`, `1e3`), the core API's quantity
 * grammar minus the leading `+`/`-`, since a negative request means nothing here.
 */
export const QUANTITY =
  /^(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$/;

/** A metav1.Condition type: an optional DNS-subdomain prefix and `/`, then a name. */
export const CONDITION_TYPE =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/;

/** A metav1.Condition reason: CamelCase, as metav1 defines it. */
export const CONDITION_REASON = /^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/;
