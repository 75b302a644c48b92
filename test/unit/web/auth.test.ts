/**
 * The bearer token: with one configured, every route answers 401 without it and serves with it
 * in the Authorization header or `?token=`, which the pages carry on to their links and assets;
 * without one the view must stay on loopback.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';

import { requireTokenUnlessLocal } from '../../../src/web/index.ts';
import { instance, serve } from './serve.ts';
import type { ServedApp } from './serve.ts';

const TOKEN = 's3cret-t0ken';
let app: ServedApp;

beforeAll(async () => {
  app = await serve([instance('team-a', 'spleen')], { token: TOKEN });
});

afterAll(async () => {
  await app.close();
});

const ROUTES = [
  '/',
  '/instances/team-a/spleen',
  '/api/instances',
  '/api/instances/team-a/spleen',
  '/api/instances/team-a/spleen/scalars',
  '/api/instances/team-a/spleen/log',
  '/static/uPlot.iife.min.js',
  '/static/instance-page.js',
  '/no-such-page',
];

describe('with a token configured', () => {
  test.each(ROUTES)('%s is 401 without a token', async (path) => {
    const res = await fetch(app.url + path);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
  });

  test.each(ROUTES)('%s is 401 with a wrong token', async (path) => {
    const res = await fetch(app.url + path, { headers: { authorization: 'Bearer wrong' } });
    expect(res.status).toBe(401);
    expect((await fetch(`${app.url}${path}?token=${TOKEN}x`)).status).toBe(401);
  });

  test.each(ROUTES.slice(0, -1))('%s is served with the Bearer header', async (path) => {
    const res = await fetch(app.url + path, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
  });

  test('a page opened with ?token= passes it on to its links and assets', async () => {
    const list = await (await fetch(`${app.url}/?token=${TOKEN}`)).text();
    expect(list).toContain(`href="/instances/team-a/spleen?token=${TOKEN}"`);
    const page = await (await fetch(`${app.url}/instances/team-a/spleen?token=${TOKEN}`)).text();
    expect(page).toContain(`src="/static/uPlot.iife.min.js?token=${TOKEN}"`);
    expect(page).toContain(`href="/?token=${TOKEN}"`);
  });

  test('a non-Bearer Authorization scheme is refused', async () => {
    const basic = `Basic ${Buffer.from(`user:${TOKEN}`).toString('base64')}`;
    expect((await fetch(`${app.url}/`, { headers: { authorization: basic } })).status).toBe(401);
  });
});

test('without a token configured the routes are open', async () => {
  const open = await serve([instance('team-a', 'spleen')]);
  try {
    expect((await fetch(`${open.url}/api/instances`)).status).toBe(200);
  } finally {
    await open.close();
  }
});

describe('requireTokenUnlessLocal', () => {
  test.each(['127.0.0.1:8080', 'localhost:8080', '[::1]:8080', '127.1.2.3:0'])(
    'allows %s without a token',
    (address) => {
      expect(() => requireTokenUnlessLocal(address, undefined)).not.toThrow();
    },
  );

  test.each([':8080', '0.0.0.0:8080', '10.0.0.5:8080', '[::]:8080', 'example.com:80'])(
    'refuses %s without a token, naming the address',
    (address) => {
      expect(() => requireTokenUnlessLocal(address, undefined)).toThrow(address);
      expect(() => requireTokenUnlessLocal(address, '')).toThrow(/without a token/);
    },
  );

  test('allows any address with a token', () => {
    expect(() => requireTokenUnlessLocal(':8080', TOKEN)).not.toThrow();
  });
});
