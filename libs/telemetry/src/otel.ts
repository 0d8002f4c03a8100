// Preload entry: `node --import @changeover/telemetry/otel dist/main.js` starts OpenTelemetry before
// the service's own modules load, so auto-instrumentations can patch them. Configured by OTEL_*.
import { startTelemetry } from './sdk/start-telemetry.js';

/** Flushes and stops telemetry; services call it from their shutdown hook. */
export const shutdownTelemetry = await startTelemetry({ serviceName: process.env['OTEL_SERVICE_NAME'] || 'changeover' });

process.once('beforeExit', () => void shutdownTelemetry());
