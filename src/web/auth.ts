/**
 * Who may read the web view. With a token configured, every request (pages, JSON, static files)
 * carries it, either as `Authorization: Bearer <token>` or, for pages opened in a browser, as a
 * `?token=` query parameter that the pages pass on to their links and fetches. Without a token
 * the view is open, which the entry point allows only on a loopback address.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

import type { NextFunction, Request, Response } from 'express';

/**
 * Express middleware that answers 401 unless the request carries `token`. Comparison is in
 * constant time over SHA-256 digests, so neither the token's content nor its length leaks
 * through timing.
 */
export function bearerAuth(token: string) {
  const want = digest(token);
  return (req: Request, res: Response, next: NextFunction): void => {
    const given = presentedToken(req);
    if (given !== undefined && timingSafeEqual(digest(given), want)) {
      next();
      return;
    }
    res
      .status(401)
      .set('www-authenticate', 'Bearer realm="clara-operator"')
      .type('text/plain')
      .send('unauthorized: send Authorization: Bearer <token> or ?token=<token>\n');
  };
}

/** The token a request presents: the Authorization header first, then `?token=`. */
export function presentedToken(req: Request): string | undefined {
  const header = req.get('authorization');
  const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (match) return match[1];
  const query = req.query.token;
  return typeof query === 'string' && query !== '' ? query : undefined;
}

/**
 * Throws when the web view would be served on a non-loopback `address` (`host:port`; an empty
 * host means all interfaces) without a token. The entry point calls it before listening, so a
 * misconfigured operator refuses to start instead of exposing its runs.
 */
export function requireTokenUnlessLocal(address: string, token: string | undefined): void {
  if (token !== undefined && token !== '') return;
  const host = address.slice(0, address.lastIndexOf(':'));
  if (isLoopbackHost(host)) return;
  throw new Error(
    `the web view would listen on ${address} (${host === '' ? 'all interfaces' : 'not loopback'}) ` +
      'without a token: set CLARA_WEB_TOKEN (16+ characters), or bind it to 127.0.0.1',
  );
}

/** Whether `host` names only this machine: `localhost`, 127.0.0.0/8 or ::1 (bracketed or not). */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return bare === 'localhost' || bare === '::1' || /^127(\.\d{1,3}){3}$/.test(bare);
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
