/**
 * The CRD is the source of truth of the ClaraInstance API and src/api/ mirrors it in zod. These
 * tests compare the two structurally: the same fields, and at each field the same type, enum,
 * bounds, pattern, default and required children. What a rule does is compared by running both
 * over the fixtures (api-schema.test.ts here, api-validation.test.ts against the apiserver).
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, test } from '@jest/globals';
import { parse } from 'yaml';
import { z } from 'zod';

import {
  API_VERSION,
  CRD_NAME,
  GROUP,
  KIND,
  PLURAL,
  VERSION,
} from '../../src/api/clarainstance.ts';
import { claraInstanceSpecSchema } from '../../src/api/clarainstance-spec.ts';
import {
  claraInstanceStatusSchema,
  METRIC_NAMES,
  PHASES,
} from '../../src/api/clarainstance-status.ts';
import { RULE_MESSAGES } from '../../src/api/rule-messages.ts';

type Node = { [key: string]: unknown };

const CRD_PATH = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  'crds',
  'clarainstances.clara-operator.io.yaml',
);
const crd = parse(readFileSync(CRD_PATH, 'utf8')) as Node;
const version = (crd.spec as { versions: Node[] }).versions[0]!;
const root = (version.schema as { openAPIV3Schema: Node }).openAPIV3Schema;
const rootProperties = root.properties as Record<string, Node>;

const COMPARED = [
  'type',
  'enum',
  'pattern',
  'minLength',
  'maxLength',
  'minimum',
  'maximum',
  'maxItems',
  'maxProperties',
  'default',
];

// Collapses an int-or-string node (CRD `x-kubernetes-int-or-string`, zod `anyOf` of integer and
// string) into one node carrying the union's bounds and pattern.
function collapseIntOrString(node: Node): Node {
  const anyOf = node.anyOf as Node[] | undefined;
  if (!anyOf) return node;
  const merged: Node = { ...node, type: 'int-or-string' };
  delete merged.anyOf;
  delete merged['x-kubernetes-int-or-string'];
  for (const branch of anyOf) {
    for (const [k, v] of Object.entries(branch)) if (k !== 'type') merged[k] = v;
  }
  return merged;
}

// The attributes of one node that both sides express. zod writes JavaScript's safe-integer range
// on unbounded integers and a pattern on date-times; the CRD says neither.
function attributes(raw: Node): Node {
  const node = collapseIntOrString(raw);
  const out: Node = {};
  for (const key of COMPARED) {
    const value = node[key];
    if (value === undefined) continue;
    if (
      (key === 'minimum' || key === 'maximum') &&
      Math.abs(value as number) === Number.MAX_SAFE_INTEGER
    )
      continue;
    if (key === 'pattern' && node.format === 'date-time') continue;
    out[key] = value;
  }
  // A pattern the CRD checks in CEL (for a readable message) counts as the node's pattern.
  const celPattern = ((node['x-kubernetes-validations'] as Node[] | undefined) ?? [])
    .map((r) => /^self\.matches\(r"(.*)"\)$/.exec(r.rule as string)?.[1])
    .find((p) => p !== undefined);
  if (celPattern !== undefined) out.pattern = celPattern;
  // JavaScript writes `/` in a regex source as `\/`; both mean the same to RE2 and to V8.
  if (typeof out.pattern === 'string') out.pattern = out.pattern.replaceAll('\\/', '/');

  const required = node.required as string[] | undefined;
  if (required?.length) out.required = [...required].sort();
  return out;
}

/** Returns every field below `node` as path → attributes; `*` is a map value, `[]` an item. */
function fields(node: Node, path: string, into: Map<string, Node> = new Map()): Map<string, Node> {
  into.set(path, attributes(node));
  for (const [name, child] of Object.entries((node.properties as Record<string, Node>) ?? {})) {
    fields(child, `${path}.${name}`, into);
  }
  const additional = node.additionalProperties;
  if (typeof additional === 'object' && additional !== null)
    fields(additional as Node, `${path}.*`, into);
  if (node.items) fields(node.items as Node, `${path}[]`, into);
  return into;
}

