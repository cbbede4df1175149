// Which layout a DynamoDB store uses: the option, else SLUICE_STATE_LAYOUT (how a deployed
// function keeps the layout of Sluice 0.1), else pages; anything else fails when the store is made.
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { ConfigError } from 'sluice';
import { DynamoDBStore } from 'sluice/state';

const saved = process.env.SLUICE_STATE_LAYOUT;
afterEach(() => {
  if (saved === undefined) delete process.env.SLUICE_STATE_LAYOUT;
  else process.env.SLUICE_STATE_LAYOUT = saved;
});

test('pages by default; SLUICE_STATE_LAYOUT=items keeps one item per key; the option wins', () => {
  delete process.env.SLUICE_STATE_LAYOUT;
  assert.equal(new DynamoDBStore({ table: 't' }).layout, 'pages');
  process.env.SLUICE_STATE_LAYOUT = 'items';
  assert.equal(new DynamoDBStore({ table: 't' }).layout, 'items');
  assert.equal(new DynamoDBStore({ table: 't', layout: 'pages' }).layout, 'pages');
});

test('an unknown SLUICE_STATE_LAYOUT fails when the store is made, naming both layouts', () => {
  process.env.SLUICE_STATE_LAYOUT = 'paged';
  assert.throws(
    () => new DynamoDBStore({ table: 't' }),
    (e: Error) => e instanceof ConfigError && /SLUICE_STATE_LAYOUT must be "pages" .* or "items" .*; received "paged"/.test(e.message),
  );
});
