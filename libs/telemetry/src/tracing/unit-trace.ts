import { performance } from 'node:perf_hooks';
import { SpanKind, SpanStatusCode, trace, isSpanContextValid, type Attributes, type Context } from '@opentelemetry/api';
import { ChangeoverError } from '@changeover/contracts';
import { tracer } from './trace-context.js';

// One node's part of a rollout (a proposal, a commit) is a "unit": its steps are recorded as plain
// objects while it runs and turned into spans only at its end, when it is known whether the unit is
// kept — by the sampling ratio, or always when it vetoed or failed. A unit not kept costs a few small
// objects; a tracer made with ratio 0 and no failure keeping costs nothing at all.

type Time = number;
interface Rec {
  name: string;
  start: Time;
  end?: Time;
  attributes: Attributes;
  events: { name: string; attributes?: Attributes; time: Time }[];
  error?: { code: string; message: string };
  children: Rec[];
}

/** The trace of one unit of work; every method is safe to call on the no-op one. */
export interface UnitTrace {
  /** Whether anything is recorded (false on the no-op unit). */
  readonly recording: boolean;
  /** Whether the sampling ratio picked this unit (a kept unit is exported even when not picked). */
  readonly sampled: boolean;
  /** Runs `fn` as a child step; a thrown error marks the step failed (and keeps the unit). */
  step<T>(name: string, fn: () => T | Promise<T>, attributes?: Attributes): Promise<T>;
  /** A timestamped event on the innermost running step (or the unit). */
  event(name: string, attributes?: Attributes): void;
  set(attributes: Attributes): void;
  /** Keeps the unit whatever the ratio says (a veto). */
  keep(reason: string): void;
  /** Marks the running step (if any) and the unit failed with a code; a failed unit is always kept. */
  fail(code: string, message: string): void;
  /** Ends the unit: exported when kept, dropped otherwise. Idempotent. */
  end(): void;
}

export interface UnitTracer {
  readonly enabled: boolean;
  /** Starts a unit under `parent` (the context from the command's headers); `key` (the node id) feeds the sampling decision. */
  unit(name: string, parent: Context, key: string, attributes?: Attributes): UnitTrace;
}

/** The unit that records nothing. */
export const NOOP_UNIT: UnitTrace = {
  recording: false,
  sampled: false,
  step: async (_n, fn) => fn(),
  event: () => undefined,
  set: () => undefined,
  keep: () => undefined,
  fail: () => undefined,
  end: () => undefined,
};

/** A tracer that records nothing (tracing off, or a fleet sampled at 0). */
export const NOOP_UNIT_TRACER: UnitTracer = { enabled: false, unit: () => NOOP_UNIT };

const now = (): Time => performance.timeOrigin + performance.now();

/** FNV-1a of trace id and key, as a number in [0, 1): the same node decides the same way for the whole trace. */
export function sampleDraw(traceId: string, key: string): number {
  let h = 0x811c9dc5;
  const s = `${traceId}/${key}`;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h / 4294967296;
}

export interface UnitTracerOptions {
  /** Share of units exported, 0..1 (decided per trace and key). */
  ratio: number;
  /** Keep vetoed and failed units whatever the ratio (default true). */
  keepFailures?: boolean;
  /** Whether spans are exported at all (default: true); false gives the no-op tracer. */
  enabled?: boolean;
  tracerName?: string;
}

/** A unit tracer sampling by ratio; the no-op one when export is off or nothing could ever be kept. */
export function unitTracer(opts: UnitTracerOptions): UnitTracer {
  if (typeof opts?.ratio !== 'number' || !(opts.ratio >= 0 && opts.ratio <= 1)) throw new ChangeoverError('VALIDATION_FAILED', `trace sample ratio must be a number in 0..1 (got ${String(opts?.ratio)})`);
  const keepFailures = opts.keepFailures ?? true;
  if (opts.enabled === false || (opts.ratio === 0 && !keepFailures)) return NOOP_UNIT_TRACER;
  const { ratio, tracerName } = opts;
  return {
    enabled: true,
    unit(name, parent, key, attributes = {}) {
      const parentSc = trace.getSpanContext(parent);
      if (!parentSc || !isSpanContextValid(parentSc)) return NOOP_UNIT;
      const sampled = ratio >= 1 || (ratio > 0 && sampleDraw(parentSc.traceId, key) < ratio);
      if (!sampled && !keepFailures) return NOOP_UNIT;
      return new RecordingUnit(name, parent, sampled, attributes, tracerName);
    },
  };
}

class RecordingUnit implements UnitTrace {
  readonly recording = true;
  readonly sampled: boolean;
  private readonly root: Rec;
  private readonly stack: Rec[] = [];
  private kept: boolean;
  private ended = false;

  constructor(
    name: string,
    private readonly parent: Context,
    sampled: boolean,
    attributes: Attributes,
    private readonly tracerName?: string,
  ) {
    this.kept = sampled;
    this.sampled = sampled;
    this.root = { name, start: now(), attributes: { ...attributes, 'changeover.sampled': sampled }, events: [], children: [] };
    this.stack.push(this.root);
  }

  private get current(): Rec {
    return this.stack[this.stack.length - 1]!;
  }

  async step<T>(name: string, fn: () => T | Promise<T>, attributes: Attributes = {}): Promise<T> {
    const rec: Rec = { name, start: now(), attributes: { ...attributes }, events: [], children: [] };
    this.current.children.push(rec);
    this.stack.push(rec);
    try {
      return await fn();
    } catch (e) {
      rec.error = { code: e instanceof ChangeoverError ? e.code : 'INTERNAL', message: e instanceof Error ? e.message : String(e) };
      this.kept = true;
      throw e;
    } finally {
      rec.end = now();
      const at = this.stack.lastIndexOf(rec);
      if (at > 0) this.stack.splice(at, 1);
    }
  }

  event(name: string, attributes?: Attributes): void {
    this.current.events.push({ name, ...(attributes ? { attributes } : {}), time: now() });
  }

  set(attributes: Attributes): void {
    Object.assign(this.current.attributes, attributes);
  }

  keep(reason: string): void {
    this.kept = true;
    this.root.attributes['changeover.kept'] = reason;
  }

  fail(code: string, message: string): void {
    this.kept = true;
    const error = { code, message };
    this.current.error ??= error;
    this.root.error ??= error;
    this.root.attributes['changeover.kept'] ??= 'failed';
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.root.end = now();
    if (!this.kept) return;
    const t = tracer(this.tracerName);
    const emit = (rec: Rec, parent: Context, kind: SpanKind) => {
      const span = t.startSpan(rec.name, { kind, startTime: rec.start, attributes: rec.attributes }, parent);
      for (const e of rec.events) span.addEvent(e.name, e.attributes, e.time);
      const ctx = trace.setSpan(parent, span);
      for (const c of rec.children) emit(c, ctx, SpanKind.INTERNAL);
      if (rec.error) {
        span.setAttribute('changeover.error.code', rec.error.code);
        span.setStatus({ code: SpanStatusCode.ERROR, message: rec.error.message.slice(0, 512) });
      }
      span.end(rec.end ?? this.root.end);
    };
    emit(this.root, this.parent, SpanKind.CONSUMER);
  }
}
