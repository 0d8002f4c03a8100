import type { Msg, MsgHdrs, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { z } from 'zod';
import { ChangeoverError, decode, encode, parse, RepeatedTailDecoder } from '@changeover/contracts';
import { createLogger, extractTraceContext, injectTraceHeaders, inSpan, SpanKind, type Logger } from '@changeover/telemetry';
import { assertConnection, assertSchema, assertSubject, InFlight } from './guards.js';
import { fromNatsError } from './nats-errors.js';
import { RejectionCounter } from './rejections.js';
import { RateLimiter, type RateLimit } from './rate-limit.js';

export interface PublishOptions {
  headers?: MsgHdrs;
  /** Validates the body before it is sent (wire types only). */
  schema?: z.ZodType;
}

/** Publishes a JSON message with the active trace context in its headers (fire-and-forget). */
export function publish(nc: NatsConnection, subject: string, body: unknown, opts: PublishOptions = {}): void {
  assertConnection(nc);
  assertSubject(subject);
  if (opts.schema !== undefined) {
    assertSchema(opts.schema, 'schema');
    parse(opts.schema, body, `message for ${subject}`);
  }
  try {
    nc.publish(subject, encode(body), { headers: injectTraceHeaders(opts.headers) });
  } catch (err) {
    throw fromNatsError(err, subject);
  }
}

export interface MessageContext {
  subject: string;
  headers?: MsgHdrs;
  /** Set when the sender asked for an answer. */
  reply?: string;
}

export interface SubscribeValidatedOptions {
  /** Called for each rejected message (after it is counted); its errors are ignored. */
  onInvalid?: (error: ChangeoverError, ctx: MessageContext & { data: Uint8Array }) => void;
  /** Queue group (default: none, every subscriber gets every message). */
  queue?: string;
  /**
   * A second subscription on a subject another one already counts (e.g. a queue group beside a
   * fan-out subscription): its refusals are logged at debug and not counted again, so every bad
   * message is counted once.
   */
  secondary?: boolean;
  logger?: Logger;
  /** Largest accepted message in bytes (default 1 MiB); larger ones are rejected TOO_LARGE, counted, never decoded. */
  maxBytes?: number;
  /** Messages over this rate are rejected RATE_LIMITED (counted, dropped) before they are decoded. */
  rateLimit?: RateLimit | RateLimiter;
  /**
   * A member of an object schema that messages often end with, repeated byte for byte (an
   * inventory): each distinct text of it is validated once (`RepeatedTailDecoder`). The handler
   * then gets shared values for it: read-only.
   */
  repeatedTail?: string;
}

/** Default largest message a subscribeValidated handler takes. */
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024;

export interface ValidatedSubscription {
  subject: string;
  subscription: Subscription;
  rejections: RejectionCounter;
  /** Handler failures (thrown or rejected) so far. */
  readonly failures: number;
  /** Stops taking messages and waits for the ones in flight. */
  stop(): Promise<void>;
}

let defaultLogger: Logger | undefined;
const messagingLogger = () => (defaultLogger ??= createLogger('messaging'));

/**
 * Subscribes to a fire-and-forget subject (agent reports, node commands): every message is validated
 * with `schema`; invalid ones are counted and passed to `onInvalid`; the handler runs inside a
 * consumer span continuing the sender's trace, and its errors are logged, never thrown out.
 */
export function subscribeValidated<S extends z.ZodType>(
  nc: NatsConnection,
  subject: string,
  schema: S,
  handler: (msg: z.infer<S>, ctx: MessageContext) => void | Promise<void>,
  opts: SubscribeValidatedOptions = {},
): ValidatedSubscription {
  assertConnection(nc);
  assertSubject(subject, { wildcards: true });
  assertSchema(schema, 'schema');
  if (typeof handler !== 'function') throw new ChangeoverError('VALIDATION_FAILED', 'subscribeValidated needs a handler function');
  if (opts.onInvalid !== undefined && typeof opts.onInvalid !== 'function') throw new ChangeoverError('VALIDATION_FAILED', 'onInvalid must be a function');
  if (opts.queue !== undefined) assertSubject(opts.queue, { what: 'queue group' });
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  if (!Number.isInteger(maxBytes) || maxBytes < 1) throw new ChangeoverError('VALIDATION_FAILED', 'maxBytes must be a positive integer');
  const tails = opts.repeatedTail === undefined ? undefined : new RepeatedTailDecoder(schema, opts.repeatedTail);
  const limiter = opts.rateLimit === undefined ? undefined : opts.rateLimit instanceof RateLimiter ? opts.rateLimit : new RateLimiter(opts.rateLimit);
  const log = opts.logger ?? messagingLogger();
  const rejections = new RejectionCounter();
  const inFlight = new InFlight();
  let failures = 0;

  const failed = (err: unknown, subject: string) => {
    failures += 1;
    log.error({ err, subject }, 'message handler failed');
  };

  /** Synchronous up to the handler: a handler that returns no promise costs no promise here either. */
  const handle = (msg: Msg): void => {
    const ctx: MessageContext = { subject: msg.subject, headers: msg.headers, ...(msg.reply ? { reply: msg.reply } : {}) };
    let value: z.infer<S>;
    try {
      if (msg.data.length > maxBytes) throw new ChangeoverError('TOO_LARGE', `message on ${msg.subject} of ${msg.data.length} bytes exceeds ${maxBytes}`, { limit: maxBytes });
      if (limiter && !limiter.take(limiter.keyOf(msg.subject))) throw new ChangeoverError('RATE_LIMITED', `too many messages on ${msg.subject}; dropped`);
      value = tails ? (tails.decode(msg.data, `message on ${msg.subject}`) as z.infer<S>) : decode(schema, msg.data, `message on ${msg.subject}`);
    } catch (err) {
      const e = err instanceof ChangeoverError ? err : new ChangeoverError('VALIDATION_FAILED', `invalid message on ${msg.subject}`);
      if (opts.secondary) log.debug({ subject: msg.subject, code: e.code, reason: e.message }, 'message rejected (counted by the primary subscription)');
      else {
        rejections.count(msg.subject, e.code);
        log.warn({ subject: msg.subject, code: e.code, reason: e.message }, 'message rejected');
      }
      try {
        opts.onInvalid?.(e, { ...ctx, data: msg.data });
      } catch (cbErr) {
        log.error({ err: cbErr, subject: msg.subject }, 'onInvalid callback failed');
      }
      return;
    }
    let parent;
    try {
      parent = extractTraceContext(msg.headers);
    } catch {
      parent = undefined;
    }
    let pending: void | Promise<void>;
    try {
      pending = inSpan(`receive ${msg.subject}`, () => handler(value, ctx), {
        parent,
        kind: SpanKind.CONSUMER,
        attributes: { 'messaging.system': 'nats', 'messaging.destination.name': msg.subject, 'messaging.operation.type': 'process' },
      });
    } catch (err) {
      return failed(err, msg.subject);
    }
    if (pending) inFlight.track(pending.catch((err: unknown) => failed(err, msg.subject)));
  };

  const subscription = nc.subscribe(subject, {
    ...(opts.queue ? { queue: opts.queue } : {}),
    callback: (err, msg) => {
      if (err) return void log.error({ err, subject }, 'subscription error');
      handle(msg);
    },
  });

  return {
    subject,
    subscription,
    rejections,
    get failures() {
      return failures;
    },
    async stop() {
      if (!subscription.isClosed()) await subscription.drain().catch(() => undefined);
      await inFlight.settled();
    },
  };
}
