#!/usr/bin/env node
import { runCli } from './program.js';

// `changeover …`: CHANGEOVER_ROLLOUT_URL, CHANGEOVER_REGISTRY_URL, CHANGEOVER_TOKEN from the environment.
const code = await runCli(process.argv.slice(2), {
  out: (t) => process.stdout.write(`${t}\n`),
  err: (t) => process.stderr.write(`${t}\n`),
  env: process.env,
  isTty: process.stdout.isTTY === true,
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
});
process.exitCode = code;
