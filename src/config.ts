/**
 * The operator's configuration: command-line flags, each with an environment variable behind it
 * (flags win), parsed with zod. A bad value stops the operator at start with one message per
 * problem that names the flag, the variable and what was expected.
 */
import { parseArgs } from 'node:util';

import { z } from 'zod';

/** One setting: its flag, its environment variable and its help text. */
interface Setting {
  flag: string;
  env: string;
  help: string;
  boolean?: true;
}

/** Every setting, keyed by the name it has in {@link OperatorConfig}. */
export const SETTINGS = {
  kubeconfig: {
    flag: 'kubeconfig',
    env: 'KUBECONFIG',
    help: 'kubeconfig file; when unset, the in-cluster config, else ~/.kube/config',
  },
  namespaces: {
    flag: 'namespaces',
    env: 'CLARA_NAMESPACES',
    help: 'comma-separated namespaces to watch; all namespaces when empty',
  },
  defaultCredentialsSecret: {
    flag: 'default-credentials-secret',
    env: 'CLARA_DEFAULT_CREDENTIALS_SECRET',
    help: "Secret (in each instance's namespace) with the ClearML keys, for instances that name none",
  },
  pollInterval: {
    flag: 'poll-interval',
    env: 'CLARA_POLL_INTERVAL',
    help: 'ClearML poll interval, e.g. 15s or 1m',
  },
  workers: { flag: 'workers', env: 'CLARA_WORKERS', help: 'concurrent reconciles (1-64)' },
  clearmlPageSize: {
    flag: 'clearml-page-size',
    env: 'CLARA_CLEARML_PAGE_SIZE',
    help: 'task ids per tasks.get_all when polling (1-500)',
  },
  metricsAddress: {
    flag: 'metrics-address',
    env: 'CLARA_METRICS_ADDRESS',
    help: 'host:port of /metrics (Prometheus)',
  },
  webAddress: {
    flag: 'web-address',
    env: 'CLARA_WEB_ADDRESS',
    help: 'host:port of the web view; a non-loopback host needs CLARA_WEB_TOKEN',
  },
  healthAddress: {
    flag: 'health-address',
    env: 'CLARA_HEALTH_ADDRESS',
    help: 'host:port of /healthz and /readyz',
  },
  leaderElect: {
    flag: 'leader-elect',
    env: 'CLARA_LEADER_ELECT',
    help: 'elect a leader through a Lease so only one replica acts',
    boolean: true,
  },
  leaderElectionNamespace: {
    flag: 'leader-election-namespace',
    env: 'CLARA_LEADER_ELECTION_NAMESPACE',
    help: 'namespace of the leader Lease (default: the pod namespace, else default)',
  },
  leaderElectionId: {
    flag: 'leader-election-id',
    env: 'CLARA_LEADER_ELECTION_ID',
    help: 'name of the leader Lease',
  },
  launcherScript: {
    flag: 'launcher-script',
    env: 'CLARA_LAUNCHER_SCRIPT',
    help: 'path of the launcher stored in every task',
  },
  logLevel: { flag: 'log-level', env: 'CLARA_LOG_LEVEL', help: 'debug, info, warn or error' },
} as const satisfies Record<string, Setting>;

type SettingName = keyof typeof SETTINGS;

/** The web view's bearer token comes from this variable only, never from a flag. */
export const WEB_TOKEN_ENV = 'CLARA_WEB_TOKEN';

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

const duration = (minMs: number, maxMs: number) =>
  z
    .string()
    .regex(DURATION, { message: 'expected a duration such as 500ms, 15s, 2m or 1h', abort: true })
    .transform((s) => {
      const [, n, unit] = DURATION.exec(s) as unknown as [string, string, keyof typeof UNIT_MS];
      return Number(n) * UNIT_MS[unit];
    })
    .refine(
      (ms) => ms >= minMs && ms <= maxMs,
      `expected between ${human(minMs)} and ${human(maxMs)}`,
    );

