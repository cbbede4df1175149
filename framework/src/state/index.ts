/**
 * `sluice/state`: the state stores and the contract a store implements. Deployed functions get
 * the DynamoDB store from the plugin's `SLUICE_STATE_TABLE`; local runs and tests pass a store to
 * `handler.sluice.configure({ store })` or `runFunction(…, { store })`.
 *
 * @example
 * import { DynamoDBStore, MemoryStore } from 'sluice/state';
 * handler.sluice.configure({ store: new DynamoDBStore({ table: 'sluice-state', endpoint: 'http://127.0.0.1:8000' }) });
 * const store = new MemoryStore(); // in memory: local runs and tests
 */
export { MemoryStore, type ItemSnapshot } from './memory-store.js';
export { DynamoDBStore, type DynamoDBStoreOptions, type DynamoDBStats } from './dynamodb-store.js';
export { VersionedStore } from './versioned-store.js';
export type { ItemLimit, ItemPut, RawItem, StoreRules, VersionFormat } from './versioned-store.js';
export type { Version } from './versions.js';
export type { BatchBounds, ItemChange, StateScope, StateStore, StoreCallOptions, StoredItem, WriteStats } from './store.js';
