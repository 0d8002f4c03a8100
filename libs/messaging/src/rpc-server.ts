import type { Msg, MsgHdrs, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { z } from 'zod';
import { ChangeoverError, decode, encode, parse, type ErrorBody } from '@changeover/contracts';
import { createLogger, extractTraceContext, SpanKind, withSpan, type Logger } from '@changeover/telemetry';
import { RejectionCounter } from './rejections.js';
import { RateLimiter, type RateLimit } from './rate-limit.js';
import { assertConnection, assertSchema, assertSubject, InFlight } from './guards.js';

export interface RpcContext {
  /** The subject the request arrived on (a concrete one when the server listens on a wildcard). */
  subject: string;
  headers?: MsgHdrs;
}

export type RpcHandler<Req, Res> = (req: Req, ctx: RpcContext) => Res | Promise<Res>;

export interface ServeRpcOptions<Res> {
  /** Queue group; default the service name of the subject (changeover.registry.x → "registry"); false: every instance answers. */
  queue?: string | false;
  /** Validates the result before it goes on the wire; a mismatch is answered INTERNAL. */
  resultSchema?: z.ZodType<Res>;
  logger?: Logger;
  /** Largest accepted request payload in bytes (default 4 MiB); larger requests are rejected TOO_LARGE. */
  maxRequestBytes?: number;
  /** Requests over this rate are answered RATE_LIMITED (and counted) before they are decoded. */
  rateLimit?: RateLimit | RateLimiter;
}

export interface RpcServer {
  subject: string;
  queue: string | undefined;
  subscription: Subscription;
  /** Malformed requests rejected so far, by error code. */
  rejections: RejectionCounter;
  /** Stops taking requests and waits for the ones in flight. */
  stop(): Promise<void>;
}

export type RpcReplyBody<Res> = { ok: true; result: Res } | { ok: false; error: ErrorBody };

// Service subjects share work across instances; per-node and broadcast subjects must reach every subscriber.
const SERVICE_KINDS_WITHOUT_QUEUE = new Set(['node', 'class', 'agent', 'events', 'group']);

/** The default queue group for a subject: its service token, or none for node/class/agent/event/group subjects. */
export function defaultQueue(subject: string): string | undefined {
  const [root, kind] = subject.split('.');
  if (root !== 'changeover' || !kind || SERVICE_KINDS_WITHOUT_QUEUE.has(kind) || kind === '*' || kind === '>') return undefined;
  return kind;
}

let defaultLogger: Logger | undefined;
const messagingLogger = () => (defaultLogger ??= createLogger('messaging'));

/**
 * Answers requests on `subject`: each request is decoded and validated with `requestSchema`, the
 * handler runs inside a server span continuing the caller's trace, and the reply is
 * `{ ok: true, result }` or `{ ok: false, error }`. Malformed requests are answered
 * VALIDATION_FAILED and counted; nothing a client sends can crash the process.
 */
export function serveRpc<S extends z.ZodType, Res>(nc: NatsConnection, subject: string, requestSchema: S, handler: RpcHandler<z.infer<S>, Res>, opts: ServeRpcOptions<Res> = {}): RpcServer {
  assertConnection(nc);
  assertSubject(subject, { wildcards: true });
  assertSchema(requestSchema, 'requestSchema');
  if (typeof handler !== 'function') throw new ChangeoverError('VALIDATION_FAILED', 'serveRpc needs a handler function');
  if (opts.resultSchema !== undefined) assertSchema(opts.resultSchema, 'resultSchema');
  const queue = opts.queue === false ? undefined : (opts.queue ?? defaultQueue(subject));
  if (queue !== undefined) assertSubject(queue, { wildcards: false, what: 'queue group' });
  const maxBytes = opts.maxRequestBytes ?? 4 * 1024 * 1024;
  const limiter = opts.rateLimit === undefined ? undefined : opts.rateLimit instanceof RateLimiter ? opts.rateLimit : new RateLimiter(opts.rateLimit);
  const log = opts.logger ?? messagingLogger();
  const rejections = new RejectionCounter();
  const inFlight = new InFlight();

  const respond = (msg: Msg, body: RpcReplyBody<unknown>) => {
    try {
      msg.respond(encode(body));
    } catch (err) {
      // Typically a result larger than the server's max payload: tell the caller instead of leaving it to time out.
      log.error({ err, subject: msg.subject }, 'reply could not be sent');
      try {
        msg.respond(encode({ ok: false, error: { code: 'TOO_LARGE', message: `reply on ${msg.subject} could not be sent: ${err instanceof Error ? err.message : String(err)}`.slice(0, 1000) } }));
      } catch {
        // The connection is gone; the caller times out.
      }
    }
  };

  const handle = async (msg: Msg): Promise<void> => {
    if (!msg.reply) {
      rejections.count(msg.subject, 'VALIDATION_FAILED');
      log.warn({ subject: msg.subject }, 'request without a reply subject dropped');
      return;
    }
    if (msg.data.length > maxBytes) {
      rejections.count(msg.subject, 'TOO_LARGE');
      return respond(msg, { ok: false, error: { code: 'TOO_LARGE', message: `request of ${msg.data.length} bytes exceeds ${maxBytes}` } });
    }
    if (limiter && !limiter.take(limiter.keyOf(msg.subject))) {
      rejections.count(msg.subject, 'RATE_LIMITED');
      return respond(msg, { ok: false, error: { code: 'RATE_LIMITED', message: `too many requests on ${msg.subject}; try again later` } });
    }
    let parent;
    try {
      parent = extractTraceContext(msg.headers);
    } catch {
      parent = undefined;
    }
    await withSpan(
      `rpc ${msg.subject}`,
      async (span) => {
        let req: z.infer<S>;
        try {
          req = decode(requestSchema, msg.data, `request on ${msg.subject}`);
        } catch (err) {
          const e = err instanceof ChangeoverError ? err : new ChangeoverError('VALIDATION_FAILED', 'invalid request');
          rejections.count(msg.subject, e.code);
          span.setAttribute('changeover.error.code', e.code);
          return respond(msg, { ok: false, error: e.toBody() });
        }
        try {
          const result = await handler(req, { subject: msg.subject, headers: msg.headers });
          const checked = opts.resultSchema ? parse(opts.resultSchema, result, `result of ${msg.subject}`) : result;
          // JSON has no undefined: a handler that returns nothing answers `result: null`.
          respond(msg, { ok: true, result: checked === undefined ? null : checked });
        } catch (err) {
          if (err instanceof ChangeoverError && err.code !== 'INTERNAL') {
            span.setAttribute('changeover.error.code', err.code);
            return respond(msg, { ok: false, error: err.toBody() });
          }
          // Unexpected failures are logged with their detail; the caller gets a safe message only.
          log.error({ err, subject: msg.subject }, 'request handler failed');
          span.setAttribute('changeover.error.code', 'INTERNAL');
          respond(msg, { ok: false, error: { code: 'INTERNAL', message: `internal error while handling ${msg.subject}` } });
        }
      },
      { parent, kind: SpanKind.SERVER, attributes: { 'messaging.system': 'nats', 'messaging.destination.name': msg.subject, 'messaging.operation.type': 'process' } },
    ).catch((err: unknown) => log.error({ err, subject: msg.subject }, 'request processing failed'));
  };

  const subscription = nc.subscribe(subject, {
    ...(queue ? { queue } : {}),
    callback: (err, msg) => {
      if (err) return void log.error({ err, subject }, 'subscription error');
      inFlight.track(handle(msg));
    },
  });

  return {
    subject,
    queue,
    subscription,
    rejections,
    async stop() {
      if (!subscription.isClosed()) await subscription.drain().catch(() => undefined);
      await inFlight.settled();
    },
  };
}
