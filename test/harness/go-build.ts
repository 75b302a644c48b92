/**
 * Builds, and caches, the Go programs the test harness runs: the control plane under
 * `test/controlplane`, kwok from the Go module proxy, and helm from its own module under
 * `test/helm` (kept apart from the control plane's, whose k8s.io versions differ).
 *
 * A binary is stored under a key made of everything that decides its bytes (go.mod, go.sum, the
 * Go sources, the Go version, the build flags), so a second start reuses it in milliseconds and
 * any change to those inputs builds a new one. Go's own module and build caches are left where
 * Go keeps them, so a rebuild after a small change is incremental. A cold build takes minutes:
 * it prints a progress line at least every PROGRESS_INTERVAL_MS instead of staying silent.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { HarnessError, USE_EXISTING_HINT } from './errors.ts';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CONTROLPLANE_DIR = join(REPO_ROOT, 'test', 'controlplane');
export const HELM_DIR = join(REPO_ROOT, 'test', 'helm');

/** kwok release installed from the Go module proxy; pinned so every machine runs the same one. */
export const KWOK_VERSION = 'v0.8.0';

/** The Kubernetes release the control plane is built from, as pinned in its go.mod. */
export function kubernetesVersion(): string {
  const gomod = readFileSync(join(CONTROLPLANE_DIR, 'go.mod'), 'utf8');
  const match = /^\s*k8s\.io\/kubernetes (v1\.(\d+)\.\d+)\s*$/m.exec(gomod);
  if (!match?.[1] || !match[2])
    throw new HarnessError('test/controlplane/go.mod does not pin k8s.io/kubernetes');
  return match[1];
}

/**
 * Build flags: stripped, reproducible paths, and the release stamped into the version packages
 * the way Kubernetes' own build does, so `kubectl version` and the apiserver's /version report it.
 */
function buildFlags(): string[] {
  const version = kubernetesVersion();
  const minor = version.split('.')[1] ?? '';
  const stamp = (pkg: string) => [
    `-X ${pkg}.gitVersion=${version}`,
    `-X ${pkg}.gitMajor=1`,
    `-X ${pkg}.gitMinor=${minor}`,
    `-X ${pkg}.gitTreeState=clean`,
  ];
  const ldflags = [
    '-s',
    '-w',
    ...stamp('k8s.io/component-base/version'),
    ...stamp('k8s.io/client-go/pkg/version'),
  ];
  return ['-trimpath', `-ldflags=${ldflags.join(' ')}`];
}

const KWOK_BUILD_FLAGS = ['-trimpath', '-ldflags=-s -w'];
const PROGRESS_INTERVAL_MS = 15_000;
const BUILD_TIMEOUT_MS = 45 * 60_000;

export interface BuildOptions {
  /** Root of the harness cache; default `$CLARA_CACHE_DIR` or `~/.cache/clara-operator`. */
  cacheDir?: string;
  /** Where progress lines go; default stderr. */
  log?: (line: string) => void;
  /** Environment for the go command; default process.env. For tests of the error paths. */
  env?: NodeJS.ProcessEnv;
}

export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.CLARA_CACHE_DIR ?? join(homedir(), '.cache', 'clara-operator');
}

const stderrLog = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

/**
 * Returns the path of the control-plane binary, building it first when no binary for the current
 * inputs is cached. Throws HarnessError, with one line naming what is missing, when Go or the
 * module proxy cannot be used.
 */
export async function ensureControlPlaneBinary(opts: BuildOptions = {}): Promise<string> {
  return ensureModuleBinary(opts, {
    label: 'controlplane',
    moduleDir: CONTROLPLANE_DIR,
    binaryName: 'clara-controlplane',
    flags: buildFlags(),
    target: '.',
    what: 'the control plane',
  });
}

/** The helm release built from the Go module pinned in test/helm/go.mod. */
export function helmVersion(): string {
  const gomod = readFileSync(join(HELM_DIR, 'go.mod'), 'utf8');
  const match = /^\s*helm\.sh\/helm\/v4 (v4\.\d+\.\d+)\b/m.exec(gomod);
  if (!match?.[1]) throw new HarnessError('test/helm/go.mod does not pin helm.sh/helm/v4');
  return match[1];
}

/** helm's build flags: stripped, and its release stamped where `helm version` reads it. */
function helmBuildFlags(): string[] {
  const pkg = 'helm.sh/helm/v4/internal/version';
  const ldflags = [
    '-s',
    '-w',
    `-X ${pkg}.version=${helmVersion()}`,
    `-X ${pkg}.gitTreeState=clean`,
  ];
  return ['-trimpath', `-ldflags=${ldflags.join(' ')}`];
}

