/**
 * ONNX scoring: predictions equal scikit-learn's, one model run per batch, per-row fallback for a
 * batch of 1, several inputs and int64 tensors, bad rows to the dead-letter path, bad model files
 * rejected at load, both authoring forms, and ONNX Runtime loaded only by functions with models.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError, count, mean, onnxModel, score, source, stream, to, tumblingWindow } from 'sluice';
import { manifestOf } from 'sluice/runtime';
import { CaptureLogger, runFunction } from 'sluice/testing';
import { handler as transportHandler, transportModel } from '../../functions/transport-mode/handler.js';
import { readModelSignature } from '../../framework/src/model/onnx-file.js';
import { protoModel } from './proto.js';

const root = path.resolve(import.meta.dirname, '../..');
const fixtures = path.join(root, 'test/fixtures/models');
const expected = JSON.parse(readFileSync(path.join(fixtures, 'transport-mode-expected.json'), 'utf8')) as {
  classes: string[];
  rows: number[][];
  labels: string[];
  probabilities: number[][];
};
const twoInputs = onnxModel(path.join(fixtures, 'two-inputs.onnx'));
const fixedBatchLog = new CaptureLogger();
const fixedBatch = onnxModel(path.join(fixtures, 'fixed-batch.onnx'), { logger: fixedBatchLog });

/** Counts `session.run` calls of a model's (shared, per-container) session. */
async function countRuns(model: {
  session(): Promise<{ run: (...a: any[]) => Promise<unknown> }>;
}): Promise<{ calls: number; restore(): void }> {
  const session = await model.session();
  const original = session.run;
  const spy = { calls: 0, restore: () => void (session.run = original) };
  session.run = function (this: unknown, ...args: any[]) {
    spy.calls++;
    return original.apply(this, args);
  };
  return spy;
}

function assertClose(actual: number[], wanted: number[], tolerance: number, what: string): void {
  assert.equal(actual.length, wanted.length, what);
  for (let i = 0; i < wanted.length; i++)
    assert.ok(Math.abs(actual[i] - wanted[i]) <= tolerance, `${what}[${i}]: ${actual[i]} vs ${wanted[i]}`);
}

