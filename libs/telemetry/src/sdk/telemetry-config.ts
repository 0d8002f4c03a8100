import { z } from 'zod';
import { parse } from '@changeover/contracts';

const Url = z.url({ protocol: /^https?$/ });
const bool = z.enum(['true', 'false', '1', '0', '']).optional();

/** The standard OTEL_* variables Changeover reads (the SDK reads the rest itself). */
export const TelemetryEnv = z.object({
  OTEL_SDK_DISABLED: bool,
  OTEL_EXPORTER_OTLP_ENDPOINT: Url.optional(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: Url.optional(),
  OTEL_SERVICE_NAME: z.string().min(1).max(128).optional(),
  OTEL_TRACES_SAMPLER: z.enum(['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio']).optional(),
  OTEL_TRACES_SAMPLER_ARG: z.string().regex(/^(0(\.\d+)?|1(\.0+)?)$/, 'must be a ratio between 0 and 1').optional(),
  OTEL_METRICS_EXPORTER: z.string().optional(),
  OTEL_LOGS_EXPORTER: z.string().optional(),
});
export type TelemetryEnv = z.infer<typeof TelemetryEnv>;

/** Validates the OTEL_* variables (empty values count as unset); a bad one is a VALIDATION_FAILED naming it. */
export function readTelemetryEnv(env: Record<string, string | undefined>): TelemetryEnv {
  const picked: Record<string, string> = {};
  for (const key of Object.keys(TelemetryEnv.shape)) {
    const v = env[key];
    if (v !== undefined && v !== '') picked[key] = v;
  }
  return parse(TelemetryEnv, picked, 'telemetry environment');
}

/** Exporting is on when an OTLP endpoint is set and the SDK is not disabled. */
export function exportEnabled(cfg: TelemetryEnv): boolean {
  if (cfg.OTEL_SDK_DISABLED === 'true' || cfg.OTEL_SDK_DISABLED === '1') return false;
  return Boolean(cfg.OTEL_EXPORTER_OTLP_ENDPOINT ?? cfg.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}
