/**
 * The harness's one error type: a failure to set up the test cluster, with a message meant to be
 * printed as a single line to the person running the tests.
 */
export class HarnessError extends Error {
  override name = 'HarnessError';
}

/** What to do instead when the local control plane cannot be built or started. */
export const USE_EXISTING_HINT =
  'To run the tests against an existing cluster instead (kind or any other), set ' +
  'CLARA_TEST_USE_EXISTING_CLUSTER=true and KUBECONFIG=/path/to/its/kubeconfig.';
