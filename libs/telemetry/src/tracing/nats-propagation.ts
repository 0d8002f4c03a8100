import { context, type Context, type TextMapGetter, type TextMapSetter } from '@opentelemetry/api';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { headers as natsHeaders, Match, type MsgHdrs } from '@nats-io/transport-node';
import { ChangeoverError } from '@changeover/contracts';

// W3C trace context is part of the wire (DESIGN §9), so it is used directly rather than whatever
// global propagator happens to be registered: two processes always agree on the header names.
const propagator = new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] });

type Carrier = Record<string, string>;
const setter: TextMapSetter<Carrier> = { set: (c, k, v) => void (c[k] = v) };

const getter: TextMapGetter<MsgHdrs | undefined> = {
  keys: (h) => (h ? h.keys() : []),
  get: (h, key) => {
    if (!h || !h.has(key, Match.IgnoreCase)) return undefined;
    const values = h.values(key, Match.IgnoreCase);
    return values.length <= 1 ? values[0] : values;
  },
};

function assertHeaders(h: unknown): asserts h is MsgHdrs | undefined {
  if (h === undefined) return;
  const m = h as Partial<MsgHdrs>;
  if (typeof h !== 'object' || h === null || typeof m.get !== 'function' || typeof m.set !== 'function' || typeof m.keys !== 'function') {
    throw new ChangeoverError('VALIDATION_FAILED', 'headers must be NATS MsgHdrs');
  }
}

/** The W3C header names carried on NATS messages. */
export const TRACE_HEADER_NAMES = propagator.fields();

/**
 * Writes `traceparent`/`tracestate` (and baggage) of `ctx` into `hdrs` (created when needed).
 * Returns the headers, or `hdrs` unchanged (possibly undefined) when there is nothing to carry.
 */
export function injectTraceHeaders(hdrs?: MsgHdrs, ctx: Context = context.active()): MsgHdrs | undefined {
  assertHeaders(hdrs);
  const carrier: Carrier = {};
  propagator.inject(ctx, carrier, setter);
  const entries = Object.entries(carrier);
  if (entries.length === 0) return hdrs;
  const out = hdrs ?? natsHeaders();
  for (const [k, v] of entries) out.set(k, v);
  return out;
}

/** Reads the W3C trace context of a NATS message into a context (malformed headers are ignored). */
export function extractTraceContext(hdrs?: MsgHdrs, base: Context = context.active()): Context {
  assertHeaders(hdrs);
  if (!hdrs) return base;
  return propagator.extract(base, hdrs, getter);
}
