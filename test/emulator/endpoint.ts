/**
 * The emulator's endpoint registry: each `service.action` has one or more implementations keyed
 * by the minimum API version they follow, resolved the way the real server's `service_repo`
 * does (highest min_version not above the requested version; none → 404).
 */
import type { EmulatorState } from './state.ts';

/** Parsed `MAJOR.MINOR` version. */
export type Version = readonly [number, number];

/** Parses `"2.23"` (or `"2"`); undefined for anything else. */
export function parseVersion(text: string): Version | undefined {
  const m = /^(\d+)(?:\.(\d+))?$/.exec(text);
  return m ? [Number(m[1]), Number(m[2] ?? 0)] : undefined;
}

/** Compares two versions like numbers. */
export function compareVersions(a: Version, b: Version): number {
  return a[0] - b[0] || a[1] - b[1];
}

/** Formats a version as the envelope's `requested_version` / `actual_version` strings. */
export function formatVersion(v: Version): string {
  return `${v[0]}.${v[1]}`;
}

/** What a handler sees. */
export interface CallContext {
  state: EmulatorState;
  /** JSON body merged with query-string fields. */
  data: Record<string, unknown>;
  /** Items of an `application/json-lines` body, if that was the content type. */
  batch: Record<string, unknown>[] | undefined;
  /** The version the client asked for. */
  version: Version;
  /** `X-Clearml-Worker` header, if sent. */
  worker: string | undefined;
  /** Identity of the caller (from the token or the Basic credentials). */
  identity: { user: string; company: string; role: string };
  /** Issues a token (used by auth.login). */
  issueToken: (opts: {
    expirationSec: number | undefined;
    identity: Record<string, unknown>;
  }) => string;
}

/** A non-envelope answer (file downloads). */
export class RawResult {
  readonly body: string | Buffer;
  readonly contentType: string;
  readonly filename: string | undefined;

  constructor(body: string | Buffer, contentType: string, filename?: string) {
    this.body = body;
    this.contentType = contentType;
    this.filename = filename;
  }
}

/** One implementation of an endpoint. */
export interface EndpointDef {
  name: string;
  /** Lowest API version this implementation serves. */
  minVersion: string;
  /** False for the few calls that need no credentials (debug.ping). */
  authorize?: boolean;
  handler: (ctx: CallContext) => Record<string, unknown> | RawResult | null;
}

/** Endpoint lookup by name and version. */
export class EndpointRegistry {
  readonly #byName = new Map<string, { min: Version; def: EndpointDef }[]>();

  /** Adds implementations; later registrations for the same name and version replace earlier. */
  register(...defs: EndpointDef[]): void {
    for (const def of defs) {
      const min = parseVersion(def.minVersion);
      if (!min) throw new Error(`bad version ${def.minVersion} for ${def.name}`);
      const list = (this.#byName.get(def.name) ?? []).filter(
        (e) => compareVersions(e.min, min) !== 0,
      );
      list.push({ min, def });
      list.sort((a, b) => compareVersions(b.min, a.min));
      this.#byName.set(def.name, list);
    }
  }

  /** The implementation serving `name` at `version`, with its min version, or undefined. */
  resolve(name: string, version: Version): { def: EndpointDef; actual: Version } | undefined {
    const found = this.#byName.get(name)?.find((e) => compareVersions(e.min, version) <= 0);
    return found ? { def: found.def, actual: found.min } : undefined;
  }

  /** All endpoint names with the min versions of their implementations (for ENDPOINTS.md). */
  list(): { name: string; versions: string[] }[] {
    return [...this.#byName.entries()]
      .map(([name, list]) => ({ name, versions: list.map((e) => formatVersion(e.min)).reverse() }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }
}
