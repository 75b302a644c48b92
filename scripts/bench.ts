/**
 * `npm run bench`: the operator at scale, printed as numbers and written to BENCHMARKS.md. Not a
 * test: it measures, compares with the targets of the design, and exits 1 when one is missed.
 *
 * For each size N (default 100, 1000, 5000): a fresh local control plane, a ClearML emulator
 * whose queue nobody serves (every run stays Queued, so all N tasks stay live and polled), the
 * operator as its own process, and N ClaraInstances (agent mode External: the subject is the
 * reconcile, ClearML and status path, not N fake pods). Measured:
 * - apply to enqueued latency (p50, p99) and the time until all N are enqueued;
 * - ClearML requests per poll interval at steady state (target ceil(N / 500) + 2);
 * - status writes per minute with nothing changing (target 0): every write request on
 *   ClaraInstances the apiserver counted (`apiserver_request_total`), so a write that changed
 *   nothing counts too;
 * - the operator's peak resident memory (target under 200 MB at 5000), the larger of the first
 *   run and the restart (which reads every task at once);
 * - the time to a full resync after a restart;
 * - requests per poll of a naive baseline (one tasks.get_all per instance), for the ratio.
 *
 * A size that cannot finish (a timeout, the operator exiting) stops the benchmark with exit 1,
 * as a missed target does; so does a measurement that cannot be trusted (no polling seen, no
 * writes counted while the instances were applied, no memory reading).
 *
 * Usage: see USAGE below (`npm run bench -- --help`). The full default run rewrites BENCHMARKS.md;
 * a run with other sizes writes .cache/benchmarks.md unless --output names a file.
 */
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';

import * as k8s from '@kubernetes/client-node';
import * as prettier from 'prettier';
import { parse as parseYaml } from 'yaml';

import { API_VERSION, GROUP, PLURAL, VERSION } from '../src/api/clarainstance.ts';
import { uidTag } from '../src/controller/clarainstance/launch.ts';
import { startEmulator } from '../test/emulator/emulator.ts';
import type { RunningEmulator } from '../test/emulator/emulator.ts';
import { loadKubeConfig, startLocalCluster, stopCluster } from '../test/harness/cluster.ts';
import { installCrd } from '../test/harness/crd.ts';
import { kubernetesVersion, REPO_ROOT } from '../test/harness/go-build.ts';
import {
  createCredentialsSecret,
  createDataset,
  TEST_LAUNCHER,
} from '../test/harness/operator-env.ts';
import { freePort } from '../test/harness/operator-process.ts';
import { runtimeSettings } from './image-build.ts';

const NAMESPACE = 'bench';
const QUEUE = 'bench-queue';
const NODE = join(REPO_ROOT, 'node_modules', '.bin', 'node');
const CREATE_CONCURRENCY = 32;
const MEMORY_TARGET_MB = 200;
const MEMORY_TARGET_AT = 5000;
/**
 * How the operator runs: as its image starts it (the Dockerfile's node flags and environment) with
 * the old-space ceiling the chart's Deployment sets (`maxOldSpaceSizeMb`), unless `--heap-mb`
 * overrides it (0: no ceiling).
 */
const IMAGE = runtimeSettings();
let HEAP_MB = chartHeapMb();

function chartHeapMb(): number {
  const values = parseYaml(
    readFileSync(join(REPO_ROOT, 'charts', 'clara-operator', 'values.yaml'), 'utf8'),
  ) as { maxOldSpaceSizeMb?: number };
  if (typeof values.maxOldSpaceSizeMb !== 'number')
    throw new Error('charts/clara-operator/values.yaml has no maxOldSpaceSizeMb');
  return values.maxOldSpaceSizeMb;
}

/** The node command line of the operator, as run here (paths absolute). */
function operatorNodeArgs(): string[] {
  return [
    ...IMAGE.nodeFlags,
    ...(HEAP_MB ? [`--max-old-space-size=${HEAP_MB}`] : []),
    // Extra V8/Node flags for investigation, e.g. --heapsnapshot-signal=SIGUSR2.
    ...(process.env.CLARA_BENCH_NODE_FLAGS?.split(' ').filter(Boolean) ?? []),
    join(REPO_ROOT, IMAGE.script),
  ];
}

