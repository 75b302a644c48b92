import { describe, expect, test } from '@jest/globals';

import { parseClaraInstance } from '../../../src/api/clarainstance.ts';
import type { ClaraInstance } from '../../../src/api/clarainstance.ts';
import {
  hyperparameters,
  launchFingerprint,
  launchFingerprintOf,
  mmarArgument,
  taskRequest,
  uidTag,
} from '../../../src/controller/clarainstance/launch.ts';
import { claraInstance, DATASET_ID, SPLEEN_NGC } from '../../fixtures/clara-instance.ts';
import type { Overrides } from '../../fixtures/clara-instance.ts';

const UID = '5d1c2f9e-0000-4000-8000-000000000001';
const LAUNCHER = { entryPoint: 'clara_launcher.py', source: 'print("launch")\n' };

function instance(overrides: Overrides = {}): ClaraInstance {
  const parsed = parseClaraInstance(claraInstance(overrides));
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  return parsed.value;
}

function args(overrides: Overrides = {}): Record<string, string> {
  return Object.fromEntries(
    Object.entries(hyperparameters(instance(overrides))).map(([k, v]) => [k, v.value ?? '']),
  );
}

describe('taskRequest', () => {
  test('creates a training task named after the instance, with the launcher stored in it', () => {
    const req = taskRequest({
      instance: instance(),
      uid: UID,
      projectId: 'p1',
      launcher: LAUNCHER,
    });
    expect(req).toMatchObject({
      name: 'spleen-unet',
      type: 'training',
      project: 'p1',
      script: {
        binary: 'python3',
        entry_point: 'clara_launcher.py',
        diff: 'print("launch")\n',
        // What a virtualenv-mode agent installs for the launcher.
        requirements: { pip: 'clearml\n' },
      },
      container: { image: 'nvcr.io/nvidia/clara-train-sdk:v4.1' },
    });
    expect(req.script?.repository).toBeUndefined();
  });

  test('tags the task with the resource UID and the launch fingerprint', () => {
    const inst = instance();
    const req = taskRequest({ instance: inst, uid: UID, projectId: 'p1', launcher: LAUNCHER });
    expect(req.system_tags).toContain(uidTag(UID));
    expect(launchFingerprintOf(req.system_tags)).toBe(launchFingerprint(inst));
  });

  test('sends the output URI only when the instance names one', () => {
    const plain = taskRequest({
      instance: instance(),
      uid: UID,
      projectId: 'p',
      launcher: LAUNCHER,
    });
    const withUri = taskRequest({
      instance: instance({ spec: { clearml: { outputUri: 's3://bucket/models' } } }),
      uid: UID,
      projectId: 'p',
      launcher: LAUNCHER,
    });
    expect(plain).not.toHaveProperty('output_dest');
    expect(withUri.output_dest).toBe('s3://bucket/models');
  });
});

describe('hyperparameters', () => {
  test('carry the form fields as strings in section Args', () => {
    expect(args({ spec: { set: { epochs: '100', DATASET_JSON: "it's.json" } } })).toEqual({
      runtime: 'ClaraTrain',
      dataset_task: DATASET_ID,
      mmar: `ngc:${SPLEEN_NGC}`,
      training_arch: 'UNet',
      config_file: '',
      environment_file: 'config/environment.json',
      set: "['epochs=100', 'DATASET_JSON=it''s.json']",
      gpus: '1',
    });
  });

  test.each([
    { mmar: { path: '/opt/mmar' }, want: 'path:/opt/mmar' },
    { mmar: { url: 'https://example.com/m.zip' }, want: 'url:https://example.com/m.zip' },
    { mmar: { dataset: DATASET_ID }, want: `dataset:${DATASET_ID}` },
    { mmar: { artifact: { task: DATASET_ID, name: 'mmar' } }, want: `artifact:${DATASET_ID}/mmar` },
  ])('name the MMAR source $want', ({ mmar, want }) => {
    expect(mmarArgument(mmar)).toBe(want);
  });
});

describe('launchFingerprint', () => {
  test.each([
    { field: 'queue', overrides: { spec: { queue: 'other-queue' } } },
    { field: 'set', overrides: { spec: { set: { epochs: '5' } } } },
    { field: 'datasetTask', overrides: { spec: { datasetTask: 'a'.repeat(32) } } },
    {
      field: 'mmar',
      overrides: { spec: { mmar: { ngc: 'clara_pt_spleen_ct_segmentation:4.0' } } },
    },
  ])('changes when $field changes', ({ overrides }) => {
    expect(launchFingerprint(instance(overrides))).not.toBe(launchFingerprint(instance()));
  });

  test.each([
    { field: 'agent', overrides: { spec: { agent: { gpus: 2, image: 'example.com/clara:1' } } } },
    { field: 'suspend', overrides: { spec: { suspend: true } } },
    { field: 'deletionPolicy', overrides: { spec: { deletionPolicy: 'Delete' } } },
  ])('stays the same when only $field changes', ({ overrides }) => {
    expect(launchFingerprint(instance(overrides))).toBe(launchFingerprint(instance()));
  });

  test('does not depend on the order of set keys', () => {
    const a = instance({ spec: { set: { a: '1', b: '2' } } });
    const b = instance({ spec: { set: { b: '2', a: '1' } } });
    expect(launchFingerprint(a)).toBe(launchFingerprint(b));
  });
});
