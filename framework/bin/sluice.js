#!/usr/bin/env node
// The sluice CLI. Handler files are TypeScript with standard decorators: tsx (esbuild) compiles them.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/local/cli.ts');
process.exitCode = await main(process.argv.slice(2));
