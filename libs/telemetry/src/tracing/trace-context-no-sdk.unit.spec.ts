import { describe, expect, it } from '@jest/globals';
import { context, createContextKey, trace } from '@opentelemetry/api';
import { currentTraceIds, inSpan } from '../index.js';
import { ensureContextManager } from './trace-context.js';

// No tracer provider is installed here: every span is a no-op one, as in a service started with
// OTEL_SDK_DISABLED=true.
describe('inSpan without an SDK', () => {
  it('runs the function in the active context as it is when the span has no valid context', () => {
    ensureContextManager();
    const key = createContextKey('test.value');
    const outer = context.active().setValue(key, 'kept');
    const seen = context.with(outer, () =>
      inSpan('no-sdk', (span) => ({ active: trace.getActiveSpan(), value: context.active().getValue(key), valid: span.isRecording(), ids: currentTraceIds() })),
    );
    expect(seen).toEqual({ active: undefined, value: 'kept', valid: false, ids: undefined });
  });

  it('still carries a trace that came with the message to the function', () => {
    const parent = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1, isRemote: true };
    expect(inSpan('with-parent', () => currentTraceIds(), { parent })).toEqual({ traceId: parent.traceId, spanId: parent.spanId });
  });

  it('keeps a promise result and its failure as they are', async () => {
    await expect(inSpan('async', () => Promise.resolve(7))).resolves.toBe(7);
    expect(() =>
      inSpan('throws', () => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
  });
});
