/**
 * Strings from a ClaraInstance or ClearML never become markup: the list page escapes them, task
 * links only point at http(s), the pages forbid inline script, and the instance page's script
 * renders with text nodes only.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';

import { escapeHtml, safeHref } from '../../../src/web/html.ts';
import { INSTANCE_PAGE_SCRIPT } from '../../../src/web/instance-page-script.ts';
import { instance, serve } from './serve.ts';
import type { ServedApp } from './serve.ts';

const EVIL = '<img src=x onerror="alert(1)">&\'';
let app: ServedApp;

beforeAll(async () => {
  app = await serve([
    instance(`ns${EVIL}`, `run${EVIL}`, { taskId: `t${EVIL}`, phase: `P${EVIL}` }),
    instance('team-a', 'js-link', { taskUrl: 'javascript:alert(1)' }),
  ]);
});

afterAll(async () => {
  await app.close();
});

describe('the list page', () => {
  test('escapes namespace, name, phase and task id', async () => {
    const html = await (await fetch(`${app.url}/`)).text();
    expect(html).not.toContain('<img');
    expect(html).toContain('run&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;&#39;');
    expect(html).toContain('href="/instances/ns%3Cimg');
  });

  test('does not link a task URL that is not http(s)', async () => {
    const html = await (await fetch(`${app.url}/`)).text();
    expect(html).not.toContain('javascript:');
  });

  test('is served with a policy that forbids inline script', async () => {
    const res = await fetch(`${app.url}/`);
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self';");
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
  });
});

test('the instance page escapes the instance it names', async () => {
  const path = `/instances/${encodeURIComponent(`ns${EVIL}`)}/${encodeURIComponent(`run${EVIL}`)}`;
  const res = await fetch(app.url + path);
  const html = await res.text();
  expect(res.status).toBe(200);
  expect(html).not.toContain('<img');
  expect(html).toContain('data-name="run&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;&#39;"');
});

test('the instance page script never assigns HTML', () => {
  expect(INSTANCE_PAGE_SCRIPT).not.toMatch(
    /innerHTML|outerHTML|insertAdjacentHTML|document\.write/,
  );
  expect(INSTANCE_PAGE_SCRIPT).toContain('textContent');
});

describe('escapeHtml', () => {
  test.each([
    ['<b>', '&lt;b&gt;'],
    ['a & b', 'a &amp; b'],
    [`"x" 'y'`, '&quot;x&quot; &#39;y&#39;'],
    [42, '42'],
  ])('%p becomes %p', (given, want) => {
    expect(escapeHtml(given)).toBe(want);
  });
});

describe('safeHref', () => {
  test.each([
    [
      'https://app.clear.ml/projects/*/experiments/abc',
      'https://app.clear.ml/projects/*/experiments/abc',
    ],
    ['http://localhost:8080/x', 'http://localhost:8080/x'],
    ['javascript:alert(1)', undefined],
    ['data:text/html,<b>', undefined],
    ['/relative/path', undefined],
    [undefined, undefined],
  ])('%p gives %p', (given, want) => {
    expect(safeHref(given)).toBe(want);
  });
});
