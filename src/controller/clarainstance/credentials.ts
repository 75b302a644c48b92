/**
 * ClearML connections from credentials Secrets: which Secret an instance uses, what a usable one
 * holds, and one client per distinct server and key pair.
 *
 * The Secret carries the variables the SDK and the agent read themselves (CLEARML_API_HOST,
 * CLEARML_WEB_HOST, CLEARML_FILES_HOST, CLEARML_API_ACCESS_KEY, CLEARML_API_SECRET_KEY), so the
 * same Secret serves the operator and, by secretKeyRef, the agent pod. Key material never leaves
 * this module except inside the client; errors name the Secret and the key, never a value.
 */
import { createHash } from 'node:crypto';

import type * as k8s from '@kubernetes/client-node';

import type { ClaraInstance } from '../../api/clarainstance.ts';
import { ClearmlClient } from '../../clearml/index.ts';
import type { ClearmlClientOptions } from '../../clearml/index.ts';
import type { SecretReader } from './context.ts';

/** Where to reach ClearML and with which keys, as read from a Secret. */
export interface ClearmlConnection {
  apiUrl: string;
  /** Base URL of the web UI, for status.taskUrl; derived from the API host when not given. */
  webUrl: string | undefined;
  accessKey: string;
  secretKey: string;
}

/** Why a Secret cannot be used; `reason` is a condition reason, `message` names the problem. */
export interface CredentialsProblem {
  reason: 'CredentialsSecretMissing' | 'CredentialsNotConfigured' | 'CredentialsInvalid';
  message: string;
}

const REQUIRED_KEYS = [
  'CLEARML_API_HOST',
  'CLEARML_API_ACCESS_KEY',
  'CLEARML_API_SECRET_KEY',
] as const;

/**
 * Name of the Secret an instance takes its credentials from: its own `spec.clearml.secretRef`,
 * else the operator's default (the only choice for an instance whose spec does not parse).
 * Returns a problem when neither is set.
 */
export function credentialsSecretName(
  instance: ClaraInstance | undefined,
  defaultSecret: string | undefined,
): string | CredentialsProblem {
  const name = instance?.spec.clearml?.secretRef?.name ?? defaultSecret;
  if (name) return name;
  return {
    reason: 'CredentialsNotConfigured',
    message:
      'spec.clearml.secretRef.name is not set and the operator has no default credentials ' +
      'Secret (--default-credentials-secret); name a Secret with the ClearML keys',
  };
}

/**
 * Reads a connection from a Secret's data (base64 values, as the API returns them). Returns a
 * problem naming the Secret and the missing or malformed key; never includes a value.
 */
export function connectionFromSecret(
  secret: k8s.V1Secret | undefined,
  ref: { namespace: string; name: string },
): ClearmlConnection | CredentialsProblem {
  const where = `Secret ${ref.namespace}/${ref.name}`;
  if (!secret) {
    return {
      reason: 'CredentialsSecretMissing',
      message: `${where} does not exist; create it with the keys ${REQUIRED_KEYS.join(', ')}`,
    };
  }
  const value = (key: string): string | undefined => {
    const raw = secret.data?.[key] ?? secret.stringData?.[key];
    if (raw === undefined) return undefined;
    const text =
      secret.data?.[key] !== undefined ? Buffer.from(raw, 'base64').toString('utf8') : raw;
    return text.trim() || undefined;
  };

  const missing = REQUIRED_KEYS.filter((k) => value(k) === undefined);
  if (missing.length > 0) {
    return { reason: 'CredentialsInvalid', message: `${where} has no ${missing.join(', ')}` };
  }
  const apiUrl = value('CLEARML_API_HOST') as string;
  if (!isHttpUrl(apiUrl)) {
    return {
      reason: 'CredentialsInvalid',
      message: `${where} key CLEARML_API_HOST is not an http(s) URL`,
    };
  }
  const web = value('CLEARML_WEB_HOST');
  return {
    apiUrl,
    webUrl: web && isHttpUrl(web) ? web : undefined,
    accessKey: value('CLEARML_API_ACCESS_KEY') as string,
    secretKey: value('CLEARML_API_SECRET_KEY') as string,
  };
}

function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    // Not a URL at all; the caller reports it as such.
    return false;
  }
}

/**
 * The connection of an instance in `namespace`: its credentials Secret, read through `secrets`
 * and checked. Returns the problem when there is none or it is unusable; throws only when the
 * Secret cannot be read at all (the API failed).
 */
export async function readConnection(opts: {
  instance: ClaraInstance | undefined;
  namespace: string;
  secrets: SecretReader;
  defaultSecret: string | undefined;
}): Promise<ClearmlConnection | CredentialsProblem> {
  const name = credentialsSecretName(opts.instance, opts.defaultSecret);
  if (typeof name !== 'string') return name;
  const secret = await opts.secrets.read(opts.namespace, name);
  return connectionFromSecret(secret, { namespace: opts.namespace, name });
}

/** Link to a task in the ClearML web UI. */
export function taskUrl(
  connection: ClearmlConnection,
  projectId: string,
  taskId: string,
): string | undefined {
  if (!connection.webUrl) return undefined;
  return `${connection.webUrl.replace(/\/+$/, '')}/projects/${projectId}/experiments/${taskId}/output/execution`;
}

/**
 * Keeps one ClearmlClient per distinct connection, so instances sharing a Secret share a token
 * and rotated keys get a fresh client. Keys are hashed into the cache key, never stored as text
 * outside the client.
 */
export class ClearmlClients {
  readonly #clients = new Map<string, ClearmlClient>();
  readonly #options: Omit<ClearmlClientOptions, 'apiUrl' | 'accessKey' | 'secretKey'>;

  constructor(options: Omit<ClearmlClientOptions, 'apiUrl' | 'accessKey' | 'secretKey'> = {}) {
    this.#options = options;
  }

  /** The client for `connection`, created on first use. */
  clientFor(connection: ClearmlConnection): ClearmlClient {
    const key = createHash('sha256')
      .update(`${connection.apiUrl}\0${connection.accessKey}\0${connection.secretKey}`)
      .digest('hex');
    let client = this.#clients.get(key);
    if (!client) {
      client = new ClearmlClient({
        ...this.#options,
        apiUrl: connection.apiUrl,
        accessKey: connection.accessKey,
        secretKey: connection.secretKey,
      });
      this.#clients.set(key, client);
    }
    return client;
  }

  /** Number of distinct connections in use. */
  get size(): number {
    return this.#clients.size;
  }
}
