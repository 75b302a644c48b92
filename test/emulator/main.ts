/**
 * Runs the ClearML API emulator alone (USAGE below). Prints the URLs and credentials as JSON on
 * one line (so scripts can read them), then serves until SIGINT/SIGTERM.
 */
import { parseArgs } from 'node:util';

import * as k8s from '@kubernetes/client-node';

import { CLEARML_ID } from '../../src/api/patterns.ts';
import { createDataset, replaceCredentialsSecret } from '../harness/operator-env.ts';
import { startEmulator } from './emulator.ts';

const USAGE = `Usage: npm run emulator -- [--port N] [--files-port N] [--host H] [--worker-queue NAME]...
  [--dataset ID]... [--kubeconfig FILE --credentials-secret NAMESPACE/NAME] [--trace]

The ClearML API emulator (API on --port, default 8008; files on --files-port, default 8081, as
ClearML's own defaults). Prints the URLs and keys as one JSON line on stdout.

  --worker-queue NAME   a simulated agent serves that queue (created); runs end Completed
  --dataset ID          a finalized ClearML Dataset with that id (32 hex digits), as
                        spec.datasetTask names it
  --credentials-secret  NAMESPACE/NAME: writes (or replaces) the Secret that points a
                        ClaraInstance at this emulator, through --kubeconfig; the namespace is
                        created when missing
  --trace               every call to stderr
`;

function parseFlags() {
  try {
    return parseArgs({
      options: {
        port: { type: 'string', default: '8008' },
        'files-port': { type: 'string', default: '8081' },
        host: { type: 'string', default: '127.0.0.1' },
        'worker-queue': { type: 'string', multiple: true, default: [] },
        dataset: { type: 'string', multiple: true, default: [] },
        kubeconfig: { type: 'string' },
        'credentials-secret': { type: 'string' },
        trace: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
    }).values;
  } catch (err) {
    process.stderr.write(`emulator: ${(err as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
}

function usageError(message: string): never {
  process.stderr.write(`emulator: ${message}\n\n${USAGE}`);
  process.exit(2);
}

const values = parseFlags();
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
for (const id of values.dataset) {
  if (!CLEARML_ID.test(id)) usageError(`--dataset: expected 32 hex digits, got '${id}'`);
}
const secretRef = values['credentials-secret']?.split('/');
if (secretRef && (secretRef.length !== 2 || !secretRef[0] || !secretRef[1])) {
  usageError(
    `--credentials-secret: expected NAMESPACE/NAME, got '${values['credentials-secret']}'`,
  );
}
if (secretRef && !values.kubeconfig) usageError('--credentials-secret needs --kubeconfig');

const emulator = await startEmulator({
  port: Number(values.port),
  filesPort: Number(values['files-port']),
  host: values.host,
  ...(values.trace ? { trace: (line: string) => process.stderr.write(`${line}\n`) } : {}),
});
if (values['worker-queue'].length > 0) emulator.startWorker({ queues: values['worker-queue'] });
for (const id of values.dataset) createDataset(emulator, `dataset ${id}`, id);
if (secretRef && values.kubeconfig) {
  const [namespace, name] = secretRef as [string, string];
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(values.kubeconfig);
  try {
    await replaceCredentialsSecret(kc, { namespace, name, emulator });
  } catch (err) {
    process.stderr.write(
      `emulator: could not write Secret ${namespace}/${name} through ${values.kubeconfig}: ${(err as Error).message}\n`,
    );
    await emulator.stop();
    process.exit(1);
  }
  process.stderr.write(`emulator: Secret ${namespace}/${name} points at this emulator\n`);
}

process.stdout.write(
  `${JSON.stringify({
    apiUrl: emulator.apiUrl,
    filesUrl: emulator.filesUrl,
    accessKey: emulator.credentials.accessKey,
    secretKey: emulator.credentials.secretKey,
  })}\n`,
);

const shutdown = () => {
  // Unknown calls go to stderr on exit so a caller that only has the process can still see them.
  for (const call of emulator.unknownCalls)
    process.stderr.write(`unknown call: ${JSON.stringify(call)}\n`);
  // Clients with open keep-alive connections must not hold the exit up.
  setTimeout(() => process.exit(0), 2000).unref();
  void emulator.stop().then(() => process.exit(0));
};
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
