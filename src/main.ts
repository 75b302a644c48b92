/**
 * Entry point of clara-operator: reads the configuration, connects to Kubernetes, serves the
 * health endpoints, and runs the ClaraInstance controller (when leading, if leader election is
 * on) until SIGTERM or SIGINT, then stops within 10 seconds.
 *
 * This module alone wires the layers together (STYLE.md rule 1).
 */
import { createServer } from 'node:http';
import type { RequestListener, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync } from 'node:fs';
import { homedir, hostname } from 'node:os';
import { join } from 'node:path';

import * as k8s from '@kubernetes/client-node';

import { ConfigError, loadConfig, usage, VERSION } from './config.ts';
import type { OperatorConfig } from './config.ts';
import { ClaraInstanceController, loadLauncher } from './controller/clarainstance/controller.ts';
import type { EventSink } from './controller/clarainstance/context.ts';
import { createEventSink } from './controller/clarainstance/events.ts';
import { createLeaseLock, LeaderElector } from './k8s/index.ts';
import { createLogger } from './logger.ts';
import { createOperatorMetrics } from './metrics/index.ts';
import { createWebApp, requireTokenUnlessLocal } from './web/index.ts';

/** The whole shutdown must finish within this (Kubernetes' grace period is 30 s by default). */
const SHUTDOWN_DEADLINE_MS = 10_000;

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(usage());
    return;
  }
  if (argv.includes('--version')) {
    process.stdout.write(`clara-operator ${VERSION}\n`);
    return;
  }
  let config: OperatorConfig;
  try {
    config = loadConfig(argv, process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`clara-operator: ${err.message}\n`);
    process.exit(2);
  }
  const log = createLogger({ level: config.logLevel });
  const launcher = loadLauncher(config.launcherScript);

  const kc = loadKubeConfig(config.kubeconfig);

  const identity = `${hostname()}-${process.pid}`;
  const events: EventSink = createEventSink({ kubeConfig: kc, instance: identity, log });
  const metrics = createOperatorMetrics({ leaseName: config.leaderElectionId });
  const controller = new ClaraInstanceController({
    kubeConfig: kc,
    namespaces: config.namespaces.length > 0 ? config.namespaces : 'all',
    config: {
      pollIntervalMs: config.pollInterval,
      workers: config.workers,
      clearmlPageSize: config.clearmlPageSize,
      defaultCredentialsSecret: config.defaultCredentialsSecret,
    },
    launcher,
    events,
    log,
    clearml: { onRequest: metrics.onClearmlRequest },
    queueMetrics: metrics.queueMetrics,
    onReconcile: metrics.onReconcile,
  });
  let leading = !config.leaderElect;
  // Per-instance series come from the leader alone: two replicas exporting the same run's
  // scalars would double every sum a dashboard takes.
  metrics.collectInstances(() => (leading ? controller.instances() : []));
  metrics.collectController({
    queue: () => controller.queue.stats(),
    reflectors: () => controller.reflectorStats(),
  });
  metrics.setLeader(!config.leaderElect);
  const metricsServer = await listen('metrics-address', config.metricsAddress, (req, res) => {
    if (req.url?.split('?')[0] === '/metrics') {
      void metrics.handler(req, res);
      return;
    }
    res.writeHead(404).end('not found\n');
  });

  // A web view reachable from other hosts must ask for a token; refuse to start otherwise.
  requireTokenUnlessLocal(config.webAddress, config.webToken);
  const web = await listen(
    'web-address',
    config.webAddress,
    createWebApp({
      instances: () => controller.instances(),
      clientFor: (obj) => controller.clientFor(obj),
      token: config.webToken,
      logger: log,
    }),
  );
  log.info(
    {
      address: bound(web, config.webAddress),
      auth: config.webToken ? 'bearer' : 'none (loopback)',
    },
    'web view serving',
  );
  log.info({ address: bound(metricsServer, config.metricsAddress) }, 'metrics serving');

  let shuttingDown = false;
  const health = await serveHealth(config.healthAddress, {
    live: () => true,
    // A standby replica is ready once its ClaraInstance cache listed: it serves the web view.
    ready: () => (leading ? controller.hasSynced() : controller.cacheSynced()),
  });

  log.info({ address: bound(health, config.healthAddress) }, 'health endpoints serving');

  let elector: LeaderElector | undefined;
  // Signals are handled from here on, also while the first list of a slow API server is pending.
  const shutdown = async (signal: string): Promise<void> => {
    shuttingDown = true;
    log.info({ signal }, 'shutting down');
    const deadline = setTimeout(() => {
      log.error({ deadlineMs: SHUTDOWN_DEADLINE_MS }, 'shutdown overran its deadline; exiting');
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS);
    deadline.unref();
    await controller.stop(SHUTDOWN_DEADLINE_MS - 2_000);
    await elector?.stop();
    health.close();
    web.close();
    metricsServer.close();
    log.info({}, 'stopped');
    process.exit(0);
  };
  process.once('SIGTERM', (s) => void shutdown(s));
  process.once('SIGINT', (s) => void shutdown(s));

  if (config.leaderElect) {
    // A standby keeps the ClaraInstance cache too, so its web view (the Service sends requests
    // to every ready replica) shows what the leader's does.
    controller.startCache();
    elector = new LeaderElector({
      lock: createLeaseLock({
        kubeConfig: kc,
        namespace: config.leaderElectionNamespace ?? process.env.POD_NAMESPACE ?? 'default',
        name: config.leaderElectionId,
      }),
      identity,
      logger: log,
      callbacks: {
        onStartedLeading: () => {
          leading = true;
          metrics.setLeader(true);
          log.info({ identity }, 'became leader; starting the controller');
          controller
            .start()
            .catch((err: unknown) => log.error({ err }, 'controller failed to start'));
        },
        onStoppedLeading: () => {
          if (shuttingDown) return;
          // Another replica may be acting already: stop at once, let Kubernetes restart us.
          log.warn({ identity }, 'lost leadership; exiting so a fresh process can stand by');
          process.exit(1);
        },
        onNewLeader: (holder) => log.info({ holder }, 'leader observed'),
      },
    });
    void elector.run();
  } else {
    await controller.start();
  }
  log.info(
    { identity, namespaces: config.namespaces, leaderElect: config.leaderElect },
    'clara-operator running',
  );
}

