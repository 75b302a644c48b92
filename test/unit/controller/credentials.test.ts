import { describe, expect, test } from '@jest/globals';
import type * as k8s from '@kubernetes/client-node';

import { parseClaraInstance } from '../../../src/api/clarainstance.ts';
import {
  ClearmlClients,
  connectionFromSecret,
  credentialsSecretName,
} from '../../../src/controller/clarainstance/credentials.ts';
import { claraInstance } from '../../fixtures/clara-instance.ts';
import type { Overrides } from '../../fixtures/clara-instance.ts';

const REF = { namespace: 'ml', name: 'clearml' };
const b64 = (s: string) => Buffer.from(s).toString('base64');

function secret(data: Record<string, string>): k8s.V1Secret {
  return { data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])) };
}

const GOOD = {
  CLEARML_API_HOST: 'https://api.clearml.example',
  CLEARML_WEB_HOST: 'https://app.clearml.example',
  CLEARML_API_ACCESS_KEY: 'ACCESSKEY',
  CLEARML_API_SECRET_KEY: 'very-secret',
};

describe('connectionFromSecret', () => {
  test('reads the server and keys', () => {
    expect(connectionFromSecret(secret(GOOD), REF)).toEqual({
      apiUrl: 'https://api.clearml.example',
      webUrl: 'https://app.clearml.example',
      accessKey: 'ACCESSKEY',
      secretKey: 'very-secret',
    });
  });

  test.each([
    {
      given: 'no Secret',
      secret: undefined,
      reason: 'CredentialsSecretMissing',
      want: 'Secret ml/clearml does not exist',
    },
    {
      given: 'no secret key',
      secret: secret({ ...GOOD, CLEARML_API_SECRET_KEY: '' }),
      reason: 'CredentialsInvalid',
      want: 'Secret ml/clearml has no CLEARML_API_SECRET_KEY',
    },
    {
      given: 'an API host that is no URL',
      secret: secret({ ...GOOD, CLEARML_API_HOST: 'clearml:8008' }),
      reason: 'CredentialsInvalid',
      want: 'key CLEARML_API_HOST is not an http(s) URL',
    },
  ])('names the problem with $given, and no value', ({ secret: s, reason, want }) => {
    const got = connectionFromSecret(s, REF);
    expect(got).toMatchObject({ reason });
    expect((got as { message: string }).message).toContain(want);
    expect(JSON.stringify(got)).not.toContain('very-secret');
  });
});

describe('credentialsSecretName', () => {
  const parse = (o: Overrides) => {
    const r = parseClaraInstance(claraInstance(o));
    if (!r.ok) throw new Error('fixture');
    return r.value;
  };

  test.each([
    {
      given: 'the instance Secret',
      spec: { clearml: { secretRef: { name: 'own' } } },
      fallback: 'dflt',
      want: 'own',
    },
    { given: 'the default', spec: {}, fallback: 'dflt', want: 'dflt' },
  ])('uses $given', ({ spec, fallback, want }) => {
    expect(credentialsSecretName(parse({ spec }), fallback)).toBe(want);
  });

  test('asks for a Secret when neither is set', () => {
    expect(credentialsSecretName(parse({}), undefined)).toMatchObject({
      reason: 'CredentialsNotConfigured',
    });
  });
});

describe('ClearmlClients', () => {
  test('shares one client per server and key pair', () => {
    const clients = new ClearmlClients();
    const conn = { apiUrl: 'http://a', webUrl: undefined, accessKey: 'k', secretKey: 's' };
    expect(clients.clientFor(conn)).toBe(clients.clientFor({ ...conn }));
    expect(clients.clientFor({ ...conn, secretKey: 'rotated' })).not.toBe(clients.clientFor(conn));
    expect(clients.size).toBe(2);
  });
});
