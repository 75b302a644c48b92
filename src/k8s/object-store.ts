/**
 * The in-memory cache a reflector fills: the latest known state of every watched object, keyed
 * by `namespace/name` (or `name` for cluster-scoped objects), as client-go's cache keys them.
 *
 * Only the reflector writes to a store; everything else reads it through {@link ObjectStoreView}.
 * Objects are kept exactly as the API server sent them and must not be mutated by readers.
 */
import type * as k8s from '@kubernetes/client-node';

/**
 * The cache key of an object: `namespace/name`, or `name` when it has no namespace. Throws if
 * the object has no name (the API server never sends one without).
 */
export function objectKey(obj: k8s.KubernetesObject): string {
  const name = obj.metadata?.name;
  if (!name) throw new Error('object without metadata.name has no cache key');
  const namespace = obj.metadata?.namespace;
  return namespace ? `${namespace}/${name}` : name;
}

/** Splits a cache key into namespace (undefined for cluster-scoped) and name. Pure. */
export function splitObjectKey(key: string): { namespace: string | undefined; name: string } {
  const slash = key.indexOf('/');
  if (slash < 0) return { namespace: undefined, name: key };
  return { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

/** Read access to a store. */
export interface ObjectStoreView<T extends k8s.KubernetesObject> {
  /** The object under `key`, or undefined. */
  get(key: string): T | undefined;
  /** All objects, in no particular order. */
  list(): T[];
  /** All keys, in no particular order. */
  keys(): string[];
  /** Number of objects. */
  readonly size: number;
}

/** A mutable store; see the module comment for who may write. */
export class ObjectStore<T extends k8s.KubernetesObject> implements ObjectStoreView<T> {
  readonly #objects = new Map<string, T>();

  get(key: string): T | undefined {
    return this.#objects.get(key);
  }

  list(): T[] {
    return [...this.#objects.values()];
  }

  keys(): string[] {
    return [...this.#objects.keys()];
  }

  get size(): number {
    return this.#objects.size;
  }

  /** Stores `obj` under its key and returns the object it replaced, if any. */
  put(obj: T): T | undefined {
    const key = objectKey(obj);
    const previous = this.#objects.get(key);
    this.#objects.set(key, obj);
    return previous;
  }

  /** Removes the object under `key` and returns it, if there was one. */
  remove(key: string): T | undefined {
    const previous = this.#objects.get(key);
    this.#objects.delete(key);
    return previous;
  }
}
