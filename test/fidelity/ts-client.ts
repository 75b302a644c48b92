/**
 * Command-line bridge from the pytest fidelity suite to the operator's TypeScript ClearML
 * client: the suite calls it to create tasks and to read back what the SDK wrote.
 *
 *   node test/fidelity/ts-client.ts create-task <project> <name> [extra-fields-json]
 *   node test/fidelity/ts-client.ts enqueue <task-id> <queue-name>
 *   node test/fidelity/ts-client.ts stop <task-id>
 *   node test/fidelity/ts-client.ts read-back <task-id>
 *
 * Connection settings come from CLEARML_API_HOST / CLEARML_API_ACCESS_KEY / CLEARML_API_SECRET_KEY.
 * Output is one JSON document on stdout.
 */
import { ClearmlClient, type CreateTaskRequest } from '../../src/clearml/index.ts';

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

const client = new ClearmlClient({
  apiUrl: env('CLEARML_API_HOST'),
  accessKey: env('CLEARML_API_ACCESS_KEY'),
  secretKey: env('CLEARML_API_SECRET_KEY'),
  requestTimeoutMs: 10_000,
});

const [command, ...args] = process.argv.slice(2);

async function run(): Promise<unknown> {
  switch (command) {
    case 'create-task': {
      const [projectName, name, extraJson] = args;
      if (!projectName || !name)
        throw new Error('usage: create-task <project> <name> [extra-json]');
      const project = await client.getOrCreateProject(projectName);
      const id = await client.createTask({
        name,
        type: 'training',
        project,
        tags: ['fidelity'],
        ...(extraJson ? (JSON.parse(extraJson) as Partial<CreateTaskRequest>) : {}),
      });
      return { id, project };
    }
    case 'enqueue': {
      const [task, queueName] = args;
      if (!task || !queueName) throw new Error('usage: enqueue <task-id> <queue-name>');
      return client.enqueueTask({ task, queueName });
    }
    case 'stop': {
      const [task] = args;
      if (!task) throw new Error('usage: stop <task-id>');
      return { updated: await client.stopTask({ task, statusReason: 'fidelity abort' }) };
    }
    case 'read-back': {
      const [task] = args;
      if (!task) throw new Error('usage: read-back <task-id>');
      const [info] = await client.getTasks({
        ids: [task],
        onlyFields: [
          'id',
          'name',
          'status',
          'status_reason',
          'last_iteration',
          'last_metrics',
          'models',
          'execution.artifacts',
          'hyperparams',
          'configuration',
          'system_tags',
          'type',
          'project',
        ],
      });
      const log = await client.readNewLogEvents({ task, batchSize: 100 });
      return {
        task: info,
        scalars: await client.getScalarHistogram({ task }),
        log: log.events.map((e) => e.msg),
        logTotal: (await client.getTaskLog({ task, batchSize: 1 })).total,
        models: await client.getModelsByTask({
          tasks: [task],
          onlyFields: ['id', 'name', 'uri', 'framework', 'ready', 'task'],
        }),
      };
    }
    default:
      throw new Error(`unknown command ${String(command)}`);
  }
}

try {
  process.stdout.write(`${JSON.stringify(await run())}\n`);
} catch (err) {
  process.stderr.write(`${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}\n`);
  process.exitCode = 1;
}
