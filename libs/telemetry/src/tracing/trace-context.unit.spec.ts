import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { headers } from '@nats-io/transport-node';
import { SpanStatusCode, trace } from '@opentelemetry/api';
import { ChangeoverError, isChangeoverError } from '@changeover/contracts';
import { currentTraceIds, extractTraceContext, injectTraceHeaders, inSpan, installTestTracing, tracer, withSpan, type TestTracing } from '../index.js';

let tracing: TestTracing;
beforeAll(() => {
  tracing = installTestTracing();
});
afterAll(async () => {
  await tracing.shutdown();
});
beforeEach(() => tracing.reset());

describe('trace context on NATS headers', () => {
  it('injects traceparent of the active span and extracts the same span context', async () => {
    const { h, ids } = await withSpan('send', () => ({ h: injectTraceHeaders(), ids: currentTraceIds()! }));
    expect(h!.get('traceparent')).toBe(`00-${ids.traceId}-${ids.spanId}-01`);
    const sc = trace.getSpanContext(extractTraceContext(h))!;
    expect(sc).toMatchObject({ traceId: ids.traceId, spanId: ids.spanId, isRemote: true });
  });

  it('keeps headers the caller set and carries tracestate', async () => {
    const own = headers();
    own.set('Nats-Msg-Id', 'abc');
    const incoming = headers();
    incoming.set('traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    incoming.set('tracestate', 'vendor=x');
    const out = await withSpan('child', () => injectTraceHeaders(own), { parent: extractTraceContext(incoming) });
    expect(out).toBe(own);
    expect(out!.get('Nats-Msg-Id')).toBe('abc');
    expect(out!.get('traceparent')).toMatch(/^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);
    expect(out!.get('tracestate')).toBe('vendor=x');
  });

  it('adds nothing when no span is active', () => {
    expect(injectTraceHeaders()).toBeUndefined();
    const own = headers();
    expect(injectTraceHeaders(own)!.has('traceparent')).toBe(false);
  });

  it.each(['garbage', '00-00000000000000000000000000000000-b7ad6b7169203331-01', '00-0af7651916cd43dd8448eb211c80319c-zzzz-01', 'x'.repeat(5000)])('ignores the malformed traceparent %j', (value) => {
    const h = headers();
    h.set('traceparent', value);
    expect(trace.getSpanContext(extractTraceContext(h))).toBeUndefined();
  });

  it('reads the header case-insensitively', () => {
    const h = headers();
    h.set('TraceParent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    expect(trace.getSpanContext(extractTraceContext(h))?.traceId).toBe('0af7651916cd43dd8448eb211c80319c');
  });

  it('refuses something that is not NATS headers with a typed error', () => {
    expect(() => injectTraceHeaders({} as never)).toThrow(ChangeoverError);
    expect(() => extractTraceContext('traceparent' as never)).toThrow(/MsgHdrs/);
  });
});

describe('withSpan', () => {
  it('runs the function in an active span with attributes and a parent', async () => {
    const parent = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1, isRemote: true };
    const value = await withSpan('work', async () => {
      await Promise.resolve();
      return currentTraceIds()!.traceId;
    }, { parent, attributes: { 'changeover.rollout_id': 'r1' } });
    expect(value).toBe(parent.traceId);
    const [span] = tracing.spans();
    expect(span!.name).toBe('work');
    expect(span!.attributes['changeover.rollout_id']).toBe('r1');
    expect(span!.parentSpanContext?.spanId).toBe(parent.spanId);
  });

  it('records a failure with its code, ends the span and rethrows', async () => {
    const err = await withSpan('fails', () => {
      throw new ChangeoverError('NOT_FOUND', 'gone');
    }).catch((e: unknown) => e);
    expect(isChangeoverError(err, 'NOT_FOUND')).toBe(true);
    const [span] = tracing.spans();
    expect(span!.status.code).toBe(SpanStatusCode.ERROR);
    expect(span!.attributes['changeover.error.code']).toBe('NOT_FOUND');
    expect(span!.events.map((e) => e.name)).toContain('exception');
  });

  it('nests spans in one trace', async () => {
    await withSpan('outer', () => withSpan('inner', () => undefined));
    const [inner, outer] = tracing.spans();
    expect(inner!.spanContext().traceId).toBe(outer!.spanContext().traceId);
    expect(inner!.parentSpanContext?.spanId).toBe(outer!.spanContext().spanId);
  });

  it('refuses bad arguments with typed errors', async () => {
    await expect(withSpan('', () => 1)).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    await expect(withSpan('x', 'no' as never)).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    expect(() => tracer('')).toThrow(ChangeoverError);
  });
});

describe('inSpan', () => {
  const parent = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1, isRemote: true };

  it('returns a synchronous result as is, with the span already ended', () => {
    const value = inSpan('sync', () => currentTraceIds()!.traceId, { parent });
    expect(value).toBe(parent.traceId);
    const [span] = tracing.spans();
    expect(span!.name).toBe('sync');
    expect(span!.parentSpanContext?.spanId).toBe(parent.spanId);
  });

  it('ends the span of an asynchronous function only when its promise settles', async () => {
    let release!: () => void;
    const pending = inSpan('async', () => new Promise<string>((r) => (release = () => r('done'))));
    expect(tracing.spans()).toHaveLength(0);
    release();
    expect(await pending).toBe('done');
    expect(tracing.spans().map((s) => s.name)).toEqual(['async']);
  });

  it('records a thrown or rejected failure, ends the span and passes the error on', async () => {
    expect(() =>
      inSpan('throws', () => {
        throw new ChangeoverError('NOT_FOUND', 'gone');
      }),
    ).toThrow(/gone/);
    await expect(inSpan('rejects', () => Promise.reject(new ChangeoverError('CONFLICT', 'late')))).rejects.toMatchObject({ code: 'CONFLICT' });
    const spans = tracing.spans();
    expect(spans.map((s) => [s.name, s.status.code, s.attributes['changeover.error.code']])).toEqual([
      ['throws', SpanStatusCode.ERROR, 'NOT_FOUND'],
      ['rejects', SpanStatusCode.ERROR, 'CONFLICT'],
    ]);
  });

  it('refuses bad arguments with typed errors', () => {
    expect(() => inSpan('', () => 1)).toThrow(ChangeoverError);
    expect(() => inSpan('x', 'no' as never)).toThrow(ChangeoverError);
  });
});
