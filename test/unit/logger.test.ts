import { Writable } from 'node:stream';

import { expect, test } from '@jest/globals';

import { createLogger } from '../../src/logger.ts';

test('redacts keys, tokens and Secret data wherever they appear', () => {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
  const log = createLogger({ level: 'info', destination });
  log.info(
    {
      connection: { apiUrl: 'https://api', accessKey: 'AK-VISIBLE?', secretKey: 'SK-LEAK' },
      secret: { data: { CLEARML_API_SECRET_KEY: 'U0stTEVBSw==' } },
      token: 'eyJ-LEAK',
    },
    'connected',
  );
  const line = JSON.parse(lines.join('')) as Record<string, unknown>;
  expect(line).toMatchObject({
    level: 'info',
    msg: 'connected',
    connection: { apiUrl: 'https://api', accessKey: '[redacted]', secretKey: '[redacted]' },
    secret: { data: '[redacted]' },
    token: '[redacted]',
  });
  expect(lines.join('')).not.toMatch(/LEAK|U0stTEVBSw|AK-VISIBLE/);
});
