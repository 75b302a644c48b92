// A scripted fetch for client unit tests: each request is recorded, and answered by the first
// matching reply in the script (or by a handler). No sockets, no real time.
export interface RecordedRequest {
  url: string;
  endpoint: string;
  authorization: string;
  body: Record<string, unknown>;
}

export type Reply =
  | { status: number; body: unknown }
  | { status: number; text: string }
  | { networkError: string; code?: string }
  | { hang: true };

/** Builds a ClearML envelope the way the server does (HTTP status = result_code). */
export function envelope(
  data: unknown,
  opts: { code?: number; subcode?: number; msg?: string } = {},
): { status: number; body: unknown } {
  const code = opts.code ?? 200;
  return {
    status: code,
    body: {
      meta: {
        id: 'call',
        trx: 'call',
        endpoint: { name: 'x', requested_version: '2.23', actual_version: '2.1' },
        result_code: code,
        result_subcode: opts.subcode ?? 0,
        result_msg: opts.msg ?? (code === 200 ? 'OK' : 'failed'),
        error_stack: null,
        error_data: {},
      },
      data: code === 200 ? data : {},
    },
  };
}

/** A JWT-shaped token whose payload carries `exp` (seconds); the signature is not checked. */
export function fakeJwt(expSeconds: number, id = 'a'): string {
  const part = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${part({ alg: 'HS256' })}.${part({ exp: expSeconds, id })}.sig`;
}

export class FakeServer {
  readonly requests: RecordedRequest[] = [];
  readonly handlers = new Map<string, ((req: RecordedRequest) => Reply)[]>();

  /** Queues replies for one endpoint; the last one repeats forever. */
  on(endpoint: string, ...replies: (Reply | ((req: RecordedRequest) => Reply))[]): this {
    this.handlers.set(
      endpoint,
      replies.map((r) => (typeof r === 'function' ? r : () => r)),
    );
    return this;
  }

  calls(endpoint: string): RecordedRequest[] {
    return this.requests.filter((r) => r.endpoint === endpoint);
  }

  readonly fetch = async (input: unknown, init?: RequestInit): Promise<Response> => {
    const url = String(input);
    const endpoint = url.slice(url.lastIndexOf('/') + 1);
    const headers = new Headers(init?.headers);
    const req: RecordedRequest = {
      url,
      endpoint,
      authorization: headers.get('authorization') ?? '',
      body: JSON.parse(String(init?.body ?? '{}')) as Record<string, unknown>,
    };
    this.requests.push(req);
    const queue = this.handlers.get(endpoint);
    if (!queue || queue.length === 0) throw new Error(`no reply scripted for ${endpoint}`);
    const reply = (queue.length > 1 ? queue.shift() : queue[0])!(req);
    if ('hang' in reply) {
      return new Promise((_, reject) => {
        init?.signal?.addEventListener('abort', () =>
          reject(new DOMException('aborted', 'AbortError')),
        );
      });
    }
    if ('networkError' in reply) {
      const cause = Object.assign(new Error(reply.networkError), { code: reply.code });
      throw new TypeError('fetch failed', { cause });
    }
    const text = 'text' in reply ? reply.text : JSON.stringify(reply.body);
    return new Response(text, { status: reply.status });
  };
}