/**
 * Returns the path of the helm binary of the release test/helm/go.mod pins, building it (from
 * the Go module proxy, in its own module) when none is cached for the current inputs. Throws
 * HarnessError as {@link ensureControlPlaneBinary} does.
 */
export async function ensureHelmBinary(opts: BuildOptions = {}): Promise<string> {
  return ensureModuleBinary(opts, {
    label: 'helm',
    moduleDir: HELM_DIR,
    binaryName: 'helm',
    flags: helmBuildFlags(),
    target: 'helm.sh/helm/v4/cmd/helm',
    what: `helm ${helmVersion()}`,
    exclusive: true,
  });
}

/** One program built from a Go module of this repository. */
interface ModuleBinary {
  /** Prefix of log lines and name of its folder in the cache. */
  label: string;
  moduleDir: string;
  binaryName: string;
  flags: string[];
  /** Package to build, relative to the module (`.`) or by import path. */
  target: string;
  /** What is built, for log lines and errors. */
  what: string;
  /**
   * Several jest workers may ask for it at once (helm: unit and integration tests alike); with
   * this, one builds while the others wait for its binary instead of building it too.
   */
  exclusive?: boolean;
}

async function ensureModuleBinary(opts: BuildOptions, spec: ModuleBinary): Promise<string> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? stderrLog;
  const goVersion = requireGo(env);
  const key = moduleCacheKey(spec.moduleDir, spec.flags, goVersion);
  const dir = join(opts.cacheDir ?? defaultCacheDir(env), spec.label, key);
  const binary = join(dir, spec.binaryName);
  if (existsSync(binary)) {
    return binary;
  }

  if (spec.exclusive) {
    const release = await lockBuild(dir, binary, { what: spec.what, log });
    if (release === undefined) return binary;
    try {
      return await buildModuleBinary(spec, { env, log, key, dir, binary });
    } finally {
      release();
    }
  }
  return buildModuleBinary(spec, { env, log, key, dir, binary });
}

async function buildModuleBinary(
  spec: ModuleBinary,
  opts: {
    env: NodeJS.ProcessEnv;
    log: (line: string) => void;
    key: string;
    dir: string;
    binary: string;
  },
): Promise<string> {
  const { env, log, key, dir, binary } = opts;
  log(`[${spec.label}] no cached binary for key ${key}; building (a cold build takes minutes)`);
  const startedMs = Date.now();
  await runGo(['mod', 'download'], {
    cwd: spec.moduleDir,
    env,
    log,
    what: `downloading Go modules for ${spec.what}`,
  });
  mkdirSync(dir, { recursive: true });
  const partial = `${binary}.partial-${process.pid}`;
  await runGo(['build', '-v', ...spec.flags, '-o', partial, spec.target], {
    cwd: spec.moduleDir,
    env,
    log,
    what: `building ${spec.what}`,
  });
  // Rename last, so an interrupted build never leaves a binary that looks complete.
  renameSync(partial, binary);
  log(`[${spec.label}] built in ${formatMs(Date.now() - startedMs)}: ${binary}`);
  return binary;
}

/**
 * Takes the build lock of `dir` (a file holding the builder's pid), waiting while a live process
 * holds it. Resolves with the function that releases it, or with undefined when `binary`
 * appeared meanwhile (another process built it). A lock left by a dead process is taken over.
 */
