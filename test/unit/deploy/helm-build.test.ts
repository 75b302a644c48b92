// helm is built from its Go module like the control plane: cached by its inputs, one build at a
// time however many jest workers ask, and a missing Go toolchain named in one line.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, test } from '@jest/globals';

import { HarnessError } from '../../harness/errors.ts';
import { ensureHelmBinary, helmVersion } from '../../harness/go-build.ts';

const BUILD_TIMEOUT_MS = 20 * 60_000;
const cacheDir = mkdtempSync(join(tmpdir(), 'clara-helm-build-'));

afterAll(() => rmSync(cacheDir, { recursive: true, force: true }));

describe('the helm build', () => {
  test('without Go it fails with one line naming Go and the way out', async () => {
    const env = { ...process.env, PATH: '/nonexistent' };
    const err = await ensureHelmBinary({ env, cacheDir }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HarnessError);
    expect((err as HarnessError).message).toMatch(/^Go is not available/);
    expect((err as HarnessError).message).not.toContain('\n');
  });

  test(
    'callers at once share one build, and the binary is the pinned release',
    async () => {
      const lines: string[] = [];
      const log = (line: string) => lines.push(line);
      const paths = await Promise.all([
        ensureHelmBinary({ cacheDir, log }),
        ensureHelmBinary({ cacheDir, log }),
        ensureHelmBinary({ cacheDir, log }),
      ]);
      expect(new Set(paths).size).toBe(1);
      expect(lines.filter((l) => l.includes('no cached binary'))).toHaveLength(1);
      expect(await ensureHelmBinary({ cacheDir, log })).toBe(paths[0]);

      const version = spawnSync(paths[0]!, ['version', '--short'], { encoding: 'utf8' });
      expect(version.stdout.trim()).toBe(helmVersion());
      expect(helmVersion()).toBe('v4.3.2');
    },
    BUILD_TIMEOUT_MS,
  );
});
