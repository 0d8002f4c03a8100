import type { MsgHdrs, NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';
import { ChangeoverError, decode, encode, ErrorCode, parse, rpcReply } from '@changeover/contracts';
import { injectTraceHeaders, SpanKind, withSpan } from '@changeover/telemetry';
import { assertConnection, assertSchema, assertSubject } from './guards.js';
import { fromNatsError } from './nats-errors.js';

export interface RequestRpcOptions {
  timeoutMs: number;
  /** Extra headers; the trace context is added to them. */
  headers?: MsgHdrs;
}

// The envelope is checked first, the result then with its own schema, so errors name the result's field.
const Envelope = rpcReply(z.unknown());

/**
 * Sends a request and returns the validated result. The error envelope is thrown as its
 * ChangeoverError; no reply in time → TIMEOUT; nobody listening or no connection → UNAVAILABLE.
 */
export async function requestRpc<S extends z.ZodType>(nc: NatsConnection, subject: string, body: unknown, resultSchema: S, opts: RequestRpcOptions): Promise<z.infer<S>> {
  assertConnection(nc);
  assertSubject(subject);
  assertSchema(resultSchema, 'resultSchema');
  if (!opts || typeof opts.timeoutMs !== 'number' || !Number.isFinite(opts.timeoutMs) || opts.timeoutMs <= 0 || opts.timeoutMs > 3_600_000) {
    throw new ChangeoverError('VALIDATION_FAILED', 'requestRpc needs timeoutMs, a positive number of milliseconds (at most one hour)');
  }
  const payload = encode(body);
  return withSpan(
    `request ${subject}`,
    async () => {
      let reply;
      try {
        reply = await nc.request(subject, payload, { timeout: opts.timeoutMs, headers: injectTraceHeaders(opts.headers) });
      } catch (err) {
        throw fromNatsError(err, subject, opts.timeoutMs);
      }
      const envelope = decode(Envelope, reply.data, `reply from ${subject}`);
      if (!envelope.ok) {
        const code = ErrorCode.safeParse(envelope.error.code);
        // A code this build does not know (a newer peer) still arrives as an error, never as a result.
        if (!code.success) throw new ChangeoverError('INTERNAL', envelope.error.message, { ...envelope.error.details, remoteCode: envelope.error.code });
        throw new ChangeoverError(code.data, envelope.error.message, envelope.error.details);
      }
      return parse(resultSchema, envelope.result, `result from ${subject}`);
    },
    { kind: SpanKind.CLIENT, attributes: { 'messaging.system': 'nats', 'messaging.destination.name': subject, 'messaging.operation.type': 'send' } },
  );
}
