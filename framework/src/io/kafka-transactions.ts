import type { Admin, Kafka, Producer, Transaction } from 'kafkajs';
import type { Manifest } from '../define/manifest.js';
import { SluiceError } from '../errors.js';
import type { DeadLetter, OutputMessage } from '../pipeline/records.js';
import { deadLetterMessage, OutputEncoder } from './kafka.js';
import { cacheCoordinators, forgetCoordinators } from './kafkajs-coordinators.js';
import type { DeadLetterSink } from './sinks.js';
import {
  decodePublished,
  encodePublished,
  type OutputTransaction,
  type OutputTransactions,
  type Published,
  publishedGroup,
  transactionalId,
} from './transactions.js';

/** kafkajs' default is 60 s; the plugin sets the function's timeout plus a margin. */
const DEFAULT_TRANSACTION_TIMEOUT_MS = 60_000;

/**
 * Retries of the transactional producers. A transaction's first send right after the previous
 * commit is refused with CONCURRENT_TRANSACTIONS until the commit's markers are written (a few
 * ms); kafkajs retries it after `initialRetryTime`, 300 ms by default, which made each transaction
 * take ~86 ms instead of ~10 ms on the local broker. Measured there (100 messages a transaction,
 * one producer): 11 ms a transaction retrying after 20 ms (the Java producer's wait), 4.8 ms after
 * 5 ms; in bench:kafka at batch size 1,000 (four partitions), 2 ms gave 0.82-0.84 of at-least-once's
 * throughput against 0.69 with 5 ms. The budget for real outages stays about the default's (~8 s:
 * 2 ms doubling, capped at 2 s, 14 times).
 */
const TRANSACTIONAL_RETRY = { initialRetryTime: 2, maxRetryTime: 2_000, retries: 14 } as const;

/**
 * Options of {@link KafkaTransactions}.
 *
 * @example
 * const opts: KafkaTransactionsOptions = { kafka: async () => new Kafka({ brokers }), manifest, functionName: 'sensor-sums' };
 */
export interface KafkaTransactionsOptions {
  /** The cluster (called once per producer; a deployed function reuses its container's client). */
  readonly kafka: () => Promise<Kafka>;
  readonly manifest: Manifest;
  /** Names the transactional ids and the published group: unique per deployed function. */
  readonly functionName: string;
  /** Dead letters join the transaction on this topic; without one they go to `logLetters`. */
  readonly deadLetterTopic?: string;
  readonly logLetters?: DeadLetterSink;
  /** How long the broker lets a transaction stay open before it aborts it (ms). */
  readonly transactionTimeoutMs?: number;
}

/** A producer that claimed its partition's transactional id, and what that partition published. */
interface Claimed {
  readonly producer: Producer;
  /** Read once, right after the claim; then kept up to date by this producer's own commits. */
  published: Published | undefined;
  busy: boolean;
  retired: boolean;
}

/**
 * Exactly-once transactions on Kafka with kafkajs: one transactional producer per source
 * partition (id `sluice-<function>-<topic>-<partition>`), created on first use and reused.
 *
 * Its first transaction claims the id (InitProducerId): the broker aborts whatever an older
 * producer of that id left open and fences it, so a stale invocation can never commit again. Only
 * then is the published position read from the group, so it is final; after that this producer's
 * own commits keep it (reading it back could miss a commit whose markers are still being written).
 * Any failure drops the producer: the next transaction claims the id afresh.
 *
 * @example
 * const transactions = new KafkaTransactions({ kafka: async () => kafka, manifest, functionName: 'sensor-sums' });
 * const txn = await transactions.begin('sensor-counts', 0);
 */
export class KafkaTransactions implements OutputTransactions {
  readonly #opts: KafkaTransactionsOptions;
  readonly #encoder: OutputEncoder;
  readonly #group: string;
  readonly #producers = new Map<string, Promise<Claimed>>();
  #admin: Promise<Admin> | undefined;

