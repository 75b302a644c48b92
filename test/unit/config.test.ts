import { describe, expect, test } from '@jest/globals';

import { readFileSync } from 'node:fs';

import { ConfigError, loadConfig, SETTINGS, usage, VERSION } from '../../src/config.ts';

describe('loadConfig', () => {
  test('applies the defaults', () => {
    expect(loadConfig([], {})).toEqual({
      namespaces: [],
      pollInterval: 15_000,
      workers: 4,
      clearmlPageSize: 500,
      healthAddress: ':8081',
      metricsAddress: ':8080',
      webAddress: '127.0.0.1:8082',
      leaderElect: false,
      leaderElectionId: 'clara-operator-leader',
      launcherScript: 'launcher/clara_launcher.py',
      logLevel: 'info',
    });
  });

  test('reads environment variables, and flags win over them', () => {
    const config = loadConfig(['--poll-interval=2m', '--namespaces', 'ml, research'], {
      CLARA_POLL_INTERVAL: '5s',
      CLARA_WORKERS: '8',
      CLARA_LEADER_ELECT: 'true',
      KUBECONFIG: '/etc/kube/config',
    });
    expect(config).toMatchObject({
      pollInterval: 120_000,
      namespaces: ['ml', 'research'],
      workers: 8,
      leaderElect: true,
      kubeconfig: '/etc/kube/config',
    });
  });

  test.each([
    {
      given: ['--poll-interval=15'],
      want: '--poll-interval / CLARA_POLL_INTERVAL = "15": expected a duration',
    },
    { given: ['--poll-interval=0s'], want: 'expected between 1s and 1h' },
    { given: ['--workers=0'], want: '--workers / CLARA_WORKERS = "0": expected at least 1' },
    { given: ['--workers=2.5'], want: 'expected a whole number' },
    {
      given: ['--workers=abc'],
      want: '--workers / CLARA_WORKERS = "abc": expected a whole number',
    },
    { given: ['--health-address=8081'], want: 'expected host:port' },
    { given: ['--leader-elect=maybe'], want: '--leader-elect=maybe: expected true or false' },
    { given: ['--namespaces=ML'], want: 'expected namespace names separated by commas' },
    { given: ['--log-level=verbose'], want: '--log-level / CLARA_LOG_LEVEL = "verbose"' },
    { given: ['--pol-interval=1s'], want: "Unknown option '--pol-interval'" },
  ])('refuses $given with a message naming the setting', ({ given, want }) => {
    const err = (() => {
      try {
        loadConfig(given, {});
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toContain(want);
  });

  test.each([
    { given: ['--leader-elect'], want: true },
    { given: ['--leader-elect=true'], want: true },
    { given: ['--leader-elect=false'], want: false },
  ])('takes $given', ({ given, want }) => {
    expect(loadConfig(given, {}).leaderElect).toBe(want);
  });

  test('takes the web token from the environment only, and never echoes it', () => {
    expect(loadConfig([], { CLARA_WEB_TOKEN: 'a-long-enough-token' }).webToken).toBe(
      'a-long-enough-token',
    );
    expect(() => loadConfig(['--web-token=x'], {})).toThrow("Unknown option '--web-token'");
    expect(() => loadConfig([], { CLARA_WEB_TOKEN: 'short-secret' })).toThrow(
      'CLARA_WEB_TOKEN: expected at least 16 characters',
    );
    try {
      loadConfig([], { CLARA_WEB_TOKEN: 'short-secret' });
    } catch (e) {
      expect((e as Error).message).not.toContain('short-secret');
    }
  });

  test('refuses a boolean variable that is not one', () => {
    expect(() => loadConfig([], { CLARA_LEADER_ELECT: 'maybe' })).toThrow(
      'CLARA_LEADER_ELECT="maybe": expected true or false',
    );
  });

  test('reports every bad setting at once', () => {
    try {
      loadConfig(['--workers=100', '--health-address=x'], {});
      throw new Error('no ConfigError');
    } catch (e) {
      expect((e as ConfigError).problems).toHaveLength(2);
    }
  });
});

describe('usage', () => {
  test('lists every flag with its variable and the defaults the schema applies', () => {
    const text = usage();
    for (const s of Object.values(SETTINGS)) {
      expect(text).toContain(`--${s.flag}`);
      expect(text).toContain(`env ${s.env}`);
    }
    expect(text).toContain('(default 15s)');
    expect(text).toContain('(default launcher/clara_launcher.py)');
    expect(text).toContain('--help');
  });

  test("reports package.json's version", () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    expect(VERSION).toBe(pkg.version);
  });
});
