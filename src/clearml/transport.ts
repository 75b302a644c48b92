/**
 * HTTP transport of the ClearML client: authentication, timeouts, retries, envelope parsing.
 *
 * Every call is `POST {apiUrl}/v{apiVersion}/{service.action}` with a JSON body and a bearer
 * token (../shared/reference/clearml-api.md §1, §10). The token comes from `auth.login` with
 * HTTP Basic auth, is cached until shortly before its JWT `exp`, and is fetched again once when a
 * call answers 401. Retriable failures are retried with jittered exponential backoff; the
 * version is pinned in the path so a server upgrade cannot change the semantics under us.
 *
 * This module never logs by itself: it reports retries and call timings to an optional injected
 * logger, and never passes keys, tokens or request bodies to it. Typed service calls live in
 * `clearml-client.ts`.
 */
import { parseEnvelope } from './envelope.ts';
import { ClearmlError, ClearmlUnavailableError } from './errors.ts';
import { computeBackoffMs, DEFAULT_RETRY_POLICY, type RetryPolicy } from './retry-policy.ts';

/** API version the client speaks; every path carries it. 2.23 is served by ClearML server ≥ 1.9. */
export const CLEARML_API_VERSION = '2.23';

/** The subset of a pino-style logger the client reports to. */
export interface ClearmlLogger {
  /** Per-call detail. */
  debug(fields: Record<string, unknown>, msg: string): void;
  /** A retriable failure that will be retried. */
  warn(fields: Record<string, unknown>, msg: string): void;
}

/** Options of {@link ClearmlTransport}. Only `apiUrl` and the keys are required. */
export interface ClearmlTransportOptions {
  /** API server base URL, e.g. `http://clearml-apiserver:8008` or `https://app.example/api`. */
  apiUrl: string;
  /** ClearML access key. */
  accessKey: string;
  /** ClearML secret key. */
  secretKey: string;
  /** API version for the path; defaults to {@link CLEARML_API_VERSION}. */
  apiVersion?: string;
  /** Abort a single HTTP request after this long (default 30 s). */
  requestTimeoutMs?: number;
  /** Retry schedule; fields left out take {@link DEFAULT_RETRY_POLICY} values. */
  retry?: Partial<RetryPolicy>;
  /** Log in again when the token expires within this margin (default 6 min, as the SDK). */
  tokenRefreshMarginMs?: number;
  /** Injected for tests: waits between retries. */
  sleep?: (ms: number) => Promise<void>;
  /** Injected for tests: jitter source in [0, 1). */
  random?: () => number;
  /** Injected for tests: current time in ms since the epoch. */
  now?: () => number;
  /** Injected for tests: the fetch implementation. */
  fetch?: typeof globalThis.fetch;
  /** Optional logger; the client is silent without one. */
  logger?: ClearmlLogger;
  /**
   * Told about every HTTP request once it ended (each retry and login is one), for metrics.
   * Must not throw; it never sees keys, tokens or bodies.
   */
  onRequest?: (request: ClearmlRequestObservation) => void;
}

/** One finished HTTP request, as {@link ClearmlTransportOptions.onRequest} sees it. */
export interface ClearmlRequestObservation {
  /** `service.action`, e.g. `tasks.get_all`. */
  endpoint: string;
  /** The HTTP status as a string, or `timeout` / `network` when no answer came. */
  code: string;
  /** From sending the request to reading the whole answer (or giving up). */
  durationMs: number;
}

/** Per-call options of {@link ClearmlTransport.call}. */
export interface CallOptions {
  /**
   * False for calls that create something (`tasks.create`, `projects.create`): they are retried
   * only when the request certainly did not reach the server (connection refused, 503), since a
   * timed-out create may have succeeded. Default true.
   */
  idempotent?: boolean;
}

interface CachedToken {
  value: string;
  expiresAtMs: number | undefined;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_REFRESH_MARGIN_MS = 360_000;

/**
 * Sends ClearML API calls. One instance per server and key pair; safe for concurrent use (a
 * single login is shared by calls that need a token at the same time).
 */
export class ClearmlTransport {
  readonly #apiUrl: string;
  readonly #apiVersion: string;
  readonly #basicAuth: string;
  readonly #timeoutMs: number;
  readonly #policy: RetryPolicy;
  readonly #refreshMarginMs: number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #random: () => number;
  readonly #now: () => number;
  readonly #fetch: typeof globalThis.fetch;
  readonly #logger: ClearmlLogger | undefined;
  readonly #onRequest: ((request: ClearmlRequestObservation) => void) | undefined;
  #token: CachedToken | undefined;
  #login: Promise<CachedToken> | undefined;

  /** Stores the options; performs no I/O. */
  constructor(opts: ClearmlTransportOptions) {
    this.#apiUrl = opts.apiUrl.replace(/\/+$/, '');
    this.#apiVersion = opts.apiVersion ?? CLEARML_API_VERSION;
    this.#basicAuth = Buffer.from(`${opts.accessKey}:${opts.secretKey}`).toString('base64');
    this.#timeoutMs = opts.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#policy = { ...DEFAULT_RETRY_POLICY, ...opts.retry };
    this.#refreshMarginMs = opts.tokenRefreshMarginMs ?? DEFAULT_REFRESH_MARGIN_MS;
    this.#sleep = opts.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.#random = opts.random ?? Math.random;
    this.#now = opts.now ?? Date.now;
    this.#fetch = opts.fetch ?? globalThis.fetch;
    this.#logger = opts.logger;
    this.#onRequest = opts.onRequest;
  }

