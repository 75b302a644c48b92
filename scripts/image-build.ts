/**
 * Replays the Dockerfile without Docker (none runs on our machines): each stage gets a directory
 * that stands for its root filesystem, and the instructions run in order: WORKDIR makes a
 * directory, COPY copies from the build context (filtered by .dockerignore) or from an earlier
 * stage, RUN runs its command in the stage's working directory, ENV/USER/ENTRYPOINT are recorded.
 * What the base images bring is not replayed: RUN steps use this machine's npm with the repo's
 * Node 24 first on PATH, and the entrypoint's node is the repo's Node 24.
 *
 * The last stage's directory is the image's filesystem as far as the project puts things in it;
 * it is left read-only, as the operator sees it in the container. Because the steps come from the
 * Dockerfile itself, what is tested here cannot drift from what `docker build` does.
 *
 *   node_modules/.bin/node scripts/image-build.ts [--out DIR]
 *
 * prints the stages, the entrypoint and the size of what the runtime stage adds. Imported by
 * test/unit/image/, which starts the operator from the result.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join, posix, relative } from 'node:path';

export const REPO_ROOT = join(import.meta.dirname, '..');

/**
 * Where the stages go by default. Not under the repo's `.cache/`: express refuses to serve a file
 * whose path has a dot directory in it, so the web view's static files (node_modules/uplot), which
 * the image serves from /app, would fail here and nowhere else.
 */
export const DEFAULT_OUT_DIR = join(tmpdir(), 'clara-operator-image');

/** One instruction, continuation lines joined. `flags` are the leading `--name=value` options. */
export interface Instruction {
  keyword: string;
  flags: Record<string, string>;
  args: string;
  line: number;
}

/** A build stage: its base image, its name and its instructions. */
export interface Stage {
  name: string;
  from: string;
  instructions: Instruction[];
}

/** Reads a Dockerfile into stages. Comments and parser directives are dropped. */
export function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  const lines = text.split('\n').map((l) => l.trim());
  for (let i = 0; i < lines.length; i++) {
    const line = i + 1;
    let logical = lines[i] ?? '';
    if (logical === '' || logical.startsWith('#')) continue;
    while (logical.endsWith('\\') && i + 1 < lines.length) {
      const next = lines[++i] ?? '';
      logical = logical.slice(0, -1).trimEnd() + (next.startsWith('#') ? '' : ` ${next}`);
    }
    const [keyword = '', ...rest] = logical.split(/\s+/);
    const flags: Record<string, string> = {};
    for (let flag = rest[0]; flag?.startsWith('--'); flag = rest[0]) {
      const [name = '', value = ''] = flag.slice(2).split('=');
      flags[name] = value;
      rest.shift();
    }
    const instruction = { keyword: keyword.toUpperCase(), flags, args: rest.join(' '), line };
    if (instruction.keyword === 'FROM') {
      const [from = '', as, name] = rest;
      const named = as?.toUpperCase() === 'AS' && name !== undefined;
      stages.push({ name: named ? name : String(stages.length), from, instructions: [] });
    } else {
      const stage = stages.at(-1);
      if (!stage) throw new Error(`Dockerfile line ${line}: ${keyword} before the first FROM`);
      stage.instructions.push(instruction);
    }
  }
  return stages;
}

/** A .dockerignore rule. */
interface IgnoreRule {
  pattern: string;
  exclude: boolean;
}

/** Reads .dockerignore rules (comments and blank lines dropped, leading `/` and trailing `/` cut). */
export function parseDockerignore(text: string): IgnoreRule[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const exclude = !l.startsWith('!');
      const pattern = (exclude ? l : l.slice(1)).trim().replace(/^\/+|\/+$/g, '');
      return { pattern, exclude };
    });
}

/**
 * Whether a context path (relative, with `/`) reaches the build: the last rule matching the path
 * or one of its parent directories decides, as Docker's own matcher does.
 */
export function inContext(rules: IgnoreRule[], path: string): boolean {
  const parts = path.split('/');
  const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let included = true;
  for (const rule of rules) {
    const pattern = globRegExp(rule.pattern);
    if (prefixes.some((p) => pattern.test(p))) included = !rule.exclude;
  }
  return included;
}

/**
 * A .dockerignore pattern as a regular expression, with Go's filepath.Match meaning (`*` and `?`
 * stop at `/` but match a leading dot) plus Docker's `**` for any number of directories.
 */
