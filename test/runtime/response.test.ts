// Lambda's response rules: a partial batch response, or a thrown error when Lambda would ignore one.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SluiceError } from 'sluice';
import { answer, BatchResponse } from '../../framework/src/runtime/response.js';

test('failed partitions are listed as "<topic>-<partition>" with the offset to resume from', () => {
  const response = new BatchResponse();
  response.fail('readings', 0, 42);
  response.fail('readings', 3, 7);
  assert.deepEqual(response.value, {
    batchItemFailures: [
      { itemIdentifier: { partition: 'readings-0', offset: 42 } },
      { itemIdentifier: { partition: 'readings-3', offset: 7 } },
    ],
  });
});

test('with partial batch responses the response is returned as is', () => {
  const response = new BatchResponse();
  response.fail('readings', 0, 42);
  assert.equal(answer(response.value, true), response.value);
});

test('without them, a failure fails the whole batch with a retriable error naming the first failure', () => {
  const response = new BatchResponse();
  response.fail('readings', 0, 42);
  response.fail('readings', 1, 8);
  assert.throws(
    () => answer(response.value, false),
    (e: unknown) => {
      assert.ok(e instanceof SluiceError && e.retriable);
      assert.match(
        e.message,
        /^2 partition\(s\) of this batch failed \(first: readings-0@42\); partial batch responses need provisioned pollers/,
      );
      return true;
    },
  );
  const clean = new BatchResponse().value;
  assert.equal(answer(clean, false), clean, 'nothing failed: nothing to throw');
});

test('SLUICE_PARTIAL_BATCH=false is what turns partial batch responses off', () => {
  const response = new BatchResponse();
  response.fail('readings', 0, 1);
  const saved = process.env.SLUICE_PARTIAL_BATCH;
  try {
    process.env.SLUICE_PARTIAL_BATCH = 'false';
    assert.throws(() => answer(response.value), SluiceError);
    process.env.SLUICE_PARTIAL_BATCH = 'true';
    assert.equal(answer(response.value), response.value);
  } finally {
    if (saved === undefined) delete process.env.SLUICE_PARTIAL_BATCH;
    else process.env.SLUICE_PARTIAL_BATCH = saved;
  }
});
