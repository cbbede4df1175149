import net from 'node:net';

/**
 * Whether something accepts TCP connections on host:port within `timeoutMs`: how the infra
 * scripts, the test helpers and the fault suite tell whether Kafka or DynamoDB Local is up.
 *
 * @example
 * if (!(await portOpen('127.0.0.1', 9092))) console.log('no broker: npm run infra:up');
 */
export function portOpen(host: string, port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    const done = (open: boolean) => {
      sock.destroy();
      resolve(open);
    };
    sock.setTimeout(timeoutMs);
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
    sock.once('timeout', () => done(false));
  });
}

/** {@link portOpen} for a URL (`http://127.0.0.1:8000`) or `host:port`. */
export function endpointOpen(endpoint: string, timeoutMs = 1_000): Promise<boolean> {
  const url = new URL(endpoint.includes('://') ? endpoint : `tcp://${endpoint}`);
  return portOpen(url.hostname, Number(url.port || 80), timeoutMs);
}
