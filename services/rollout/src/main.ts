#!/usr/bin/env node
import { loadConfig } from './config.js';
import { startRollout } from './app.js';

// `node services/rollout/dist/main.js`: configuration from the environment (see README).
const config = (() => {
  try {
    return loadConfig();
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    process.exit(2);
  }
})();
const service = await startRollout(config);
const stop = () => void service.close().then(() => process.exit(0), () => process.exit(1));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
