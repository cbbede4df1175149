/**
 * Runs `fn` with console.error silenced: the handler logs failed commits on stderr, and a failure
 * a test causes on purpose need not show.
 */
export async function quietly<T>(fn: () => Promise<T>): Promise<T> {
  const error = console.error;
  console.error = () => undefined;
  try {
    return await fn();
  } finally {
    console.error = error;
  }
}
