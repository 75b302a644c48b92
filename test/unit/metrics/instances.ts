// ClaraInstance objects as the controller's cache holds them, for the metrics tests.
import type { ClaraInstanceStatus } from '../../../src/api/clarainstance-status.ts';
import type { ClaraObject } from '../../../src/controller/clarainstance/clara-api.ts';
import { RUNNING_STATUS } from '../../fixtures/status-instances.ts';

/** A cached instance `namespace/name` with `status` (the fixture's running status by default). */
export function cachedInstance(
  namespace: string,
  name: string,
  status: ClaraInstanceStatus = RUNNING_STATUS as ClaraInstanceStatus,
): ClaraObject {
  return {
    apiVersion: 'clara-operator.io/v1alpha1',
    kind: 'ClaraInstance',
    metadata: { namespace, name, uid: `${namespace}-${name}` },
    status,
  };
}
