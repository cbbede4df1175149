// kafkajs ships no types for its internals; `kafkajs-coordinators.ts` uses one (its Cluster class).
declare module 'kafkajs/src/cluster/index.js';
