import { randomBytes } from 'node:crypto';
export { ROOT_CONTEXT } from '@opentelemetry/api';
import { context, ROOT_CONTEXT, trace, TraceFlags, isSpanContextValid, type Attributes, type Context, type Span } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { tracer } from './trace-context.js';

// A rollout lives longer than any process: its trace is opened once, its traceparent stored with its
// first event, and every later span (in any instance, after any restart) uses that as its parent.

const w3c = new W3CTraceContextPropagator();
const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** The W3C traceparent of the span active in `ctx`, if any. */
export function traceparentOf(ctx: Context = context.active()): string | undefined {
  const carrier: Record<string, string> = {};
  w3c.inject(ctx, carrier, { set: (c, k, v) => void (c[k] = v) });
  return carrier['traceparent'];
}

/** A context whose (remote) parent is the stored traceparent; ROOT_CONTEXT when it is missing or malformed. */
export function contextFromTraceparent(traceparent: unknown): Context {
  if (typeof traceparent !== 'string' || !TRACEPARENT.test(traceparent)) return ROOT_CONTEXT;
  return w3c.extract(ROOT_CONTEXT, { traceparent }, { get: (c, k) => c[k as 'traceparent'], keys: (c) => Object.keys(c) });
}

/** The trace id in a traceparent, if it is well formed. */
export function traceIdOf(traceparent: unknown): string | undefined {
  if (typeof traceparent !== 'string' || !TRACEPARENT.test(traceparent)) return undefined;
  const id = traceparent.slice(3, 35);
  return /^0+$/.test(id) ? undefined : id;
}

/**
 * Starts the root span of a new trace (never a child of whatever is active). Without an SDK the
 * span is a non-recording one with fresh ids, so the trace id still reaches events, logs and the
 * next hop at no cost.
 */
export function startRootSpan(name: string, attributes: Attributes = {}, tracerName?: string): { span: Span; context: Context; traceId: string } {
  let span = tracer(tracerName).startSpan(name, { root: true, attributes }, ROOT_CONTEXT);
  if (!isSpanContextValid(span.spanContext())) {
    span = trace.wrapSpanContext({ traceId: randomBytes(16).toString('hex'), spanId: randomBytes(8).toString('hex'), traceFlags: TraceFlags.SAMPLED });
  }
  return { span, context: trace.setSpan(ROOT_CONTEXT, span), traceId: span.spanContext().traceId };
}

/** The traceparent of the span active in `ctx` only if that span is sampled (so a child of it would be exported). */
export function sampledTraceparentOf(ctx: Context = context.active()): string | undefined {
  const sc = trace.getSpanContext(ctx);
  return sc && (sc.traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED ? traceparentOf(ctx) : undefined;
}

/** `ctx` with its span context's sampled flag set or cleared: what the next hop's parent-based sampler follows. */
export function withSampledFlag(ctx: Context, sampled: boolean): Context {
  const sc = trace.getSpanContext(ctx);
  if (!sc || !isSpanContextValid(sc)) return ctx;
  return trace.setSpanContext(ctx, { ...sc, traceFlags: sampled ? sc.traceFlags | TraceFlags.SAMPLED : sc.traceFlags & ~TraceFlags.SAMPLED });
}

/** Runs `fn` with `ctx` active (so spans, logs and outgoing headers use it). */
export function runInContext<T>(ctx: Context, fn: () => T): T {
  return context.with(ctx, fn);
}
