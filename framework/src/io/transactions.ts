/**
 * Exactly-once delivery's contract with Kafka: per source partition, one transaction at a time
 * that carries a batch's outputs, late records and dead letters together with the batch's
 * *position* (how far the partition's outputs are published), committed to a consumer group Sluice
 * owns. The runtime (`runtime/exactly-once.ts`) decides the order; `kafka-transactions.ts`
 * implements it with kafkajs. See docs/guarantees.md.
 *
 * A position is the offset of the last record whose outputs are published, or for an idle tick
 * its position `l + 0.5` and its sequence number `k` (several ticks can run at one position while
 * no record arrives). It is stored as the group's committed offset (the next offset to read, as
 * Kafka tools expect) with the exact position in the offset's metadata.
 */
import type { DeadLetter, OutputMessage } from '../pipeline/records.js';

/**
 * How far a partition's outputs are published: `at` is a record's offset or a tick's position
 * (`l + 0.5`, with its sequence number `tick`); -1 when nothing was ever published.
 *
 * @example
 * const p: Published = { at: 41.5, tick: 3 };
 */
export interface Published {
  readonly at: number;
  readonly tick?: number;
  /** A tick's floors, by idle window: whoever finishes its state closes exactly what it published. */
  readonly floors?: Readonly<Record<string, number>>;
}

/**
 * Nothing published yet.
 *
 * @example
 * txn.published.at === NOTHING_PUBLISHED.at; // a partition's first transaction
 */
export const NOTHING_PUBLISHED: Published = { at: -1 };

/**
 * One open Kafka transaction of one source partition. Its producer's transactional id was claimed
 * when it began, fencing every older producer of that id (a stale invocation can no longer
 * commit), and `published` was read after that claim, so it is final: nothing older can commit.
 *
 * @example
 * const txn = await transactions.begin('readings', 0);
 * await txn.send(result.outputs, result.deadLetters, 'SensorSums');
 * await result.commit();
 * await txn.commit({ at: 99 });
 */
export interface OutputTransaction {
  /** What the partition's committed transactions published, as of the claim. */
  readonly published: Published;
  /** Adds messages and dead letters to the transaction (nothing is visible to read_committed readers before `commit`). */
  send(messages: readonly OutputMessage[], letters: readonly DeadLetter[], functionName: string): Promise<void>;
  /** Records `to` as published and commits: everything sent becomes visible at once, or never. */
  commit(to: Published): Promise<void>;
  /** Aborts: nothing sent becomes visible. Never throws (a failed abort is aborted by the next claim or the timeout). */
  abort(): Promise<void>;
}

/**
 * Where exactly-once transactions come from: one producer per source partition, created on first
 * use and reused while it stays valid.
 *
 * @example
 * handler.sluice.configure({ transactions: new KafkaTransactions({ kafka, functionName: 'sensor-sums', manifest }) });
 */
export interface OutputTransactions {
  /** Claims the partition's transactional id and begins a transaction. */
  begin(topic: string, partition: number): Promise<OutputTransaction>;
  /**
   * What the partition published, without claiming it (an idle tick asks before deciding whether
   * it needs the claim, which would fence the producer of a container running batches): final if
   * this container holds the claim, otherwise what the group said last (a commit may be in flight).
   */
  published(topic: string, partition: number): Promise<Published>;
  /** Disconnects every producer (a container going away; the emulator's simulated container reset). */
  close(): Promise<void>;
}

/**
 * The transactional id of a source partition: derived from the function, topic and partition so
 * that every invocation that could ever process that partition fences the ones before it. A `.`
 * ends the function's name (Lambda names cannot hold one), so two functions never share an id:
 * `a-b` reading `c` and `a` reading `b-c` differ.
 *
 * @example
 * transactionalId('sensor-sums-prod', 'readings', 3); // 'sluice-sensor-sums-prod.readings-3'
 */
export function transactionalId(functionName: string, topic: string, partition: number): string {
  return `sluice-${functionName}.${topic}-${partition}`;
}

/**
 * The consumer group whose committed offsets record what a function published, per source
 * partition (no consumer ever joins it).
 *
 * @example
 * publishedGroup('sensor-sums-prod'); // 'sluice-sensor-sums-prod.published'
 */
export function publishedGroup(functionName: string): string {
  return `sluice-${functionName}.published`;
}

/**
 * A position as a consumer group offset: the next offset to read, and the exact position in the
 * metadata.
 *
 * @example
 * encodePublished({ at: 41.5, tick: 3 }); // { offset: '42', metadata: '{"at":41.5,"tick":3}' }
 */
export function encodePublished(p: Published): { offset: string; metadata: string } {
  return { offset: String(Math.floor(p.at) + 1), metadata: JSON.stringify(p) };
}

/**
 * The position a committed group offset records; {@link NOTHING_PUBLISHED} for none (-1), and a
 * plain offset (no Sluice metadata) as the record before it.
 *
 * @example
 * decodePublished('42', '{"at":41.5,"tick":3}'); // { at: 41.5, tick: 3 }
 * decodePublished('-1', '');                     // { at: -1 }
 */
export function decodePublished(offset: string, metadata: string | null | undefined): Published {
  const next = Number(offset);
  if (!Number.isFinite(next) || next < 0) return NOTHING_PUBLISHED;
  try {
    const p = JSON.parse(metadata ?? '') as Published;
    if (typeof p.at === 'number' && Math.floor(p.at) + 1 === next)
      return p.tick === undefined ? { at: p.at } : { at: p.at, tick: p.tick, ...(p.floors ? { floors: p.floors } : {}) };
  } catch {
    // Not Sluice's metadata: the offset alone says it.
  }
  return { at: next - 1 };
}

/**
 * Whether a position is covered by what is published: an offset or tick at or before `published`
 * (a tick at the same position only if it is that tick or an earlier one).
 *
 * @example
 * isPublished({ at: 41 }, { at: 41.5, tick: 2 }); // true
 * isPublished({ at: 41.5, tick: 3 }, { at: 41.5, tick: 2 }); // false: a later tick at the same place
 */
export function isPublished(position: Published, published: Published): boolean {
  if (position.at !== published.at) return position.at < published.at;
  return position.tick === undefined || (published.tick !== undefined && position.tick <= published.tick);
}
