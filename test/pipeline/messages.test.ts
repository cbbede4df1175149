// Output messages and the deterministic ids: the one place that sets sluice-id; stats summed once.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deadLetterId, lateId, lateMessage, outputMessage, recordId, windowResultId } from '../../framework/src/pipeline/messages.js';
import { newStats, sumStats } from '../../framework/src/pipeline/stats.js';

const at = { topic: 'in', partition: 2 };

test('ids name the function, the source position and the step', () => {
  assert.equal(recordId('fn', at, 41, '0'), 'fn:in-2:41:0');
  assert.equal(recordId('fn', at, 41, '3.1'), 'fn:in-2:41:3.1');
  assert.equal(windowResultId('fn', 'total', { key: 's1', start: 0, end: 10_000, offset: 5, final: true }, '0'), 'fn:total:s1:0:10000');
  assert.equal(
    windowResultId('fn', 'total', { key: 's1', start: 0, end: 10_000, offset: 5, final: false }, '2'),
    'fn:total:s1:0:10000@5.2',
  );
  assert.equal(windowResultId('fn', 'every3', { key: 's1', start: 0, end: 9, offset: 5, final: true, seq: 3 }, '0'), 'fn:every3:s1:#3');
  assert.equal(lateId('fn', 'total', at, 6, '0'), 'fn:late:total:in-2:6:0');
  assert.equal(deadLetterId('fn', { ...at, offset: 41 }), 'fn:dlq:in-2:41');
});

test('an output message carries its id as id and as the sluice-id header, after (and over) the source headers', () => {
  const m = outputMessage('out', 'k', { v: 1 }, 9, { trace: 'a', 'sluice-id': 'upstream' }, 'fn:in-2:41:0');
  assert.deepEqual(m, {
    topic: 'out',
    key: 'k',
    value: { v: 1 },
    timestamp: 9,
    headers: { trace: 'a', 'sluice-id': 'fn:in-2:41:0' },
    id: 'fn:in-2:41:0',
  });
  assert.deepEqual(Object.keys(outputMessage('out', null, 1, 0, { a: '1', b: '2' }, 'x').headers), ['a', 'b', 'sluice-id']);
});

test('a late message names its window and clock, its id first', () => {
  const m = lateMessage('in.late', {
    window: 'total',
    key: 's1',
    value: { v: 3 },
    timestamp: 8_000,
    offset: 6,
    windows: [[0, 10_000]],
    clock: 12_000,
    id: 'fn:late:total:in-2:6:0',
  });
  assert.deepEqual(m, {
    topic: 'in.late',
    key: 's1',
    value: { v: 3 },
    timestamp: 8_000,
    id: 'fn:late:total:in-2:6:0',
    headers: { 'sluice-id': 'fn:late:total:in-2:6:0', 'sluice-late-window': 'total', 'sluice-late-clock': '12000' },
  });
  assert.deepEqual(Object.keys(m.headers), ['sluice-id', 'sluice-late-window', 'sluice-late-clock']);
});

test('stats of several partitions add up', () => {
  const a = { recordsIn: 10, applied: 8, filtered: 1, late: 1, deadLettered: 0, messagesOut: 2, windowsEmitted: 1, poison: 0 };
  const b = { recordsIn: 5, applied: 3, filtered: 0, late: 0, deadLettered: 2, messagesOut: 0, windowsEmitted: 0, poison: 2 };
  assert.deepEqual(sumStats([a, b]), {
    recordsIn: 15,
    applied: 11,
    filtered: 1,
    late: 1,
    deadLettered: 2,
    messagesOut: 2,
    windowsEmitted: 1,
    poison: 2,
  });
  assert.deepEqual(sumStats([]), newStats());
});
