/**
 * Installs the ClaraInstance CRD into the test cluster, for every integration test that needs
 * the resource. Several jest workers may call it at once: each creates or replaces the CRD from
 * `crds/` and waits until the apiserver serves the resource.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import * as k8s from '@kubernetes/client-node';

import { waitFor } from './cluster-env.ts';
import { REPO_ROOT } from './go-build.ts';

/** The CRD manifest of the ClaraInstance API. */
export const CRD_FILE = join(REPO_ROOT, 'crds', 'clarainstances.clara-operator.io.yaml');

const CONFLICT_RETRIES = 5;

/** Options of installCrd. */
export interface InstallCrdOptions {
  /** How long to wait for the CRD to become Established and served; default 30 s. */
  timeoutMs?: number;
}

/**
 * Creates the ClaraInstance CRD from CRD_FILE, or replaces it when it exists (so a changed file
 * reaches a long-lived cluster), then waits until it is Established, its names are accepted and
 * ClaraInstances can be listed. Idempotent and safe to call from concurrent workers. Returns the
 * CRD as the apiserver holds it; throws the apiserver's error if it refuses the CRD (for example
 * a CEL rule over the cost budget) or a timeout error naming what it waited for.
 */
export async function installCrd(
  kc: k8s.KubeConfig,
  opts: InstallCrdOptions = {},
): Promise<k8s.V1CustomResourceDefinition> {
  const api = kc.makeApiClient(k8s.ApiextensionsV1Api);
  // NB: loadYaml maps JSON names to the model's (`default` to `_default`, `x-kubernetes-*` to
  // camelCase); a plain parsed object would lose those fields when the client serialises it.
  const desired = k8s.loadYaml<k8s.V1CustomResourceDefinition>(readFileSync(CRD_FILE, 'utf8'));
  const name = desired.metadata!.name!;
  await createOrReplace(api, desired, name);

  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  const [group, version, plural] = [
    desired.spec.group,
    desired.spec.versions[0]!.name,
    desired.spec.names.plural,
  ];
  return waitFor(
    async () => {
      const crd = await api.readCustomResourceDefinition({ name });
      const holds = (type: string) =>
        crd.status?.conditions?.some((c) => c.type === type && c.status === 'True') ?? false;
      if (!holds('Established') || !holds('NamesAccepted')) return undefined;
      await custom.listClusterCustomObject({ group, version, plural, limit: 1 });
      return crd;
    },
    { what: `CRD ${name} to be Established and served`, timeoutMs: opts.timeoutMs ?? 30_000 },
  );
}

async function createOrReplace(
  api: k8s.ApiextensionsV1Api,
  desired: k8s.V1CustomResourceDefinition,
  name: string,
): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      const existing = await api.readCustomResourceDefinition({ name }).catch(notFoundAsUndefined);
      if (existing === undefined) {
        await api.createCustomResourceDefinition({ body: desired });
      } else {
        const body = {
          ...desired,
          metadata: { ...desired.metadata, resourceVersion: existing.metadata?.resourceVersion },
        };
        await api.replaceCustomResourceDefinition({ name, body });
      }
      return;
    } catch (err) {
      // 409: another worker created or replaced it between our read and write; read again.
      if (isStatus(err, 409) && attempt < CONFLICT_RETRIES) continue;
      throw err;
    }
  }
}

function isStatus(err: unknown, code: number): boolean {
  return err instanceof k8s.ApiException && err.code === code;
}

function notFoundAsUndefined(err: unknown): undefined {
  if (isStatus(err, 404)) return undefined;
  throw err;
}
