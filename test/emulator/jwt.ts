/**
 * Bearer tokens of the emulator: real HS256 JWTs, because the SDK and the agent decode the
 * token's claims (`api_version`, `server_version`, `feature_set`) to pick their API level.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** The identity a token carries, as the real server's token payload does. */
export interface TokenIdentity {
  company: string;
  user: string;
  role: string;
  user_name: string;
  company_name: string;
}

/** Signs `claims` with `secret`. */
export function signJwt(claims: Record<string, unknown>, secret: string): string {
  const encode = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode(claims)}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

/** Returns the claims of a validly signed token, or undefined (bad shape or signature). */
export function verifyJwt(token: string, secret: string): Record<string, unknown> | undefined {
  const [header, payload, signature] = token.split('.');
  if (header === undefined || payload === undefined || signature === undefined) return undefined;
  const expected = createHmac('sha256', secret).update(`${header}.${payload}`).digest();
  const given = Buffer.from(signature, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
  try {
    return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<
      string,
      unknown
    >;
  } catch {
    return undefined;
  }
}
