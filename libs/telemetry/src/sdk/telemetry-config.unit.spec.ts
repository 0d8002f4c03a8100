import { describe, expect, it } from '@jest/globals';
import { isChangeoverError } from '@changeover/contracts';
import { exportEnabled, readTelemetryEnv, startTelemetry, telemetryEnabled } from '../index.js';

describe('telemetry configuration', () => {
  it('is off without an endpoint, on with one, off again when disabled', () => {
    expect(exportEnabled(readTelemetryEnv({}))).toBe(false);
    expect(exportEnabled(readTelemetryEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: '' }))).toBe(false);
    expect(exportEnabled(readTelemetryEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://jaeger:4318' }))).toBe(true);
    expect(exportEnabled(readTelemetryEnv({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://jaeger:4318/v1/traces' }))).toBe(true);
    expect(exportEnabled(readTelemetryEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://jaeger:4318', OTEL_SDK_DISABLED: 'true' }))).toBe(false);
  });

  it.each([
    ['OTEL_EXPORTER_OTLP_ENDPOINT', 'jaeger:4318'],
    ['OTEL_TRACES_SAMPLER', 'sometimes'],
    ['OTEL_TRACES_SAMPLER_ARG', '1.5'],
    ['OTEL_SDK_DISABLED', 'maybe'],
  ])('refuses %s=%s with VALIDATION_FAILED naming the variable', (key, value) => {
    let caught: unknown;
    try {
      readTelemetryEnv({ [key]: value });
    } catch (e) {
      caught = e;
    }
    expect(isChangeoverError(caught, 'VALIDATION_FAILED')).toBe(true);
    expect((caught as Error).message).toContain(key);
  });

  it('starts disabled without an endpoint and refuses a bad service name', async () => {
    const shutdown = await startTelemetry({ serviceName: 'unit', env: {} });
    expect(telemetryEnabled()).toBe(false);
    await shutdown();
    await expect(startTelemetry({ serviceName: 'bad name' })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    await expect(startTelemetry({ serviceName: 'svc', env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'nope' } })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
  });
});
