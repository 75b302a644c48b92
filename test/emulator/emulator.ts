/**
 * The ClearML API emulator: an in-memory stand-in for clearml-server (API on one port, files
 * server on another) with the real envelope, auth, versioned paths and error codes, so the
 * operator's client, the `clearml` SDK and `clearml-agent` can all run against it.
 *
 * Embeddable (`startEmulator`) and runnable alone (`main.ts`). Unknown endpoints answer 404 as
 * the real server does and are recorded in `unknownCalls`, so tests can fail on them.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

import { ApiError, errors } from './api-error.ts';
import {
  EndpointRegistry,
  formatVersion,
  parseVersion,
  RawResult,
  type CallContext,
  type Version,
} from './endpoint.ts';
import { FaultInjector, type Fault } from './faults.ts';
import { handleFilesRequest } from './files-server.ts';
import { signJwt, verifyJwt } from './jwt.ts';
import { eventEndpoints } from './services/events.ts';
import { modelEndpoints } from './services/models.ts';
import { projectEndpoints } from './services/projects.ts';
import { queueEndpoints } from './services/queues.ts';
import { sessionEndpoints, EMULATED_SERVER_VERSION } from './services/session.ts';
import { taskEndpoints } from './services/tasks.ts';
import { workerEndpoints } from './services/workers.ts';
import { SimulatedWorker, type WorkerBehaviour, type WorkerOptions } from './simulated-worker.ts';
import { EmulatorState } from './state.ts';

/** Highest API version served; an unversioned path means this one (server 2.0 / v1.17 level). */
export const EMULATED_MAX_API_VERSION = '2.31';

/** Default credentials, as in the docs' examples for a local server. */
export const DEFAULT_CREDENTIALS = {
  accessKey: 'EMULATORACCESSKEY',
  secretKey: 'emulator-secret-key',
};

/**
 * Endpoints clients probe that the open-source clearml-server does not serve either (checked
 * against clearml/clearml-server @ 0b769d4): answered 404 like every unknown endpoint, but
 * recorded in `absentCalls` instead of `unknownCalls`, because the real server fails them too
 * and the clients are built to carry on.
 */
export const ABSENT_FROM_OPEN_SOURCE_SERVER: ReadonlySet<string> = new Set([
  // clearml-agent's daemon asks for dynamic-GPU runtime properties (an enterprise feature)
  // and treats 404 as "not supported".
  'workers.get_runtime_properties',
]);

/** Default token lifetime (`apiserver.auth.default_expiration_sec`). */
const DEFAULT_EXPIRATION_SEC = 2_592_000;

/** Options of {@link startEmulator}. */
export interface EmulatorOptions {
  /** API port (0 = any free port). */
  port?: number;
  /** Files-server port (0 = any free port). */
  filesPort?: number;
  /** Interface to listen on (default 127.0.0.1). */
  host?: string;
  /** Accepted key pairs (default {@link DEFAULT_CREDENTIALS}). */
  credentials?: { accessKey: string; secretKey: string }[];
  /** Injected clock for status timeouts and dates. */
  now?: () => number;
  /** Receives one line per API call with its body (cut to 2000 chars), for debugging. */
  trace?: (line: string) => void;
}

/** A call the emulator did not know: an endpoint (or a files-server route) it answered 404/405 to. */
export interface UnknownCall {
  service: 'api' | 'files';
  endpoint: string;
  version?: string;
}

/** One answered API call, for tests that assert the sequence. */
export interface CallRecord {
  endpoint: string;
  version: string;
  status: number;
  subcode: number;
  /** result_msg of failed calls. */
  msg?: string;
}