/** The kubeconfig to use; throws naming the flag when there is none or it cannot be read. */
function loadKubeConfig(path: string | undefined): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  if (path) {
    try {
      kc.loadFromFile(path);
    } catch (err) {
      throw new Error(`--kubeconfig / KUBECONFIG ${path}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    return kc;
  }
  if (process.env.KUBERNETES_SERVICE_HOST) {
    kc.loadFromCluster();
    return kc;
  }
  // Outside a pod, as controller-runtime and kubectl do: the user's ~/.kube/config.
  const home = join(homedir(), '.kube', 'config');
  if (!existsSync(home)) {
    throw new Error(
      'no --kubeconfig / KUBECONFIG given, not running in a Kubernetes pod, and no ~/.kube/config',
    );
  }
  return loadKubeConfig(home);
}

/** Serves /healthz and /readyz on `address` (`host:port`, empty host = all interfaces). */
async function serveHealth(
  address: string,
  checks: { live: () => boolean; ready: () => boolean },
): Promise<Server> {
  return listen('health-address', address, (req, res) => {
    const check =
      req.url === '/healthz' ? checks.live : req.url === '/readyz' ? checks.ready : undefined;
    if (!check) {
      res.writeHead(404).end('not found\n');
      return;
    }
    const ok = check();
    res
      .writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' })
      .end(ok ? 'ok\n' : 'not ready\n');
  });
}

/** Serves `handler` on `address` (`host:port`; empty host = all interfaces). */
async function listen(flag: string, address: string, handler: RequestListener): Promise<Server> {
  const at = address.lastIndexOf(':');
  const server = createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`--${flag} ${address}: ${err.message}`)));
    server.listen(Number(address.slice(at + 1)), address.slice(0, at) || undefined, () =>
      resolve(),
    );
  });
  return server;
}

/** `host:port` a server listens on, with the port the system chose for port 0. */
function bound(server: Server, address: string): string {
  const port = (server.address() as AddressInfo | null)?.port;
  const host = address.slice(0, address.lastIndexOf(':'));
  return port === undefined ? address : `${host}:${port}`;
}

main().catch((err: unknown) => {
  process.stderr.write(`clara-operator: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
