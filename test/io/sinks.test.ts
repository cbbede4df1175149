// The log sinks write through a logger: one entry per message or dead letter.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CaptureLogger, toEventRecord } from 'sluice/testing';
import { logDeadLetters, logOutputs } from '../../framework/src/io/sinks.js';
import { resultLetter } from '../../framework/src/pipeline/dead-letters.js';

test('outputs are info entries with topic, key, value, timestamp and id', async () => {
  const logger = new CaptureLogger();
  await logOutputs(logger).send([
    { topic: 'out', key: 'k', value: { v: 1 }, timestamp: 5, headers: { 'sluice-id': 'fn:in-0:1:0' }, id: 'fn:in-0:1:0' },
  ]);
  assert.deepEqual(logger.entries, [
    { level: 'info', entry: { sluice: 'output', topic: 'out', key: 'k', value: { v: 1 }, timestamp: 5, id: 'fn:in-0:1:0' } },
  ]);
});

test("dead letters are error entries at their origin: the record, or the record that closed a window result's window", async () => {
  const logger = new CaptureLogger();
  const record = toEventRecord({ key: 'k', value: 1, timestamp: 0 }, 'in', 3, 41);
  const closing = { topic: 'in', partition: 3, offset: 50, timestampType: 'CREATE_TIME' };
  await logDeadLetters(() => logger).send(
    [
      { record, stage: 'validate', reason: 'not a number' },
      resultLetter(closing, { id: 'fn:w:g:0:10', key: 'g', value: 1, timestamp: 0 }, 'score', 'refused'),
    ],
    'fn',
  );
  assert.deepEqual(logger.at('error'), [
    { sluice: 'dead-letter', function: 'fn', stage: 'validate', reason: 'not a number', topic: 'in', partition: 3, offset: 41 },
    { sluice: 'dead-letter', function: 'fn', stage: 'score', reason: 'refused', topic: 'in', partition: 3, offset: 50 },
  ]);
});
