import type { Kafka } from 'kafkajs';
import type { EsmConfig } from '../../config/event-source-mapping.js';
import type { Manifest } from '../../define/manifest.js';
import { KafkaTransactions } from '../../io/kafka-transactions.js';
import type { DeadLetterSink } from '../../io/sinks.js';
import type { OutputTransaction, OutputTransactions, Published } from '../../io/transactions.js';
import type { DeadLetter, OutputMessage } from '../../pipeline/records.js';

/*
 * Exactly-once in the emulator: the function's Kafka transactions on the emulator's brokers, as
 * the deployed function makes them (io/kafka-transactions.ts), counted for the live view, and
 * reset when an invocation is abandoned at its timeout, as Lambda would replace the container.
 */

/**
 * What the emulated function's transactions came to: `committed`, and `aborted` (ended without
 * committing after something was sent into them, or whose commit failed: their outputs are never
 * seen by read_committed readers). A transaction that sent nothing and ended is neither (a retry
 * whose records were all published, an idle tick that closed nothing).
 *
 * @example
 * const counts: TransactionCounts = { committed: 120, aborted: 1 };
 */
export interface TransactionCounts {
  committed: number;
  aborted: number;
}

/** The broker may keep a transaction open this long past the function's timeout before aborting it. */
const TRANSACTION_MARGIN_MS = 10_000;

/**
 * The emulated function's transactions: {@link KafkaTransactions} on the emulator's client, named
 * after the emulated function (transactional ids `sluice-<function>-<topic>-<partition>`, published
 * group `sluice-<function>-published`), dead letters in the transaction on the function's
 * dead-letter topic, each transaction counted into `counts`.
 *
 * @example
 * const transactions = emulatorTransactions(kafka, manifest, config, logDeadLetters(logger), stats.transactions);
 * handler.sluice.configure({ transactions });
 * // an invocation abandoned at its timeout:
 * transactions.reset();
 */
export function emulatorTransactions(
  kafka: Kafka,
  manifest: Manifest,
  config: Pick<EsmConfig, 'functionName' | 'deadLetterTopic' | 'timeoutMs'>,
  logLetters: DeadLetterSink,
  counts: TransactionCounts,
): CountedTransactions {
  return new CountedTransactions(
    new KafkaTransactions({
      kafka: async () => kafka,
      manifest,
      functionName: config.functionName,
      ...(config.deadLetterTopic ? { deadLetterTopic: config.deadLetterTopic } : {}),
      logLetters,
      transactionTimeoutMs: config.timeoutMs + TRANSACTION_MARGIN_MS,
    }),
    counts,
  );
}

/**
 * Transactions that count how theirs end (see {@link TransactionCounts}); `reset` is the new
 * container of {@link KafkaTransactions.reset}.
 *
 * @example
 * const counted = new CountedTransactions(new KafkaTransactions(opts), stats.transactions);
 */
export class CountedTransactions implements OutputTransactions {
  constructor(
    readonly inner: OutputTransactions & { reset(): void },
    readonly counts: TransactionCounts,
  ) {}

  async begin(topic: string, partition: number): Promise<OutputTransaction> {
    return new CountedTransaction(await this.inner.begin(topic, partition), this.counts);
  }

  published(topic: string, partition: number): Promise<Published> {
    return this.inner.published(topic, partition);
  }

  /** As a replaced container: the next transaction of each partition claims its id afresh, fencing the abandoned one. */
  reset(): void {
    this.inner.reset();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

class CountedTransaction implements OutputTransaction {
  #sent = false;
  #ended = false;

  constructor(
    readonly txn: OutputTransaction,
    readonly counts: TransactionCounts,
  ) {}

  get published(): Published {
    return this.txn.published;
  }

  async send(messages: readonly OutputMessage[], letters: readonly DeadLetter[], functionName: string): Promise<void> {
    if (messages.length > 0 || letters.length > 0) this.#sent = true;
    try {
      await this.txn.send(messages, letters, functionName);
    } catch (e) {
      // The transaction aborted itself.
      this.#end(false);
      throw e;
    }
  }

  async commit(to: Published): Promise<void> {
    try {
      await this.txn.commit(to);
    } catch (e) {
      this.#sent = true;
      this.#end(false);
      throw e;
    }
    this.#end(true);
  }

  async abort(): Promise<void> {
    this.#end(false);
    await this.txn.abort();
  }

  #end(committed: boolean): void {
    if (this.#ended) return;
    this.#ended = true;
    if (committed) this.counts.committed++;
    else if (this.#sent) this.counts.aborted++;
  }
}
