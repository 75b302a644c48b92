// The operator image without a container engine: scripts/image-build.ts replays the Dockerfile
// into a directory per stage, and these tests check the runtime stage's tree and start the
// operator from it, read-only and as the image's user (when the tests run as root, as CI does).
import { once } from 'node:events';
import {
  chmodSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';

import {
  buildImage,
  inContext,
  listFiles,
  parseDockerfile,
  parseDockerignore,
  REPO_ROOT,
  sizeBytes,
  runtimeSettings,
  startEntrypoint,
} from '../../../scripts/image-build.ts';
import type { ImageResult } from '../../../scripts/image-build.ts';
import { loadConfig } from '../../../src/config.ts';

/** What the runtime stage may add, in MiB: 40 today (docs/image.md). */
const SIZE_BUDGET_MIB = 50;
/** The image's user, fixed by the Deployment's securityContext. */
const IMAGE_USER = { uid: 65532, gid: 65532 };

const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
  version: string;
  devDependencies: Record<string, string>;
};
const lock = JSON.parse(readFileSync(join(REPO_ROOT, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, { dev?: boolean; optional?: boolean }>;
};
const stages = parseDockerfile(readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8'));

let outDir: string;
let image: ImageResult;
let app: string;

beforeAll(() => {
  outDir = mkdtempSync(join(tmpdir(), 'clara-image-'));
  image = buildImage({ outDir });
  app = join(image.root, image.workdir);
}, 300_000);

afterAll(() => {
  if (!outDir) return;
  for (const path of [outDir, ...listDirs(outDir)]) chmodSync(path, 0o755);
  rmSync(outDir, { recursive: true, force: true });
});

describe('the Dockerfile', () => {
  test('builds in stages and ends on distroless Node 24 as user 65532', () => {
    const runtime = stages.at(-1)!;

    expect(stages.map((s) => s.name)).toEqual(['build', 'deps', 'runtime']);
    expect(runtime.from).toBe('gcr.io/distroless/nodejs24-debian13:nonroot');
    expect(runtime.instructions.filter((i) => i.keyword === 'RUN')).toEqual([]);
    expect(image.user).toEqual(IMAGE_USER);
    expect(image.workdir).toBe('/app');
    expect(image.entrypoint).toEqual([
      '/nodejs/bin/node',
      '--max-semi-space-size=2',
      '--v8-pool-size=1',
      '--optimize-for-size',
      'dist/src/main.js',
    ]);
    expect(image.env).toMatchObject({ MALLOC_ARENA_MAX: '2', UV_THREADPOOL_SIZE: '2' });
    // What the benchmark reads to start the operator as the image does.
    expect(runtimeSettings()).toEqual({
      nodeFlags: image.entrypoint.slice(1, -1),
      script: image.entrypoint.at(-1),
      env: image.env,
    });
  });

  test('builds with the Node release the repo pins, by an exact tag', () => {
    const builders = stages.slice(0, -1).map((s) => s.from);

    expect(builders).toEqual([
      `node:${pkg.devDependencies.node}-trixie-slim`,
      `node:${pkg.devDependencies.node}-trixie-slim`,
    ]);
  });

  test('puts the launcher where --launcher-script points by default, from the working dir', () => {
    const launcherScript = loadConfig([], {}).launcherScript;

    expect(readFileSync(join(app, launcherScript), 'utf8')).toBe(
      readFileSync(join(REPO_ROOT, 'launcher/clara_launcher.py'), 'utf8'),
    );
  });
});

describe('.dockerignore', () => {
  const rules = parseDockerignore(readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8'));

  test.each([
    ['package-lock.json', true],
    ['src/main.ts', true],
    ['launcher/clara_launcher.py', true],
    ['launcher/test_clara_launcher.py', false],
    ['node_modules/zod/package.json', false],
    ['dist/src/main.js', false],
    ['.cache/fidelity-venv/bin/python', false],
    ['test/unit/config.test.ts', false],
  ])('%s in the build context: %s', (path, expected) => {
    expect(inContext(rules, path)).toBe(expected);
  });
});

describe('the runtime stage', () => {
  test('holds package.json, the compiled operator, the launcher and node_modules only', () => {
    const files = listFiles(app);

    expect(readdirSync(app).sort()).toEqual(['dist', 'launcher', 'node_modules', 'package.json']);
    expect(readdirSync(join(app, 'dist'))).toEqual(['src']);
    expect(files.filter((f) => f.startsWith('dist/') && !/\.js(\.map)?$/.test(f))).toEqual([]);
    expect(files).toContain('dist/src/main.js');
    expect(readdirSync(join(app, 'launcher'))).toEqual(['clara_launcher.py']);
  });

  test('has exactly the production packages of package-lock.json', () => {
    const staged = stagedPackages(app);
    const entries = Object.entries(lock.packages).filter(([key]) =>
      key.startsWith('node_modules/'),
    );
    const dev = entries.filter(([, p]) => p.dev).map(([key]) => key);
    const required = entries.filter(([, p]) => !p.dev && !p.optional).map(([key]) => key);
    const allowed = new Set(entries.filter(([, p]) => !p.dev).map(([key]) => key));

    expect(staged.filter((key) => !allowed.has(key))).toEqual([]);
    expect(required.filter((key) => !staged.includes(key))).toEqual([]);
    expect(dev.filter((key) => staged.includes(key))).toEqual([]);
    expect(staged).not.toContain('node_modules/node');
  });

  test('carries no Node binary of its own (the base image brings node)', () => {
    // A Node binary is an ELF executable of 100 MB and more; a few small native prebuilds are fine.
    const binaries = listFiles(join(app, 'node_modules')).filter((f) => {
      const path = join(app, 'node_modules', f);
      const elf = readFileSync(path).subarray(0, 4).toString('latin1') === '\x7fELF';
      return /(^|\/)node$/.test(f) || (elf && statSync(path).size > 10 * 1024 * 1024);
    });

    expect(binaries).toEqual([]);
  });

  test('is read-only to everyone', () => {
    const writable = [app, ...listDirs(app), ...listFiles(app).map((f) => join(app, f))].filter(
      (p) => (statSync(p).mode & 0o222) !== 0,
    );

    expect(writable).toEqual([]);
  });

  test(`stays within ${SIZE_BUDGET_MIB} MiB`, () => {
    const mib = sizeBytes(app) / 1024 / 1024;
    process.stdout.write(
      `runtime stage adds ${mib.toFixed(1)} MiB in ${listFiles(app).length} files\n`,
    );

    expect(mib).toBeLessThan(SIZE_BUDGET_MIB);
  });
});

describe('the entrypoint, from the read-only runtime stage', () => {
  test('prints the usage for --help and the version for --version', async () => {
    const help = await runToExit(['--help']);
    const version = await runToExit(['--version']);

    expect(help).toMatchObject({ code: 0, stderr: '' });
    expect(help.stdout).toMatch(/^clara-operator 0\.1\.0: /);
    expect(help.stdout).toContain('--launcher-script=VALUE');
    expect(version).toEqual({ code: 0, stdout: `clara-operator ${pkg.version}\n`, stderr: '' });
  });

  test('starts as the Deployment runs it, serves health, metrics and web view, stops on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'clara-image-run-'));
    chmodSync(dir, 0o755);
    const kubeconfig = join(dir, 'kubeconfig');
    // An apiserver nobody listens on: the operator must start and keep retrying.
    writeFileSync(kubeconfig, unreachableKubeconfig(), { mode: 0o644 });
    const [health, metrics, web] = await freePorts(3);
    const child = startEntrypoint(image, {
      // deploy/base/deployment.yaml's flags and environment, with local addresses.
      env: { POD_NAMESPACE: 'clara-system', NODE_OPTIONS: '--max-old-space-size=96' },
      args: [
        '--leader-elect',
        `--kubeconfig=${kubeconfig}`,
        `--health-address=127.0.0.1:${health}`,
        `--metrics-address=127.0.0.1:${metrics}`,
        `--web-address=127.0.0.1:${web}`,
      ],
    });
    const output = collect(child);
    try {
      await waitForStatus(`http://127.0.0.1:${health}/healthz`, 200, 15_000);

      expect(processUid(child.pid!)).toBe(
        process.getuid?.() === 0 ? IMAGE_USER.uid : process.getuid?.(),
      );
      expect((await fetch(`http://127.0.0.1:${metrics}/metrics`)).status).toBe(200);
      expect(await statusOf(`http://127.0.0.1:${web}/`)).toBe(200);
      expect(await statusOf(`http://127.0.0.1:${web}/static/uPlot.min.css`)).toBe(200);
    } finally {
      child.kill('SIGTERM');
      const [code] = (await once(child, 'exit')) as [number | null];
      rmSync(dir, { recursive: true, force: true });
      expect({ code, readOnlyErrors: output().match(/EACCES|EROFS|EPERM/g) ?? [] }).toEqual({
        code: 0,
        readOnlyErrors: [],
      });
    }
  });
});

/** Package directories under node_modules, nested ones included, as package-lock keys. */
function stagedPackages(root: string): string[] {
  const out: string[] = [];
  const visit = (modules: string) => {
    for (const name of readdirSync(join(root, modules))) {
      if (name.startsWith('.')) continue;
      const names = name.startsWith('@')
        ? readdirSync(join(root, modules, name)).map((n) => `${name}/${n}`)
        : [name];
      for (const n of names) {
        const key = `${modules}/${n}`;
        out.push(key);
        if (existsDir(join(root, key, 'node_modules'))) visit(`${key}/node_modules`);
      }
    }
  };
  visit('node_modules');
  return out.sort();
}

function existsDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    // Absent: no nested node_modules here.
    return false;
  }
}

function listDirs(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isDirectory())
    .map((e) => join(e.parentPath, e.name));
}

