/**
 * Runs the ClearML API emulator alone: `node test/emulator/main.ts [--port N] [--files-port N]
 * [--host H] [--worker-queue NAME]... [--trace]`. Prints the URLs and credentials as JSON on one line
 * (so scripts can read them), then serves until SIGINT/SIGTERM.
 */
import { parseArgs } from 'node:util';

import { startEmulator } from './emulator.ts';

const USAGE = `Usage: npm run emulator -- [--port N] [--files-port N] [--host H] [--worker-queue NAME]... [--trace]

The ClearML API emulator (API on --port, default 8008; files on --files-port, default 8081, as
ClearML's own defaults). --worker-queue starts a simulated agent serving that queue (and creates
it); --trace logs every call to stderr. Prints the URLs and keys as one JSON line on stdout.
`;

function parseFlags() {
  try {
    return parseArgs({
      options: {
        port: { type: 'string', default: '8008' },
        'files-port': { type: 'string', default: '8081' },
        host: { type: 'string', default: '127.0.0.1' },
        'worker-queue': { type: 'string', multiple: true, default: [] },
        trace: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
    }).values;
  } catch (err) {
    process.stderr.write(`emulator: ${(err as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
}

const values = parseFlags();
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}

const emulator = await startEmulator({
  port: Number(values.port),
  filesPort: Number(values['files-port']),
  host: values.host,
  ...(values.trace ? { trace: (line: string) => process.stderr.write(`${line}\n`) } : {}),
});
if (values['worker-queue'].length > 0) emulator.startWorker({ queues: values['worker-queue'] });

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
