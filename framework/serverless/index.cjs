'use strict';
/**
 * The Sluice plugin for Serverless Framework v3: `plugins: [sluice/serverless]`.
 *
 * Serverless loads plugins with require(), and Sluice is TypeScript run through tsx, so this file
 * only declares what Serverless needs up front (the `sluice:` schema, the `sluice dev` command,
 * the hooks) and loads the implementations on first use: packaging and the template from
 * framework/src/serverless/plugin.ts, `sls sluice dev` from framework/src/local/serverless-dev.ts.
 */
const path = require('node:path');
const { pathToFileURL } = require('node:url');

/**
 * The JSON schema of `functions.<name>.sluice`, defined once: framework/src/config/sluice-options.ts
 * loads the same file and takes its checks' ranges from it.
 */
const SLUICE_FUNCTION_SCHEMA = require('../src/config/sluice-options.schema.json');

const PLUGIN = '../src/serverless/plugin.ts';
const DEV = '../src/local/serverless-dev.ts';

let registered;
const modules = new Map();
async function load(file) {
  registered ??= import('tsx/esm/api').then((tsx) => tsx.register());
  await registered;
  if (!modules.has(file)) modules.set(file, import(pathToFileURL(path.join(__dirname, file)).href));
  return modules.get(file);
}

class SluiceServerlessPlugin {
  constructor(serverless, options, utils = {}) {
    this.serverless = serverless;
    this.options = options;
    this.log =
      utils.log ??
      Object.assign((m) => console.log(m), { notice: (m) => console.log(m), warning: (m) => console.warn(m), verbose: () => {} });
    serverless.configSchemaHandler?.defineFunctionProperties('aws', { properties: { sluice: SLUICE_FUNCTION_SCHEMA } });
    // custom.sluice: the service-wide defaults (the tick period and the guarantee; config/function-config.ts checks them).
    const { tick, guarantee } = SLUICE_FUNCTION_SCHEMA.properties;
    serverless.configSchemaHandler?.defineCustomProperties?.({
      properties: { sluice: { type: 'object', properties: { tick, guarantee }, additionalProperties: false } },
    });
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
    const run = (file, step) => async () => (await load(file))[step](this.serverless, this.options, this.log);
    this.hooks = {
      'before:package:createDeploymentArtifacts': run(PLUGIN, 'packageFunctions'),
      'before:deploy:function:packageFunction': run(PLUGIN, 'packageFunctions'),
      'after:package:compileEvents': run(PLUGIN, 'compileTemplate'),
      'sluice:dev:run': run(DEV, 'dev'),
    };
  }
}

module.exports = SluiceServerlessPlugin;
