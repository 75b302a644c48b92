/**
 * The operator as a real process (`node src/main.ts`), for tests of what only a process shows:
 * a kill at the worst moment, a restart, two replicas electing a leader, a SIGTERM shutdown.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { waitFor } from './cluster-env.ts';
import { REPO_ROOT } from './go-build.ts';
import { TEST_LAUNCHER } from './operator-env.ts';

const NODE = join(REPO_ROOT, 'node_modules', '.bin', 'node');

/** A started operator process. */
export interface OperatorProcess {
  child: ChildProcess;
  /** Where its JSON log lines go. */
  logFile: string;
  healthUrl: string;
  /** Base URL of its web view. */
  webUrl: string;
  /** Its Prometheus endpoint. */
  metricsUrl: string;
  /** Parsed log lines so far. */
  logLines(): { msg: string; [k: string]: unknown }[];
  /** SIGKILL: no cleanup, no lease release. */
  kill(): Promise<void>;
  /** SIGTERM, and resolves with the exit code and how long the exit took. */
  terminate(): Promise<{ code: number | null; ms: number }>;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

/** Starts `node src/main.ts` with `args` (plus kubeconfig, health address and launcher). */
export async function startOperatorProcess(opts: {
  kubeconfig: string;
  args: string[];
  name: string;
}): Promise<OperatorProcess> {
  const dir = mkdtempSync(join(tmpdir(), `clara-operator-${opts.name}-`));
  const launcher = join(dir, TEST_LAUNCHER.entryPoint);
  writeFileSync(launcher, TEST_LAUNCHER.source);
  const logFile = join(dir, 'operator.log');
  const fd = openSync(logFile, 'w');
  const healthPort = await freePort();
  const webPort = await freePort();
  const metricsPort = await freePort();
  const child = spawn(
    NODE,
    [
      join(REPO_ROOT, 'src', 'main.ts'),
      `--kubeconfig=${opts.kubeconfig}`,
      `--health-address=127.0.0.1:${healthPort}`,
      `--web-address=127.0.0.1:${webPort}`,
      `--metrics-address=127.0.0.1:${metricsPort}`,
      `--launcher-script=${launcher}`,
      ...opts.args,
    ],
    {
      stdio: ['ignore', fd, fd],
      cwd: REPO_ROOT,
      env: { ...process.env, CLARA_LOG_LEVEL: 'debug' },
    },
  );
  closeSync(fd);
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  const healthUrl = `http://127.0.0.1:${healthPort}`;
  await waitFor(
    async () => {
      if (child.exitCode !== null)
        throw new Error(`operator exited: ${readFileSync(logFile, 'utf8').slice(-2000)}`);
      const res = await fetch(`${healthUrl}/healthz`);
      return res.ok ? true : undefined;
    },
    { what: `operator ${opts.name} to serve /healthz`, timeoutMs: 30_000 },
  );

  return {
    child,
    logFile,
    healthUrl,
    webUrl: `http://127.0.0.1:${webPort}`,
    metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
    logLines: () =>
      readFileSync(logFile, 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { msg: string }),
    kill: async () => {
      child.kill('SIGKILL');
      await exited;
    },
    terminate: async () => {
      const startedMs = Date.now();
      child.kill('SIGTERM');
      const code = await exited;
      return { code, ms: Date.now() - startedMs };
    },
  };
}
