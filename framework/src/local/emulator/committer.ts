import type { FunctionStats } from './stats.js';

/*
 * Offset commits as the event source mapping makes them: after a successful invocation, without
 * holding up the partition's next one. Lambda invokes a partition's next batch once the previous
 * one succeeded, not once its commit came back; a crash in between re-delivers at most the
 * batches whose commits had not landed (at-least-once, as deployed).
 */

/**
 * Commits the offsets partitions ask for, one request at a time, each carrying the newest offset
 * every partition asked for since the last one: a partition's commits land in the order it asked,
 * never a later one before an earlier, and a partition that asks again while a request is in
 * flight waits for nothing (its offsets coalesce into the next request). A request that fails
 * fails every partition it carried and every one still waiting: each learns it once, from its
 * next {@link request} or its {@link settle}.
 *
 * @example
 * const committer = new OffsetCommitter(stats, (offsets) => consumer.commitOffsets(offsets.map(([partition, next]) => ({ topic, partition, offset: String(next) }))));
 * committer.request(0, 100); // returns at once; the commit goes out now or with the next request
 * await committer.settle(0); // every offset partition 0 asked for has landed, or this throws why not
 */
export class OffsetCommitter {
  /** Newest offset per partition, asked for and not yet sent. */
  readonly #pending = new Map<number, number>();
  /** Per partition, the commit failure it has not been told about yet. */
  readonly #failed = new Map<number, unknown>();
  /** Partitions in the request in flight. */
  #carrying = new Set<number>();
  #inFlight: Promise<void> | undefined;

  constructor(
    readonly stats: FunctionStats,
    /** Sends one commit of `[partition, next offset]` pairs; resolves once the broker has it. */
    readonly send: (offsets: readonly (readonly [number, number])[]) => Promise<void>,
  ) {}

  /**
   * Asks for `next` to become `partition`'s committed offset (the next one to read). Returns at
   * once; throws the failure of an earlier commit of this partition, so that a partition whose
   * commits fail stops as it did when it waited for each commit.
   */
  request(partition: number, next: number): void {
    this.#throwFailure(partition);
    this.#pending.set(partition, next);
    this.#inFlight ??= this.#drain();
  }

  /** Waits until every offset `partition` asked for has landed; throws if a commit of it failed. */
  async settle(partition: number): Promise<void> {
    // The drain runs until nothing is pending, so once it ends this partition's offsets were sent.
    if (this.#pending.has(partition) || this.#carrying.has(partition)) await this.#inFlight;
    this.#throwFailure(partition);
  }

  async #drain(): Promise<void> {
    try {
      while (this.#pending.size > 0) {
        const offsets = [...this.#pending];
        this.#pending.clear();
        this.#carrying = new Set(offsets.map(([p]) => p));
        try {
          await this.send(offsets);
        } catch (e) {
          // The broker keeps what landed before; what was asked for since is dropped with it, and
          // the partitions start again from their committed offsets (a fresh consumer, or kafkajs').
          for (const [p] of offsets) this.#failed.set(p, e);
          for (const [p] of this.#pending) this.#failed.set(p, e);
          this.#pending.clear();
          continue;
        }
        for (const [p, next] of offsets) this.stats.committed.set(p, next);
      }
    } finally {
      this.#carrying = new Set();
      this.#inFlight = undefined;
    }
  }

  #throwFailure(partition: number): void {
    if (!this.#failed.has(partition)) return;
    const e = this.#failed.get(partition);
    this.#failed.delete(partition);
    throw e;
  }
}
