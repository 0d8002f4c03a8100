import type { NodeSDKConfiguration } from '@opentelemetry/sdk-node';
import { ChangeoverError } from '@changeover/contracts';
import { ensureContextManager } from '../tracing/trace-context.js';
import { exportEnabled, readTelemetryEnv, type TelemetryEnv } from './telemetry-config.js';

export interface StartTelemetryOptions {
  /** Used unless OTEL_SERVICE_NAME is set. */
  serviceName: string;
  /** Default process.env; the OTEL_* variables are read from here. */
  env?: Record<string, string | undefined>;
  /** Extra instrumentations (e.g. @opentelemetry/instrumentation-pg) when preloading. */
  instrumentations?: NodeSDKConfiguration['instrumentations'];
  /** Extra resource attributes, e.g. `service.instance.id` (a node id), merged with the detected ones. */
  resourceAttributes?: Record<string, string>;
}

export type ShutdownTelemetry = () => Promise<void>;

let running: Promise<{ shutdown: ShutdownTelemetry; enabled: boolean }> | undefined;
let enabledNow = false;

/** Whether the last startTelemetry call turned trace export on. */
export function telemetryEnabled(): boolean {
  return enabledNow;
}

/**
 * Starts OpenTelemetry from the standard OTEL_* variables: traces go by OTLP/HTTP (JSON) to
 * OTEL_EXPORTER_OTLP_ENDPOINT; with no endpoint nothing is exported, but trace context still
 * propagates. Metrics and logs exporters default to none (Prometheus serves metrics). Idempotent.
 * The SDK is loaded only when exporting, so a process without an endpoint starts fast.
 */
export async function startTelemetry(opts: StartTelemetryOptions): Promise<ShutdownTelemetry> {
  if (!opts || typeof opts.serviceName !== 'string' || !/^[A-Za-z0-9_.-]{1,128}$/.test(opts.serviceName)) {
    throw new ChangeoverError('VALIDATION_FAILED', 'startTelemetry needs a serviceName matching [A-Za-z0-9_.-]{1,128}');
  }
  const cfg = readTelemetryEnv(opts.env ?? process.env);
  running ??= boot(opts, cfg);
  return (await running).shutdown;
}

async function boot(opts: StartTelemetryOptions, cfg: TelemetryEnv): Promise<{ shutdown: ShutdownTelemetry; enabled: boolean }> {
  ensureContextManager();
  if (!exportEnabled(cfg)) {
    return { enabled: false, shutdown: async () => void (running = undefined) };
  }
  const [{ NodeSDK }, { OTLPTraceExporter }, { resourceFromAttributes }] = await Promise.all([import('@opentelemetry/sdk-node'), import('@opentelemetry/exporter-trace-otlp-http'), import('@opentelemetry/resources')]);
  // The SDK reads these from process.env when it is constructed; without them it would try to export metrics and logs too.
  process.env['OTEL_METRICS_EXPORTER'] ??= 'none';
  process.env['OTEL_LOGS_EXPORTER'] ??= 'none';
  const sdk = new NodeSDK({
    serviceName: cfg.OTEL_SERVICE_NAME ?? opts.serviceName,
    traceExporter: new OTLPTraceExporter(),
    instrumentations: opts.instrumentations ?? [],
    ...(opts.resourceAttributes ? { resource: resourceFromAttributes(opts.resourceAttributes) } : {}),
  });
  sdk.start();
  let done: Promise<void> | undefined;
  const shutdown: ShutdownTelemetry = () => {
    done ??= sdk.shutdown().finally(() => {
      running = undefined;
      enabledNow = false;
    });
    return done;
  };
  enabledNow = true;
  return { enabled: true, shutdown };
}