describe('the transport-mode model', () => {
  test('predicts what scikit-learn predicts on the fixed rows, in one run', async () => {
    const spy = await countRuns(transportModel);
    try {
      const results = await transportModel.score(expected.rows);
      assert.equal(spy.calls, 1);
      assert.equal(results.length, expected.rows.length);
      results.forEach((r, i) => {
        assert.ok(r.ok, `row ${i}`);
        assert.equal(r.outputs.label, expected.labels[i], `label of row ${i}`);
        assertClose(r.outputs.probabilities, expected.probabilities[i], 1e-5, `probabilities of row ${i}`);
      });
      // The fixture covers every class, so a model answering one class everywhere fails here.
      assert.deepEqual([...new Set(expected.labels)].sort(), expected.classes);
    } finally {
      spy.restore();
    }
  });

  test('row-by-row scoring gives the same outputs as batched scoring', async () => {
    const batched = await transportModel.score(expected.rows.slice(0, 12));
    const perRow = await transportModel.score(expected.rows.slice(0, 12), { batched: false });
    assert.deepEqual(perRow, batched);
  });

  test('the training script is deterministic and reproduces the committed model and expectations', {
    skip: !process.env.SLUICE_PYTHON_BIN && 'SLUICE_PYTHON_BIN not set (the test command sets it)',
  }, () => {
    const out = mkdtempSync(path.join(tmpdir(), 'sluice-train-'));
    try {
      const python = path.join(process.env.SLUICE_PYTHON_BIN!, 'python');
      const r = spawnSync(python, [path.join(root, 'scripts/models/train_transport_mode.py'), '--out-dir', out], {
        encoding: 'utf8',
        timeout: 300_000,
      });
      assert.equal(r.status, 0, r.stderr);
      for (const rel of [
        'functions/transport-mode/model.onnx',
        'functions/transport-mode/sample.jsonl',
        'test/fixtures/models/transport-mode-expected.json',
        'test/fixtures/models/two-inputs.onnx',
        'test/fixtures/models/fixed-batch.onnx',
      ]) {
        const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');
        assert.equal(sha(path.join(out, rel)), sha(path.join(root, rel)), `${rel} differs from the committed file`);
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  test('the transport-mode function scores every closing window of a batch in one run', async () => {
    const lines = readFileSync(path.join(root, 'functions/transport-mode/sample.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const spy = await countRuns(transportModel);
    let run: Awaited<ReturnType<typeof runFunction>>;
    try {
      run = await runFunction(transportHandler, lines, { batchSize: 1000 });
    } finally {
      spy.restore();
    }
    const predictions = run.values('transport-modes') as {
      device: string;
      mode: string;
      probability: number;
      features: { count: number };
    }[];
    // 6 devices, 95 s each: windows 0-80 s close within the input (grace 2 s); the 90 s ones stay open.
    assert.equal(predictions.length, 6 * 9);
    assert.equal(spy.calls, 1, 'one batch, one model run');
    const truth: Record<string, string> = { walk: 'walking', bike: 'cycling', car: 'driving' };
    const right = predictions.filter((p) => truth[p.device.split('-')[0]] === p.mode).length;
    assert.ok(right / predictions.length >= 0.85, `${right}/${predictions.length} windows right`);
    for (const p of predictions) assert.ok(p.probability > 0.33 && p.probability <= 1, JSON.stringify(p));
    assert.equal(run.deadLetters.length, 1, 'the one bad sample line');
    assert.match(run.deadLetters[0].reason, /speed must be/);
  });
});

describe('scoring several inputs, int64 tensors and a batch of 1', () => {
  test('two inputs (float and int64) by name, outputs per row', async () => {
    assert.deepEqual(twoInputs.inputNames, ['x', 'n']);
    const results = await twoInputs.score([
      { x: [1, 2, 3], n: [3] },
      { x: [0.5, 0.5, 0.5], n: 7n },
      { x: [1, 1, 1], n: [-2] },
    ]);
    assert.deepEqual(
      results.map((r) => r.ok && r.outputs),
      [
        { total: 6, doubled: [6] },
        { total: 1.5, doubled: [14] },
        { total: 3, doubled: [-4] },
      ],
    );
  });

  test('a model with a fixed batch of 1 is run row by row, with one warning', async () => {
    const spy = await countRuns(fixedBatch);
    try {
      const first = await fixedBatch.score([
        [1, 2],
        [3, 4],
        [0.25, 0.5],
      ]);
      const second = await fixedBatch.score([[1, 1]]);
      assert.deepEqual(
        first.map((r) => r.ok && r.outputs.y),
        [[3], [7], [0.75]],
      );
      assert.deepEqual(
        second.map((r) => r.ok && r.outputs.y),
        [[2]],
      );
      assert.equal(spy.calls, 4, 'one run per row');
      assert.equal(fixedBatchLog.at('warn').length, 1, 'warned once');
      assert.match(String(fixedBatchLog.at('warn')[0].message), /fixed batch size of 1/);
    } finally {
      spy.restore();
    }
  });

  test('the session is created once and reused', async () => {
    const a = await twoInputs.session();
    await twoInputs.score([{ x: [1, 2, 3], n: [1] }]);
    assert.equal(await twoInputs.session(), a);
  });
});

describe('bad rows go to the dead-letter path; the rest of the batch is scored', () => {
  test('wrong length, non-finite, wrong type and unknown input names are refused with the model, input and shape', async () => {
    const results = await transportModel.score([
      [1, 2, 3],
      [1, Number.NaN, 0, 5],
      [1, 2, 0.1, 5],
      ['a', 1, 1, 1],
      { features: [1, 2, 3, 4], other: [1] },
      null,
    ]);
    const reasons = results.map((r) => (r.ok ? 'ok' : r.reason));
    assert.match(reasons[0], /model "transport-mode" input "features" expects 4 float32 value\(s\) per row \(shape \[N, 4\]\); got 3/);
    assert.match(reasons[1], /input "features" .*value 1 is NaN \(not finite\)/);
    assert.equal(reasons[2], 'ok');
    assert.match(reasons[3], /value 0 is "a", not a number|value 0 is .*not a number/);
    assert.match(reasons[4], /has no input named "other"/);
    assert.match(reasons[5], /input "features" expects 4 float32/);
    assert.ok(results[2].ok && typeof results[2].outputs.label === 'string');
  });

  test('an int64 input refuses fractions', async () => {
    const [r] = await twoInputs.score([{ x: [1, 2, 3], n: [1.5] }]);
    assert.ok(!r.ok);
    assert.match(r.reason, /input "n" expects 1 int64 value\(s\) per row .*value 0 is 1.5, not an integer/);
  });

  test('a record step: the bad record is dead-lettered with its reason, the others flow', async () => {
    const fn = stream<{ v: number[] }>('rows', { name: 'rows' })
      .score(transportModel, { features: (r) => r.v, output: (o, r) => ({ v: r.v, mode: o.label }) })
      .to('scored');
    const run = await runFunction(fn, [
      { key: 'a', value: { v: [1.4, 1.9, 0.2, 10] }, timestamp: 1 },
      { key: 'b', value: { v: [1.4, 1.9, 0.2] }, timestamp: 2 },
      { key: 'c', value: { v: [13, 22, 6, 10] }, timestamp: 3 },
    ]);
    assert.deepEqual(run.values('scored'), [
      { v: [1.4, 1.9, 0.2, 10], mode: 'walking' },
      { v: [13, 22, 6, 10], mode: 'driving' },
    ]);
    assert.equal(run.deadLetters.length, 1);
    assert.equal(run.deadLetters[0].record.offset, 1);
    assert.equal(run.deadLetters[0].stage, 'transport-mode');
    assert.match(run.deadLetters[0].reason, /input "features" expects 4 float32 value\(s\) per row \(shape \[N, 4\]\); got 3/);
    assert.deepEqual(
      run.responses.map((r) => r.batchItemFailures),
      [[]],
    );
  });

  test('a window result the model cannot take is dead-lettered with the window itself', async () => {
    const fn = stream<{ speed: number }>('speeds', { name: 'speeds' })
      .tumblingWindow('10s')
      .aggregate({ mean: mean('speed'), n: count() })
      .score(transportModel, { features: (w) => [w.mean, w.mean, 0, w.n], output: (o, w) => ({ ...w, mode: o.label }) })
      .to('modes');
    const run = await runFunction(fn, [
      { key: 'walker', value: { speed: 1.4 }, timestamp: 1_000 },
      { key: 'ghost', value: { speed: null }, timestamp: 1_000 },
      { key: 'walker', value: { speed: 1.4 }, timestamp: 20_000 },
      { key: 'ghost', value: { speed: null }, timestamp: 20_000 },
    ]);
    assert.deepEqual(run.values('modes'), [{ start: 0, end: 10_000, mean: 1.4, n: 1, mode: 'walking' }]);
    assert.equal(run.deadLetters.length, 1);
    const dl = run.deadLetters[0];
    assert.match(
      dl.reason,
      /^window result speeds:tumblingWindow:ghost:0:10000: model "transport-mode" input "features" .*value 0 is null, not a number/,
    );
    assert.equal(Buffer.from(dl.record.key!, 'base64').toString(), 'ghost');
    assert.deepEqual(JSON.parse(Buffer.from(dl.record.value!, 'base64').toString()), { start: 0, end: 10_000, mean: null, n: 1 });
  });
});

describe('bad model files fail at load with a ConfigError', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-models-'));
  const write = (name: string, bytes: Uint8Array) => {
    const f = path.join(dir, name);
    writeFileSync(f, bytes);
    return f;
  };

  test('a missing file', () => {
    assert.throws(
      () => onnxModel(path.join(dir, 'nope.onnx')),
      (e: Error) =>
        e instanceof ConfigError &&
        /nope\.onnx.*cannot be read \(ENOENT\).*new URL\('\.\/model\.onnx', import\.meta\.url\)/s.test(e.message),
    );
  });

  test('garbage, a truncated model and an empty file', () => {
    const model = readFileSync(path.join(root, 'functions/transport-mode/model.onnx'));
    for (const [name, bytes] of [
      ['garbage.onnx', Buffer.from('this is not a model at all, just text\n'.repeat(20))],
      ['truncated.onnx', model.subarray(0, model.length - 1000)],
      ['empty.onnx', new Uint8Array()],
    ] as const) {
      const f = write(name, bytes);
      assert.throws(
        () => onnxModel(f, { name: 'm' }),
        (e: Error) =>
          e instanceof ConfigError && e.message.includes(`model "m" (${f}) is not a valid ONNX model`) && /export it again/.test(e.message),
        name,
      );
    }
  });

  test('a ZipMap (sequence) output, a fixed batch of 32 and an unsupported input type', () => {
    const zipmap = write(
      'zipmap.onnx',
      protoModel({ inputs: [{ name: 'x', elemType: 1, dims: ['N', 2] }], outputs: [{ name: 'output_probability', sequence: true }] }),
    );
    assert.throws(
      () => onnxModel(zipmap),
      (e: Error) => e instanceof ConfigError && /output "output_probability" .* is a sequence.*zipmap': False/.test(e.message),
    );
    const fixed = write(
      'fixed32.onnx',
      protoModel({ inputs: [{ name: 'x', elemType: 1, dims: [32, 2] }], outputs: [{ name: 'y', elemType: 1, dims: [32] }] }),
    );
    assert.throws(
      () => onnxModel(fixed),
      (e: Error) => e instanceof ConfigError && /fixed batch size of 32; export it with a dynamic first dimension/.test(e.message),
    );
    const f16 = write(
      'f16.onnx',
      protoModel({ inputs: [{ name: 'x', elemType: 10, dims: ['N', 2] }], outputs: [{ name: 'y', elemType: 1, dims: ['N'] }] }),
    );
    assert.throws(
      () => onnxModel(f16),
      (e: Error) => e instanceof ConfigError && /input "x" .* has type float16; Sluice feeds tensors of float32/.test(e.message),
    );
  });

  test('the signature reader reads what the Python exporter wrote', () => {
    const sig = readModelSignature(readFileSync(path.join(root, 'functions/transport-mode/model.onnx')));
    assert.deepEqual(sig.inputs, [{ name: 'features', kind: 'tensor', type: 'float32', dims: [null, 4] }]);
    assert.deepEqual(
      sig.outputs.map((o) => [o.name, o.type, o.dims]),
      [
        ['label', 'string', [null]],
        ['probabilities', 'float32', [null, 3]],
      ],
    );
  });

  test('bad score options fail at load, naming the option', () => {
    assert.throws(() => stream('t').score(transportModel, { features: (v: unknown) => v } as never), /needs output: a function/);
    assert.throws(() => stream('t').score({} as never, { features: (v) => v, output: (o) => o }), /needs a model such as onnxModel/);
    assert.throws(
      () => stream('t').score(transportModel, { features: (v: unknown) => v, output: (o: unknown) => o, batch: 3 } as never),
      /unknown option "batch"/,
    );
    assert.throws(() => score(transportModel, { features: async (v: unknown) => v } as never), /async function/);
  });

  test.after?.(() => rmSync(dir, { recursive: true, force: true }));
});

describe('both authoring forms', () => {
  interface Stats {
    readonly start: number;
    readonly end: number;
    readonly mean: number | null;
    readonly n: number;
  }

  @source('speeds', { name: 'modes' })
  class ModesByDecorators {
    @tumblingWindow('10s')
    stats = { mean: mean('speed'), n: count() };

    @to('modes')
    @score(transportModel, { features: (w: Stats) => [w.mean, w.mean, 0, w.n] })
    mode(o: { label: string }, w: Stats) {
      return { ...w, mode: o.label };
    }
  }

  const modesByChain = stream<{ speed: number }>('speeds', { name: 'modes' })
    .tumblingWindow('10s')
    .aggregate({ mean: mean('speed'), n: count() }, { name: 'stats' })
    .score(transportModel, { name: 'mode', features: (w) => [w.mean, w.mean, 0, w.n], output: (o, w) => ({ ...w, mode: o.label }) })
    .to('modes');

  test('produce the same manifest and the same outputs', async () => {
    const a = manifestOf(ModesByDecorators);
    const b = manifestOf(modesByChain);
    assert.deepEqual(
      a.steps.map((s) => `${s.kind}:${s.name}`),
      ['window:stats', 'score:mode', 'to:modes'],
    );
    assert.deepEqual(
      b.steps.map((s) => `${s.kind}:${s.name}`),
      ['window:stats', 'score:mode', 'to:modes'],
    );
    const scoreA = a.steps[1];
    const scoreB = b.steps[1];
    assert.ok(scoreA.kind === 'score' && scoreB.kind === 'score');
    assert.equal(scoreA.model, scoreB.model);
    const input = [
      { key: 'w', value: { speed: 1.3 }, timestamp: 1_000 },
      { key: 'c', value: { speed: 14 }, timestamp: 2_000 },
      { key: 'w', value: { speed: 1.5 }, timestamp: 30_000 },
      { key: 'c', value: { speed: 15 }, timestamp: 30_000 },
    ];
    const ra = await runFunction(ModesByDecorators, input);
    const rb = await runFunction(modesByChain, input);
    assert.deepEqual(ra.outputs, rb.outputs);
    assert.deepEqual(
      ra.values('modes').map((v) => (v as { mode: string }).mode),
      ['walking', 'driving'],
    );
  });
});

describe('ONNX Runtime loads lazily', () => {
  /** The shared libraries a fresh Node process has loaded after running `script` (tsx, in the repo). */
  function loadedLibraries(script: string): string[] {
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', `${script}\nconsole.log(JSON.stringify(process.report.getReport().sharedObjects));`],
      { cwd: root, encoding: 'utf8', timeout: 60_000 },
    );
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as string[];
  }
  const event = (topic: string, value: unknown) =>
    `{ eventSource: 'aws:kafka', records: { '${topic}-0': [{ topic: '${topic}', partition: 0, offset: 0, timestamp: 1000, timestampType: 'CREATE_TIME', key: Buffer.from('k').toString('base64'), value: Buffer.from(JSON.stringify(${JSON.stringify(value)})).toString('base64'), headers: [] }] } }`;
  const ctx = `{ functionName: 'f', awsRequestId: 'r', getRemainingTimeInMillis: () => 30000 }`;

  test('a function without a model never loads it; one with a model loads it on its first window', () => {
    const without = loadedLibraries(
      `const { handler } = await import('./functions/sensor-sums/handler.ts'); await handler(${event('sensor-counts', { value: 1 })}, ${ctx});`,
    );
    assert.ok(!without.some((l) => l.includes('onnxruntime')), without.filter((l) => l.includes('onnx')).join());
    const imported = loadedLibraries(`await import('./functions/transport-mode/handler.ts');`);
    assert.ok(!imported.some((l) => l.includes('onnxruntime')), 'importing the handler does not load ONNX Runtime');
    const scored = loadedLibraries(
      `const { transportModel } = await import('./functions/transport-mode/handler.ts'); await transportModel.score([[1, 2, 0.5, 10]]);`,
    );
    assert.ok(
      scored.some((l) => l.includes('libonnxruntime.so')),
      'scoring loads it',
    );
  });
});

assert.ok(existsSync(path.join(fixtures, 'two-inputs.onnx')));