function human(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

const wholeNumber = (min: number, max: number) =>
  z.coerce
    .number({ error: 'expected a whole number' })
    .int('expected a whole number')
    .min(min, `expected at least ${min}`)
    .max(max, `expected at most ${max}`);

const address = z
  .string()
  .regex(/^[^\s:]*:\d{1,5}$/, {
    message: 'expected host:port, e.g. :8080 or 127.0.0.1:8080',
    abort: true,
  })
  .refine((a) => Number(a.split(':').pop()) <= 65535, 'port must be at most 65535');

const configSchema = z.strictObject({
  kubeconfig: z.string().min(1).optional(),
  namespaces: z
    .string()
    .default('')
    .transform((s) =>
      s
        .split(',')
        .map((n) => n.trim())
        .filter(Boolean),
    )
    .refine(
      (ns) => ns.every((n) => DNS_LABEL.test(n) && n.length <= 63),
      'expected namespace names separated by commas',
    ),
  defaultCredentialsSecret: z
    .string()
    .max(253)
    .regex(DNS_SUBDOMAIN, 'expected a Secret name')
    .optional(),
  pollInterval: duration(1_000, 3_600_000).default(15_000),
  workers: wholeNumber(1, 64).default(4),
  clearmlPageSize: wholeNumber(1, 500).default(500),
  healthAddress: address.default(':8081'),
  metricsAddress: address.default(':8080'),
  webAddress: address.default('127.0.0.1:8082'),
  // From the environment only (a flag would show in `ps`); see WEB_TOKEN_ENV.
  webToken: z.string().min(16, 'expected at least 16 characters').optional(),
  leaderElect: z.boolean().default(false),
  leaderElectionNamespace: z.string().regex(DNS_LABEL, 'expected a namespace name').optional(),
  leaderElectionId: z
    .string()
    .max(253)
    .regex(DNS_SUBDOMAIN, 'expected a Lease name')
    .default('clara-operator-leader'),
  launcherScript: z.string().min(1).default('launcher/clara_launcher.py'),
  logLevel: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
});

/** The operator's settings, validated, with durations in milliseconds. */
export type OperatorConfig = z.output<typeof configSchema>;

/** The operator's version (package.json's `version`; a unit test keeps them equal). */
export const VERSION = '0.1.0';

/**
 * `--help` text: every flag with its variable, default and help, in the order of SETTINGS. The
 * defaults come from the schema, so the text cannot drift from what the operator does.
 */
export function usage(): string {
  const defaults = configSchema.parse({}) as Record<string, unknown>;
  const rows = (Object.entries(SETTINGS) as [SettingName, Setting][]).map(([name, s]) => {
    const value = defaults[name];
    const shown =
      value === undefined || (Array.isArray(value) && value.length === 0)
        ? ''
        : name === 'pollInterval'
          ? ` (default ${human(value as number)})`
          : ` (default ${String(value)})`;
    const flag = s.boolean ? `--${s.flag}[=true|false]` : `--${s.flag}=VALUE`;
    return `  ${flag}\n      ${s.help}${shown}; env ${s.env}`;
  });
  return [
    `clara-operator ${VERSION}: runs ClaraInstance training runs through ClearML.`,
    '',
    'Usage: clara-operator [flags]',
    '',
    'Flags (a flag wins over its environment variable):',
    ...rows,
    '  --help      print this text',
    '  --version   print the version',
    '',
    `The web view's bearer token is read from ${WEB_TOKEN_ENV} only.`,
    '',
  ].join('\n');
}

/** The configuration could not be parsed; `problems` has one line per bad setting. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly problems: string[];

  constructor(problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.problems = problems;
  }
}

/** `--flag=true` / `--flag=false` for boolean flags, as kubectl and controller-runtime allow. */
function booleanValues(argv: string[]): string[] {
  const booleans = Object.values(SETTINGS as Record<string, Setting>)
    .filter((s) => s.boolean)
    .map((s) => s.flag);
  return argv.flatMap((arg) => {
    const match = /^--([^=]+)=(.*)$/.exec(arg);
    if (!match || !booleans.includes(match[1] ?? '')) return [arg];
    if (TRUE.test(match[2] ?? '')) return [`--${match[1]}`];
    if (FALSE.test(match[2] ?? '')) return [];
    throw new ConfigError([`--${match[1]}=${match[2]}: expected true or false`]);
  });
}

const TRUE = /^(1|true|yes|on)$/i;
const FALSE = /^(0|false|no|off)$/i;

/**
 * Reads the configuration from `argv` (flags, without the program name) and `env`. Throws
 * ConfigError naming every bad setting; pure otherwise.
 */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv): OperatorConfig {
  const problems: string[] = [];
  const options = Object.fromEntries(
    Object.values(SETTINGS).map((s: Setting) => [
      s.flag,
      { type: s.boolean ? ('boolean' as const) : ('string' as const) },
    ]),
  );
  let flags: Record<string, string | boolean | undefined>;
  try {
    flags = parseArgs({
      args: booleanValues(argv),
      options,
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    throw new ConfigError([
      `${(err as Error).message}; known flags: ${Object.values(SETTINGS)
        .map((s) => `--${s.flag}`)
        .join(', ')} (see --help)`,
    ]);
  }

  const raw: Record<string, unknown> = {};
  for (const [name, setting] of Object.entries(SETTINGS) as [SettingName, Setting][]) {
    const fromFlag = flags[setting.flag];
    const fromEnv = env[setting.env];
    if (fromFlag !== undefined) {
      raw[name] = fromFlag;
    } else if (fromEnv !== undefined && fromEnv !== '') {
      if (setting.boolean) {
        if (TRUE.test(fromEnv)) raw[name] = true;
        else if (FALSE.test(fromEnv)) raw[name] = false;
        else problems.push(`${setting.env}=${JSON.stringify(fromEnv)}: expected true or false`);
      } else {
        raw[name] = fromEnv;
      }
    }
  }

  if (env[WEB_TOKEN_ENV]) raw.webToken = env[WEB_TOKEN_ENV];
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    for (const issue of result.error.issues) {
      const name = issue.path[0] as SettingName | 'webToken';
      if (name === 'webToken') {
        // Never echo the token itself.
        problems.push(`${WEB_TOKEN_ENV}: ${issue.message}`);
        continue;
      }
      const setting = SETTINGS[name];
      problems.push(
        `--${setting.flag} / ${setting.env} = ${JSON.stringify(raw[name])}: ${issue.message}`,
      );
    }
  }
  if (problems.length > 0 || !result.success) throw new ConfigError(problems);
  return result.data;
}