  /**
   * Calls `endpoint` (`service.action`) with `body` and returns the envelope's `data`. Logs in
   * first if needed, logs in again once on 401, retries retriable failures per the policy.
   * Throws the last {@link ClearmlError} when the call fails for good.
   */
  async call(
    endpoint: string,
    body: Record<string, unknown>,
    opts: CallOptions = {},
  ): Promise<Record<string, unknown>> {
    const idempotent = opts.idempotent ?? true;
    let reloggedIn = false;
    for (let attempt = 1; ; attempt++) {
      try {
        const token = await this.#getToken();
        return await this.#send(endpoint, body, `Bearer ${token.value}`);
      } catch (err) {
        if (!(err instanceof ClearmlError)) throw err;

        // A token can be revoked or expire early (server restart with a new secret): one fresh
        // login per call, as the SDK does (reference §1.4). A failed login itself is final.
        if (err.status === 401 && err.endpoint !== 'auth.login' && !reloggedIn) {
          reloggedIn = true;
          this.#token = undefined;
          attempt--;
          continue;
        }
        const mayRetry = err.retriable && (idempotent || !mayHaveReachedServer(err));
        if (!mayRetry || attempt >= this.#policy.maxAttempts) throw err;

        const delayMs = computeBackoffMs({
          policy: this.#policy,
          retry: attempt,
          random: this.#random,
        });
        this.#logger?.warn(
          {
            endpoint: err.endpoint,
            attempt,
            delayMs,
            kind: err.kind,
            status: err.status,
            resultSubcode: err.resultSubcode,
          },
          'clearml call failed, will retry',
        );
        await this.#sleep(delayMs);
      }
    }
  }

  /** Drops the cached token so the next call logs in again. Idempotent. */
  forgetToken(): void {
    this.#token = undefined;
  }

  async #getToken(): Promise<CachedToken> {
    const token = this.#token;
    if (
      token &&
      (token.expiresAtMs === undefined || token.expiresAtMs - this.#refreshMarginMs > this.#now())
    ) {
      return token;
    }
    this.#login ??= this.#logIn().finally(() => {
      this.#login = undefined;
    });
    return this.#login;
  }

  async #logIn(): Promise<CachedToken> {
    const data = await this.#send('auth.login', {}, `Basic ${this.#basicAuth}`);
    if (typeof data.token !== 'string' || data.token === '') {
      throw new ClearmlError('auth.login returned no token', {
        endpoint: 'auth.login',
        kind: 'protocol',
        retriable: false,
      });
    }
    this.#token = { value: data.token, expiresAtMs: readJwtExpiryMs(data.token) };
    return this.#token;
  }

  async #send(
    endpoint: string,
    body: Record<string, unknown>,
    authorization: string,
  ): Promise<Record<string, unknown>> {
    const url = `${this.#apiUrl}/v${this.#apiVersion}/${endpoint}`;
    const startedMs = this.#now();
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.#timeoutMs);
    let status: number;
    let text: string;
    try {
      const response = await this.#fetch(url, {
        method: 'POST',
        headers: {
          authorization,
          'content-type': 'application/json',
          'x-clearml-client': 'clara-operator',
        },
        body: JSON.stringify(body),
        signal: controller.signal,
      });
      status = response.status;
      text = await response.text();
    } catch (err) {
      const failure = transportFailure(endpoint, err, controller.signal.aborted, this.#timeoutMs);
      this.#onRequest?.({ endpoint, code: failure.kind, durationMs: this.#now() - startedMs });
      throw failure;
    } finally {
      clearTimeout(timer);
    }
    const durationMs = this.#now() - startedMs;
    this.#onRequest?.({ endpoint, code: String(status), durationMs });
    this.#logger?.debug({ endpoint, status, durationMs }, 'clearml call');
    return parseEnvelope({ endpoint, status, text });
  }
}

function transportFailure(
  endpoint: string,
  err: unknown,
  timedOut: boolean,
  timeoutMs: number,
): ClearmlError {
  if (timedOut) {
    return new ClearmlUnavailableError(`no answer within ${timeoutMs} ms`, {
      endpoint,
      kind: 'timeout',
      retriable: true,
      cause: err,
    });
  }
  const reason = err instanceof Error ? err.message : String(err);
  return new ClearmlUnavailableError(`request failed: ${reason}`, {
    endpoint,
    kind: 'network',
    retriable: true,
    cause: err,
  });
}

/**
 * False only when the failure proves the server did not act on the request: the connection was
 * refused, or the answer was 503 (maintenance or no upstream). Everything else might have been
 * processed.
 */
function mayHaveReachedServer(err: ClearmlError): boolean {
  if (err.status === 503) return false;
  if (err.kind !== 'network') return true;
  const code = errnoCode(err.cause);
  return code !== 'ECONNREFUSED' && code !== 'ENOTFOUND' && code !== 'EAI_AGAIN';
}

function errnoCode(err: unknown): string | undefined {
  // undici reports the socket error as the `cause` of its TypeError('fetch failed').
  for (let e = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = (e as Error & { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** Reads `exp` (seconds) from a JWT's payload without verifying it; undefined if absent. */
function readJwtExpiryMs(token: string): number | undefined {
  const payload = token.split('.')[1];
  if (payload === undefined) return undefined;
  try {
    const claims: unknown = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    const exp = (claims as { exp?: unknown }).exp;
    return typeof exp === 'number' ? exp * 1000 : undefined;
  } catch {
    // Not a JWT: rely on the re-login on 401 instead of an expiry time.
    return undefined;
  }
}
