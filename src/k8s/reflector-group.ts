/**
 * Reflectors for one kind over a set of namespaces, seen as one: a single namespace, a list
 * (one reflector per namespace, since a watch cannot select several), or all namespaces (one
 * cluster-wide reflector).
 *
 * Objects of different namespaces never share a key (`namespace/name`), so the group's store is
 * the union of its members' stores. Each member lists, watches, backs off and relists on its own;
 * one namespace failing does not hold up the others.
 */
import type * as k8s from '@kubernetes/client-node';

import { splitObjectKey, type ObjectStoreView } from './object-store.ts';
import { Reflector, type ReflectorOptions, type ReflectorStats } from './reflector.ts';

/** Which namespaces to watch: every namespace, or the ones listed. */
export type NamespaceScope = 'all' | readonly string[];

/** Options of {@link ReflectorGroup}: a reflector's, with `namespaces` instead of `namespace`. */
export interface ReflectorGroupOptions<T> extends Omit<ReflectorOptions<T>, 'namespace'> {
  namespaces: NamespaceScope;
}

/** A started set of reflectors with a combined store. */
export class ReflectorGroup<T extends k8s.KubernetesObject> {
  readonly #members: Map<string | undefined, Reflector<T>>;
  readonly store: ObjectStoreView<T>;

  /** Makes one reflector per namespace (or one for all). Throws for an empty namespace list. */
  constructor(opts: ReflectorGroupOptions<T>) {
    const { namespaces, ...shared } = opts;
    if (namespaces !== 'all' && namespaces.length === 0) {
      throw new RangeError('namespaces must be "all" or a non-empty list');
    }
    const scopes = namespaces === 'all' ? [undefined] : [...new Set(namespaces)];
    this.#members = new Map(
      scopes.map((ns) => [ns, new Reflector<T>({ ...shared, namespace: ns })]),
    );
    this.store = this.#unionStore();
  }

  /** Starts every member. Throws if called twice. */
  start(): void {
    for (const member of this.#members.values()) member.start();
  }

  /** Stops every member and resolves when all loops have exited. Idempotent. */
  async stop(): Promise<void> {
    await Promise.all([...this.#members.values()].map((m) => m.stop()));
  }

  /** True once every member has listed. */
  hasSynced(): boolean {
    return [...this.#members.values()].every((m) => m.hasSynced());
  }

  /** Resolves true once every member synced, false if the group was stopped first. */
  async waitForSync(): Promise<boolean> {
    const synced = await Promise.all([...this.#members.values()].map((m) => m.waitForSync()));
    return synced.every(Boolean);
  }

  /** The largest last-event age among members; undefined while any member has not listed. */
  lastEventAgeMs(): number | undefined {
    let oldest = 0;
    for (const member of this.#members.values()) {
      const age = member.lastEventAgeMs();
      if (age === undefined) return undefined;
      oldest = Math.max(oldest, age);
    }
    return oldest;
  }

  /** Per-namespace stats; the key is the namespace, or `*` for the cluster-wide reflector. */
  stats(): Record<string, ReflectorStats> {
    return Object.fromEntries(
      [...this.#members].map(([ns, member]) => [ns ?? '*', member.stats()]),
    );
  }

  #unionStore(): ObjectStoreView<T> {
    const members = this.#members;
    const all = () => [...members.values()].map((m) => m.store);
    return {
      get(key) {
        const namespace = splitObjectKey(key).namespace;
        const owner = members.get(namespace) ?? members.get(undefined);
        return owner?.store.get(key);
      },
      list: () => all().flatMap((s) => s.list()),
      keys: () => all().flatMap((s) => s.keys()),
      get size() {
        return all().reduce((sum, s) => sum + s.size, 0);
      },
    };
  }
}
