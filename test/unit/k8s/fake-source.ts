/**
 * A scripted ReflectorSource for unit tests: lists answer from a queue of replies, and each
 * watch call becomes a FakeWatch the test drives by hand (emit events, close, fail).
 */
import type * as k8s from '@kubernetes/client-node';

import type {
  ListRequest,
  ListResult,
  ReflectorSource,
  WatchHandle,
  WatchRequest,
} from '../../../src/k8s/reflector.ts';

/** A minimal namespaced object with a resourceVersion. */
export function obj(name: string, resourceVersion: string, namespace = 'ns'): k8s.KubernetesObject {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace, resourceVersion } };
}

/** An HTTP failure as client-node's Watch reports it. */
export function httpError(statusCode: number): Error {
  return Object.assign(new Error(`HTTP ${statusCode}`), { statusCode });
}

export class FakeWatch implements WatchHandle {
  aborted = false;

  readonly request: WatchRequest;
  readonly #onEvent: (type: string, object: unknown) => void;
  readonly #onDone: (err?: unknown) => void;

  constructor(
    request: WatchRequest,
    onEvent: (type: string, object: unknown) => void,
    onDone: (err?: unknown) => void,
  ) {
    this.request = request;
    this.#onEvent = onEvent;
    this.#onDone = onDone;
  }

  abort(): void {
    this.aborted = true;
  }

  emit(type: string, object: unknown): void {
    this.#onEvent(type, object);
  }

  close(err?: unknown): void {
    this.#onDone(err);
  }
}

type ListReply = ListResult<k8s.KubernetesObject> | Error;

export class FakeSource implements ReflectorSource<k8s.KubernetesObject> {
  readonly listRequests: ListRequest[] = [];
  readonly watches: FakeWatch[] = [];
  #replies: ListReply[] = [];

  /** Queues the replies of the next lists, in order; an Error makes that list fail. */
  replyToLists(...replies: ListReply[]): this {
    this.#replies.push(...replies);
    return this;
  }

  async list(req: ListRequest): Promise<ListResult<k8s.KubernetesObject>> {
    this.listRequests.push(req);
    const reply = this.#replies.shift();
    if (reply === undefined) throw new Error('FakeSource: no list reply queued');
    if (reply instanceof Error) throw reply;
    return reply;
  }

  async watch(
    req: WatchRequest,
    onEvent: (type: string, object: unknown) => void,
    onDone: (err?: unknown) => void,
  ): Promise<WatchHandle> {
    const watch = new FakeWatch(req, onEvent, onDone);
    this.watches.push(watch);
    return watch;
  }

  /** The most recent watch; throws if none was started. */
  get lastWatch(): FakeWatch {
    const watch = this.watches.at(-1);
    if (!watch) throw new Error('FakeSource: no watch started');
    return watch;
  }
}