const zodFields = (schema: z.ZodType, path: string) =>
  fields(z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Node, path);

// Every CEL rule of the CRD with the path of the node that carries it.
function celRules(node: Node, path: string): { path: string; message: string }[] {
  const own = ((node['x-kubernetes-validations'] as Node[]) ?? []).map((r) => ({
    path,
    message: r.message as string,
  }));
  const children = [
    ...Object.entries((node.properties as Record<string, Node>) ?? {}).map(([n, c]) =>
      celRules(c, `${path}.${n}`),
    ),
    node.items ? celRules(node.items as Node, `${path}[]`) : [],
  ];
  return [...own, ...children.flat()];
}

describe('CRD and zod schema agree', () => {
  test.each([
    { part: 'spec', schema: claraInstanceSpecSchema },
    { part: 'status', schema: claraInstanceStatusSchema },
  ])('$part has the same fields on both sides', ({ part, schema }) => {
    const fromCrd = [...fields(rootProperties[part]!, part).keys()].sort();
    const fromZod = [...zodFields(schema, part).keys()].sort();
    expect(fromZod).toEqual(fromCrd);
  });

  test.each([
    { part: 'spec', schema: claraInstanceSpecSchema },
    { part: 'status', schema: claraInstanceStatusSchema },
  ])(
    '$part has the same type, enum, bounds, pattern, default and required fields',
    ({ part, schema }) => {
      const fromCrd = Object.fromEntries(fields(rootProperties[part]!, part));
      const fromZod = Object.fromEntries(zodFields(schema, part));
      expect(fromZod).toEqual(fromCrd);
    },
  );

  test('the CEL rule messages are the messages zod uses', () => {
    const messages = celRules(root, '')
      .map((r) => r.message)
      .sort();
    expect(messages).toEqual(Object.values(RULE_MESSAGES).sort());
  });

  test('phases and metric names match the status schema', () => {
    const status = rootProperties.status!.properties as Record<string, Node>;
    expect(status.phase!.enum).toEqual([...PHASES]);
    expect(Object.keys(status.metrics!.properties as Node)).toEqual([...METRIC_NAMES]);
  });
});

describe('CRD', () => {
  test('names the resource as src/api does', () => {
    expect(crd).toMatchObject({
      apiVersion: 'apiextensions.k8s.io/v1',
      metadata: { name: CRD_NAME },
      spec: {
        group: GROUP,
        scope: 'Namespaced',
        names: { kind: KIND, plural: PLURAL, shortNames: ['clara'] },
      },
    });
    expect(API_VERSION).toBe(`${GROUP}/${version.name as string}`);
    expect(version).toMatchObject({
      name: VERSION,
      served: true,
      storage: true,
      subresources: { status: {} },
    });
  });

  test('shows phase, dice, task, queue and age as printer columns', () => {
    const columns = (version.additionalPrinterColumns as Node[]).map((c) => [c.name, c.jsonPath]);
    expect(columns).toEqual([
      ['Phase', '.status.phase'],
      ['Dice', '.status.metrics.val_mean_dice.latest'],
      ['Task', '.status.taskId'],
      ['Queue', '.spec.queue'],
      ['Age', '.metadata.creationTimestamp'],
    ]);
  });

  test('describes every field of spec and status', () => {
    const undescribed: string[] = [];
    const walk = (node: Node, path: string) => {
      if (typeof node.description !== 'string' || node.description.length < 10)
        undescribed.push(path);
      for (const [name, child] of Object.entries((node.properties as Record<string, Node>) ?? {})) {
        walk(child, `${path}.${name}`);
      }
      if (node.items) walk(node.items as Node, `${path}[]`);
    };
    walk(rootProperties.spec!, 'spec');
    walk(rootProperties.status!, 'status');
    expect(undescribed).toEqual([]);
  });

  test('keeps conditions a map keyed by type, as metav1.Condition lists are', () => {
    const conditions = (rootProperties.status!.properties as Record<string, Node>).conditions!;
    expect(conditions).toMatchObject({
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['type'],
    });
  });
});
