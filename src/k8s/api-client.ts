/**
 * Typed API clients that share one connection pool per cluster and identity.
 *
 * `KubeConfig.makeApiClient` of client-node 2.0.1 authenticates every request by building a new
 * undici Agent from the kubeconfig's TLS material, so each call opens its own TLS connection
 * (a handshake, a fresh TLS context with the CA and client certificate parsed again) that then
 * idles until undici's keep-alive timeout. At thousands of writes that is thousands of
 * handshakes, CPU on both ends, and native memory the allocator keeps. The clients made here
 * authenticate through the same KubeConfig (headers, tokens, exec plugins and certificate
 * rotation behave as before) but reuse one Agent for as long as the TLS material it was built
 * from stays the same.
 */
import { createHash } from 'node:crypto';
import type { RequestOptions } from 'node:https';

import * as k8s from '@kubernetes/client-node';

/** What the API server's audit log and metrics see as the client. */
const USER_AGENT = 'clara-operator';

type Dispatcher = NonNullable<ReturnType<k8s.RequestContext['getDispatcher']>>;

/** Authentication that delegates to the KubeConfig and keeps its connection pool. */
class SharedPoolAuthentication implements k8s.SecurityAuthentication {
  readonly #kc: k8s.KubeConfig;
  #key: string | undefined;
  #dispatcher: Dispatcher | undefined;

  constructor(kc: k8s.KubeConfig) {
    this.#kc = kc;
  }

  getName(): string {
    return 'kubeconfig authentication with a shared connection pool';
  }

  async applySecurityAuthentication(context: k8s.RequestContext): Promise<void> {
    await this.#kc.applySecurityAuthentication(context);
    const fresh = context.getDispatcher();
    if (!fresh) return; // plain HTTP without TLS material: undici's global pool already reuses
    const key = await this.#tlsIdentity();
    if (key !== this.#key || !this.#dispatcher) {
      // New or rotated certificates: start a pool with them; the old one finishes its requests.
      const old = this.#dispatcher;
      this.#key = key;
      this.#dispatcher = fresh;
      if (old) void old.close().catch(() => undefined);
    }
    context.setDispatcher(this.#dispatcher);
  }

  /** A digest of everything the Agent's TLS settings are made of, and of where it connects. */
  async #tlsIdentity(): Promise<string> {
    const opts: RequestOptions & { servername?: string } = {};
    await this.#kc.applyToHTTPSOptions(opts);
    const cluster = this.#kc.getCurrentCluster();
    const hash = createHash('sha256');
    for (const part of [
      cluster?.server,
      cluster?.proxyUrl,
      opts.ca,
      opts.cert,
      opts.key,
      opts.pfx,
      opts.passphrase,
      opts.servername,
      String(opts.rejectUnauthorized),
    ]) {
      hash.update(part === undefined ? '-' : Buffer.isBuffer(part) ? part : String(part));
      hash.update('\0');
    }
    return hash.digest('hex');
  }
}

const shared = new WeakMap<k8s.KubeConfig, SharedPoolAuthentication>();

/**
 * `kc.makeApiClient(apiClientType)`, but all clients of one KubeConfig share its connection
 * pool, and requests carry the operator's User-Agent.
 */
export function makeApiClient<T extends k8s.ApiType>(
  kc: k8s.KubeConfig,
  apiClientType: k8s.ApiConstructor<T>,
): T {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('the kubeconfig has no current cluster');
  let auth = shared.get(kc);
  if (!auth) {
    auth = new SharedPoolAuthentication(kc);
    shared.set(kc, auth);
  }
  const config = k8s.createConfiguration({
    baseServer: new k8s.ServerConfiguration(cluster.server, {}),
    authMethods: { default: auth },
    promiseMiddleware: [
      {
        pre: async (context) => {
          context.setHeaderParam('User-Agent', USER_AGENT);
          return context;
        },
        post: async (response) => response,
      },
    ],
  });
  return new apiClientType(config);
}
