// Runs the Argo CD health check (deploy/argocd/health.lua) over the cases of its health_test.yaml,
// Argo CD's own test format, with Debian's Lua interpreters: lua5.1 speaks the dialect of Argo
// CD's gopher-lua, lua5.4 is today's Lua. CI installs both (apt-get install lua5.1 lua5.4).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, test } from '@jest/globals';
import { parse } from 'yaml';

import { claraInstanceSchema } from '../../../src/api/clarainstance.ts';
import { PHASES } from '../../../src/api/clarainstance-status.ts';

const DIR = join(import.meta.dirname, '../../../deploy/argocd');
const HEALTH_LUA = join(DIR, 'health.lua');
const RUNNER = join(DIR, 'run_health.lua');
const INTERPRETERS = ['lua5.1', 'lua5.4'];

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

/** Runs `script` on `obj` with `lua`; returns the health or the interpreter's complaint. */
function runHealth(lua: string, script: string, obj: unknown) {
  const run = spawnSync(lua, [RUNNER, script], { input: luaLiteral(obj), encoding: 'utf8' });
  if (run.error)
    throw new Error(`cannot run ${lua} (apt-get install ${lua})`, { cause: run.error });
  const [status = '', ...message] = run.stdout.split('\n');
  return { exit: run.status, status, message: message.join('\n'), stderr: run.stderr };
}

describe.each(INTERPRETERS)('health.lua under %s', (lua) => {
  test.each(cases.map((c) => [c.inputPath, c] as const))('%s', (_name, c) => {
    const result = runHealth(lua, HEALTH_LUA, inputOf(c));

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

describe('run_health.lua holds a check to what Argo CD allows', () => {
  const obj = {
    metadata: { generation: 1 },
    status: { phase: 'Completed', observedGeneration: 1 },
  };
  const dir = mkdtempSync(join(tmpdir(), 'clara-argocd-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs a health script made of `body` under `lua`. */
  const runBody = (lua: string, body: string) => {
    const path = join(dir, 'health.lua');
    writeFileSync(path, body);
    return runHealth(lua, path, obj);
  };

  test.each(
    INTERPRETERS.flatMap((lua) => [
      { lua, uses: 'the string library', body: 'return { status = string.upper("healthy") }' },
      { lua, uses: 'string methods', body: 'local s = "Healthy"; return { status = s:sub(1) }' },
      { lua, uses: 'the io library', body: 'io.write("x"); return { status = "Healthy" }' },
      { lua, uses: 'the math library', body: 'return { status = "Healthy", n = math.floor(1) }' },
      { lua, uses: 'an unknown status', body: 'return { status = "Fine" }' },
      { lua, uses: 'a string result', body: 'return "Healthy"' },
    ]),
  )('$lua fails a check that uses $uses', ({ lua, body }) => {
    expect(runBody(lua, body).exit).toBe(1);
  });

  test.each(INTERPRETERS)('%s runs a check that uses only what Argo CD gives', (lua) => {
    const body =
      'local t = {}; table.insert(t, tostring(os.time() > 0)); return { status = "Healthy", message = t[1] }';

    expect(runBody(lua, body)).toEqual({ exit: 0, status: 'Healthy', message: 'true', stderr: '' });
  });

  test('refuses Lua 5.2+ syntax under lua5.1, as gopher-lua does', () => {
    const body = 'local hs = { status = "Healthy" }\ngoto done\n::done::\nreturn hs';

    expect(runBody('lua5.4', body).exit).toBe(0);
    expect(runBody('lua5.1', body).exit).toBe(1);
  });
});
