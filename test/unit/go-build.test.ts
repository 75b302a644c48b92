import { describe, expect, test } from '@jest/globals';

import { ensureControlPlaneBinary, ensureKwokBinary, formatMs } from '../harness/go-build.ts';
import { HarnessError } from '../harness/errors.ts';

describe('go-build', () => {
  test.each([
    { name: 'control plane', ensure: ensureControlPlaneBinary },
    { name: 'kwok', ensure: ensureKwokBinary },
  ])(
    '$name: a missing Go toolchain fails with one line naming Go and the way out',
    async ({ ensure }) => {
      const env = { ...process.env, PATH: '/nonexistent' };
      const err = await ensure({ env, cacheDir: '/nonexistent-cache' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(HarnessError);
      const message = (err as HarnessError).message;
      expect(message).toMatch(/^Go is not available/);
      expect(message).toContain('CLARA_TEST_USE_EXISTING_CLUSTER=true');
      expect(message).not.toContain('\n');
    },
  );

  test('formats durations for progress lines', () => {
    expect([formatMs(4_400), formatMs(61_000), formatMs(605_000)]).toEqual([
      '4s',
      '1m01s',
      '10m05s',
    ]);
  });
});
