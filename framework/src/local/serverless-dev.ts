import { emulate } from './emulate-cli.js';

/**
 * The parts of Serverless Framework v3's `serverless` object `sls sluice dev` uses.
 *
 * @example
 * const sls: ServerlessService = { serviceDir: '/srv/app', providers: { aws: { getStage: () => 'dev' } } };
 */
export interface ServerlessService {
  readonly serviceDir: string;
  readonly providers: { readonly aws: { getStage(): string } };
}

/**
 * `sls sluice dev`: the local event source mapping emulator (see docs/local-kafka.md), with the
 * same options as `sluice dev`. framework/serverless/index.cjs wires the command here, so the
 * plugin's packaging code (serverless/) and the emulator (local/) never import each other.
 *
 * @example
 * hooks['sluice:dev:run'] = () => dev(serverless, { function: 'orders', brokers: '127.0.0.1:9092' });
 */
export async function dev(sls: ServerlessService, options: Record<string, unknown>): Promise<void> {
  const args: string[] = [];
  if (typeof options.function === 'string') args.push(options.function);
  for (const k of ['brokers', 'state', 'dynamodb-endpoint', 'timeout'] as const)
    if (typeof options[k] === 'string') args.push(`--${k}`, options[k] as string);
  if (options.view === false) args.push('--no-view');
  // Same stage as `sls package` would use (--stage, provider.stage or dev): same consumer group.
  args.push('--stage', sls.providers.aws.getStage());
  const cwd = process.cwd();
  process.chdir(sls.serviceDir);
  try {
    const code = await emulate(args);
    if (code !== 0) process.exitCode = code;
  } finally {
    process.chdir(cwd);
  }
}