interface Result {
  n: number;
  createSeconds: number;
  enqueueP50Ms: number;
  enqueueP99Ms: number;
  allEnqueuedSeconds: number;
  requestsPerPoll: number;
  requestBound: number;
  naiveRequestsPerPoll: number;
  idleWritesPerMinute: number;
  /** Write requests on ClaraInstances from the first apply until all showed Queued. */
  writesWhileApplying: number;
  peakRssMb: number;
  peakRssFirstMb: number;
  peakRssRestartMb: number;
  resyncSeconds: number;
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

/** The operator as a child process, with its log in `dir`. */
function startOperator(opts: {
  kubeconfig: string;
  dir: string;
  pollInterval: string;
  pageSize: number;
  tag: string;
}) {
  const launcher = join(opts.dir, TEST_LAUNCHER.entryPoint);
  writeFileSync(launcher, TEST_LAUNCHER.source);
  const logFile = join(opts.dir, `operator-${opts.tag}.log`);
  const fd = openSync(logFile, 'w');
  return Promise.all([freePort(), freePort(), freePort()]).then(([port, webPort, metricsPort]) => {
    const child = spawn(
      NODE,
      [
        // As the image runs it: compiled JavaScript, the image's flags and heap ceiling.
        ...operatorNodeArgs(),
        `--kubeconfig=${opts.kubeconfig}`,
        `--namespaces=${NAMESPACE}`,
        `--poll-interval=${opts.pollInterval}`,
        `--clearml-page-size=${opts.pageSize}`,
        `--health-address=127.0.0.1:${port}`,
        `--web-address=127.0.0.1:${webPort}`,
        `--metrics-address=127.0.0.1:${metricsPort}`,
        `--launcher-script=${launcher}`,
      ],
      { stdio: ['ignore', fd, fd], cwd: REPO_ROOT, env: { ...process.env, ...IMAGE.env } },
    );
    closeSync(fd);
    return { child, logFile, startedMs: Date.now() };
  });
}

function peakRssMb(child: ChildProcess): number {
  const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
  const kb = Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN);
  if (!Number.isFinite(kb) || kb <= 0) throw new Error(`no VmHWM in /proc/${child.pid}/status`);
  return Math.round(kb / 1024);
}

/**
 * Write requests (create, update, patch, delete; status included) on ClaraInstances that the
 * apiserver has answered since it started, read from its own metrics.
 */