async function runToExit(args: string[]) {
  const child = startEntrypoint(image, { args });
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout!.on('data', (b: Buffer) => stdout.push(b));
  child.stderr!.on('data', (b: Buffer) => stderr.push(b));
  const [code] = (await once(child, 'exit')) as [number | null];
  return {
    code,
    stdout: Buffer.concat(stdout).toString('utf8'),
    stderr: Buffer.concat(stderr).toString('utf8'),
  };
}

function collect(child: ReturnType<typeof startEntrypoint>): () => string {
  const chunks: Buffer[] = [];
  child.stdout!.on('data', (b: Buffer) => chunks.push(b));
  child.stderr!.on('data', (b: Buffer) => chunks.push(b));
  return () => Buffer.concat(chunks).toString('utf8');
}

function processUid(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Uid:'));
  return Number(line?.split(/\s+/)[1]);
}

async function freePorts(count: number): Promise<number[]> {
  const servers = Array.from({ length: count }, () => createServer());
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', r))));
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

async function statusOf(url: string): Promise<number> {
  const res = await fetch(url);
  await res.arrayBuffer();
  return res.status;
}

async function waitForStatus(url: string, status: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    try {
      const got = await statusOf(url);
      if (got === status) return;
      last = `HTTP ${got}`;
    } catch (err) {
      // Not listening yet.
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not answer ${status} within ${timeoutMs} ms (last: ${last})`);
}

function unreachableKubeconfig(): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters: [{ name: none, cluster: { server: "https://127.0.0.1:9" } }]',
    'users: [{ name: none, user: { token: not-a-token } }]',
    'contexts: [{ name: none, context: { cluster: none, user: none } }]',
    'current-context: none',
    '',
  ].join('\n');
}
