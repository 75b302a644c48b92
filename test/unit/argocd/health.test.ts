// Runs the Argo CD health check (deploy/argocd/health.lua) over the cases of its health_test.yaml,
// Argo CD's own test format, three ways: under gopher-lua, the Lua VM Argo CD embeds, opened with
// the libraries Argo CD opens (test/unit/argocd/gopher, built with Go from the module proxy), and
// under Debian's lua5.1 (gopher-lua's dialect) and lua5.4 through deploy/argocd/run_health.lua,
// for people without Go. CI installs the Debian ones (apt-get install lua5.1 lua5.4).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { parse } from 'yaml';

import { claraInstanceSchema } from '../../../src/api/clarainstance.ts';
import { PHASES } from '../../../src/api/clarainstance-status.ts';

const DIR = join(import.meta.dirname, '../../../deploy/argocd');
const HEALTH_LUA = join(DIR, 'health.lua');
const RUNNER = join(DIR, 'run_health.lua');
const GOPHER_DIR = join(import.meta.dirname, 'gopher');
const RUNNERS = ['gopher-lua', 'lua5.1', 'lua5.4'] as const;
type RunnerName = (typeof RUNNERS)[number];
const BUILD_TIMEOUT_MS = 5 * 60_000;

// The gopher-lua runner, built once into a temporary directory.
const binDir = mkdtempSync(join(tmpdir(), 'clara-argocd-gopher-'));
const GOPHER_RUNNER = join(binDir, 'argocd-health-runner');

beforeAll(() => {
  const build = spawnSync('go', ['build', '-o', GOPHER_RUNNER, '.'], {
    cwd: GOPHER_DIR,
    encoding: 'utf8',
  });
  if (build.error) throw new Error('cannot run go (Go 1.26 or later)', { cause: build.error });
  if (build.status !== 0) throw new Error(`go build in ${GOPHER_DIR}:\n${build.stderr}`);
}, BUILD_TIMEOUT_MS);

afterAll(() => rmSync(binDir, { recursive: true, force: true }));

/** One case of health_test.yaml. */
interface HealthCase {
  inputPath: string;
  healthStatus: { status: string; message?: string };
}

// Inputs that this release's CRD refuses on purpose (a phase from a newer operator).
const BEYOND_THE_CRD = new Set(['testdata/unknown_phase.yaml']);

const cases = (
  parse(readFileSync(join(DIR, 'health_test.yaml'), 'utf8')) as { tests: HealthCase[] }
).tests;
const inputOf = (c: HealthCase) =>
  parse(readFileSync(join(DIR, c.inputPath), 'utf8')) as Record<string, unknown>;

/** A Lua table constructor for a value decoded from YAML (what Argo CD hands its Lua VM). */
function luaLiteral(value: unknown): string {
  if (value === null || value === undefined) return 'nil';
  if (typeof value === 'boolean') return String(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`no Lua literal for ${value}`);
    return String(value);
  }
  if (typeof value === 'string') {
    // Decimal escapes only: Lua 5.1 has no \x or \u escapes.
    const escaped = [...value]
      .map((c) => {
        if (c === '\\' || c === '"') return `\\${c}`;
        const code = c.charCodeAt(0);
        return code < 0x20 ? `\\${String(code).padStart(3, '0')}` : c;
      })
      .join('');
    return `"${escaped}"`;
  }
  if (Array.isArray(value)) return `{${value.map(luaLiteral).join(', ')}}`;
  if (typeof value === 'object') {
    const fields = Object.entries(value).map(([k, v]) => `[${luaLiteral(k)}] = ${luaLiteral(v)}`);
    return `{${fields.join(', ')}}`;
  }
  throw new Error(`no Lua literal for a ${typeof value}`);
}

/** Runs `script` on `obj` with `runner`; returns the health or the interpreter's complaint. */
function runHealth(runner: RunnerName, script: string, obj: unknown) {
  const run =
    runner === 'gopher-lua'
      ? spawnSync(GOPHER_RUNNER, [script], { input: JSON.stringify(obj), encoding: 'utf8' })
      : spawnSync(runner, [RUNNER, script], { input: luaLiteral(obj), encoding: 'utf8' });
  if (run.error) {
    throw new Error(`cannot run ${runner} (apt-get install ${runner})`, { cause: run.error });
  }
  const [status = '', ...message] = run.stdout.split('\n');
  return { exit: run.status, status, message: message.join('\n'), stderr: run.stderr };
}

