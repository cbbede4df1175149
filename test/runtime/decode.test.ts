// The edge's decoding: each event record becomes a decoded source record once; bad ones become dead letters.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { bytes, stream } from 'sluice';
import { type KafkaEventRecord, manifestOf } from 'sluice/runtime';
import { toEventRecord } from 'sluice/testing';
import { SourceDecoder } from '../../framework/src/runtime/decode.js';

const rec = (offset: number, key: string | null, value: unknown, headers?: Record<string, string>): KafkaEventRecord =>
  toEventRecord({ key, value, timestamp: 1_000 + offset, ...(headers ? { headers } : {}) }, 'in', 2, offset);

const decoder = (opts: Parameters<typeof stream>[1] = {}) =>
  new SourceDecoder(manifestOf(stream<unknown>('in', { name: 'd', ...opts }).to('out')).source);

describe('SourceDecoder', () => {
  test('decodes key, value and position; headers on first read; the original stays beside them', () => {
    const original = rec(7, 's1', { v: 2 }, { trace: 'abc' });
    const { records, rejected } = decoder().decode([original]);
    assert.deepEqual(rejected, []);
    const [r] = records;
    assert.deepEqual(
      [r.topic, r.partition, r.offset, r.timestamp, r.timestampType, r.key, r.value],
      ['in', 2, 7, 1_007, 'CREATE_TIME', 's1', { v: 2 }],
    );
    assert.deepEqual(r.headers, { trace: 'abc' });
    assert.equal(r.headers, r.headers, 'decoded once');
    assert.equal(r.original, original, 'the record as it arrived, untouched');
  });

  test('a record that does not deserialize or validate becomes a dead letter with its original record; the rest decode', () => {
    const bad = { ...rec(1, 'k', null), value: Buffer.from('{"v":', 'utf8').toString('base64') };
    const input = [rec(0, 'k', { v: 1 }), bad, rec(2, 'k', { v: 'x' }), rec(3, 'k', { v: 3 })];
    const { records, rejected } = decoder({ validate: (v) => typeof (v as { v: unknown }).v === 'number' || 'v must be a number' }).decode(
      input,
    );
    assert.deepEqual(
      records.map((r) => r.offset),
      [0, 3],
    );
    assert.deepEqual(
      rejected.map((d) => [d.record, d.stage]),
      [
        [bad, 'deserialize value'],
        [input[2], 'validate'],
      ],
    );
    assert.match(rejected[0].reason, /^value is not valid json: /);
    assert.equal(rejected[1].reason, 'v must be a number');
  });

  test('a validate() that throws rejects the record with what it threw', () => {
    const { rejected } = decoder({
      validate: () => {
        throw new Error('boom');
      },
    }).decode([rec(0, 'k', 1)]);
    assert.deepEqual(
      rejected.map((d) => [d.stage, d.reason]),
      [['validate', 'validate() threw: boom']],
    );
  });

  test('bytes keys become base64 text; a missing key is null', () => {
    const { records } = decoder({ key: bytes }).decode([rec(0, 'ab', 1), rec(1, null, 2)]);
    assert.deepEqual(
      records.map((r) => r.key),
      [Buffer.from('ab').toString('base64'), null],
    );
  });

  test('a batch decodes up to an end, with fresh values on every call (a rerun sees records as they arrived)', () => {
    const input = [rec(5, 'k', { n: 1 }), rec(6, 'k', { n: 2 }), rec(9, 'k', { n: 3 })];
    const batch = decoder().batch(input);
    assert.equal(batch.length, 3);
    assert.deepEqual(
      [0, 1, 2].map((i) => batch.offsetAt(i)),
      [5, 6, 9],
    );
    const first = batch.decode(3).records;
    (first[0].value as { n: number }).n = 100;
    const again = batch.decode(2).records;
    assert.deepEqual(
      again.map((r) => r.value),
      [{ n: 1 }, { n: 2 }],
    );
  });
});
