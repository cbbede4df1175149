// bench/prices.json is an input file people edit by hand when prices change: it must stay valid
// JSON with every price bench:cost needs, or the benchmark fails only when someone runs it.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { readPrices } from '../../bench/cost-report.js';

test('bench/prices.json parses and has every price bench:cost needs, each a positive number', () => {
  const prices = readPrices(path.join(import.meta.dirname, '../../bench/prices.json'));
  assert.ok(
    prices.dynamodb.onDemandWriteRequestUnitsPerMillion > prices.dynamodb.onDemandReadRequestUnitsPerMillion,
    'writes cost more than reads',
  );
});
