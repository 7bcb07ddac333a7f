#!/usr/bin/env node
import { runCli } from './cli.js';

// runCli handles a closed stdout while a command runs; an EPIPE surfacing after it returned
// (a last buffered write) ends the process quietly too, with the command's own exit code.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
});
process.exitCode = await runCli(process.argv.slice(2));