function globRegExp(pattern: string): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] ?? '';
    if (c === '*' && pattern[i + 1] === '*') {
      out += '.*';
      i++;
    } else if (c === '*') {
      out += '[^/]*';
    } else if (c === '?') {
      out += '[^/]';
    } else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) throw new Error(`unclosed [ in .dockerignore pattern ${pattern}`);
      out += `[${pattern
        .slice(i + 1, end)
        .replace(/^\^/, '^')
        .replace(/^!/, '^')}]`;
      i = end;
    } else {
      out += c.replace(/[.+^${}()|\\]/g, '\\$&');
    }
  }
  return new RegExp(`^${out}$`);
}

/** What the last stage leaves: its root directory and how the container starts. */
export interface ImageResult {
  stages: Record<string, string>;
  root: string;
  workdir: string;
  entrypoint: string[];
  env: Record<string, string>;
  user: { uid: number; gid: number } | undefined;
  /** Every COPY, in order: stage, `from` (context or a stage), sources, destination. */
  copies: { stage: string; from: string; sources: string[]; dest: string }[];
}

interface StageState {
  root: string;
  workdir: string;
  env: Record<string, string>;
  user: string | undefined;
  entrypoint: string[];
}

/** Options of {@link buildImage}. */
export interface BuildOptions {
  /** Where stage directories go; emptied first. */
  outDir: string;
  context?: string;
  dockerfile?: string;
  /** Receives each step as it starts. */
  progress?: (line: string) => void;
}

/** Replays the Dockerfile; see the module comment. Throws naming the line of a failed step. */
export function buildImage(opts: BuildOptions): ImageResult {
  const context = opts.context ?? REPO_ROOT;
  const dockerfile = opts.dockerfile ?? join(context, 'Dockerfile');
  const ignorePath = join(context, '.dockerignore');
  const rules = existsSync(ignorePath) ? parseDockerignore(readFileSync(ignorePath, 'utf8')) : [];
  const stages = parseDockerfile(readFileSync(dockerfile, 'utf8'));
  makeWritable(opts.outDir);
  rmSync(opts.outDir, { recursive: true, force: true });

  const roots: Record<string, string> = {};
  const copies: ImageResult['copies'] = [];
  let state: StageState | undefined;
  for (const stage of stages) {
    const root = join(opts.outDir, stage.name);
    mkdirSync(root, { recursive: true });
    roots[stage.name] = root;
    state = { root, workdir: '/', env: {}, user: undefined, entrypoint: [] };
    opts.progress?.(`FROM ${stage.from} AS ${stage.name}`);
    for (const step of stage.instructions) {
      const flags = Object.entries(step.flags).map(([k, v]) => `--${k}=${v} `);
      opts.progress?.(`  ${step.keyword} ${flags.join('')}${step.args}`);
      try {
        runStep(step, state, { context, rules, roots, copies, stage: stage.name });
      } catch (err) {
        throw new Error(
          `Dockerfile line ${step.line} (${step.keyword}): ${(err as Error).message}`,
          {
            cause: err,
          },
        );
      }
    }
  }
  if (!state) throw new Error(`${dockerfile} has no FROM`);

  setReadOnly(state.root);
  const [uid, gid] = (state.user ?? '').split(':').map(Number);
  return {
    stages: roots,
    root: state.root,
    workdir: state.workdir,
    entrypoint: state.entrypoint,
    env: state.env,
    user: uid === undefined || Number.isNaN(uid) ? undefined : { uid, gid: gid ?? uid },
    copies,
  };
}

interface StepContext {
  context: string;
  rules: IgnoreRule[];
  roots: Record<string, string>;
  copies: ImageResult['copies'];
  stage: string;
}

function runStep(step: Instruction, state: StageState, ctx: StepContext): void {
  switch (step.keyword) {
    case 'WORKDIR':
      state.workdir = posix.resolve(state.workdir, step.args);
      mkdirSync(join(state.root, state.workdir), { recursive: true });
      return;
    case 'ENV':
      Object.assign(state.env, envPairs(step.args));
      return;
    case 'USER':
      state.user = step.args;
      return;
    case 'ENTRYPOINT':
      state.entrypoint = JSON.parse(step.args) as string[];
      return;
    case 'COPY':
      copy(step, state, ctx);
      return;
    case 'RUN':
      run(step.args, state);
      return;
    default:
      throw new Error(`${step.keyword} is not replayed; extend scripts/image-build.ts`);
  }
}

