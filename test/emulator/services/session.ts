/**
 * Endpoints about the session and the server itself: `auth.login`, `debug.ping`, `server.info`,
 * `users.get_current_user`.
 */
import type { EndpointDef } from '../endpoint.ts';

/** Server release the emulator claims to be (its API level is in `emulator.ts`). */
export const EMULATED_SERVER_VERSION = '2.0.0';

/** Every session endpoint the emulator serves. */
export function sessionEndpoints(maxApiVersion: string): EndpointDef[] {
  return [
    {
      name: 'auth.login',
      minVersion: '2.1',
      handler: (ctx) => {
        const requested = ctx.data.expiration_sec;
        return {
          token: ctx.issueToken({
            expirationSec: typeof requested === 'number' ? requested : undefined,
            identity: ctx.identity,
          }),
        };
      },
    },
    {
      name: 'debug.ping',
      minVersion: '2.9',
      authorize: false,
      handler: () => ({ msg: 'ClearML server' }),
    },
    {
      name: 'server.info',
      minVersion: '2.1',
      handler: () => ({
        version: EMULATED_SERVER_VERSION,
        build: 'emulator',
        commit: 'emulator',
        uid: 'clara-operator-emulator',
        api_version: maxApiVersion,
      }),
    },
    {
      name: 'users.get_current_user',
      minVersion: '2.1',
      handler: (ctx) => ({
        user: {
          id: ctx.identity.user,
          name: ctx.state.userName,
          given_name: 'Emulator',
          family_name: 'User',
          role: ctx.identity.role,
          company: { id: ctx.state.company, name: 'emulator' },
          created: '2024-01-01T00:00:00+00:00',
          preferences: {},
        },
        getting_started: {},
        settings: {},
      }),
    },
  ];
}
