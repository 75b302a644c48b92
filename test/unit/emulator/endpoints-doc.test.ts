import { readFileSync } from 'node:fs';

import { afterAll, beforeAll, expect, test } from '@jest/globals';

import { startEmulator, type RunningEmulator } from '../../emulator/emulator.ts';

let emulator: RunningEmulator;
beforeAll(async () => {
  emulator = await startEmulator();
});
afterAll(async () => {
  await emulator.stop();
});

test('ENDPOINTS.md lists exactly the registered endpoints with their minimum versions', () => {
  const doc = readFileSync(new URL('../../emulator/ENDPOINTS.md', import.meta.url), 'utf8');
  const documented = [...doc.matchAll(/^\| `([a-z_]+\.[a-z_]+)` +\| ([\d.]+) +\|/gm)].map(
    (m) => `${m[1]} ${m[2]}`,
  );
  const registered = emulator.registry.list().map((e) => `${e.name} ${e.versions.join(', ')}`);
  expect(documented).toEqual(registered);
});
