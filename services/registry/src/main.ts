import { createLogger, readTelemetryEnv, startTelemetry } from '@changeover/telemetry';
import { loadConfig } from './config.js';
import { startRegistry } from './registry.app.js';

// Entry point: `npm run start -w services/registry` (after `npm run build`).
const log = createLogger('registry');
try {
  const config = loadConfig(process.env);
  readTelemetryEnv(process.env);
  // Spans (the NATS handlers continue the caller's trace) go by OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set.
  const stopTelemetry = await startTelemetry({ serviceName: 'changeover-registry' });
  const registry = await startRegistry(config, { logger: log });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'registry stopping');
    registry.close().then(stopTelemetry).then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'registry stopped with an error');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
} catch (err) {
  log.fatal({ err }, 'registry failed to start');
  process.exit(1);
}
