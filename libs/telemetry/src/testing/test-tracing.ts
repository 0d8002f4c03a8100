import { context, propagation, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { ensureContextManager, forgetContextManager } from '../tracing/trace-context.js';

export interface TestTracing {
  exporter: InMemorySpanExporter;
  /** Spans ended so far. */
  spans(): ReadableSpan[];
  reset(): void;
  shutdown(): Promise<void>;
}

/** Registers an in-memory tracer for tests (no network): spans are recorded and can be asserted on. */
export function installTestTracing(): TestTracing {
  ensureContextManager();
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  trace.setGlobalTracerProvider(provider);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  return {
    exporter,
    spans: () => exporter.getFinishedSpans(),
    reset: () => exporter.reset(),
    async shutdown() {
      await provider.shutdown();
      trace.disable();
      propagation.disable();
      context.disable();
      forgetContextManager();
    },
  };
}