/** A running emulator. */
export interface RunningEmulator {
  /** Base URL of the API server (same as `apiUrl`). */
  url: string;
  apiUrl: string;
  filesUrl: string;
  state: EmulatorState;
  unknownCalls: UnknownCall[];
  calls: CallRecord[];
  faults: FaultInjector;
  registry: EndpointRegistry;
  credentials: { accessKey: string; secretKey: string };
  /** Calls to endpoints listed in {@link ABSENT_FROM_OPEN_SOURCE_SERVER}. */
  absentCalls: UnknownCall[];
  /** Runs an endpoint in-process as the default user (used by the simulated worker). */
  dispatch: (endpoint: string, data: Record<string, unknown>) => Record<string, unknown>;
  /** Starts a simulated agent serving the named queues. */
  startWorker: (opts: Omit<WorkerOptions, 'dispatch' | 'state' | 'filesUrl'>) => SimulatedWorker;
  /** Stops workers and both servers. */
  stop: () => Promise<void>;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Query-string value conversion of the real server (`_apply_multi_dict`). */
function convertQueryValue(v: string): unknown {
  if (/^\d+(\.\d+)?$/.test(v))
    return v.includes('.') ? Number.parseFloat(v) : Number.parseInt(v, 10);
  if (['true', 'True', 'TRUE'].includes(v)) return true;
  if (['false', 'False', 'FALSE'].includes(v)) return false;
  return v;
}

function mergeQuery(body: Record<string, unknown>, params: URLSearchParams): void {
  for (const key of new Set(params.keys())) {
    const values = params.getAll(key).map(convertQueryValue);
    const value = values.length > 1 || key.endsWith('[]') ? values : values[0];
    const path = key.replace(/\[\]$/, '').split('.');
    let cur = body;
    for (const part of path.slice(0, -1)) {
      if (typeof cur[part] !== 'object' || cur[part] === null) cur[part] = {};
      cur = cur[part] as Record<string, unknown>;
    }
    cur[path[path.length - 1]!] = value;
  }
}

const PATH_RE = /^\/?(?:v(\d+\.?\d+)\/)?([a-zA-Z_]\w+\.[a-zA-Z_]\w+)\/?$/;

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve((server.address() as AddressInfo).port));
  });
}

/**
 * Starts the emulator and resolves once both ports listen. The default queue `default` exists
 * (as on a fresh server). Call `stop()` to close everything.
 */
