#!/usr/bin/env node
import { loadConfig } from './config.js';
import { startRollout } from './app.js';
import { readTelemetryEnv, startTelemetry } from '@changeover/telemetry';

// `node services/rollout/dist/main.js`: configuration from the environment (see README).
const config = (() => {
  try {
    readTelemetryEnv(process.env);
    return loadConfig();
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    process.exit(2);
  }
})();
// Spans go by OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set; without it nothing is exported.
const stopTelemetry = await startTelemetry({ serviceName: 'changeover-rollout' });
const service = await startRollout(config);
const stop = () => void service.close().then(() => stopTelemetry()).then(() => process.exit(0), () => process.exit(1));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