  constructor(opts: KafkaTransactionsOptions) {
    this.#opts = opts;
    this.#encoder = new OutputEncoder(opts.manifest);
    this.#group = publishedGroup(opts.functionName);
  }

  async begin(topic: string, partition: number): Promise<OutputTransaction> {
    const key = `${topic}\u0000${partition}`;
    let entry = this.#producers.get(key);
    if (!entry) {
      entry = this.#create(topic, partition);
      this.#producers.set(key, entry);
    }
    let claimed: Claimed;
    try {
      claimed = await entry;
    } catch (e) {
      if (this.#producers.get(key) === entry) this.#producers.delete(key);
      throw e;
    }
    if (claimed.busy) {
      // Only a stale invocation still running in this process holds it: middy answered for it at
      // the timeout (its work goes on; Lambda keeps the container), or `sluice dev` abandoned it.
      // Claim the id with a new producer, as a new container would: that fences the stale one.
      if (this.#producers.get(key) === entry) this.#producers.delete(key);
      this.#retire(claimed);
      return this.begin(topic, partition);
    }
    claimed.busy = true;
    const drop = () => {
      if (this.#producers.get(key) === entry) this.#producers.delete(key);
      claimed.retired = true;
      forgetCoordinators([transactionalId(this.#opts.functionName, topic, partition), this.#group]);
    };
    try {
      const txn = await claimed.producer.transaction();
      claimed.published ??= await this.#readPublished(topic, partition);
      return new KafkaOutputTransaction(this, txn, claimed, topic, partition, drop);
    } catch (e) {
      drop();
      this.#release(claimed);
      throw e;
    }
  }

  async published(topic: string, partition: number): Promise<Published> {
    const entry = this.#producers.get(`${topic}\u0000${partition}`);
    const claimed = entry ? await entry.catch(() => undefined) : undefined;
    return claimed?.published ?? this.#readPublished(topic, partition);
  }

  /**
   * Forgets every producer, as a new container would: the next transaction of each partition
   * claims its id again and fences whatever still runs with the old ones (their producers
   * disconnect when their transaction ends).
   */
  reset(): void {
    for (const entry of this.#producers.values())
      void entry.then(
        (c) => this.#retire(c),
        () => {},
      );
    this.#producers.clear();
  }

  async close(): Promise<void> {
    const entries = [...this.#producers.values()];
    this.#producers.clear();
    await Promise.all(
      entries.map((e) =>
        e.then(
          (c) => c.producer.disconnect(),
          () => {},
        ),
      ),
    );
    const admin = this.#admin;
    this.#admin = undefined;
    if (admin)
      await admin.then(
        (a) => a.disconnect(),
        () => {},
      );
  }

  /** @internal The function's name in dead letters, and the messages' bytes. */
  encode(messages: readonly OutputMessage[]) {
    return this.#encoder.encode(messages);
  }

  /** @internal */
  get options(): KafkaTransactionsOptions {
    return this.#opts;
  }

  /** @internal Records what this producer's commit published: it is final, being the newest. */
  committed(claimed: Claimed, to: Published): void {
    claimed.published = to;
  }

  /** @internal The transaction ended: a retired producer disconnects. */
  #release(claimed: Claimed): void {
    claimed.busy = false;
    if (claimed.retired) void claimed.producer.disconnect().catch(() => {});
  }

  /** @internal */
  release(claimed: Claimed): void {
    this.#release(claimed);
  }

  #retire(claimed: Claimed): void {
    claimed.retired = true;
    if (!claimed.busy) void claimed.producer.disconnect().catch(() => {});
  }

  async #create(topic: string, partition: number): Promise<Claimed> {
    await cacheCoordinators('sluice-');
    const producer = (await this.#opts.kafka()).producer({
      transactionalId: transactionalId(this.#opts.functionName, topic, partition),
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      transactionTimeout: this.#opts.transactionTimeoutMs ?? DEFAULT_TRANSACTION_TIMEOUT_MS,
      retry: TRANSACTIONAL_RETRY,
    });
    await producer.connect();
    return { producer, published: undefined, busy: false, retired: false };
  }

  async #readPublished(topic: string, partition: number): Promise<Published> {
    const admin = await (this.#admin ??= this.#opts
      .kafka()
      .then(async (k) => {
        const a = k.admin();
        await a.connect();
        return a;
      })
      .catch((e) => {
        this.#admin = undefined;
        throw e;
      }));
    const [offsets] = await admin.fetchOffsets({ groupId: this.#group, topics: [topic] });
    const p = offsets?.partitions.find((x) => x.partition === partition);
    return p ? decodePublished(p.offset, p.metadata) : decodePublished('-1', null);
  }
}

/** One open transaction of a {@link KafkaTransactions} producer. */
class KafkaOutputTransaction implements OutputTransaction {
  readonly published: Published;
  #ended = false;

  constructor(
    readonly owner: KafkaTransactions,
    readonly txn: Transaction,
    readonly claimed: Claimed,
    readonly topic: string,
    readonly partition: number,
    readonly drop: () => void,
  ) {
    this.published = claimed.published!;
  }

  async send(messages: readonly OutputMessage[], letters: readonly DeadLetter[], functionName: string): Promise<void> {
    const { deadLetterTopic, logLetters } = this.owner.options;
    const topicMessages = this.owner.encode(messages);
    if (letters.length > 0 && deadLetterTopic)
      topicMessages.push({ topic: deadLetterTopic, messages: letters.map((d) => deadLetterMessage(d, functionName)) });
    try {
      if (topicMessages.length > 0) await this.txn.sendBatch({ acks: -1, topicMessages });
    } catch (e) {
      // Fenced, say: kafkajs' abort of a transaction that added no partition succeeds locally, so
      // the producer must be dropped here, or every later transaction of it fails the same way.
      this.drop();
      await this.abort();
      throw e;
    }
    if (letters.length > 0 && !deadLetterTopic && logLetters) await logLetters.send(letters, functionName);
  }

  async commit(to: Published): Promise<void> {
    if (this.#ended)
      throw new SluiceError(`the transaction of ${this.topic}-${this.partition} has already ended; this is a bug in Sluice.`);
    this.#ended = true;
    const { offset, metadata } = encodePublished(to);
    try {
      await sendOffsets(this.txn, {
        consumerGroupId: publishedGroup(this.owner.options.functionName),
        topics: [
          { topic: this.topic, partitions: [{ partition: this.partition, offset, metadata } as { partition: number; offset: string }] },
        ],
      });
      await this.txn.commit();
      this.owner.committed(this.claimed, to);
    } catch (e) {
      // Fenced, timed out or cut off: whatever it sent is aborted (by us, the next claim or the
      // broker's timeout); the next transaction claims the id afresh.
      this.drop();
      await this.txn.abort().catch(() => {});
      throw e;
    } finally {
      this.owner.release(this.claimed);
    }
  }

  async abort(): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    try {
      await this.txn.abort();
    } catch {
      this.drop();
    } finally {
      this.owner.release(this.claimed);
    }
  }
}

/**
 * `txn.sendOffsets`, retried while the broker answers CONCURRENT_TRANSACTIONS: right after the
 * previous transaction's commit its markers may still be written, and a transaction that sent no
 * message (a batch without outputs) reaches the coordinator first with AddOffsetsToTxn, which
 * kafkajs does not retry (it does for sends). Nothing was added to the transaction then.
 */
async function sendOffsets(txn: Transaction, offsets: Parameters<Transaction['sendOffsets']>[0]): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await txn.sendOffsets(offsets);
      return;
    } catch (e) {
      if ((e as { type?: string }).type !== 'CONCURRENT_TRANSACTIONS' || attempt >= 10) throw e;
      await new Promise((r) => setTimeout(r, Math.min(500, 5 * 2 ** attempt)));
    }
  }
}
