/**
 * Where Sluice's runtime logs go. Injected through the `Runtime` seam (`handler.sluice.configure({ logger })`),
 * so tests and hosts capture or redirect them without patching `console`.
 */

/**
 * One structured log entry: `sluice` names the kind of entry (`record-failed`, `dead-letter`, …).
 *
 * @example
 * const entry: LogEntry = { sluice: 'commit-failed', topic: 'readings', partition: 0, error: 'fenced' };
 */
export interface LogEntry {
  readonly sluice: string;
  readonly [field: string]: unknown;
}

/**
 * A logger for structured entries, one method per level.
 *
 * @example
 * const logger: Logger = { error: (e) => pino.error(e), warn: (e) => pino.warn(e), info: (e) => pino.info(e) };
 * handler.sluice.configure({ logger });
 */
export interface Logger {
  error(entry: LogEntry): void;
  warn(entry: LogEntry): void;
  info(entry: LogEntry): void;
}

/**
 * The default logger: one JSON line per entry on the console (errors on stderr, info on stdout),
 * which CloudWatch Logs picks up as is. `console` is looked up on every call, so whatever the
 * host installs there at any time is used.
 *
 * @example
 * consoleLogger.error({ sluice: 'commit-failed', topic: 'readings', partition: 0, error: 'fenced' });
 * // stderr: {"sluice":"commit-failed","topic":"readings","partition":0,"error":"fenced"}
 */
export const consoleLogger: Logger = {
  error: (entry) => console.error(JSON.stringify(entry)),
  warn: (entry) => console.warn(JSON.stringify(entry)),
  info: (entry) => console.log(JSON.stringify(entry)),
};