describe.each(RUNNERS)('health.lua under %s', (runner) => {
  test.each(cases.map((c) => [c.inputPath, c] as const))('%s', (_name, c) => {
    const result = runHealth(runner, HEALTH_LUA, inputOf(c));

    expect(result.stderr).toBe('');
    expect({ status: result.status, message: result.message }).toEqual({
      status: c.healthStatus.status,
      message: c.healthStatus.message ?? '',
    });
  });
});

describe('the health_test.yaml cases', () => {
  test('cover every phase, no status, a stale and a missing observedGeneration', () => {
    const inputs = cases.map(inputOf);
    const statusOf = (o: Record<string, unknown>) =>
      o.status as { phase?: string; observedGeneration?: number } | undefined;
    const generationOf = (o: Record<string, unknown>) =>
      (o.metadata as { generation: number }).generation;
    const current = inputs.filter((o) => statusOf(o)?.observedGeneration === generationOf(o));

    expect(new Set(current.map((o) => statusOf(o)?.phase))).toEqual(
      new Set([...PHASES, 'Archived']),
    );
    expect(inputs.some((o) => statusOf(o) === undefined)).toBe(true);
    expect(inputs.some((o) => (statusOf(o)?.observedGeneration ?? 0) < generationOf(o))).toBe(true);
    expect(inputs.some((o) => statusOf(o) && statusOf(o)?.observedGeneration === undefined)).toBe(
      true,
    );
    expect(new Set(cases.map((c) => c.healthStatus.status))).toEqual(
      new Set(['Healthy', 'Progressing', 'Degraded', 'Suspended', 'Unknown']),
    );
  });

  test('name every file under testdata/ once', () => {
    const named = cases.map((c) => c.inputPath).sort();
    const files = readdirSync(join(DIR, 'testdata')).map((f) => `testdata/${f}`);

    expect(named).toEqual(files.sort());
  });

  test.each(cases.filter((c) => !BEYOND_THE_CRD.has(c.inputPath)).map((c) => [c.inputPath]))(
    '%s is a ClaraInstance the operator could have written',
    (inputPath) => {
      const parsed = claraInstanceSchema.safeParse(
        inputOf({ inputPath, healthStatus: { status: '' } }),
      );

      expect(parsed.error?.issues ?? []).toEqual([]);
    },
  );
});

describe('each runner holds a check to what Argo CD allows', () => {
  const obj = {
    metadata: { generation: 1 },
    status: { phase: 'Completed', observedGeneration: 1 },
  };
  const dir = mkdtempSync(join(tmpdir(), 'clara-argocd-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs a health script made of `body` under `runner`. */
  const runBody = (runner: RunnerName, body: string) => {
    const path = join(dir, `${runner}.lua`);
    writeFileSync(path, body);
    return runHealth(runner, path, obj);
  };

  test.each(
    RUNNERS.flatMap((runner) => [
      { runner, uses: 'the string library', body: 'return { status = string.upper("healthy") }' },
      { runner, uses: 'string methods', body: 'local s = "ok"; return { status = s:upper() }' },
      { runner, uses: 'the io library', body: 'io.write("x"); return { status = "Healthy" }' },
      { runner, uses: 'the math library', body: 'return { status = "Healthy", n = math.abs(1) }' },
      { runner, uses: 'an unknown status', body: 'return { status = "Fine" }' },
      { runner, uses: 'a string result', body: 'return "Healthy"' },
    ]),
  )('$runner fails a check that uses $uses', ({ runner, body }) => {
    expect(runBody(runner, body).exit).toBe(1);
  });

  test.each(RUNNERS)('%s runs a check that uses only what Argo CD gives', (runner) => {
    const body =
      'local t = {}; table.insert(t, tostring(os.time() ~= nil)); return { status = "Healthy", message = t[1] }';

    expect(runBody(runner, body)).toEqual({
      exit: 0,
      status: 'Healthy',
      message: 'true',
      stderr: '',
    });
  });

  test.each([
    { runner: 'gopher-lua', exit: 1 },
    { runner: 'lua5.1', exit: 1 },
    { runner: 'lua5.4', exit: 0 },
  ] as const)('$runner exits $exit on Lua 5.3 integer division', ({ runner, exit }) => {
    const body = 'return { status = "Healthy", message = tostring(7 // 2) }';

    expect(runBody(runner, body).exit).toBe(exit);
  });
});
