#!/usr/bin/env node
// The `hakit` command: a thin launcher for the compiled CLI.
import { main } from '../dist/src/cli/main.js';

main(process.argv).then((code) => { process.exitCode = code; });
