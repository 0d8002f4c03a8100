import { context, ROOT_CONTEXT, createContextKey, trace, SpanKind, SpanStatusCode, isSpanContextValid, type Attributes, type Context, type Span, type SpanContext, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { ChangeoverError } from '@changeover/contracts';

export { SpanKind };
export type { Attributes, Context, Span, SpanContext };

const PROBE = createContextKey('changeover.context-probe');

/**
 * Makes sure an async-local context manager is registered, so active spans follow awaits even when
 * no SDK exports traces (trace ids still reach the logs and the next hop). Safe to call many times.
 */
let ensured = false;
export function ensureContextManager(): void {
  // Checked once: every span of every message used to pay for a probe run through the context manager.
  if (ensured) return;
  const works = context.with(ROOT_CONTEXT.setValue(PROBE, true), () => context.active().getValue(PROBE) === true);
  if (!works) context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  ensured = true;
}

/** After `context.disable()` (tests): the next ensureContextManager registers a manager again. */
export function forgetContextManager(): void {
  ensured = false;
}

/** The tracer every Changeover part uses (one instrumentation scope per part). */
export function tracer(name = 'changeover'): Tracer {
  if (typeof name !== 'string' || name.length === 0 || name.length > 128) throw new ChangeoverError('VALIDATION_FAILED', 'tracer name must be a non-empty string of at most 128 characters');
  return trace.getTracer(name);
}

export interface WithSpanOptions {
  /** Parent: a context (e.g. extracted from message headers) or a span context; defaults to the active context. */
  parent?: Context | SpanContext;
  attributes?: Attributes;
  kind?: SpanKind;
  tracerName?: string;
}

function isSpanContext(v: Context | SpanContext): v is SpanContext {
  return typeof (v as SpanContext).traceId === 'string' && typeof (v as SpanContext).spanId === 'string';
}

/**
 * Runs `fn` inside a new active span; records the error (and its ChangeoverError code) and ends the
 * span either way. `inSpan` that always answers with a promise (a bad argument rejects it).
 */
export async function withSpan<T>(name: string, fn: (span: Span) => T | Promise<T>, opts: WithSpanOptions = {}): Promise<T> {
  return inSpan(name, fn, opts);
}

/**
 * `withSpan` that stays synchronous when `fn` is: the span ends as soon as `fn` returns, or when the
 * promise it returns settles. A message handler that only queues work then costs no promise.
 */
export function inSpan<T>(name: string, fn: (span: Span) => T, opts: WithSpanOptions = {}): T {
  if (typeof name !== 'string' || name.length === 0 || name.length > 256) throw new ChangeoverError('VALIDATION_FAILED', 'span name must be a non-empty string of at most 256 characters');
  if (typeof fn !== 'function') throw new ChangeoverError('VALIDATION_FAILED', 'a span needs a function to run');
  ensureContextManager();
  const parent = opts.parent === undefined ? context.active() : isSpanContext(opts.parent) ? trace.setSpanContext(context.active(), opts.parent) : opts.parent;
  const span = tracer(opts.tracerName).startSpan(name, { kind: opts.kind ?? SpanKind.INTERNAL, attributes: opts.attributes }, parent);
  // A span without a valid context (no SDK, and no trace came with the message) would put nothing in
  // the context that anything reads: `fn` runs in the active context as it is, without entering one.
  const enter = parent !== context.active() || isSpanContextValid(span.spanContext());
  let result: T;
  try {
    result = enter ? context.with(trace.setSpan(parent, span), fn, undefined, span) : fn(span);
  } catch (err) {
    recordError(span, err);
    span.end();
    throw err;
  }
  if (!isPromiseLike(result)) {
    span.end();
    return result;
  }
  return Promise.resolve(result).then(
    (v) => {
      span.end();
      return v;
    },
    (err: unknown) => {
      recordError(span, err);
      span.end();
      throw err;
    },
  ) as T;
}

function isPromiseLike(v: unknown): v is PromiseLike<unknown> {
  return v !== null && (typeof v === 'object' || typeof v === 'function') && typeof (v as PromiseLike<unknown>).then === 'function';
}

/** Marks a span failed with the error; ChangeoverErrors also carry their code. */
export function recordError(span: Span, err: unknown): void {
  if (err instanceof ChangeoverError) span.setAttribute('changeover.error.code', err.code);
  if (err instanceof Error) span.recordException(err);
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message.slice(0, 512) : String(err).slice(0, 512) });
}

/** The active trace and span ids, if a valid span is active. */
export function currentTraceIds(ctx: Context = context.active()): { traceId: string; spanId: string } | undefined {
  const sc = trace.getSpanContext(ctx);
  if (!sc || !isSpanContextValid(sc)) return undefined;
  return { traceId: sc.traceId, spanId: sc.spanId };
}
