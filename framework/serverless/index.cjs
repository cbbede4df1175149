'use strict';
/**
 * The Sluice plugin for Serverless Framework v3: `plugins: [sluice/serverless]`.
 *
 * Serverless loads plugins with require(), and Sluice is TypeScript run through tsx, so this file
 * only declares what Serverless needs up front (the `sluice:` schema, the `sluice dev` command,
 * the hooks) and loads the implementation (framework/src/serverless/plugin.ts) on first use.
 */
const path = require('node:path');
const { pathToFileURL } = require('node:url');

let implementation;
async function load() {
  if (!implementation) {
    (await import('tsx/esm/api')).register();
    implementation = await import(pathToFileURL(path.join(__dirname, '../src/serverless/plugin.ts')).href);
  }
  return implementation;
}

const SLUICE_FUNCTION_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    maximumRetryAttempts: { type: 'integer', minimum: -1, maximum: 10000 },
    deadLetterTopic: { type: 'string', minLength: 1 },
    onFailure: { type: 'string', minLength: 1 },
    provisionedPollers: {
      type: 'object',
      additionalProperties: false,
      properties: { minimum: { type: 'integer', minimum: 1, maximum: 200 }, maximum: { type: 'integer', minimum: 1, maximum: 2000 } },
      required: ['maximum'],
    },
  },
};

class SluiceServerlessPlugin {
  constructor(serverless, options, utils = {}) {
    this.serverless = serverless;
    this.options = options;
    this.log = utils.log ?? Object.assign((m) => console.log(m), { notice: (m) => console.log(m), warning: (m) => console.warn(m), verbose: () => {} });
    serverless.configSchemaHandler?.defineFunctionProperties('aws', { properties: { sluice: SLUICE_FUNCTION_SCHEMA } });
    // Serverless v3's schema predates the nodejs22.x runtime that Sluice deploys to.
    const runtimes = serverless.configSchemaHandler?.schema?.definitions?.awsLambdaRuntime?.enum;
    if (Array.isArray(runtimes) && !runtimes.includes('nodejs22.x')) runtimes.push('nodejs22.x');
    this.commands = {
      sluice: {
        type: 'container',
        usage: 'Sluice: stateful stream functions',
        commands: {
          dev: {
            usage: 'Run the functions against a local Kafka broker, emulating the MSK event source mapping',
            lifecycleEvents: ['run'],
            options: {
              function: { usage: 'Only this function', shortcut: 'f', type: 'string' },
              brokers: { usage: 'Kafka brokers, host:port[,host:port]', type: 'string', required: true },
              state: { usage: 'memory (default) or dynamodb', type: 'string' },
              'dynamodb-endpoint': { usage: 'DynamoDB (Local) endpoint', type: 'string' },
              timeout: { usage: 'Function timeout in seconds', type: 'string' },
              view: { usage: 'Live terminal view (default true)', type: 'boolean' },
            },
          },
        },
      },
    };
    const run = (step) => async () => (await load())[step](this.serverless, this.options, this.log);
    this.hooks = {
      'before:package:createDeploymentArtifacts': run('packageFunctions'),
      'before:deploy:function:packageFunction': run('packageFunctions'),
      'after:package:compileEvents': run('compileTemplate'),
      'sluice:dev:run': run('dev'),
    };
  }
}

module.exports = SluiceServerlessPlugin;