function claraWrites(cluster: { kubectl: string; kubeconfig: string }): number {
  const text = execFileSync(
    cluster.kubectl,
    ['--kubeconfig', cluster.kubeconfig, 'get', '--raw', '/metrics'],
    { encoding: 'utf8', maxBuffer: 256 * 2 ** 20 },
  );
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    if (!line.includes(`resource="${PLURAL}"`)) continue;
    if (!/verb="(POST|PUT|PATCH|DELETE|DELETECOLLECTION)"/.exec(line)) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

async function stopOperator(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

/** Waits for a log line with message `msg`; returns its parsed fields. */
async function waitForLog(
  file: string,
  msg: string,
  timeoutMs: number,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const line = readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l.includes(`"msg":"${msg}"`))
      .pop();
    if (line) return JSON.parse(line) as Record<string, unknown>;
    if (Date.now() > deadline) throw new Error(`no "${msg}" in ${file} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Counts the emulator's API calls over `seconds` and returns calls per poll interval. */
async function requestsPerPoll(
  emulator: RunningEmulator,
  seconds: number,
  pollMs: number,
): Promise<number> {
  const before = emulator.calls.length;
  await new Promise((r) => setTimeout(r, seconds * 1000));
  return (emulator.calls.length - before) / ((seconds * 1000) / pollMs);
}

async function benchSize(
  n: number,
  opts: { pollInterval: string; pollMs: number; idleSeconds: number },
): Promise<Result> {
  log(`\n== N = ${n}`);
  const dir = mkdtempSync(join(tmpdir(), `clara-bench-${n}-`));
  const cluster = await startLocalCluster({ dir, exitWithParent: true, nodes: 1, log });
  const kc = loadKubeConfig(cluster.kubeconfig);
  const enqueuedAt = new Map<string, number>();
  const emulator = await startEmulator({
    port: 0,
    filesPort: 0,
    trace: (line) => {
      if (!line.startsWith('tasks.enqueue ')) return;
      const body = JSON.parse(line.slice('tasks.enqueue '.length)) as { task?: string };
      if (body.task && !enqueuedAt.has(body.task)) enqueuedAt.set(body.task, Date.now());
    },
  });
  let operator: Awaited<ReturnType<typeof startOperator>> | undefined;
  // The control plane's and the operator's logs stay for a size that failed, and go otherwise.
  let completed = false;
  try {
    await installCrd(kc);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
    await createCredentialsSecret(kc, { namespace: NAMESPACE, name: 'clearml', emulator });
    const datasetId = createDataset(emulator);
    emulator.dispatch('queues.create', { name: QUEUE });

    operator = await startOperator({
      kubeconfig: cluster.kubeconfig,
      dir,
      pollInterval: opts.pollInterval,
      pageSize: 500,
      tag: 'main',
    });
    const writesAtStart = claraWrites(cluster);
    await waitForLog(operator.logFile, 'controller started', 60_000);

    // Apply N instances and note when each was accepted.
    const custom = kc.makeApiClient(k8s.CustomObjectsApi);
    const createdAt = new Map<string, number>();
    const createStartMs = Date.now();
    let next = 0;
    const worker = async () => {
      while (next < n) {
        const i = next++;
        const created = (await custom.createNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          namespace: NAMESPACE,
          plural: PLURAL,
          body: {
            apiVersion: API_VERSION,
            kind: 'ClaraInstance',
            metadata: { name: `run-${i}` },
            spec: {
              datasetTask: datasetId,
              trainingArch: 'UNet',
              mmar: { ngc: 'clara_pt_spleen_ct_segmentation:4.1' },
              queue: QUEUE,
              clearml: { secretRef: { name: 'clearml' } },
              agent: { mode: 'External' },
            },
          },
        })) as { metadata: { uid: string } };
        createdAt.set(created.metadata.uid, Date.now());
      }
    };
    await Promise.all(Array.from({ length: CREATE_CONCURRENCY }, worker));
    const createSeconds = (Date.now() - createStartMs) / 1000;
    log(`  applied ${n} instances in ${createSeconds.toFixed(1)} s`);

    // Apply to enqueued: the enqueue call's time for the task carrying each instance's UID.
    const deadline = Date.now() + 30 * 60_000;
    while (enqueuedAt.size < n) {
      if (Date.now() > deadline)
        throw new Error(`only ${enqueuedAt.size} of ${n} enqueued after 30 min`);
      await new Promise((r) => setTimeout(r, 250));
    }
    const latencies: number[] = [];
    let lastEnqueueMs = 0;
    for (const [taskId, atMs] of enqueuedAt) {
      const tags = (emulator.state.tasks.get(taskId)?.system_tags as string[] | undefined) ?? [];
      const uid = tags.find((t) => t.startsWith(uidTag('')))?.slice(uidTag('').length);
      const created = uid ? createdAt.get(uid) : undefined;
      if (created !== undefined) latencies.push(atMs - created);
      lastEnqueueMs = Math.max(lastEnqueueMs, atMs);
    }
    latencies.sort((a, b) => a - b);
    const allEnqueuedSeconds = (lastEnqueueMs - createStartMs) / 1000;
    log(`  all enqueued ${allEnqueuedSeconds.toFixed(1)} s after the first apply`);

    // Steady state: every instance shows Queued (the last status writes have landed), then a
    // few more polls; only then watch for writes and count requests.
    for (;;) {
      const list = (await custom.listNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: NAMESPACE,
        plural: PLURAL,
      })) as { items: { status?: { phase?: string } }[] };
      if (list.items.filter((o) => o.status?.phase === 'Queued').length === n) break;
      if (Date.now() > deadline) throw new Error(`not all ${n} instances reached Queued in status`);
      await new Promise((r) => setTimeout(r, 1_000));
    }
    log(
      `  all ${n} show Queued in status ${((Date.now() - createStartMs) / 1000).toFixed(1)} s after the first apply`,
    );
    // The counter must see the writes that applying made (N creates and the status of each),
    // or its 0 while idle would mean nothing.
    const writesWhileApplying = claraWrites(cluster) - writesAtStart;
    if (writesWhileApplying < 2 * n)
      throw new Error(
        `the apiserver counted ${writesWhileApplying} ClaraInstance writes while ${n} were applied and enqueued; expected at least ${2 * n}`,
      );
    await new Promise((r) => setTimeout(r, 3 * opts.pollMs));
    const writesBefore = claraWrites(cluster);
    const perPoll = await requestsPerPoll(emulator, opts.idleSeconds, opts.pollMs);
    const idleWritesPerMinute = ((claraWrites(cluster) - writesBefore) * 60) / opts.idleSeconds;
    if (operator.child.exitCode !== null)
      throw new Error(`the operator exited (${operator.child.exitCode}); see ${operator.logFile}`);
    const rssFirst = peakRssMb(operator.child);
    log(
      `  steady state: ${perPoll.toFixed(2)} ClearML requests per poll, ${idleWritesPerMinute} status writes/min (${writesWhileApplying} while applying), peak RSS ${rssFirst} MB`,
    );

    // Restart: time until every instance was reconciled again.
    await stopOperator(operator.child);
    operator = await startOperator({
      kubeconfig: cluster.kubeconfig,
      dir,
      pollInterval: opts.pollInterval,
      pageSize: 500,
      tag: 'restart',
    });
    const resync = await waitForLog(operator.logFile, 'initial resync complete', 30 * 60_000);
    const resyncSeconds = (Date.now() - operator.startedMs) / 1000;
    // A few polls of the restarted operator, so its peak covers steady state as well.
    await new Promise((r) => setTimeout(r, 3 * opts.pollMs));
    const rssRestart = peakRssMb(operator.child);
    log(
      `  full resync after restart: ${resyncSeconds.toFixed(1)} s (${String(resync.ms)} ms after the caches synced), peak RSS ${rssRestart} MB`,
    );
    await stopOperator(operator.child);

    // The naive baseline: one tasks.get_all per instance per poll.
    operator = await startOperator({
      kubeconfig: cluster.kubeconfig,
      dir,
      pollInterval: opts.pollInterval,
      pageSize: 1,
      tag: 'naive',
    });
    await waitForLog(operator.logFile, 'initial resync complete', 30 * 60_000);
    const naive = await requestsPerPoll(
      emulator,
      Math.max(3 * (opts.pollMs / 1000), 15),
      opts.pollMs,
    );
    await stopOperator(operator.child);
    operator = undefined;
    log(`  naive baseline: ${naive.toFixed(1)} ClearML requests per poll interval`);

    completed = true;
    return {
      n,
      createSeconds,
      enqueueP50Ms: percentile(latencies, 50),
      enqueueP99Ms: percentile(latencies, 99),
      allEnqueuedSeconds,
      requestsPerPoll: perPoll,
      requestBound: Math.ceil(n / 500) + 2,
      naiveRequestsPerPoll: naive,
      idleWritesPerMinute,
      writesWhileApplying,
      peakRssMb: Math.max(rssFirst, rssRestart),
      peakRssFirstMb: rssFirst,
      peakRssRestartMb: rssRestart,
      resyncSeconds,
    };
  } finally {
    if (operator) await stopOperator(operator.child);
    await emulator.stop();
    await stopCluster(cluster);
    if (completed) rmSync(dir, { recursive: true, force: true });
    else log(`  logs of N = ${n} kept in ${dir}`);
  }
}

function misses(r: Result): string[] {
  const out: string[] = [];
  // Each poll reads every live task, in pages of 500: fewer calls than that means it stalled.
  const pages = Math.ceil(r.n / 500);
  if (!(r.requestsPerPoll >= pages / 2))
    out.push(`N=${r.n}: ${r.requestsPerPoll.toFixed(2)} requests per poll: the poll stalled`);
  if (r.requestsPerPoll > r.requestBound)
    out.push(`N=${r.n}: ${r.requestsPerPoll.toFixed(2)} requests per poll > ${r.requestBound}`);
  if (r.idleWritesPerMinute > 0)
    out.push(`N=${r.n}: ${r.idleWritesPerMinute} status writes/min while idle > 0`);
  if (r.n >= MEMORY_TARGET_AT && !(r.peakRssMb < MEMORY_TARGET_MB))
    out.push(`N=${r.n}: peak RSS ${r.peakRssMb} MB >= ${MEMORY_TARGET_MB} MB`);
  return out;
}

/** The commit the operator was built from, marked when the work tree had changes. */
function sourceRevision(): string {
  const git = (args: string[]) =>
    execFileSync('git', args, { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
  try {
    const dirty = git(['status', '--porcelain', '--', 'src', 'package-lock.json']) !== '';
    return `${git(['rev-parse', '--short', 'HEAD'])}${dirty ? ' (with uncommitted changes to src/)' : ''}`;
  } catch {
    return 'unknown (no git)';
  }
}

function report(results: Result[], command: string): string {
  const rows = results.map((r) =>
    [
      r.n,
      `${r.enqueueP50Ms} / ${r.enqueueP99Ms} ms`,
      `${r.allEnqueuedSeconds.toFixed(1)} s`,
      `${r.requestsPerPoll.toFixed(2)} (≤ ${r.requestBound})`,
      `${r.naiveRequestsPerPoll.toFixed(0)} (${(r.naiveRequestsPerPoll / Math.max(r.requestsPerPoll, 0.01)).toFixed(0)}×)`,
      `${r.idleWritesPerMinute}`,
      `${r.peakRssFirstMb} / ${r.peakRssRestartMb} MB`,
      `${r.resyncSeconds.toFixed(1)} s`,
    ].join(' | '),
  );
  return [
    '# Benchmarks',
    '',
    `Made by \`${command}\` at commit ${sourceRevision()} on ${new Date().toISOString().slice(0, 10)}: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), ` +
      `${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, Kubernetes ${kubernetesVersion()} (the test control plane), ` +
      'the ClearML emulator in the benchmark process, the operator as its own process, started as its image starts it ' +
      `(\`${Object.entries(IMAGE.env)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')} node ${operatorNodeArgs()
        .map((a) => a.replace(`${REPO_ROOT}/`, ''))
        .join(
          ' ',
        )}\`: the Dockerfile's ENTRYPOINT and ENV, and the chart's maxOldSpaceSizeMb). Everything shares the two cores.`,
    '',
    'Instances use agent mode External (no pods); the queue has no worker, so every run stays Queued, live and polled.',
    'Targets: requests per poll ≤ ceil(N/500)+2; 0 status writes per minute when nothing changes; peak RSS under 200 MB at 5,000.',
    'Status writes are every write request on ClaraInstances the apiserver counted (`apiserver_request_total`), including writes that changed nothing; the counter was checked to see the writes of applying.',
    'Peak RSS is VmHWM of the operator process, for the first run and for the restart, which reads every task at once.',
    'The naive baseline is the same operator with `--clearml-page-size=1`: one `tasks.get_all` per instance, one after another; its number is requests per poll interval, and once a round of N calls outlasts the interval it is bounded by how fast the calls go rather than by N.',
    '',
    '| N | apply → enqueued p50 / p99 | all enqueued | ClearML requests per poll | naive baseline (ratio) | idle status writes/min | operator peak RSS (first / restart) | full resync after restart |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r} |`),
    '',
    results.flatMap(misses).length > 0
      ? `Targets missed: ${results.flatMap(misses).join('; ')}.`
      : 'Every target met.',
    '',
  ].join('\n');
}

const DEFAULT_SIZES = '100,1000,5000';

const USAGE = `usage: npm run bench -- [options]

The operator at scale against a fresh local control plane and the ClearML emulator, for each size:
apply-to-enqueued latency, ClearML requests per poll, idle status writes, peak RSS, resync time,
and a naive baseline. Prints a table; exits 1 when a target is missed.

  --sizes N,N,...      instance counts, positive integers (default ${DEFAULT_SIZES})
  --poll-interval Ns   the operator's poll interval, whole seconds (default 5s)
  --idle-seconds N     how long idle status writes are counted, seconds (default 60)
  --heap-mb N          the operator's V8 old-space ceiling in MiB (default: the chart's
                       maxOldSpaceSizeMb; 0 for no ceiling)
  --output FILE        where the table goes (default: BENCHMARKS.md for the default sizes,
                       .cache/benchmarks.md for any other, so a small run does not replace the
                       published numbers)
  --help               this text
`;

/** A whole number within bounds, or an error naming the option and what it expects. */
function wholeNumber(option: string, value: string, min: number): number {
  if (!/^\d+$/.test(value.trim()) || Number(value) < min) {
    throw new UsageError(`--${option}: expected a whole number of at least ${min}, got '${value}'`);
  }
  return Number(value);
}

class UsageError extends Error {}

function parseOptions() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        sizes: { type: 'string', default: DEFAULT_SIZES },
        'poll-interval': { type: 'string', default: '5s' },
        'idle-seconds': { type: 'string', default: '60' },
        output: { type: 'string' },
        'heap-mb': { type: 'string' },
        help: { type: 'boolean', default: false },
      },
    }));
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const pollSeconds = /^(\d+)s$/.exec(values['poll-interval'])?.[1];
  if (pollSeconds === undefined || Number(pollSeconds) < 1) {
    throw new UsageError(
      `--poll-interval: expected whole seconds of at least 1, e.g. 5s, got '${values['poll-interval']}'`,
    );
  }
  const sizes = values.sizes.split(',').map((size) => wholeNumber('sizes', size, 1));
  const idleSeconds = wholeNumber('idle-seconds', values['idle-seconds'], 1);
  const heapMb =
    values['heap-mb'] !== undefined ? wholeNumber('heap-mb', values['heap-mb'], 0) : undefined;
  const output =
    values.output ??
    (values.sizes === DEFAULT_SIZES
      ? join(REPO_ROOT, 'BENCHMARKS.md')
      : join(REPO_ROOT, '.cache', 'benchmarks.md'));
  return { values, pollMs: Number(pollSeconds) * 1000, sizes, idleSeconds, heapMb, output };
}