export async function startEmulator(opts: EmulatorOptions = {}): Promise<RunningEmulator> {
  const now = opts.now ?? Date.now;
  const state = new EmulatorState(now);
  const credentials = opts.credentials ?? [DEFAULT_CREDENTIALS];
  const tokenSecret = randomUUID();
  const maxVersion = parseVersion(EMULATED_MAX_API_VERSION)!;
  const registry = new EndpointRegistry();
  registry.register(
    ...sessionEndpoints(EMULATED_MAX_API_VERSION),
    ...taskEndpoints,
    ...queueEndpoints,
    ...workerEndpoints,
    ...projectEndpoints,
    ...eventEndpoints,
    ...modelEndpoints,
  );
  const faults = new FaultInjector();
  const unknownCalls: UnknownCall[] = [];
  const absentCalls: UnknownCall[] = [];
  const calls: CallRecord[] = [];
  const workers: SimulatedWorker[] = [];
  const defaultIdentity = { user: state.user, company: state.company, role: 'user' };

  const issueToken: CallContext['issueToken'] = ({ expirationSec, identity }) => {
    const iat = Math.floor(now() / 1000);
    return signJwt(
      {
        env: '<unknown>',
        iat,
        exp: iat + (expirationSec ?? DEFAULT_EXPIRATION_SEC),
        api_version: EMULATED_MAX_API_VERSION,
        server_version: EMULATED_SERVER_VERSION,
        server_build: 'emulator',
        feature_set: 'basic',
        session_id: randomUUID().replaceAll('-', ''),
        identity: { ...identity, company_name: 'emulator', user_name: state.userName },
      },
      tokenSecret,
    );
  };

  function authenticate(header: string | undefined): CallContext['identity'] {
    if (!header) throw errors.noCredentials();
    const [scheme, value = ''] = header.split(' ', 2);
    if (scheme?.toLowerCase() === 'bearer') {
      const claims = verifyJwt(value.trim(), tokenSecret);
      if (!claims) throw errors.invalidToken({}, 'invalid token');
      if (typeof claims.exp === 'number' && claims.exp * 1000 < now())
        throw errors.invalidToken({}, 'expired token');
      const identity = claims.identity as Partial<CallContext['identity']> | undefined;
      return { ...defaultIdentity, ...identity };
    }
    if (scheme?.toLowerCase() === 'basic') {
      const decoded = Buffer.from(value.trim(), 'base64').toString('utf8');
      const sep = decoded.indexOf(':');
      if (sep < 0) throw errors.badCredentials();
      const key = decoded.slice(0, sep);
      const secret = decoded.slice(sep + 1);
      if (!credentials.some((c) => c.accessKey === key && c.secretKey === secret))
        throw errors.invalidCredentials();
      return defaultIdentity;
    }
    throw errors.badAuthType();
  }

  function runHandler(
    name: string,
    version: Version,
    ctx: Omit<CallContext, 'version' | 'state' | 'issueToken'>,
  ): { data: Record<string, unknown> | RawResult; actual: Version } {
    const resolved = registry.resolve(name, version);
    if (!resolved) {
      const call = { service: 'api' as const, endpoint: name, version: formatVersion(version) };
      (ABSENT_FROM_OPEN_SOURCE_SERVER.has(name) ? absentCalls : unknownCalls).push(call);
      throw new ApiError(
        404,
        0,
        `Unable to find endpoint for name ${name} and version ${formatVersion(version)}`,
      );
    }
    const data = resolved.def.handler({ ...ctx, version, state, issueToken });
    return { data: data ?? {}, actual: resolved.actual };
  }

  function envelope(opts: {
    name: string;
    version: Version | undefined;
    actual: Version | undefined;
    trx: string;
    code: number;
    subcode: number;
    msg: string;
    data: unknown;
    errorData?: unknown;
  }): string {
    return JSON.stringify({
      meta: {
        id: opts.trx,
        trx: opts.trx,
        endpoint: {
          name: opts.name,
          requested_version: opts.version ? formatVersion(opts.version) : null,
          actual_version: opts.actual ? formatVersion(opts.actual) : null,
        },
        result_code: opts.code,
        result_subcode: opts.subcode,
        result_msg: opts.msg,
        error_stack: null,
        error_data: opts.errorData ?? {},
      },
      data: opts.data,
    });
  }

  async function handleApi(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.setHeader('server', 'clearml');
    if (req.method === 'OPTIONS') return void res.writeHead(200).end();
    if (req.headers['content-encoding']) {
      return void res
        .writeHead(415)
        .end(`Content encoding is not supported (${req.headers['content-encoding']})`);
    }
    const url = new URL(req.url ?? '/', 'http://api');
    if (url.pathname.startsWith('/_emulator/')) return handleAdmin(req, res, url.pathname);
    const trxHeader = req.headers['x-clearml-trx'] ?? req.headers['x-trains-trx'];
    const trx = typeof trxHeader === 'string' ? trxHeader : randomUUID().replaceAll('-', '');
    const match = PATH_RE.exec(url.pathname);
    let name = '';
    let version: Version | undefined = undefined;
    let actual: Version | undefined;
    const body = await readBody(req);
    const send = (
      code: number,
      subcode: number,
      msg: string,
      data: unknown,
      errorData?: unknown,
    ) => {
      calls.push({
        endpoint: name,
        version: version ? formatVersion(version) : '',
        status: code,
        subcode,
        ...(code === 200 ? {} : { msg }),
      });
      res.writeHead(code, { 'content-type': 'application/json; charset=utf-8' });
      res.end(envelope({ name, version, actual, trx, code, subcode, msg, data, errorData }));
    };
    if (!match) return send(400, 0, `Invalid request path ${url.pathname}`, {});
    name = match[2]!;
    version = match[1] ? parseVersion(match[1]) : maxVersion;
    if (!version) return send(400, 2, `Request path has invalid version: version=${match[1]}`, {});

    const fault = faults.take(name);
    const before = fault && !fault.afterHandling ? fault : undefined;
    if (before?.latencyMs) await new Promise((r) => setTimeout(r, before.latencyMs));
    if (before?.drop) return void req.socket.destroy();
    if (fault?.status)
      return send(fault.status, fault.subcode ?? 0, fault.message ?? 'Injected fault', {});

    try {
      // As the server: resolve the endpoint first (unknown → 404 even without credentials), then
      // authenticate, then read the body.
      let identity = defaultIdentity;
      const resolved = registry.resolve(name, version);
      actual = resolved?.actual;
      if (resolved && resolved.def.authorize !== false) {
        const cookie = /(?:^|;\s*)clearml_token_basic=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
        identity = authenticate(
          req.headers.authorization ?? (cookie ? `Bearer ${cookie}` : undefined),
        );
      }
      let data: Record<string, unknown> = {};
      let batch: Record<string, unknown>[] | undefined;
      const contentType = String(req.headers['content-type'] ?? '');
      const text = body.toString('utf8');
      if (contentType.startsWith('application/json-lines')) {
        batch = text
          .split(/\r?\n/)
          .filter((l) => l.trim() !== '')
          .map((l) => JSON.parse(l) as Record<string, unknown>);
      } else if (text.trim() !== '') {
        const parsed: unknown = JSON.parse(text);
        if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed))
          data = parsed as Record<string, unknown>;
      }
      mergeQuery(data, url.searchParams);
      opts.trace?.(`${name} ${JSON.stringify(batch ?? data).slice(0, 2000)}`);
      const workerHeader = req.headers['x-clearml-worker'] ?? req.headers['x-trains-worker'];
      const result = runHandler(name, version, {
        data,
        batch,
        worker: typeof workerHeader === 'string' ? workerHeader : undefined,
        identity,
      });
      actual = result.actual;
      if (fault?.afterHandling) {
        if (fault.latencyMs) await new Promise((r) => setTimeout(r, fault.latencyMs));
        if (fault.drop) return void req.socket.destroy();
      }
      if (result.data instanceof RawResult) {
        calls.push({ endpoint: name, version: formatVersion(version), status: 200, subcode: 0 });
        const headers: Record<string, string> = { 'content-type': result.data.contentType };
        if (result.data.filename)
          headers['content-disposition'] = `attachment; filename=${result.data.filename}`;
        return void res.writeHead(200, headers).end(result.data.body);
      }
      return send(200, 0, 'OK', result.data);
    } catch (err) {
      if (err instanceof ApiError)
        return send(err.code, err.subcode, err.message, {}, err.errorData);
      if (err instanceof SyntaxError)
        return send(400, 0, `Failed to decode JSON object: ${err.message}`, {});
      return send(500, 0, err instanceof Error ? err.message : String(err), {});
    }
  }

  /**
   * Test-only routes outside the ClearML path space (the real server would answer 400): read
   * the call log and unknown calls, set or clear faults, start a simulated worker.
   */
  async function handleAdmin(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
  ): Promise<void> {
    const body = (await readBody(req)).toString('utf8');
    const input = (body.trim() === '' ? {} : JSON.parse(body)) as Record<string, unknown>;
    const reply = (status: number, data: unknown) =>
      void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(data));
    switch (path) {
      case '/_emulator/calls':
        return reply(200, { unknownCalls, absentCalls, calls });
      case '/_emulator/faults':
        if (typeof input.endpoint !== 'string')
          return reply(400, { error: 'endpoint is required' });
        if (input.clear === true) faults.clear(input.endpoint);
        else faults.set(input.endpoint, input as Fault);
        return reply(200, {});
      case '/_emulator/workers': {
        const queues = Array.isArray(input.queues) ? (input.queues as string[]) : ['default'];
        const worker = startWorker({
          queues,
          behaviour: (input.behaviour ?? {}) as Partial<WorkerBehaviour>,
        });
        return reply(200, { id: worker.id });
      }
      default:
        return reply(404, { error: `unknown admin route ${path}` });
    }
  }

  const sockets = new Set<Socket>();
  const track = (server: Server) =>
    server.on('connection', (s: Socket) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
  const apiServer = track(
    createServer((req, res) => {
      handleApi(req, res).catch((err: unknown) => {
        res.writeHead(500).end(`Failed processing request: ${String(err)}`);
      });
    }),
  );
  const filesServer = track(
    createServer((req, res) => {
      readBody(req)
        .then((body) =>
          handleFilesRequest({
            state,
            req,
            res,
            body,
            record: (endpoint) => unknownCalls.push({ service: 'files', endpoint }),
          }),
        )
        .catch((err: unknown) => res.writeHead(500).end(String(err)));
    }),
  );
  const host = opts.host ?? '127.0.0.1';
  const apiPort = await listen(apiServer, opts.port ?? 0, host);
  const filesPort = await listen(filesServer, opts.filesPort ?? 0, host);
  const urlHost = host === '0.0.0.0' ? '127.0.0.1' : host;
  const apiUrl = `http://${urlHost}:${apiPort}`;
  const filesUrl = `http://${urlHost}:${filesPort}`;

  const dispatch = (endpoint: string, data: Record<string, unknown>): Record<string, unknown> => {
    const result = runHandler(endpoint, maxVersion, {
      data,
      batch: undefined,
      worker: undefined,
      identity: defaultIdentity,
    });
    calls.push({ endpoint, version: EMULATED_MAX_API_VERSION, status: 200, subcode: 0 });
    return result.data instanceof RawResult ? {} : result.data;
  };

  function startWorker(
    workerOpts: Omit<WorkerOptions, 'dispatch' | 'state' | 'filesUrl'>,
  ): SimulatedWorker {
    const worker = new SimulatedWorker({ ...workerOpts, dispatch, state, filesUrl });
    workers.push(worker);
    worker.start();
    return worker;
  }

  return {
    url: apiUrl,
    apiUrl,
    filesUrl,
    state,
    unknownCalls,
    absentCalls,
    calls,
    faults,
    registry,
    credentials: credentials[0]!,
    dispatch,
    startWorker,
    stop: async () => {
      await Promise.all(workers.map((w) => w.stop()));
      for (const s of sockets) s.destroy();
      await Promise.all([
        new Promise<void>((r) => apiServer.close(() => r())),
        new Promise<void>((r) => filesServer.close(() => r())),
      ]);
    },
  };
}