async function lockBuild(
  dir: string,
  binary: string,
  opts: { what: string; log: (line: string) => void },
): Promise<(() => void) | undefined> {
  mkdirSync(dir, { recursive: true });
  const lock = join(dir, 'build.lock');
  let lastLogMs = Date.now();
  for (;;) {
    if (existsSync(binary)) return undefined;
    try {
      writeFileSync(lock, String(process.pid), { flag: 'wx' });
      const release = () => rmSync(lock, { force: true });
      // The holder before us may have finished between the check above and taking the lock.
      if (!existsSync(binary)) return release;
      release();
      return undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = Number(readFileSync(lock, 'utf8').trim() || '0');
    if (!isAlive(holder)) {
      rmSync(lock, { force: true });
      continue;
    }
    if (Date.now() - lastLogMs >= PROGRESS_INTERVAL_MS) {
      opts.log(`[go] waiting for process ${holder}, which is building ${opts.what}`);
      lastLogMs = Date.now();
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Returns the path of the pinned kwok binary, installing it from the module proxy if needed. */
export async function ensureKwokBinary(opts: BuildOptions = {}): Promise<string> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? stderrLog;
  const goVersion = requireGo(env);
  const key = hash([KWOK_VERSION, goVersion, ...KWOK_BUILD_FLAGS]);
  const dir = join(opts.cacheDir ?? defaultCacheDir(env), 'kwok', `${KWOK_VERSION}-${key}`);
  const binary = join(dir, 'kwok');
  if (existsSync(binary)) {
    return binary;
  }

  log(`[kwok] installing sigs.k8s.io/kwok ${KWOK_VERSION} from the Go module proxy`);
  const tmp = `${dir}.partial-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  await runGo(['install', ...KWOK_BUILD_FLAGS, `sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}`], {
    cwd: tmp,
    env: { ...env, GOBIN: tmp },
    log,
    what: `installing kwok ${KWOK_VERSION}`,
  });
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return binary;
}

/** The cache key of the control-plane binary: a digest of every input that decides its bytes. */
export function controlPlaneCacheKey(goVersion: string): string {
  return moduleCacheKey(CONTROLPLANE_DIR, buildFlags(), goVersion);
}

/** The cache key of the helm binary, made the same way. */
export function helmCacheKey(goVersion: string): string {
  return moduleCacheKey(HELM_DIR, helmBuildFlags(), goVersion);
}

function moduleCacheKey(moduleDir: string, flags: string[], goVersion: string): string {
  const files = readdirSync(moduleDir)
    .filter((name) => name === 'go.mod' || name === 'go.sum' || name.endsWith('.go'))
    .sort();
  const parts = [goVersion, process.platform, process.arch, ...flags];
  for (const name of files) {
    parts.push(name, readFileSync(join(moduleDir, name), 'utf8'));
  }
  return hash(parts);
}

function hash(parts: string[]): string {
  const h = createHash('sha256');
  for (const part of parts) {
    h.update(part).update('\0');
  }
  return h.digest('hex').slice(0, 16);
}

/** Returns `go version` output, or throws a HarnessError saying Go is missing. */
function requireGo(env: NodeJS.ProcessEnv): string {
  const result = spawnSync('go', ['version'], { env, encoding: 'utf8', timeout: 30_000 });
  if (result.error || result.status !== 0) {
    const reason = result.error ? result.error.message : result.stderr.trim();
    throw new HarnessError(
      `Go is not available (${reason}); the test control plane is built from the Kubernetes ` +
        `Go modules and needs Go >= 1.26 on PATH. ${USE_EXISTING_HINT}`,
    );
  }
  return result.stdout.trim();
}

interface RunGoOptions {
  cwd: string;
  env: NodeJS.ProcessEnv;
  log: (line: string) => void;
  what: string;
}

/**
 * Runs one go command, printing a progress line every PROGRESS_INTERVAL_MS with the number of
 * packages built so far (from `-v`) and failing with the command's last output lines.
 */
function runGo(args: string[], opts: RunGoOptions): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const startedMs = Date.now();
    const child = spawn('go', args, {
      cwd: opts.cwd,
      env: opts.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const tail: string[] = [];
    let packages = 0;
    let lastLine = '';
    const onData = (chunk: Buffer): void => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line.trim()) continue;
        lastLine = line.trim();
        if (!line.startsWith('go: ') && !line.includes(' ')) packages += 1;
        tail.push(line);
        if (tail.length > 20) tail.shift();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);

    const progress = setInterval(() => {
      const elapsed = formatMs(Date.now() - startedMs);
      const detail =
        packages > 0 ? `${packages} packages compiled, last ${lastLine}` : lastLine || 'working';
      opts.log(`[go] ${opts.what}: ${elapsed} elapsed, ${detail}`);
    }, PROGRESS_INTERVAL_MS);
    const timeout = setTimeout(() => {
      child.kill('SIGKILL');
    }, BUILD_TIMEOUT_MS);

    child.on('error', (err) => {
      clearInterval(progress);
      clearTimeout(timeout);
      reject(
        new HarnessError(`${opts.what}: could not run go: ${err.message}. ${USE_EXISTING_HINT}`),
      );
    });
    child.on('close', (code, signal) => {
      clearInterval(progress);
      clearTimeout(timeout);
      if (code === 0) {
        resolvePromise();
        return;
      }
      const why = signal
        ? `killed by ${signal} after ${formatMs(Date.now() - startedMs)}`
        : `exit ${code}`;
      const proxy = opts.env.GOPROXY ?? 'the default GOPROXY';
      const networkHint = tail.some((l) =>
        /dial tcp|no such host|connection refused|i\/o timeout|403|404/.test(l),
      )
        ? ` The Go module proxy (${proxy}) did not answer; check GOPROXY and the network.`
        : '';
      reject(
        new HarnessError(
          `${opts.what} failed (${why}): ${tail.slice(-5).join(' | ')}.${networkHint} ${USE_EXISTING_HINT}`,
        ),
      );
    });
  });
}

export function formatMs(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}