function copy(step: Instruction, state: StageState, ctx: StepContext): void {
  const unknown = Object.keys(step.flags).filter((f) => !['from', 'chown', 'link'].includes(f));
  if (unknown.length > 0) throw new Error(`COPY --${unknown.join(', --')} is not replayed`);
  const words = step.args.split(/\s+/);
  const sources = words.slice(0, -1);
  const dest = words.at(-1) ?? '';
  if (sources.length === 0) throw new Error('COPY needs a source and a destination');
  const from = step.flags.from;
  const target = join(state.root, posix.resolve(state.workdir, dest));
  const intoDirectory = sources.length > 1 || dest.endsWith('/');
  ctx.copies.push({ stage: ctx.stage, from: from ?? 'context', sources, dest });

  for (const source of sources) {
    let path: string;
    if (from !== undefined) {
      const stageRoot = ctx.roots[from];
      if (stageRoot === undefined) throw new Error(`no earlier stage ${from}`);
      path = join(stageRoot, posix.resolve(state.workdir, source));
    } else {
      if (isAbsolute(source) || source.split('/').includes('..')) {
        throw new Error(`${source} is outside the build context`);
      }
      if (!inContext(ctx.rules, posix.normalize(source))) {
        throw new Error(`${source} is excluded by .dockerignore`);
      }
      path = join(ctx.context, source);
    }
    if (!existsSync(path)) throw new Error(`${source} does not exist (${path})`);
    const isDirectory = statSync(path).isDirectory();
    const to = intoDirectory && !isDirectory ? join(target, basename(path)) : target;
    mkdirSync(isDirectory ? to : dirname(to), { recursive: true });
    cpSync(path, to, {
      recursive: true,
      verbatimSymlinks: true,
      filter: (p) =>
        from !== undefined ||
        lstatSync(p).isDirectory() ||
        inContext(ctx.rules, relative(ctx.context, p).split('\\').join('/')),
    });
  }
}

function run(command: string, state: StageState): void {
  // The stage directory only stands in for `/`: an absolute path would reach this machine's.
  if (/(^|[\s=:])\//.test(command)) {
    throw new Error('RUN with an absolute path cannot be replayed outside a container');
  }
  const cwd = join(state.root, state.workdir);
  const result = spawnSync('bash', ['-euo', 'pipefail', '-c', command], {
    cwd,
    env: runEnv(state.env),
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.error) throw result.error;
  if (result.status !== 0) {
    const output = `${result.stdout}${result.stderr}`.trim().split('\n').slice(-20).join('\n');
    throw new Error(`exit ${result.status}:\n${output}`);
  }
}

/**
 * The environment of a RUN step: this machine's, less what an enclosing npm script or jest set,
 * plus the stage's ENV, the repo's Node 24 first on PATH, and npm's cache before the registry.
 */
function runEnv(stageEnv: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^npm_/i.test(key) && key !== 'NODE_OPTIONS' && key !== 'INIT_CWD') env[key] = value;
  }
  return {
    ...env,
    ...stageEnv,
    PATH: `${join(REPO_ROOT, 'node_modules/.bin')}:${process.env.PATH ?? ''}`,
    npm_config_prefer_offline: 'true',
    npm_config_update_notifier: 'false',
  };
}

/** Every regular file under `dir` (symlinks not followed), relative to it. */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const entry of readdirSync(join(dir, rel), { withFileTypes: true })) {
      const path = rel === '' ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile()) out.push(path);
    }
  };
  walk('');
  return out;
}

/** Bytes of the regular files under `dir`. */
export function sizeBytes(dir: string): number {
  return listFiles(dir).reduce((sum, f) => sum + statSync(join(dir, f)).size, 0);
}

function setReadOnly(dir: string): void {
  chmodTree(dir, (mode) => mode & ~0o222);
}

function makeWritable(dir: string): void {
  if (existsSync(dir)) chmodTree(dir, (mode) => mode | 0o200);
}

// Changing a mode needs ownership, not write access to the directory, so order does not matter.
function chmodTree(path: string, change: (mode: number) => number): void {
  const stat = lstatSync(path);
  if (stat.isSymbolicLink()) return;
  chmodSync(path, change(stat.mode) & 0o7777);
  if (stat.isDirectory())
    for (const entry of readdirSync(path)) chmodTree(join(path, entry), change);
}