async function main(): Promise<void> {
  const { values, pollMs, sizes, idleSeconds, heapMb, output } = parseOptions();
  if (heapMb !== undefined) HEAP_MB = heapMb;
  log('== npm run build (the operator runs compiled, as in its image)');
  const build = spawn('npm', ['run', 'build'], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const code = await new Promise((r) => build.once('exit', r));
  if (code !== 0) throw new Error(`npm run build failed with exit ${String(code)}`);
  const results: Result[] = [];
  for (const n of sizes) {
    results.push(
      await benchSize(n, {
        pollInterval: values['poll-interval'],
        pollMs,
        idleSeconds,
      }),
    );
  }
  const heap = values['heap-mb'] !== undefined ? ` --heap-mb ${values['heap-mb']}` : '';
  const command = `npm run bench -- --sizes ${values.sizes} --poll-interval ${values['poll-interval']} --idle-seconds ${values['idle-seconds']}${heap}`;
  // Formatted as `npm run lint` checks it, so a fresh BENCHMARKS.md can be committed as written.
  const text = await prettier.format(report(results, command), {
    ...(await prettier.resolveConfig(output)),
    filepath: output,
  });
  mkdirSync(dirname(output), { recursive: true });
  writeFileSync(output, text);
  process.stdout.write(`\n${text}\n(written to ${output})\n`);
  const missed = results.flatMap(misses);
  if (missed.length > 0) {
    process.stderr.write(`\ntargets missed:\n  ${missed.join('\n  ')}\n`);
    process.exitCode = 1;
  }
}

main().catch((err: unknown) => {
  if (err instanceof UsageError) {
    process.stderr.write(`bench: ${err.message}\n\n${USAGE}`);
    process.exit(2);
  }
  process.stderr.write(
    `bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  // Whatever is still open (a watch, a timer) must not keep a failed benchmark alive.
  process.exit(1);
});
