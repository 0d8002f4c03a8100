import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { ROOT_CONTEXT, SpanStatusCode, trace } from '@opentelemetry/api';
import { ChangeoverError } from '@changeover/contracts';
import { contextFromTraceparent, installTestTracing, NOOP_UNIT_TRACER, sampleDraw, sampledTraceparentOf, startRootSpan, traceIdOf, traceparentOf, unitTracer, withSampledFlag, type TestTracing } from '../index.js';

let tracing: TestTracing;
beforeAll(() => {
  tracing = installTestTracing();
});
afterAll(async () => {
  await tracing.shutdown();
});
beforeEach(() => tracing.reset());

const TRACE = '0af7651916cd43dd8448eb211c80319c';
const parent = contextFromTraceparent(`00-${TRACE}-b7ad6b7169203331-01`);
/** A node key whose draw for TRACE is above `ratio` (not sampled by it). */
const unsampledKey = (ratio: number) => Array.from({ length: 200 }, (_, i) => `node-${i}`).find((k) => sampleDraw(TRACE, k) >= ratio)!;

describe('root trace', () => {
  it('opens a new trace, never a child of the active span, and its traceparent round-trips', () => {
    const { span, context, traceId } = startRootSpan('rollout', { 'changeover.rollout_id': 'r1' });
    span.end();
    const tp = traceparentOf(context)!;
    expect(traceIdOf(tp)).toBe(traceId);
    expect(trace.getSpanContext(contextFromTraceparent(tp))).toMatchObject({ traceId, isRemote: true });
    const [root] = tracing.spans();
    expect(root!.parentSpanContext).toBeUndefined();
    expect(root!.attributes['changeover.rollout_id']).toBe('r1');
  });

  it('sets or clears the sampled flag of a context, and gives a traceparent only for a sampled span', () => {
    const unsampled = withSampledFlag(parent, false);
    expect(traceparentOf(unsampled)).toBe(`00-${TRACE}-b7ad6b7169203331-00`);
    expect(sampledTraceparentOf(unsampled)).toBeUndefined();
    expect(sampledTraceparentOf(withSampledFlag(unsampled, true))).toBe(`00-${TRACE}-b7ad6b7169203331-01`);
    expect(withSampledFlag(ROOT_CONTEXT, true)).toBe(ROOT_CONTEXT);
  });

  it('reads a missing or malformed traceparent as no parent', () => {
    for (const bad of [undefined, 42, 'garbage', `00-${'0'.repeat(32)}-b7ad6b7169203331-01`]) {
      expect(trace.getSpanContext(contextFromTraceparent(bad))).toBeUndefined();
      expect(traceIdOf(bad)).toBeUndefined();
    }
  });
});

describe('unit tracer', () => {
  it('materializes a sampled unit with its steps, times and events under the remote parent', async () => {
    const unit = unitTracer({ ratio: 1 }).unit('agent.propose', parent, 'edge-1', { 'changeover.node_id': 'edge-1' });
    await unit.step('agent.vote', () => unit.event('verdict', { 'changeover.process_id': 'p1', 'changeover.decision': 'accept' }));
    unit.end();
    unit.end();
    const spans = tracing.spans();
    expect(spans.map((s) => s.name)).toEqual(['agent.vote', 'agent.propose']);
    const [vote, propose] = spans;
    expect(propose!.spanContext().traceId).toBe(TRACE);
    expect(propose!.parentSpanContext?.spanId).toBe('b7ad6b7169203331');
    expect(vote!.parentSpanContext?.spanId).toBe(propose!.spanContext().spanId);
    expect(vote!.events[0]).toMatchObject({ name: 'verdict', attributes: { 'changeover.process_id': 'p1' } });
    expect(vote!.startTime[0] * 1e9 + vote!.startTime[1]).toBeGreaterThanOrEqual(propose!.startTime[0] * 1e9 + propose!.startTime[1]);
  });

  it('drops a unit the ratio does not sample, but keeps a vetoed or failed one', async () => {
    const tracer = unitTracer({ ratio: 0.5 });
    const key = unsampledKey(0.5);
    tracer.unit('agent.propose', parent, key).end();
    expect(tracing.spans()).toHaveLength(0);

    const vetoed = tracer.unit('agent.propose', parent, key);
    vetoed.keep('veto');
    vetoed.end();
    const failed = tracer.unit('agent.commit', parent, key);
    await failed.step('agent.fetch', () => Promise.reject(new ChangeoverError('NOT_FOUND', 'no blob'))).catch(() => undefined);
    failed.end();
    const spans = tracing.spans();
    expect(spans.map((s) => s.name)).toEqual(['agent.propose', 'agent.fetch', 'agent.commit']);
    expect(spans[0]!.attributes['changeover.kept']).toBe('veto');
    expect(spans[1]!.status.code).toBe(SpanStatusCode.ERROR);
    expect(spans[1]!.attributes['changeover.error.code']).toBe('NOT_FOUND');
  });

  it('decides the same way for the same trace and node, and samples about the ratio', () => {
    expect(sampleDraw(TRACE, 'edge-1')).toBe(sampleDraw(TRACE, 'edge-1'));
    const hits = Array.from({ length: 10_000 }, (_, i) => sampleDraw(TRACE, `sim-${i}`) < 0.1).filter(Boolean).length;
    expect(hits).toBeGreaterThan(800);
    expect(hits).toBeLessThan(1200);
  });

  it('costs nothing at ratio 0 without failure keeping, when export is off, or without a parent', () => {
    expect(unitTracer({ ratio: 0, keepFailures: false })).toBe(NOOP_UNIT_TRACER);
    expect(unitTracer({ ratio: 1, enabled: false })).toBe(NOOP_UNIT_TRACER);
    const unit = unitTracer({ ratio: 1 }).unit('agent.propose', ROOT_CONTEXT, 'edge-1');
    expect(unit.recording).toBe(false);
    unit.keep('veto');
    unit.end();
    expect(tracing.spans()).toHaveLength(0);
  });

  it('refuses a ratio outside 0..1 with a typed error', () => {
    for (const r of [-0.1, 1.5, Number.NaN, '0.5']) expect(() => unitTracer({ ratio: r as number })).toThrow(ChangeoverError);
  });
});