/** `ENV A=1 B=2` as a record; the `ENV KEY value` form is refused. */
function envPairs(args: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of args.split(/\s+/)) {
    const [key = '', ...value] = pair.split('=');
    if (value.length === 0) throw new Error('only the ENV KEY=value form is replayed');
    env[key] = value.join('=');
  }
  return env;
}

/**
 * How the image starts the operator, read from the Dockerfile's last stage without building it:
 * the node flags before the script, the script, and the environment. The benchmark starts the
 * operator this way, so it measures what ships.
 */
export function runtimeSettings(dockerfile = join(REPO_ROOT, 'Dockerfile')): {
  nodeFlags: string[];
  script: string;
  env: Record<string, string>;
} {
  const runtime = parseDockerfile(readFileSync(dockerfile, 'utf8')).at(-1);
  if (!runtime) throw new Error(`${dockerfile} has no stage`);
  const env: Record<string, string> = {};
  let entrypoint: string[] = [];
  for (const step of runtime.instructions) {
    if (step.keyword === 'ENV') Object.assign(env, envPairs(step.args));
    if (step.keyword === 'ENTRYPOINT') entrypoint = JSON.parse(step.args) as string[];
  }
  const [, ...args] = entrypoint;
  const scriptAt = args.findIndex((a) => !a.startsWith('-'));
  if (scriptAt < 0) throw new Error(`${dockerfile}: the ENTRYPOINT names no script`);
  return { nodeFlags: args.slice(0, scriptAt), script: args[scriptAt] ?? '', env };
}

/**
 * The repo's Node 24 binary at a path every user can reach, as the base image's /nodejs/bin/node
 * is: the checkout itself may sit in a directory only its owner may enter (mktemp -d makes 0700).
 */
function nodeForAnyUser(): string {
  const source = realpathSync(join(REPO_ROOT, 'node_modules/.bin/node'));
  const dir = join(tmpdir(), `clara-operator-node-${process.version}`);
  const target = join(dir, 'node');
  if (!existsSync(target)) {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    chmodSync(dir, 0o755);
    const partial = `${target}.${process.pid}`;
    copyFileSync(source, partial);
    chmodSync(partial, 0o755);
    renameSync(partial, target);
  }
  return target;
}

/** Options of {@link startEntrypoint}. */
export interface StartOptions {
  args?: string[];
  env?: NodeJS.ProcessEnv;
}

/**
 * Starts the image's entrypoint from its working directory, as the image's user when this
 * process may switch to it (it runs as root), else as the current user, for whom the
 * read-only tree is read-only too. The entrypoint's node (the base image's) is the repo's Node 24.
 */
export function startEntrypoint(image: ImageResult, opts: StartOptions = {}): ChildProcess {
  const [, ...args] = image.entrypoint;
  const user = process.getuid?.() === 0 ? image.user : undefined;
  const node = user ? nodeForAnyUser() : join(REPO_ROOT, 'node_modules/.bin/node');
  return spawn(node, [...args, ...(opts.args ?? [])], {
    cwd: join(image.root, image.workdir),
    env: { PATH: '/usr/bin:/bin', ...image.env, ...opts.env },
    ...(user && { uid: user.uid, gid: user.gid }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

function main(argv: string[]): void {
  const outIndex = argv.indexOf('--out');
  const outDir = (outIndex >= 0 ? argv[outIndex + 1] : undefined) ?? DEFAULT_OUT_DIR;
  const started = Date.now();
  const image = buildImage({ outDir, progress: (line) => console.log(line) });
  const app = join(image.root, image.workdir);
  const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
  console.log(`
runtime stage: ${image.root} (read-only), built in ${((Date.now() - started) / 1000).toFixed(0)} s
  entrypoint: ${JSON.stringify(image.entrypoint)} as ${image.user?.uid}:${image.user?.gid}
  ${app}: ${listFiles(app).length} files, ${mib(sizeBytes(app))} MiB
    node_modules ${mib(sizeBytes(join(app, 'node_modules')))} MiB, dist ${mib(sizeBytes(join(app, 'dist')))} MiB`);
}

if (import.meta.main) main(process.argv.slice(2));
